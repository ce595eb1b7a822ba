//! Fashion-MNIST in the IDX format (SPEC section 5), with the training-time augmentation.
//!
//! The four files (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`,
//! `t10k-labels-idx1-ubyte`) are read raw or gzip-compressed (`.gz`), with the header checked:
//! magic number (0x00000803 for images, 0x00000801 for labels), dimensions, and a length that
//! matches. A missing directory, a wrong magic number or a truncated file is an error naming
//! the file. The directory comes from `--data DIR`, else `FASHION_MNIST_DIR`, else
//! `/usr/share/datasets/fashion-mnist` (Debian's `dataset-fashion-mnist`).

use shiftgrad_tensor::init::Rng;
use shiftgrad_tensor::{Error, Real, Result, Tensor};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Where Debian and Ubuntu's `dataset-fashion-mnist` package puts the files.
pub const SYSTEM_DIR: &str = "/usr/share/datasets/fashion-mnist";
/// Normalisation of Fashion-MNIST pixels (after scaling to [0, 1]).
pub const MEAN: f64 = 0.286;
pub const STD: f64 = 0.353;

/// Training or test split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

/// Images (n x rows x cols bytes) and labels.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
    pub rows: usize,
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
        self.images.truncate(n * self.rows * self.cols);
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

fn read_all(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| Error::file(path, e))?;
    if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| Error::file(path, format!("not a valid gzip file: {e}")))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn be32(bytes: &[u8], at: usize) -> usize {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize
}

/// Parses an IDX file with the expected magic number and number of dimensions; returns the
/// dimensions and the payload.
pub fn parse_idx(
    path: &Path,
    bytes: &[u8],
    magic: usize,
    ndim: usize,
) -> Result<(Vec<usize>, Vec<u8>)> {
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(Error::file(
            path,
            format!("truncated IDX header ({} bytes)", bytes.len()),
        ));
    }
    let found = be32(bytes, 0);
    if found != magic {
        return Err(Error::file(
            path,
            format!("wrong magic number 0x{found:08x}, expected 0x{magic:08x}"),
        ));
    }
    let dims: Vec<usize> = (0..ndim).map(|i| be32(bytes, 4 + 4 * i)).collect();
    let n: usize = dims.iter().product();
    let payload = &bytes[header..];
    if payload.len() < n {
        return Err(Error::file(
            path,
            format!(
                "truncated: header promises {n} bytes of data for {dims:?}, file holds {}",
                payload.len()
            ),
        ));
    }
    Ok((dims, payload[..n].to_vec()))
}

