//! Fashion-MNIST in the IDX format (SPEC section 5), with the training-time augmentation.
//!
//! The four files (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`,
//! `t10k-labels-idx1-ubyte`) are read raw or gzip-compressed (`.gz`). The directory comes from
//! `--data DIR`, else `FASHION_MNIST_DIR`, else `/usr/share/datasets/fashion-mnist` (Debian's
//! `dataset-fashion-mnist`).
//!
//! # What is checked, and why this way
//! The files are data from outside the program, so every number in them is checked before it
//! sizes a buffer or an index, and every problem is an [`Error`] naming the file:
//! * the magic number, split as IDX defines it (two zero bytes, the type byte 0x08 for unsigned
//!   bytes, the number of dimensions), so a labels file given for images reads "has 1
//!   dimension, expected 3" rather than just "wrong magic";
//! * the product of the header's dimensions, with `checked_mul`: `(2^31, 2^31, 4)` wraps to 0
//!   in unchecked arithmetic and would describe an empty file as two billion images;
//! * the payload length, which must be exactly what the header promises: fewer bytes is
//!   "truncated", more is "trailing bytes" (a concatenated or half-overwritten file);
//! * memory: the payload is read through `Read::take(promised + 1)`, so a file (or a gzip
//!   stream) that goes on longer is detected after one byte, not after exhausting memory, and
//!   the promise itself is bounded first by the file's own length: exactly for a raw file,
//!   and for `.gz` by [`GZIP_MAX_RATIO`] times the compressed length (deflate cannot expand
//!   more), so a header promising terabytes is refused before anything is allocated;
//! * the split as a whole: labels below [`CLASSES`], as many labels as images, and at least
//!   one image ("holds no images"), so the training loop never divides by zero.
//!
//! The alternative of decompressing the whole file and then parsing it (the first version of
//! this module) needs no bound on the header but lets a gzip bomb fill memory before any
//! check runs.

use shiftgrad_tensor::init::Rng;
use shiftgrad_tensor::{Error, Real, Result, Tensor};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Where Debian and Ubuntu's `dataset-fashion-mnist` package puts the files.
pub const SYSTEM_DIR: &str = "/usr/share/datasets/fashion-mnist";
/// Normalisation of Fashion-MNIST pixels (after scaling to [0, 1]): a pixel `p` becomes
/// `(p / 255 - MEAN) / STD`. This is the mean.
pub const MEAN: f64 = 0.286;
/// The standard deviation of the same normalisation (see [`MEAN`]).
pub const STD: f64 = 0.353;
/// Number of classes; every label must be below it.
pub const CLASSES: usize = 10;
/// Magic number of an IDX file of unsigned bytes with 3 dimensions (images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned bytes with 1 dimension (labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;
/// The most a deflate stream expands (one 258-byte match in two bits: 1032 bytes out per byte
/// in): a `.gz` file of `n` bytes, gzip header and trailer included, decompresses to fewer
/// than `GZIP_MAX_RATIO * n` bytes.
pub const GZIP_MAX_RATIO: u64 = 1032;

/// Training or test split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// The training split, files `train-*-idx?-ubyte`.
    Train,
    /// The test split, files `t10k-*-idx?-ubyte`.
    Test,
}

/// Images (n x rows x cols bytes) and labels.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The pixels, 0 to 255, image by image, each `rows x cols` row-major.
    pub images: Vec<u8>,
    /// One class per image, below [`CLASSES`].
    pub labels: Vec<u8>,
    /// Image height in pixels (28 for Fashion-MNIST).
    pub rows: usize,
    /// Image width in pixels (28 for Fashion-MNIST).
    pub cols: usize,
}

impl Dataset {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// Keeps the first `n` examples.
    pub fn truncate(&mut self, n: usize) {
        let n = n.min(self.len());
        self.labels.truncate(n);
        self.images
            .truncate(n.saturating_mul(self.rows).saturating_mul(self.cols));
    }
}

/// The data directory: the flag, else `FASHION_MNIST_DIR`, else the system one.
pub fn data_dir(flag: Option<&Path>) -> PathBuf {
    if let Some(d) = flag {
        return d.to_path_buf();
    }
    match std::env::var_os("FASHION_MNIST_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(SYSTEM_DIR),
    }
}

