//! `shiftgrad erf`: the effective receptive field (SPEC 6), as RepLKNet, SLaK and
//! shift-wiseConv compute it (`visualize_erf.py` and `analyze_erf.py` in those repositories).
//!
//! For each of N test images, upsampled to `size x size` (the network is fully convolutional):
//! in eval mode, take the last stage's feature map, ReLU, and the sum over channels of its
//! centre pixel `(H'/2, W'/2)`; differentiate it with respect to the input, ReLU that
//! gradient, sum it over input channels; average the maps over the images. Images go through
//! the network in batches: in eval mode the images of a batch do not interact (batch-norm
//! uses its running statistics), so the gradient of the batch's summed centre pixels with
//! respect to image b is image b's own gradient.
//!
//! The analysis follows `analyze_erf.py`: the map is scaled to `log10(x + 1)` and divided by
//! its maximum; for each threshold t the smallest centred square (odd side 2i + 1, i >= 1)
//! whose sum exceeds t times the whole map's sum gives the side and the area ratio
//! `side^2 / size^2`. The script stops at `i < size/2` (and prints None); here the search goes
//! on to the square that covers the map, so a threshold below 1 always finds a side.

use crate::train::{build_model, load_checkpoint, metrics::write_atomic, read_meta};
use indicatif::{ProgressBar, ProgressStyle};
use plotters::prelude::*;
use serde::Serialize;
use shiftgrad_autograd::Var;
use shiftgrad_nn::data::{self, Dataset};
use shiftgrad_nn::resnet::{ResNetConfig, SwResNet};
use shiftgrad_nn::{Mode, Module};
use shiftgrad_ops::{mul, relu, sum};
use shiftgrad_tensor::{init, Device, Error, Result, Tensor};
use std::path::{Path, PathBuf};

/// The fractions of the contribution whose centred squares are reported (as `analyze_erf.py`).
pub const THRESHOLDS: [f64; 4] = [0.2, 0.3, 0.5, 0.99];
/// Images per forward and backward pass.
const BATCH: usize = 10;

/// The smallest centred square holding more than `fraction` of the contribution.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Square {
    pub fraction: f64,
    /// Side in input pixels: odd, or the whole (even) side where only the whole map holds it.
    pub side: usize,
    /// `side^2` over the map's area.
    pub area_ratio: f64,
}

/// One model's result, as written to `erf.json`.
#[derive(Debug, Clone, Serialize)]
pub struct ErfResult {
    pub label: String,
    /// The checkpoint it was read from; none for an untrained network.
    pub checkpoint: Option<PathBuf>,
    pub spatial: String,
    pub big_kernels: Vec<usize>,
    pub images: usize,
    pub size: usize,
    pub squares: Vec<Square>,
}

/// A network to analyse and its label.
pub struct ErfModel {
    pub label: String,
    pub checkpoint: Option<PathBuf>,
    pub config: ResNetConfig,
    pub model: SwResNet<f32>,
}

impl ErfModel {
    /// An untrained network of `config` (initialised from its seed) on `device`.
    pub fn untrained(config: ResNetConfig, device: &Device) -> Result<Self> {
        config.validate()?;
        let mut model = SwResNet::<f32>::new(config.clone())?;
        model.move_to(device)?;
        let label = format!(
            "untrained {} (big kernels {}, seed {})",
            config.spatial,
            join(&config.big_kernels),
            config.seed
        );
        Ok(ErfModel {
            label,
            checkpoint: None,
            config,
            model,
        })
    }

    /// The network of a training checkpoint (a `checkpoint.npz`, or the run directory that
    /// holds one) on `device`.
    pub fn from_checkpoint(path: &Path, device: &Device) -> Result<Self> {
        let file = if path.is_dir() {
            path.join("checkpoint.npz")
        } else {
            path.to_path_buf()
        };
        let sd = load_checkpoint(&file)?;
        let meta = read_meta(&sd, &file)?;
        let model = build_model(&meta.config, device, Some(&sd))
            .map_err(|e| Error::file(&file, format!("incompatible checkpoint: {e}")))?;
        let run = file
            .parent()
            .and_then(|d| d.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| file.display().to_string());
        Ok(ErfModel {
            label: format!("{} ({run}, epoch {})", meta.config.spatial, meta.epoch),
            checkpoint: Some(file),
            config: meta.config.network()?,
            model,
        })
    }
}

