//! A small synthetic stand-in for Fashion-MNIST: the same four IDX files (SPEC section 5,
//! [`crate::data`]), 28 x 28 grey images, 10 classes, generated from a seed.
//!
//! It exists so that the training tests exercise the whole pipeline (IDX parsing, batching,
//! augmentation, learning, checkpoints) on a machine without the real data set, and still
//! check that the network *learns*, not only that it runs.
//!
//! Each class is a texture that a small convolutional network with global average pooling
//! can tell apart, and that survives the training augmentation (random crop of +-2 pixels,
//! horizontal flip): stripes of two periods in two orientations, checkerboards of two cell
//! sizes, a cross-hatch, a disc, a ring, and a grid of dots. Every image draws its own phase,
//! position, size and brightness, then uniform noise is added. We rejected classes that
//! differ only by *where* a bar sits: global average pooling discards position, so such a set
//! tests the padding more than the learning, and a flip would swap mirror-image classes.
//!
//! Labels cycle 0, 1, ..., 9 through the file, so every prefix (`--limit N`) is balanced.
//! The output is a function of `(n, seed)` only.

use crate::data::Dataset;
use rand::Rng as _;
use shiftgrad_tensor::init::{self, Rng};
use shiftgrad_tensor::{Error, Result};
use std::path::Path;

/// Image side, as Fashion-MNIST.
pub const SIDE: usize = 28;
/// Number of classes.
pub const CLASSES: usize = 10;

/// Brightness of the pattern's "on" pixels at `(y, x)` for `class`, in [0, 1], before the
/// per-image brightness and the noise. `p` holds the per-image draws (phase, centre, size).
fn pattern(class: usize, y: i64, x: i64, p: &Draws) -> f64 {
    let on = |b: bool| if b { 1.0 } else { 0.0 };
    let (py, px) = (y + p.phase_y, x + p.phase_x);
    let (dy, dx) = ((y - p.centre_y) as f64, (x - p.centre_x) as f64);
    let r = (dy * dy + dx * dx).sqrt();
    match class {
        0 => on(py.rem_euclid(4) < 2), // horizontal stripes, period 4
        1 => on(px.rem_euclid(4) < 2), // vertical stripes, period 4
        2 => on((py.div_euclid(2) + px.div_euclid(2)) % 2 == 0), // checkerboard, cells of 2
        3 => on(py.rem_euclid(8) < 4), // horizontal stripes, period 8
        4 => on(px.rem_euclid(8) < 4), // vertical stripes, period 8
        5 => on((py.div_euclid(5) + px.div_euclid(5)) % 2 == 0), // checkerboard, cells of 5
        6 => on((py + px).rem_euclid(6) < 2 || (py - px).rem_euclid(6) < 2), // cross-hatch
        7 => on(r <= p.radius),        // filled disc
        8 => on((r - p.radius).abs() <= 1.5), // ring
        _ => on(py.rem_euclid(7) < 2 && px.rem_euclid(7) < 2), // grid of 2x2 dots
    }
}

/// What one image draws before its pixels.
struct Draws {
    phase_y: i64,
    phase_x: i64,
    centre_y: i64,
    centre_x: i64,
    radius: f64,
    brightness: f64,
}

fn draw(rng: &mut Rng) -> Draws {
    Draws {
        phase_y: rng.gen_range(0..10),
        phase_x: rng.gen_range(0..10),
        centre_y: rng.gen_range(10..18),
        centre_x: rng.gen_range(10..18),
        radius: rng.gen_range(5.0..9.0),
        brightness: rng.gen_range(150.0..255.0),
    }
}

/// `n` examples, deterministic from `seed`.
pub fn generate(n: usize, seed: u64) -> Dataset {
    let mut rng = init::rng(seed ^ 0x5eed_da7a_0000_0000);
    let mut images = Vec::with_capacity(n * SIDE * SIDE);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let class = i % CLASSES;
        let p = draw(&mut rng);
        for y in 0..SIDE as i64 {
            for x in 0..SIDE as i64 {
                let noise: f64 = rng.gen_range(0.0..60.0);
                let v = p.brightness * pattern(class, y, x, &p) + noise;
                images.push(v.clamp(0.0, 255.0) as u8);
            }
        }
        labels.push(class as u8);
    }
    Dataset {
        images,
        labels,
        rows: SIDE,
        cols: SIDE,
    }
}

