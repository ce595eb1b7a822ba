//! `.npy` and `.npz` files (NumPy's formats). Writing goes through npyz; reading is done here.
//!
//! Float arrays are read as either f32 or f64 and converted to the requested type; int32 and
//! int64 arrays (index tables such as `pad_hv`) are read as i32. `.npz` files are written to a
//! temporary file beside the target and renamed into place, so that a reader (or a resumed
//! training run) never sees half a file.
//!
//! # Reading files that may be damaged or hostile
//! A checkpoint or golden file is data from outside the program, so the reader trusts nothing
//! in it. npyz's reader was the alternative and is not used for reading: it multiplies the
//! header's dimensions without a check (a wrapped element count in release builds, a panic in
//! debug builds) and allocates whatever header length the file claims, up to 4 GiB, before
//! reading it. Instead:
//! * the header length is capped at [`MAX_HEADER_LEN`] (NumPy itself refuses more than 10 000
//!   bytes by default) and by the bytes the file holds;
//! * the header is parsed as the dictionary literal NumPy writes, with exactly the keys
//!   `descr`, `fortran_order` and `shape`, by a small parser that accepts nothing else;
//! * the element count goes through [`Shape::try_new`] and the byte count through
//!   `checked_mul`, so a shape such as `(2^31, 2^31, 4)` is an error, not an empty array;
//! * the data must be exactly as long as the shape says: fewer bytes is "truncated", more is
//!   "trailing bytes". The length to compare with is the `.npy` file's own length, or an `.npz`
//!   entry's uncompressed size, which is bounded in turn: a stored entry by the archive's
//!   length, a deflated one by [`DEFLATE_MAX_RATIO`] times its compressed size (the most deflate
//!   can expand), so a zip bomb is refused before it is inflated. Reading stops one byte past
//!   the promised length whatever the archive claims, so memory stays bounded by the file.
//!
//! Every error names the file and the array (`ckpt.npz: stem.conv.weight: truncated ...`).

mod header;

use crate::{Error, Real, Result, Shape, Tensor};
use header::{read_header, Dtype, Source};
use npyz::zip::{result::ZipError, CompressionMethod};
use npyz::WriterBuilder;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read};
use std::path::{Path, PathBuf};

/// The longest `.npy` header accepted, in bytes.
pub const MAX_HEADER_LEN: usize = 1 << 16;
/// Deflate's largest expansion: one 258-byte match in two bits is 1032 bytes per input byte.
pub const DEFLATE_MAX_RATIO: u64 = 1032;

/// The first `N` bytes of `chunk` (which `chunks_exact(N)` makes exactly `N` long).
fn array_of<const N: usize>(chunk: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    for (d, s) in a.iter_mut().zip(chunk) {
        *d = *s;
    }
    a
}

/// One array read from a file: floats as `T`, integers as i32.
#[derive(Debug, Clone, PartialEq)]
pub enum Array<T: Real> {
    /// An `<f4` or `<f8` array, converted to `T`.
    Float(Tensor<T>),
    /// An int32 or int64 array (an index table such as `pad_hv`): its shape and its elements,
    /// row-major, as i32.
    Int(Shape, Vec<i32>),
}

/// Reads one `.npy` stream (header and data) holding `src.len` bytes.
fn read_array<T: Real>(mut r: impl Read, src: &Source) -> Result<Array<T>> {
    let h = read_header(&mut r, src)?;
    let mut bytes = Vec::new();
    r.take(h.data_len.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| src.err(format!("reading the data: {e}")))?;
    let got = bytes.len() as u64;
    if got < h.data_len {
        return Err(src.err(format!(
            "truncated: shape {} of {} needs {} bytes of data, the stream ends after {got}",
            h.shape,
            h.dtype.descr(),
            h.data_len
        )));
    }
    if got > h.data_len {
        return Err(src.err(format!(
            "trailing bytes after the {} bytes of data of shape {}",
            h.data_len, h.shape
        )));
    }
    let floats = |data: Vec<T>| -> Result<Array<T>> {
        let t = Tensor::new(h.shape.clone(), data).map_err(|e| src.err(e))?;
        Ok(Array::Float(t))
    };
    match h.dtype {
        Dtype::F32 => floats(
            bytes
                .chunks_exact(4)
                .map(|c| T::of_f64(f64::from(f32::from_le_bytes(array_of(c)))))
                .collect(),
        ),
        Dtype::F64 => floats(
            bytes
                .chunks_exact(8)
                .map(|c| T::of_f64(f64::from_le_bytes(array_of(c))))
                .collect(),
        ),
        Dtype::I32 => Ok(Array::Int(
            h.shape.clone(),
            bytes
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes(array_of(c)))
                .collect(),
        )),
        Dtype::I64 => {
            let data = bytes
                .chunks_exact(8)
                .enumerate()
                .map(|(i, c)| {
                    let v = i64::from_le_bytes(array_of(c));
                    i32::try_from(v).map_err(|_| {
                        src.err(format!("value {v} at element {i} does not fit in int32"))
                    })
                })
                .collect::<Result<Vec<i32>>>()?;
            Ok(Array::Int(h.shape.clone(), data))
        }
    }
}

