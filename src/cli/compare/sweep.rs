//! The sweep of `shiftgrad compare` over big kernels and map heights: the table of
//! [`super::run`] at every size, each row timed on a device when asked, and `compare.json`,
//! `compare.csv` and `compare.png` (training FLOPs and measured time against M, one line per
//! operator).

use super::*;
use crate::cli::bench::{time_layer, BenchRow, BenchShape};
use crate::train::metrics::write_atomic;
use shiftgrad_tensor::Device;
use std::path::{Path, PathBuf};

/// How `compare` times each layer (`--device`): training mode, forward and backward, as
/// `shiftgrad bench` does.
pub struct Timing {
    pub device: Device,
    pub batch: usize,
    pub steps: usize,
    pub warmup: usize,
}

/// A comparison over sizes: every big kernel of `bigs` at every height of `heights`.
pub struct Sweep {
    /// The layer; its `big_kernel` is replaced by each of `bigs`.
    pub config: SwConfig,
    pub bigs: Vec<usize>,
    pub heights: Vec<usize>,
    /// The width of every map (default: its height).
    pub width: Option<usize>,
    pub sparsity: f64,
    pub timing: Option<Timing>,
    /// Where compare.json, compare.csv and compare.png go (none: not written).
    pub out: Option<PathBuf>,
}

/// One timed row (milliseconds and bytes); see [`crate::cli::bench::BenchRow`].
#[derive(Debug, Clone, Serialize)]
pub struct TimedRow {
    pub forward_ms: f64,
    pub forward_min_ms: f64,
    pub forward_max_ms: f64,
    pub backward_ms: f64,
    pub backward_min_ms: f64,
    pub backward_max_ms: f64,
    pub saved_bytes: u64,
    pub peak_bytes: u64,
    pub forward_gflop_per_s: f64,
    pub backward_gflop_per_s: f64,
}

/// One row of `compare.json`: the counts, and the times where measured.
#[derive(Debug, Clone, Serialize)]
pub struct PointRow {
    #[serde(flatten)]
    pub cost: LayerCost,
    /// Measured with `--device`; absent otherwise.
    pub timed: Option<TimedRow>,
}

/// The rows at one (big kernel, height).
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub big: usize,
    pub small: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// Images per timed step (the FLOP counts are for one image).
    pub batch: usize,
    pub device: Option<String>,
    pub rows: Vec<PointRow>,
}

/// Runs [`run`] at every size of the sweep, times each row on `timing.device` when asked,
/// prints the tables, and writes the files when `sweep.out` is set.
pub fn sweep(s: &Sweep, out: &mut dyn Write) -> Result<Vec<Point>> {
    let io = |e: std::io::Error| Error::Other(format!("compare: {e}"));
    if s.bigs.is_empty() || s.heights.is_empty() {
        return Err(Error::arg("compare", "--big and --height need a value"));
    }
    if let Some(t) = &s.timing {
        if t.steps == 0 || t.batch == 0 {
            return Err(Error::arg(
                "compare",
                "--steps and --batch must be at least 1",
            ));
        }
    }
    let mut points = Vec::new();
    for &h in &s.heights {
        let w = s.width.unwrap_or(h);
        if h == 0 || w == 0 {
            return Err(Error::arg(
                "compare",
                "--height and --width must be at least 1",
            ));
        }
        for &big in &s.bigs {
            let config = SwConfig {
                big_kernel: big,
                ..s.config
            };
            config.validate()?;
            let costs = run(config, h, w, s.sparsity, out)?;
            let mut rows = Vec::new();
            let mut timed = Vec::new();
            for c in &costs {
                let t = match &s.timing {
                    Some(t) => {
                        let layer = layer_for(&c.label, c.kind, config, s.sparsity)?;
                        let shape = BenchShape {
                            batch: t.batch,
                            height: h,
                            width: w,
                            warmup: t.warmup,
                            steps: t.steps,
                            kinds: vec![c.kind],
                            sparsity: s.sparsity,
                            kernels: false,
                        };
                        let r = time_layer(c.label.clone(), layer, &config, &shape, &t.device)?;
                        timed.push(r.clone());
                        Some(TimedRow {
                            forward_ms: r.forward_s * 1e3,
                            forward_min_ms: r.forward_range.0 * 1e3,
                            forward_max_ms: r.forward_range.1 * 1e3,
                            backward_ms: r.backward_s * 1e3,
                            backward_min_ms: r.backward_range.0 * 1e3,
                            backward_max_ms: r.backward_range.1 * 1e3,
                            saved_bytes: r.saved_bytes,
                            peak_bytes: r.peak_bytes,
                            forward_gflop_per_s: r.forward_flops as f64 / r.forward_s * 1e-9,
                            backward_gflop_per_s: r.backward_flops as f64 / r.backward_s * 1e-9,
                        })
                    }
                    None => None,
                };
                rows.push(PointRow {
                    cost: c.clone(),
                    timed: t,
                });
            }
            if let Some(t) = &s.timing {
                print_timed(&timed, t, out).map_err(io)?;
            }
            points.push(Point {
                big,
                small: config.small_kernel,
                channels: config.channels,
                height: h,
                width: w,
                batch: s.timing.as_ref().map_or(1, |t| t.batch),
                device: s.timing.as_ref().map(|t| t.device.name()),
                rows,
            });
        }
    }
    if let Some(dir) = &s.out {
        std::fs::create_dir_all(dir).map_err(|e| Error::file(dir, e))?;
        let json = serde_json::to_string_pretty(&points)
            .map_err(|e| Error::Other(format!("compare.json: {e}")))?;
        write_atomic(&dir.join("compare.json"), json.as_bytes())?;
        write_atomic(&dir.join("compare.csv"), csv(&points).as_bytes())?;
        draw(&dir.join("compare.png"), &points)?;
        writeln!(
            out,
            "wrote compare.json, compare.csv and compare.png to {}",
            dir.display()
        )
        .map_err(io)?;
    }
    Ok(points)
}