/// The bytes of an IDX file: big-endian magic number, dimensions, then the payload.
pub fn idx_bytes(magic: u32, dims: &[usize], payload: &[u8]) -> Result<Vec<u8>> {
    let mut v = magic.to_be_bytes().to_vec();
    for &d in dims {
        let d = u32::try_from(d)
            .map_err(|_| Error::arg("synthetic", format!("dimension {d} exceeds the IDX range")))?;
        v.extend(d.to_be_bytes());
    }
    v.extend_from_slice(payload);
    Ok(v)
}

/// Writes `data` as the two IDX files of a split (`prefix` is `train` or `t10k`).
pub fn write_split(dir: &Path, prefix: &str, data: &Dataset) -> Result<()> {
    let files = [
        (
            format!("{prefix}-images-idx3-ubyte"),
            idx_bytes(0x803, &[data.len(), data.rows, data.cols], &data.images)?,
        ),
        (
            format!("{prefix}-labels-idx1-ubyte"),
            idx_bytes(0x801, &[data.len()], &data.labels)?,
        ),
    ];
    for (name, bytes) in files {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(|e| Error::file(&path, e))?;
    }
    Ok(())
}

/// Writes a synthetic data set into `dir` (created if needed): `train` training and `test`
/// test examples, in the four files [`crate::data::load`] reads. The test split is drawn
/// from a different seed than the training split, so the two share no image.
pub fn write(dir: &Path, train: usize, test: usize, seed: u64) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::file(dir, e))?;
    write_split(dir, "train", &generate(train, seed))?;
    write_split(dir, "t10k", &generate(test, seed.wrapping_add(1) ^ 0x7e57))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{self, Split};

    #[test]
    fn deterministic_balanced_and_readable_by_the_loader() {
        let a = generate(40, 3);
        assert_eq!(a.images, generate(40, 3).images);
        assert_ne!(a.images, generate(40, 4).images);
        for c in 0..CLASSES as u8 {
            assert_eq!(a.labels.iter().filter(|&&l| l == c).count(), 4);
        }
        let dir = std::env::temp_dir().join(format!("shiftgrad-synth-{}", std::process::id()));
        write(&dir, 30, 20, 9).unwrap();
        let train = data::load(&dir, Split::Train).unwrap();
        let test = data::load(&dir, Split::Test).unwrap();
        assert_eq!((train.len(), train.rows, train.cols), (30, SIDE, SIDE));
        assert_eq!(test.len(), 20);
        assert_eq!(train.images, generate(30, 9).images);
        assert_ne!(test.images[..SIDE * SIDE], train.images[..SIDE * SIDE]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn class_feature_centroids_are_apart() {
        // A sanity check that no two patterns coincide (which would cap the accuracy the
        // training tests can reach), much cheaper than training: per-class centroids of three
        // hand-made features are pairwise apart.
        let d = generate(400, 1);
        let px = SIDE * SIDE;
        // Features: the fraction of bright pixels, and the rates of bright/dark transitions
        // along rows and along columns.
        let features = |i: usize| -> [f64; 3] {
            let img = &d.images[i * px..(i + 1) * px];
            let bright = img.iter().filter(|&&v| v > 100).count() as f64 / px as f64;
            let (mut hx, mut vy) = (0.0, 0.0);
            for y in 0..SIDE {
                for x in 1..SIDE {
                    hx += ((img[y * SIDE + x] > 100) != (img[y * SIDE + x - 1] > 100)) as u8 as f64;
                    vy +=
                        ((img[x * SIDE + y] > 100) != (img[(x - 1) * SIDE + y] > 100)) as u8 as f64;
                }
            }
            [bright, hx / px as f64, vy / px as f64]
        };
        let centroid = |c: usize| -> [f64; 3] {
            let members: Vec<usize> = (0..d.len())
                .filter(|&i| d.labels[i] as usize == c)
                .collect();
            let mut s = [0.0; 3];
            for &i in &members {
                let f = features(i);
                for k in 0..3 {
                    s[k] += f[k] / members.len() as f64;
                }
            }
            s
        };
        let cs: Vec<[f64; 3]> = (0..CLASSES).map(centroid).collect();
        for a in 0..CLASSES {
            for b in a + 1..CLASSES {
                let dist: f64 = (0..3)
                    .map(|k| (cs[a][k] - cs[b][k]).powi(2))
                    .sum::<f64>()
                    .sqrt();
                assert!(
                    dist > 0.01,
                    "classes {a} and {b} look alike: {:?} {:?}",
                    cs[a],
                    cs[b]
                );
            }
        }
    }
}