fn find(dir: &Path, stem: &str) -> Result<PathBuf> {
    if !dir.is_dir() {
        return Err(Error::file(
            dir,
            "data directory not found (give --data DIR, set FASHION_MNIST_DIR, or on Debian/Ubuntu: apt-get install dataset-fashion-mnist)",
        ));
    }
    for name in [stem.to_string(), format!("{stem}.gz")] {
        let p = dir.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(Error::file(
        dir.join(stem),
        "missing (neither the raw file nor its .gz is there)",
    ))
}

/// What the file's own length says about the (decompressed) stream.
#[derive(Debug, Clone, Copy)]
enum Bound {
    /// A raw file: exactly this many bytes.
    Exact(u64),
    /// A compressed file: at most this many bytes.
    AtMost(u64),
}

impl Bound {
    fn limit(self) -> u64 {
        match self {
            Bound::Exact(n) | Bound::AtMost(n) => n,
        }
    }
}

/// Fills `buf` from `r`; an early end is "truncated IDX header".
fn read_header_bytes(path: &Path, r: &mut impl Read, buf: &mut [u8]) -> Result<()> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => Error::file(path, "truncated IDX header"),
        _ => Error::file(path, format!("reading the IDX header: {e}")),
    })
}

/// Parses an IDX stream holding unsigned bytes in `ndim` dimensions, whose length `bound`
/// limits; returns the dimensions and the payload.
fn parse_idx_stream(
    path: &Path,
    mut r: impl Read,
    bound: Bound,
    magic: u32,
    ndim: usize,
) -> Result<(Vec<usize>, Vec<u8>)> {
    let mut m = [0u8; 4];
    read_header_bytes(path, &mut r, &mut m)?;
    let found = u32::from_be_bytes(m);
    if found != magic {
        let detail = if m[0] != 0 || m[1] != 0 {
            "not an IDX file".to_string()
        } else if m[2] != 0x08 {
            format!(
                "element type 0x{:02x}, expected unsigned bytes (0x08)",
                m[2]
            )
        } else {
            format!("{} dimensions, expected {ndim}", m[3])
        };
        return Err(Error::file(
            path,
            format!("wrong magic number 0x{found:08x}, expected 0x{magic:08x} ({detail})"),
        ));
    }
    let mut dims = Vec::with_capacity(ndim);
    for _ in 0..ndim {
        let mut d = [0u8; 4];
        read_header_bytes(path, &mut r, &mut d)?;
        let d = usize::try_from(u32::from_be_bytes(d))
            .map_err(|_| Error::file(path, "a dimension does not fit in usize"))?;
        dims.push(d);
    }
    let header = 4 + 4 * ndim as u64;
    let n = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| {
            Error::file(
                path,
                format!("header dimensions {dims:?} overflow: their product does not fit in usize"),
            )
        })?;
    let promised = n as u64;
    let room = bound.limit().saturating_sub(header);
    match bound {
        Bound::Exact(_) if promised > room => {
            return Err(Error::file(
                path,
                format!("truncated: header promises {n} bytes of data for {dims:?}, file holds {room}"),
            ))
        }
        Bound::Exact(_) if promised < room => {
            return Err(Error::file(
                path,
                format!(
                    "{} trailing bytes after the {n} bytes of data the header promises for {dims:?}",
                    room - promised
                ),
            ))
        }
        Bound::AtMost(_) if promised > room => {
            return Err(Error::file(
                path,
                format!(
                    "header promises {n} bytes of data for {dims:?}, more than a gzip file of this size can hold (at most {room})"
                ),
            ))
        }
        _ => {}
    }
    let mut payload = Vec::new();
    r.take(promised.saturating_add(1))
        .read_to_end(&mut payload)
        .map_err(|e| Error::file(path, format!("reading the data: {e}")))?;
    let got = payload.len() as u64;
    if got < promised {
        return Err(Error::file(
            path,
            format!(
                "truncated: header promises {n} bytes of data for {dims:?}, the stream ends after {got}"
            ),
        ));
    }
    if got > promised {
        return Err(Error::file(
            path,
            format!("trailing bytes after the {n} bytes of data the header promises for {dims:?}"),
        ));
    }
    Ok((dims, payload))
}

/// Parses an IDX file already in memory (see [`read_idx`] for the checks).
pub fn parse_idx(
    path: &Path,
    bytes: &[u8],
    magic: u32,
    ndim: usize,
) -> Result<(Vec<usize>, Vec<u8>)> {
    parse_idx_stream(path, bytes, Bound::Exact(bytes.len() as u64), magic, ndim)
}

/// Reads an IDX file of unsigned bytes with the expected magic number and number of
/// dimensions, raw or gzip-compressed (by its `.gz` extension); returns the dimensions and
/// the payload, whose length is exactly the product of the dimensions.
pub fn read_idx(path: &Path, magic: u32, ndim: usize) -> Result<(Vec<usize>, Vec<u8>)> {
    let file = std::fs::File::open(path).map_err(|e| Error::file(path, e))?;
    let len = file.metadata().map_err(|e| Error::file(path, e))?.len();
    let file = std::io::BufReader::new(file);
    if path.extension().is_some_and(|e| e == "gz") {
        let bound = Bound::AtMost(len.saturating_mul(GZIP_MAX_RATIO));
        let gz = GzErrors {
            inner: flate2::read::GzDecoder::new(file),
        };
        parse_idx_stream(path, gz, bound, magic, ndim)
    } else {
        parse_idx_stream(path, file, Bound::Exact(len), magic, ndim)
    }
}