fn join(v: &[usize]) -> String {
    v.iter()
        .map(|k| k.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Bilinear resize of `n` single-channel `h x w` images to `s x s`, with PyTorch's
/// `align_corners=False` sampling (`F.interpolate(mode="bilinear")`, the resize of
/// `transforms.Resize` when enlarging): output pixel i reads input coordinate
/// `(i + 0.5) * h / s - 0.5`, clamped to the image.
pub fn resize_bilinear(src: &[f32], n: usize, h: usize, w: usize, s: usize) -> Vec<f32> {
    let taps = |len: usize| -> Vec<(usize, usize, f32)> {
        (0..s)
            .map(|i| {
                let c = ((i as f64 + 0.5) * len as f64 / s as f64 - 0.5).max(0.0);
                let i0 = (c.floor() as usize).min(len - 1);
                let i1 = (i0 + 1).min(len - 1);
                (i0, i1, (c - i0 as f64) as f32)
            })
            .collect()
    };
    let (ty, tx) = (taps(h), taps(w));
    let mut out = Vec::with_capacity(n * s * s);
    for img in src.chunks(h * w).take(n) {
        for &(y0, y1, fy) in &ty {
            for &(x0, x1, fx) in &tx {
                let top = img[y0 * w + x0] * (1.0 - fx) + img[y0 * w + x1] * fx;
                let bottom = img[y1 * w + x0] * (1.0 - fx) + img[y1 * w + x1] * fx;
                out.push(top * (1.0 - fy) + bottom * fy);
            }
        }
    }
    out
}

/// The mean effective-receptive-field map (`size x size`, row-major) of `model` over the
/// first `images` images of `data`, computed on `device`; `progress` advances by one per
/// image.
pub fn erf_map(
    model: &mut SwResNet<f32>,
    data: &Dataset,
    images: usize,
    size: usize,
    device: &Device,
    progress: &ProgressBar,
) -> Result<Vec<f64>> {
    if images == 0 || images > data.len() {
        return Err(Error::arg(
            "erf",
            format!(
                "--images must be between 1 and the {} test images, got {images}",
                data.len()
            ),
        ));
    }
    let mut total = vec![0.0f64; size * size];
    let mut rng = init::rng(0);
    for start in (0..images).step_by(BATCH) {
        let idx: Vec<usize> = (start..(start + BATCH).min(images)).collect();
        let (x, _) = data::batch::<f32>(data, &idx, None, &mut rng)?;
        let big = resize_bilinear(&x.to_vec()?, idx.len(), data.rows, data.cols, size);
        let xv = Var::param(Tensor::new([idx.len(), 1, size, size], big)?.to_device(device)?);
        let f = relu(&model.features(&xv, Mode::Eval)?)?;
        let [n, c, h, w] = f.shape().nchw("erf", "feature map")?;
        let mut mask = vec![0.0f32; n * c * h * w];
        for plane in mask.chunks_mut(h * w) {
            plane[(h / 2) * w + w / 2] = 1.0;
        }
        let mask = Var::constant(Tensor::new([n, c, h, w], mask)?.to_device(device)?);
        sum(&mul(&f, &mask)?)?.backward()?;
        let grad = xv
            .grad()
            .clone()
            .ok_or_else(|| Error::Other("erf: the input received no gradient".into()))?
            .to_vec()?;
        for img in grad.chunks(size * size) {
            for (t, &g) in total.iter_mut().zip(img) {
                *t += f64::from(g.max(0.0));
            }
        }
        progress.inc(idx.len() as u64);
    }
    for t in &mut total {
        *t /= images as f64;
    }
    Ok(total)
}

/// `log10(x + 1)`, divided by its maximum (all zeros stay zeros): the map `analyze_erf.py`
/// measures and the picture shows.
pub fn log_normalised(map: &[f64]) -> Vec<f64> {
    let logged: Vec<f64> = map.iter().map(|&v| (v + 1.0).log10()).collect();
    let max = logged.iter().copied().fold(0.0, f64::max);
    logged
        .iter()
        .map(|&v| if max > 0.0 { v / max } else { 0.0 })
        .collect()
}

/// For each of [`THRESHOLDS`], the smallest centred square of the `size x size` map `scaled`
/// (already [`log_normalised`]) whose sum exceeds that fraction of the whole map's sum.
pub fn squares(scaled: &[f64], size: usize) -> Vec<Square> {
    let all: f64 = scaled.iter().sum();
    let c = size / 2;
    // Rows and columns lo..hi of the square of half-side i (clipped at the map's edge, which
    // only the last square of an even size reaches).
    let bounds = |i: usize| (c.saturating_sub(i), (c + i + 1).min(size));
    let square_sum = |i: usize| -> f64 {
        let (lo, hi) = bounds(i);
        (lo..hi)
            .map(|y| scaled[y * size + lo..y * size + hi].iter().sum::<f64>())
            .sum()
    };
    THRESHOLDS
        .iter()
        .map(|&fraction| {
            let i = (1..=c.max(1))
                .find(|&i| all > 0.0 && square_sum(i) / all > fraction)
                .unwrap_or(c.max(1));
            let (lo, hi) = bounds(i);
            let side = hi - lo;
            Square {
                fraction,
                side,
                area_ratio: (side * side) as f64 / (size * size) as f64,
            }
        })
        .collect()
}

/// What `shiftgrad erf` is asked to do.
pub struct ErfArgs {
    pub images: usize,
    pub size: usize,
    pub data: PathBuf,
    pub out: PathBuf,
    pub quiet: bool,
}

/// Computes every model's map and writes `erf.npy` (f64, models x size x size: the mean maps
/// before scaling), `erf.json` and `erf.png` into `args.out`; prints a table of the squares.
pub fn run(
    models: &mut [ErfModel],
    args: &ErfArgs,
    device: &Device,
    out: &mut dyn std::io::Write,
) -> Result<Vec<ErfResult>> {
    if !(8..=1024).contains(&args.size) {
        return Err(Error::arg(
            "erf",
            format!("--size must be between 8 and 1024, got {}", args.size),
        ));
    }
    if models.is_empty() {
        return Err(Error::arg("erf", "no model to analyse"));
    }
    let test = crate::train::load_split(&args.data, data::Split::Test, None)?;
    std::fs::create_dir_all(&args.out).map_err(|e| Error::file(&args.out, e))?;
    let mut maps = Vec::new();
    let mut results = Vec::new();
    for m in models.iter_mut() {
        let pb = if args.quiet {
            ProgressBar::hidden()
        } else {
            let pb = ProgressBar::new(args.images as u64);
            pb.set_style(
                ProgressStyle::with_template("erf {msg} [{bar:30}] {pos}/{len} ({elapsed}<{eta})")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            pb.set_message(m.label.clone());
            pb
        };
        let map = erf_map(&mut m.model, &test, args.images, args.size, device, &pb)?;
        pb.finish_and_clear();
        results.push(ErfResult {
            label: m.label.clone(),
            checkpoint: m.checkpoint.clone(),
            spatial: m.config.spatial.to_string(),
            big_kernels: m.config.big_kernels.clone(),
            images: args.images,
            size: args.size,
            squares: squares(&log_normalised(&map), args.size),
        });
        maps.push(map);
    }
    write_npy(&args.out.join("erf.npy"), &maps, args.size)?;
    let json = serde_json::to_string_pretty(&results)
        .map_err(|e| Error::Other(format!("erf.json: {e}")))?;
    write_atomic(&args.out.join("erf.json"), json.as_bytes())?;
    draw(&args.out.join("erf.png"), &maps, &results, args.size)?;
    print_table(&results, out).map_err(|e| Error::Other(format!("writing the table: {e}")))?;
    writeln!(
        out,
        "wrote erf.npy, erf.json and erf.png to {}",
        args.out.display()
    )
    .map_err(|e| Error::Other(e.to_string()))?;
    Ok(results)
}

fn print_table(results: &[ErfResult], out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let size = results.first().map_or(0, |r| r.size);
    writeln!(
        out,
        "effective receptive field on {size}x{size} inputs: side (area ratio) of the smallest centred square holding each fraction of the contribution (log10(x+1)-scaled map, as analyze_erf.py)"
    )?;
    write!(out, "{:<48}", "model")?;
    for t in THRESHOLDS {
        write!(out, " {:>16}", format!("{:.0} %", 100.0 * t))?;
    }
    writeln!(out)?;
    for r in results {
        write!(out, "{:<48}", r.label)?;
        for s in &r.squares {
            write!(out, " {:>16}", format!("{} ({:.4})", s.side, s.area_ratio))?;
        }
        writeln!(out)?;
    }
    Ok(())
}

/// `maps` as one little-endian f64 `.npy` array (models, size, size), written atomically.
fn write_npy(path: &Path, maps: &[Vec<f64>], size: usize) -> Result<()> {
    let mut header = format!(
        "{{'descr': '<f8', 'fortran_order': False, 'shape': ({}, {size}, {size}), }}",
        maps.len()
    );
    // Magic (6) + version (2) + header length (2) + header + '\n', padded to 64 bytes.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in maps.iter().flatten() {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    write_atomic(path, &bytes)
}

/// `erf.png`: each model's log-scaled, normalised map as a heat map (viridis), side by side,
/// titled by model, with the 50 % square drawn on it.
fn draw(path: &Path, maps: &[Vec<f64>], results: &[ErfResult], size: usize) -> Result<()> {
    let panel = 360u32;
    crate::train::plot::render(
        path,
        (panel * maps.len() as u32, panel + 40),
        "the ERF",
        |root| {
            let areas = root.split_evenly((1, maps.len()));
            for ((map, r), area) in maps.iter().zip(results).zip(&areas) {
                let scaled = log_normalised(map);
                let mut chart = ChartBuilder::on(area)
                    .caption(&r.label, ("sans-serif", 12))
                    .margin(8)
                    .x_label_area_size(20)
                    .y_label_area_size(28)
                    .build_cartesian_2d(0..size, 0..size)?;
                // Rows are drawn top-down, as in an image, and labelled so.
                let row_label = |v: &usize| (size - v).to_string();
                chart
                    .configure_mesh()
                    .disable_mesh()
                    .label_style(("sans-serif", 10))
                    .y_label_formatter(&row_label)
                    .draw()?;
                chart.draw_series((0..size * size).map(|i| {
                    let (y, x) = (i / size, i % size);
                    let color = ViridisRGB.get_color(scaled[i] as f32);
                    // Row 0 at the top, as an image.
                    Rectangle::new([(x, size - 1 - y), (x + 1, size - y)], color.filled())
                }))?;
                if let Some(s) = r.squares.iter().find(|s| s.fraction == 0.5) {
                    let lo = size / 2 - s.side.min(size) / 2;
                    let hi = (lo + s.side).min(size);
                    chart
                        .draw_series(std::iter::once(Rectangle::new(
                            [(lo, size - hi), (hi, size - lo)],
                            WHITE.stroke_width(1),
                        )))?
                        .label("50 %");
                }
            }
            Ok(())
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_matches_pytorch_bilinear() {
        // torch.nn.functional.interpolate(torch.tensor([[[[0., 1.], [2., 3.]]]]),
        // size=(4, 4), mode="bilinear", align_corners=False)[0, 0, 0] = [0, .25, .75, 1]
        let out = resize_bilinear(&[0.0, 1.0, 2.0, 3.0], 1, 2, 2, 4);
        let row0 = &out[0..4];
        let expect = [0.0, 0.25, 0.75, 1.0];
        for (a, b) in row0.iter().zip(expect) {
            assert!((a - b).abs() < 1e-6, "{row0:?}");
        }
        // The last row: 2, 2.25, 2.75, 3.
        assert!(
            (out[12] - 2.0).abs() < 1e-6 && (out[14] - 2.75).abs() < 1e-6,
            "{out:?}"
        );
    }

    #[test]
    fn squares_find_the_smallest_centred_square() {
        // All the mass in the centre pixel: every threshold is met by the 3x3 square.
        let size = 9;
        let mut map = vec![0.0; size * size];
        map[4 * size + 4] = 1.0;
        for s in squares(&map, size) {
            assert_eq!(s.side, 3, "{s:?}");
            assert!((s.area_ratio - 9.0 / 81.0).abs() < 1e-12);
        }
        // A uniform map: the square of side 2i+1 holds (2i+1)^2/81; 0.2 needs 25 > 16.2
        // (side 5), 0.5 needs 49 > 40.5 (side 7), 0.99 the whole map (side 9).
        let sides: Vec<usize> = squares(&[1.0; 81], size).iter().map(|s| s.side).collect();
        assert_eq!(sides, vec![5, 5, 7, 9]);
    }

    #[test]
    fn an_even_map_is_covered_by_its_whole_side() {
        // Mass in the top-left corner only (the centre is (4, 4): squares reach one more row
        // and column after it than before): only the whole map holds it; side 8, not 9.
        let size = 8;
        let mut map = vec![0.0; size * size];
        map[0] = 1.0;
        let s = &squares(&map, size)[0];
        assert_eq!((s.side, s.area_ratio), (8, 1.0), "{s:?}");
    }

    #[test]
    fn log_normalised_scales_to_one() {
        let m = log_normalised(&[0.0, 9.0, 99.0]);
        assert_eq!(m, vec![0.0, 0.5, 1.0]);
        assert_eq!(log_normalised(&[0.0, 0.0]), vec![0.0, 0.0]);
    }
}