/// A fresh layer for the row `label` of `kind`.
fn layer_for(
    label: &str,
    kind: SpatialKind,
    config: SwConfig,
    sparsity: f64,
) -> Result<Spatial<f32>> {
    let mut layer = match label {
        MERGED => return merged_sw(config),
        _ => Spatial::<f32>::new(kind, config)?,
    };
    if label == "sw*" {
        if let Spatial::Sw(sw) = &mut layer {
            let mask = uniform_mask(sw.kernels(), sparsity, &mut init::rng(config.seed));
            sw.set_mask(&mask)?;
        }
    }
    Ok(layer)
}

fn print_timed(rows: &[BenchRow], t: &Timing, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "timed on {}, training mode, batch {}: median of {} steps after {} warm-up (fastest-slowest); saved: what the forward keeps for the backward; peak: the step's high-water mark above its input",
        t.device.name(), t.batch, t.steps, t.warmup
    )?;
    writeln!(
        out,
        "{:<9} {:>22} {:>22} {:>10} {:>10} {:>9} {:>9}",
        "kind", "fwd ms", "bwd ms", "saved MB", "peak MB", "fwd GF/s", "bwd GF/s"
    )?;
    for r in rows {
        let ms = |m: f64, (lo, hi): (f64, f64)| {
            format!("{:.2} ({:.2}-{:.2})", m * 1e3, lo * 1e3, hi * 1e3)
        };
        writeln!(
            out,
            "{:<9} {:>22} {:>22} {:>10.2} {:>10.2} {:>9.1} {:>9.1}",
            r.label,
            ms(r.forward_s, r.forward_range),
            ms(r.backward_s, r.backward_range),
            r.saved_bytes as f64 * 1e-6,
            r.peak_bytes as f64 * 1e-6,
            r.forward_flops as f64 / r.forward_s * 1e-9,
            r.backward_flops as f64 / r.backward_s * 1e-9,
        )?;
    }
    Ok(())
}

/// One line per (size, row); timing columns empty where not timed.
fn csv(points: &[Point]) -> String {
    let mut s = String::from(
        "big,small,channels,height,width,batch,kind,params,fwd_flops,bwd_flops,fwd_macs,bwd_macs,\
         folded_params,folded_fwd_flops,fwd_ms,fwd_min_ms,fwd_max_ms,bwd_ms,bwd_min_ms,\
         bwd_max_ms,saved_bytes,peak_bytes\n",
    );
    for p in points {
        for r in &p.rows {
            let timed = match &r.timed {
                Some(t) => format!(
                    "{:.4},{:.4},{:.4},{:.4},{:.4},{:.4},{},{}",
                    t.forward_ms,
                    t.forward_min_ms,
                    t.forward_max_ms,
                    t.backward_ms,
                    t.backward_min_ms,
                    t.backward_max_ms,
                    t.saved_bytes,
                    t.peak_bytes
                ),
                None => ",,,,,,,".to_string(),
            };
            s += &format!(
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{timed}\n",
                p.big,
                p.small,
                p.channels,
                p.height,
                p.width,
                p.batch,
                r.cost.label,
                r.cost.params,
                r.cost.forward_flops,
                r.cost.backward_flops,
                r.cost.forward_macs,
                r.cost.backward_macs,
                r.cost.folded_params,
                r.cost.folded_forward_flops
            );
        }
    }
    s
}