/// Loads one split from `dir`.
pub fn load(dir: &Path, split: Split) -> Result<Dataset> {
    let prefix = match split {
        Split::Train => "train",
        Split::Test => "t10k",
    };
    let ip = find(dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let lp = find(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
    let (idims, images) = parse_idx(&ip, &read_all(&ip)?, 0x803, 3)?;
    let (ldims, labels) = parse_idx(&lp, &read_all(&lp)?, 0x801, 1)?;
    if idims[0] != ldims[0] {
        return Err(Error::file(
            &lp,
            format!(
                "{} labels for {} images in {}",
                ldims[0],
                idims[0],
                ip.display()
            ),
        ));
    }
    if let Some(bad) = labels.iter().find(|&&l| l >= 10) {
        return Err(Error::file(&lp, format!("label {bad} out of range 0..10")));
    }
    Ok(Dataset {
        images,
        labels,
        rows: idims[1],
        cols: idims[2],
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
        let img = &data.images[idx * h * w..(idx + 1) * h * w];
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
        labels.push(data.labels[idx] as usize);
    }
    Ok((Tensor::new([indices.len(), 1, h, w], out)?, labels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shiftgrad_tensor::init;

    fn idx_bytes(magic: u32, dims: &[u32], payload: &[u8]) -> Vec<u8> {
        let mut v = magic.to_be_bytes().to_vec();
        for d in dims {
            v.extend(d.to_be_bytes());
        }
        v.extend(payload);
        v
    }

    fn write_set(dir: &Path, gz: bool) {
        use std::io::Write;
        std::fs::create_dir_all(dir).unwrap();
        let images: Vec<u8> = (0..3 * 4 * 4).map(|i| i as u8).collect();
        let files = [
            (
                "train-images-idx3-ubyte",
                idx_bytes(0x803, &[3, 4, 4], &images),
            ),
            (
                "train-labels-idx1-ubyte",
                idx_bytes(0x801, &[3], &[1, 2, 9]),
            ),
        ];
        for (name, bytes) in files {
            if gz {
                let f = std::fs::File::create(dir.join(format!("{name}.gz"))).unwrap();
                let mut e = flate2::write::GzEncoder::new(f, flate2::Compression::default());
                e.write_all(&bytes).unwrap();
                e.finish().unwrap();
            } else {
                std::fs::write(dir.join(name), bytes).unwrap();
            }
        }
    }

    fn tmp(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!("shiftgrad-data-{tag}-{}", std::process::id()))
    }

    #[test]
    fn reads_raw_and_gz() {
        for gz in [false, true] {
            let d = tmp(&format!("ok{gz}"));
            write_set(&d, gz);
            let ds = load(&d, Split::Train).unwrap();
            assert_eq!((ds.len(), ds.rows, ds.cols), (3, 4, 4));
            assert_eq!(ds.labels, vec![1, 2, 9]);
            assert_eq!(ds.images[17], 17);
        }
    }

    #[test]
    fn errors_name_the_file() {
        let e = load(&tmp("nowhere"), Split::Train).unwrap_err().to_string();
        assert!(e.contains("data directory not found"), "{e}");
        let d = tmp("badmagic");
        write_set(&d, false);
        std::fs::write(
            d.join("train-labels-idx1-ubyte"),
            idx_bytes(0x803, &[3], &[1, 2, 3]),
        )
        .unwrap();
        let e = load(&d, Split::Train).unwrap_err().to_string();
        assert!(
            e.contains("train-labels-idx1-ubyte") && e.contains("wrong magic number"),
            "{e}"
        );
        let d = tmp("trunc");
        write_set(&d, false);
        std::fs::write(
            d.join("train-images-idx3-ubyte"),
            idx_bytes(0x803, &[3, 4, 4], &[0; 20]),
        )
        .unwrap();
        let e = load(&d, Split::Train).unwrap_err().to_string();
        assert!(
            e.contains("train-images-idx3-ubyte") && e.contains("truncated"),
            "{e}"
        );
        let e = load(&d, Split::Test).unwrap_err().to_string();
        assert!(
            e.contains("t10k-images-idx3-ubyte") && e.contains("missing"),
            "{e}"
        );
    }

    #[test]
    fn batches_are_normalised_and_augmentation_is_seeded() {
        let d = tmp("batch");
        write_set(&d, false);
        let ds = load(&d, Split::Train).unwrap();
        let (x, y) = batch::<f32>(&ds, &[2, 0], None, &mut init::rng(0)).unwrap();
        assert_eq!(x.dims(), &[2, 1, 4, 4]);
        assert_eq!(y, vec![9, 1]);
        let expect = (32.0 / 255.0 - MEAN) / STD;
        assert!((x.data()[0] as f64 - expect).abs() < 1e-6);
        let aug = Some(Augment { pad: 2, flip: true });
        let a = batch::<f32>(&ds, &[0, 1, 2], aug, &mut init::rng(5))
            .unwrap()
            .0;
        let b = batch::<f32>(&ds, &[0, 1, 2], aug, &mut init::rng(5))
            .unwrap()
            .0;
        assert_eq!(a, b);
        assert!(batch::<f32>(&ds, &[3], None, &mut init::rng(0)).is_err());
    }
}