fn want_float<T: Real>(a: Array<T>, path: &Path, name: &str) -> Result<Tensor<T>> {
    match a {
        Array::Float(t) => Ok(t),
        Array::Int(..) => Err(Error::file(
            path,
            format!("{name}: expected float32 or float64 data, found integers"),
        )),
    }
}

/// Reads a `.npy` file holding a float32 or float64 array.
pub fn read_npy<T: Real>(path: impl AsRef<Path>) -> Result<Tensor<T>> {
    let path = path.as_ref();
    let f = File::open(path).map_err(|e| Error::file(path, e))?;
    let len = f.metadata().map_err(|e| Error::file(path, e))?.len();
    let src = Source {
        path,
        name: "array",
        len,
        holder: "file",
    };
    want_float(read_array(BufReader::new(f), &src)?, path, "array")
}

/// Writes a tensor as a `.npy` file.
pub fn write_npy<T: Real>(path: impl AsRef<Path>, t: &Tensor<T>) -> Result<()> {
    let path = path.as_ref();
    let io = |e: std::io::Error| Error::file(path, e);
    let f = File::create(path).map_err(io)?;
    let dims: Vec<u64> = t.dims().iter().map(|&d| d as u64).collect();
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&dims)
        .writer(BufWriter::new(f))
        .begin_nd()
        .map_err(io)?;
    w.extend(t.data().iter().copied()).map_err(io)?;
    w.finish().map_err(io)
}

/// An open `.npz` archive.
pub struct NpzReader {
    path: PathBuf,
    /// The archive's length in bytes, the bound for what its entries may claim.
    len: u64,
    archive: npyz::npz::NpzArchive<BufReader<File>>,
}

impl NpzReader {
    /// Opens an archive; a missing or malformed file is an error naming it.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let len = std::fs::metadata(&path)
            .map_err(|e| Error::file(&path, e))?
            .len();
        let archive = npyz::npz::NpzArchive::open(&path)
            .map_err(|e| Error::file(&path, format!("not a valid .npz (zip) archive: {e}")))?;
        Ok(NpzReader { path, len, archive })
    }

    /// The names of the arrays in the archive.
    pub fn names(&self) -> Vec<String> {
        self.archive.array_names().map(str::to_string).collect()
    }

    /// Reads one array: floats as `T`, integers as i32.
    pub fn array<T: Real>(&mut self, name: &str) -> Result<Array<T>> {
        let (path, archive_len) = (&self.path, self.len);
        let entry_err = |msg: String| Error::file(path, format!("{name}: {msg}"));
        let file_name = npyz::npz::file_name_from_array_name(name);
        let entry = match self.archive.zip_archive().by_name(&file_name) {
            Ok(entry) => entry,
            Err(ZipError::FileNotFound) => {
                return Err(Error::file(path, format!("no array named {name}")))
            }
            Err(e) => return Err(entry_err(e.to_string())),
        };
        let (size, packed) = (entry.size(), entry.compressed_size());
        if packed > archive_len {
            return Err(entry_err(format!(
                "the archive entry claims {packed} compressed bytes, the whole archive holds {archive_len}"
            )));
        }
        let bound = match entry.compression() {
            CompressionMethod::Stored => packed,
            CompressionMethod::Deflated => packed
                .saturating_mul(DEFLATE_MAX_RATIO)
                .saturating_add(1024),
            other => {
                return Err(entry_err(format!(
                    "compression method {other} is not supported (NumPy writes stored or deflated entries)"
                )))
            }
        };
        if size > bound {
            return Err(entry_err(format!(
                "the archive entry claims {size} bytes from {packed} compressed bytes, more than its compression can produce"
            )));
        }
        let src = Source {
            path,
            name,
            len: size,
            holder: "archive entry",
        };
        read_array(entry, &src)
    }

    /// Reads a float array as `T`.
    pub fn tensor<T: Real>(&mut self, name: &str) -> Result<Tensor<T>> {
        let a = self.array(name)?;
        want_float(a, &self.path, name)
    }

    /// Reads an integer array as i32 with its shape.
    pub fn int32(&mut self, name: &str) -> Result<(Shape, Vec<i32>)> {
        match self.array::<f64>(name)? {
            Array::Int(shape, data) => Ok((shape, data)),
            Array::Float(_) => Err(Error::file(
                &self.path,
                format!("{name}: expected int32 data, found floats"),
            )),
        }
    }
}