/// `compare.png`: training FLOPs (forward + backward, one image) against the big kernel M,
/// one line per operator (and height), log scale; beside it the measured time (forward +
/// backward of the timed batch) where the rows were timed.
fn draw(path: &Path, points: &[Point]) -> Result<()> {
    let timed = points
        .iter()
        .all(|p| p.rows.iter().all(|r| r.timed.is_some()));
    let heights: Vec<usize> = {
        let mut h: Vec<usize> = points.iter().map(|p| p.height).collect();
        h.dedup();
        h
    };
    let labels: Vec<String> = {
        let mut l: Vec<String> = Vec::new();
        for r in points.iter().flat_map(|p| &p.rows) {
            if !l.contains(&r.cost.label) {
                l.push(r.cost.label.clone());
            }
        }
        l
    };
    type Metric = fn(&PointRow) -> Option<f64>;
    let mut panels: Vec<(&str, Metric)> =
        vec![("training MFLOP per image (forward + backward)", |r| {
            Some((r.cost.forward_flops + r.cost.backward_flops) as f64 * 1e-6)
        })];
    if timed {
        panels.push(("measured ms (forward + backward of the batch)", |r| {
            r.timed.as_ref().map(|t| t.forward_ms + t.backward_ms)
        }));
    }
    let big_lo = points.iter().map(|p| p.big).min().unwrap_or(1) as f64;
    let big_hi = points.iter().map(|p| p.big).max().unwrap_or(1) as f64;
    let palette = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
    crate::train::plot::render(
        path,
        (520 * panels.len() as u32, 420),
        "the comparison",
        |root| {
            let areas = root.split_evenly((1, panels.len()));
            for ((title, metric), area) in panels.iter().zip(&areas) {
                let values: Vec<f64> = points
                    .iter()
                    .flat_map(|p| p.rows.iter().filter_map(metric))
                    .filter(|v| v.is_finite() && *v > 0.0)
                    .collect();
                let lo = values
                    .iter()
                    .copied()
                    .fold(f64::INFINITY, f64::min)
                    .min(1.0);
                let hi = values.iter().copied().fold(1.0, f64::max);
                let mut chart = ChartBuilder::on(area)
                    .caption(*title, ("sans-serif", 15))
                    .margin(12)
                    .x_label_area_size(35)
                    .y_label_area_size(60)
                    .build_cartesian_2d(
                        (big_lo - 1.0)..(big_hi + 1.0),
                        (lo * 0.8..hi * 1.25).log_scale(),
                    )?;
                chart
                    .configure_mesh()
                    .x_desc("big kernel M")
                    .label_style(("sans-serif", 11))
                    .draw()?;
                for (li, label) in labels.iter().enumerate() {
                    // The first row (sw) drawn widest, so a row with equal values on top of it
                    // (sw-merged: the same FLOPs) leaves it visible; heights after the first dashed.
                    let width = if li == 0 { 5 } else { 2 };
                    for (hi, &h) in heights.iter().enumerate() {
                        let series: Vec<(f64, f64)> = points
                            .iter()
                            .filter(|p| p.height == h)
                            .filter_map(|p| {
                                let r = p.rows.iter().find(|r| &r.cost.label == label)?;
                                Some((p.big as f64, metric(r)?))
                            })
                            .filter(|(_, v)| v.is_finite() && *v > 0.0)
                            .collect();
                        if series.is_empty() {
                            continue;
                        }
                        let color = palette[li % palette.len()];
                        let name = match heights.len() {
                            1 => label.clone(),
                            _ => format!("{label} {h}x{h}"),
                        };
                        let style = color.stroke_width(width);
                        let drawn = if hi == 0 {
                            chart.draw_series(LineSeries::new(series.clone(), style))
                        } else {
                            chart.draw_series(DashedLineSeries::new(series.clone(), 8, 5, style))
                        };
                        drawn?.label(name).legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 18, y)], style)
                        });
                        chart.draw_series(
                            series
                                .into_iter()
                                .map(|p| Circle::new(p, 3, color.filled())),
                        )?;
                    }
                }
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::UpperLeft)
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .label_font(("sans-serif", 11))
                    .draw()?;
            }
            Ok(())
        },
    )
}
