//! `.npy` and `.npz` files (NumPy's formats), read and written with npyz.
//!
//! Floating arrays are read as either f32 or f64 and converted to the requested type; int32
//! arrays (index tables such as `pad_hv`) have their own accessors. `.npz` files are written to
//! a temporary file beside the target and renamed into place, so that a reader (or a resumed
//! training run) never sees half a file.

use crate::{Error, Real, Result, Shape, Tensor};
use npyz::WriterBuilder;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read};
use std::path::{Path, PathBuf};

fn shape_of(dims: &[u64]) -> Shape {
    Shape::new(&dims.iter().map(|&d| d as usize).collect::<Vec<_>>())
}

fn read_float<T: Real, R: Read>(
    npy: npyz::NpyFile<R>,
    path: &Path,
    name: &str,
) -> Result<Tensor<T>> {
    if npy.order() != npyz::Order::C {
        return Err(Error::file(
            path,
            format!("{name}: Fortran-ordered arrays are not supported"),
        ));
    }
    let shape = shape_of(npy.shape());
    let descr = npy.dtype().descr();
    let data: Vec<T> = match descr.as_str() {
        "'<f4'" => npy
            .into_vec::<f32>()
            .map(|v| v.into_iter().map(|x| T::of_f64(x as f64)).collect()),
        "'<f8'" => npy
            .into_vec::<f64>()
            .map(|v| v.into_iter().map(T::of_f64).collect()),
        other => {
            return Err(Error::file(
                path,
                format!("{name}: expected float32 or float64 data, found dtype {other}"),
            ))
        }
    }
    .map_err(|e| Error::file(path, format!("{name}: {e}")))?;
    Tensor::new(shape, data).map_err(|e| Error::file(path, format!("{name}: {e}")))
}

fn read_i32<R: Read>(npy: npyz::NpyFile<R>, path: &Path, name: &str) -> Result<(Shape, Vec<i32>)> {
    let shape = shape_of(npy.shape());
    let descr = npy.dtype().descr();
    let data: Vec<i32> = match descr.as_str() {
        "'<i4'" => npy.into_vec::<i32>(),
        "'<i8'" => npy
            .into_vec::<i64>()
            .map(|v| v.into_iter().map(|x| x as i32).collect()),
        other => {
            return Err(Error::file(
                path,
                format!("{name}: expected int32 data, found dtype {other}"),
            ))
        }
    }
    .map_err(|e| Error::file(path, format!("{name}: {e}")))?;
    if data.len() != shape.numel() {
        return Err(Error::file(path, format!("{name}: truncated array")));
    }
    Ok((shape, data))
}

/// Reads a `.npy` file holding a float32 or float64 array.
pub fn read_npy<T: Real>(path: impl AsRef<Path>) -> Result<Tensor<T>> {
    let path = path.as_ref();
    let f = File::open(path).map_err(|e| Error::file(path, e))?;
    let npy = npyz::NpyFile::new(BufReader::new(f)).map_err(|e| Error::file(path, e))?;
    read_float(npy, path, "array")
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
    archive: npyz::npz::NpzArchive<BufReader<File>>,
}

impl NpzReader {
    /// Opens an archive; a missing or malformed file is an error naming it.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let archive = npyz::npz::NpzArchive::open(&path).map_err(|e| Error::file(&path, e))?;
        Ok(NpzReader { path, archive })
    }

    /// The names of the arrays in the archive.
    pub fn names(&self) -> Vec<String> {
        self.archive.array_names().map(str::to_string).collect()
    }

    fn entry(&mut self, name: &str) -> Result<npyz::NpyFile<impl Read + '_>> {
        let path = self.path.clone();
        self.archive
            .by_name(name)
            .map_err(|e| Error::file(&path, format!("{name}: {e}")))?
            .ok_or_else(|| Error::file(&path, format!("no array named {name}")))
    }

    /// Reads a float array as `T`.
    pub fn tensor<T: Real>(&mut self, name: &str) -> Result<Tensor<T>> {
        let path = self.path.clone();
        let npy = self.entry(name)?;
        read_float(npy, &path, name)
    }

    /// Reads an integer array as i32 with its shape.
    pub fn int32(&mut self, name: &str) -> Result<(Shape, Vec<i32>)> {
        let path = self.path.clone();
        let npy = self.entry(name)?;
        read_i32(npy, &path, name)
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
        let npz = self.npz.as_mut().expect("NpzWriter used after finish");
        let mut w = npz
            .array::<S>(name, Default::default())
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
        if dims.iter().product::<usize>() != data.len() {
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
        let mut npz = self.npz.take().expect("finish called twice");
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
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("shiftgrad-io-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn npy_round_trip_and_conversion() {
        let d = tmpdir("npy");
        let t = Tensor::<f32>::from_fn([2, 3, 4], |i| i as f32 * 0.5);
        write_npy(d.join("a.npy"), &t).unwrap();
        let back: Tensor<f32> = read_npy(d.join("a.npy")).unwrap();
        assert_eq!(back, t);
        let wide: Tensor<f64> = read_npy(d.join("a.npy")).unwrap();
        assert_eq!(wide.dims(), &[2, 3, 4]);
        assert_eq!(wide.data()[3], 1.5);
    }

    #[test]
    fn npz_round_trip() {
        let d = tmpdir("npz");
        let p = d.join("x.npz");
        let mut w = NpzWriter::create(&p).unwrap();
        let t = Tensor::<f64>::from_fn([3, 2], |i| i as f64);
        w.tensor("weight", &t).unwrap();
        w.int32("pad_hv", &[2, 2], &[1, -2, 3, 4]).unwrap();
        w.finish().unwrap();
        let mut r = NpzReader::open(&p).unwrap();
        let mut names = r.names();
        names.sort();
        assert_eq!(names, ["pad_hv", "weight"]);
        assert_eq!(r.tensor::<f64>("weight").unwrap(), t);
        assert_eq!(r.int32("pad_hv").unwrap().1, vec![1, -2, 3, 4]);
        let e = r.tensor::<f64>("missing").unwrap_err().to_string();
        assert!(e.contains("no array named missing"), "{e}");
        assert!(r.tensor::<f64>("pad_hv").is_err());
    }

    #[test]
    fn bad_files_are_errors_naming_the_file() {
        let d = tmpdir("bad");
        let p = d.join("junk.npy");
        std::fs::write(&p, b"not numpy").unwrap();
        let e = read_npy::<f32>(&p).unwrap_err().to_string();
        assert!(e.contains("junk.npy"), "{e}");
        let e = NpzReader::open(d.join("nothing.npz"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("nothing.npz"), "{e}");
    }
}