/// A gzip reader whose errors say that the gzip stream is at fault.
struct GzErrors<R> {
    inner: R,
}

impl<R: Read> Read for GzErrors<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            let kind = match e.kind() {
                // A gzip stream cut short is corrupt data, not a short header.
                std::io::ErrorKind::UnexpectedEof => std::io::ErrorKind::InvalidData,
                k => k,
            };
            std::io::Error::new(kind, format!("not a valid gzip file: {e}"))
        })
    }
}

/// Loads one split from `dir`.
pub fn load(dir: &Path, split: Split) -> Result<Dataset> {
    let prefix = match split {
        Split::Train => "train",
        Split::Test => "t10k",
    };
    let ip = find(dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let lp = find(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
    let (idims, images) = read_idx(&ip, IMAGES_MAGIC, 3)?;
    let (ldims, labels) = read_idx(&lp, LABELS_MAGIC, 1)?;
    let (&[count, rows, cols], &[label_count]) = (idims.as_slice(), ldims.as_slice()) else {
        return Err(Error::file(&ip, "unexpected number of dimensions"));
    };
    if count == 0 {
        return Err(Error::file(&ip, "holds no images (the header says 0)"));
    }
    if rows == 0 || cols == 0 {
        return Err(Error::file(
            &ip,
            format!("images of {rows} x {cols} pixels hold no pixels"),
        ));
    }
    if count != label_count {
        return Err(Error::file(
            &lp,
            format!(
                "{label_count} labels for {count} images in {}",
                ip.display()
            ),
        ));
    }
    if let Some((i, bad)) = labels
        .iter()
        .enumerate()
        .find(|(_, &l)| usize::from(l) >= CLASSES)
    {
        return Err(Error::file(
            &lp,
            format!("label {bad} at index {i} out of range 0..{CLASSES}"),
        ));
    }
    Ok(Dataset {
        images,
        labels,
        rows,
        cols,
    })
}

/// Training-time augmentation: random crop with zero padding, and horizontal flip.
#[derive(Debug, Clone, Copy)]
pub struct Augment {
    /// Pixels of zero padding before the random crop (0: no crop).
    pub pad: usize,
    /// Flip horizontally with probability 1/2.
    pub flip: bool,
}

/// Builds a normalised batch (N, 1, rows, cols) and its labels from `indices`, augmenting with
/// draws from `rng` when `augment` is given. Padding is applied to the normalised image with
/// the value of a black pixel, so a shifted crop looks like the background.
pub fn batch<T: Real>(
    data: &Dataset,
    indices: &[usize],
    augment: Option<Augment>,
    rng: &mut Rng,
) -> Result<(Tensor<T>, Vec<usize>)> {
    use rand::Rng as _;
    let (h, w) = (data.rows, data.cols);
    let mut out = Vec::with_capacity(indices.len() * h * w);
    let mut labels = Vec::with_capacity(indices.len());
    let black = (0.0 - MEAN) / STD;
    for &idx in indices {
        if idx >= data.len() {
            return Err(Error::arg(
                "batch",
                format!("index {idx} out of range for {} examples", data.len()),
            ));
        }
        let pixels = h.saturating_mul(w);
        let img = idx
            .checked_mul(pixels)
            .and_then(|start| data.images.get(start..start.checked_add(pixels)?))
            .ok_or_else(|| {
                Error::arg(
                    "batch",
                    format!(
                        "example {idx} lies outside the {} image bytes",
                        data.images.len()
                    ),
                )
            })?;
        let (dy, dx, flip) = match augment {
            Some(a) => {
                let p = a.pad as isize;
                let dy = if p > 0 { rng.gen_range(-p..=p) } else { 0 };
                let dx = if p > 0 { rng.gen_range(-p..=p) } else { 0 };
                (dy, dx, a.flip && rng.gen_bool(0.5))
            }
            None => (0, 0, false),
        };
        for y in 0..h {
            for x in 0..w {
                let sx = if flip { w - 1 - x } else { x } as isize + dx;
                let sy = y as isize + dy;
                let v = if sy >= 0 && sy < h as isize && sx >= 0 && sx < w as isize {
                    (img[sy as usize * w + sx as usize] as f64 / 255.0 - MEAN) / STD
                } else {
                    black
                };
                out.push(T::of_f64(v));
            }
        }
        labels.push(usize::from(data.labels[idx]));
    }
    Ok((Tensor::new([indices.len(), 1, h, w], out)?, labels))
}

#[cfg(test)]
mod tests;