/// Writes a `.npz` archive atomically: arrays go to `<path>.tmp`, renamed on [`NpzWriter::finish`].
pub struct NpzWriter {
    path: PathBuf,
    tmp: PathBuf,
    npz: Option<npyz::npz::NpzWriter<BufWriter<File>>>,
}

impl NpzWriter {
    /// Starts an archive that will appear at `path` when finished.
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let mut tmp = path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let npz = npyz::npz::NpzWriter::create(&tmp).map_err(|e| Error::file(&tmp, e))?;
        Ok(NpzWriter {
            path,
            tmp,
            npz: Some(npz),
        })
    }

    fn add<S: npyz::AutoSerialize + Copy>(
        &mut self,
        name: &str,
        dims: &[usize],
        data: &[S],
    ) -> Result<()> {
        let tmp = self.tmp.clone();
        let io = |e: std::io::Error| Error::file(&tmp, format!("{name}: {e}"));
        let dims: Vec<u64> = dims.iter().map(|&d| d as u64).collect();
        let npz = self
            .npz
            .as_mut()
            .ok_or_else(|| Error::file(&tmp, "archive already finished"))?;
        // A fixed member time (the zip epoch, 1980-01-01) rather than the clock's: the same
        // arrays give the same archive, byte for byte.
        let options = npyz::zip::write::FileOptions::default()
            .last_modified_time(npyz::zip::DateTime::default());
        let mut w = npz
            .array::<S>(name, options)
            .map_err(io)?
            .default_dtype()
            .shape(&dims)
            .begin_nd()
            .map_err(io)?;
        w.extend(data.iter().copied()).map_err(io)?;
        w.finish().map_err(io)
    }

    /// Adds a float array.
    pub fn tensor<T: Real>(&mut self, name: &str, t: &Tensor<T>) -> Result<()> {
        if t.is_host() {
            self.add(name, t.dims(), t.data())
        } else {
            self.add(name, t.dims(), &t.to_vec()?)
        }
    }

    /// Adds an int32 array.
    pub fn int32(&mut self, name: &str, dims: &[usize], data: &[i32]) -> Result<()> {
        self.int_array(name, dims, data)
    }

    /// Adds an int64 array (as PyTorch stores counters such as `num_batches_tracked`).
    pub fn int64(&mut self, name: &str, dims: &[usize], data: &[i64]) -> Result<()> {
        self.int_array(name, dims, data)
    }

    /// Adds an integer array after checking that `dims` holds its elements.
    fn int_array<S: npyz::AutoSerialize + Copy>(
        &mut self,
        name: &str,
        dims: &[usize],
        data: &[S],
    ) -> Result<()> {
        if Shape::checked_numel(dims) != Some(data.len()) {
            return Err(Error::shape(
                "npz",
                format!(
                    "{name}: shape {dims:?} does not hold {} elements",
                    data.len()
                ),
            ));
        }
        self.add(name, dims, data)
    }

    /// Closes the archive and renames it into place.
    pub fn finish(mut self) -> Result<()> {
        let tmp = self.tmp.clone();
        let mut npz = self
            .npz
            .take()
            .ok_or_else(|| Error::file(&tmp, "archive already finished"))?;
        let mut inner = npz
            .zip_writer()
            .finish()
            .map_err(|e| Error::file(&tmp, e))?;
        std::io::Write::flush(&mut inner).map_err(|e| Error::file(&tmp, e))?;
        inner
            .get_ref()
            .sync_all()
            .map_err(|e| Error::file(&tmp, e))?;
        drop(inner);
        drop(npz);
        std::fs::rename(&tmp, &self.path).map_err(|e| Error::file(&self.path, e))
    }
}

impl Drop for NpzWriter {
    fn drop(&mut self) {
        if self.npz.take().is_some() {
            // Abandoned before finish: leave no half-written file behind.
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests;
