//! `shiftgrad compare`: parameters and measured FLOPs of one spatial layer of each kind
//! (SPEC 1.7), same channels, same big and small kernel, same map.
//!
//! FLOPs are not estimated here: the layer runs on a random input and the numbers are read
//! from the op counters (`shiftgrad_tensor::counters`) around the forward and the backward.
//!
//! With `--sparsity S > 0` a row `sw*` follows `sw`: the same layer with a uniform random mask
//! (SPEC 1.6, exactly `round((1 - S) R nk)` small kernels live, drawn from the seed), whose
//! forward runs the sparse bank convolution and shift-add. Its parameters count live kernels
//! only (SPEC 4: the bank holds `live * k*k * P` live weights); its FLOPs are the counters
//! again, which those ops fill from their cost functions (`bank_conv::cost`,
//! `shift_add::cost_sparse`) with the live channels. The forward difference to `sw` is
//! checked against those cost functions (an error if they disagree). The folded form is the
//! same `L x L` depthwise kernel as for `sw`, with zero blocks where kernels are pruned.

use super::bench::{time_layer, BenchRow, BenchShape};
use super::{check_sparsity, uniform_mask};
use crate::train::metrics::write_atomic;
use plotters::prelude::*;
use serde::Serialize;
use shiftgrad_autograd::{no_grad, Var};
use shiftgrad_nn::baselines::{Spatial, SpatialKind};
use shiftgrad_nn::reparam::{fold_spatial, merge_paths};
use shiftgrad_nn::{Mode, Module, SwConfig};
use shiftgrad_ops::shift_add::{cost as shift_add_cost, cost_sparse, LiveChannels};
use shiftgrad_ops::{bank_conv, conv2d, sum};
use shiftgrad_tensor::Device;
use shiftgrad_tensor::{counters, init, Error, Result, Shape, Tensor};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The label of the sw layer with its P paths merged (`merged_sw`).
pub const MERGED: &str = "sw-merged";

/// One row of the comparison.
#[derive(Debug, Clone, Serialize)]
pub struct LayerCost {
    /// The row's label: the kind, `sw-merged` or `sw*`.
    pub label: String,
    #[serde(skip)]
    pub kind: SpatialKind,
    pub params: usize,
    pub forward_flops: u64,
    pub backward_flops: u64,
    pub forward_macs: u64,
    pub backward_macs: u64,
    pub folded_params: usize,
    pub folded_forward_flops: u64,
    /// A masked sw layer: (live kernels, R*nk). `params` counts the live ones only.
    pub live_kernels: Option<(usize, usize)>,
}

/// FLOPs of the bank convolution and the shift-add of a masked sw layer from the ops' cost
/// functions: the sparse ops with the live kernels, and what the dense layer runs instead
/// (`conv2d` for the bank, the dense shift-add).
#[derive(Debug, Clone, Copy)]
pub struct SparseBreakdown {
    /// Forward of the sparse bank convolution(s), `bank_conv::cost` with the live kernels.
    pub bank_live: u64,
    /// Forward of the dense layer's bank convolution(s), `conv2d::cost`.
    pub bank_dense: u64,
    /// Forward of `shift_add_sparse` (`cost_sparse` with the live kernels) and of `shift_add`.
    pub shift_add_live: u64,
    pub shift_add_dense: u64,
    /// Backward of the bank convolution(s): `bank_conv::cost` with the live kernels, with
    /// every kernel live, and `conv2d::cost` (the last two are equal: both count the output's
    /// elements times the taps for each gradient).
    pub bank_bwd_live: u64,
    pub bank_bwd_all_live: u64,
    pub bank_bwd_dense: u64,
}

/// Measures one layer of `kind` for `config` on a (1, C, h, w) input.
pub fn measure(kind: SpatialKind, config: SwConfig, h: usize, w: usize) -> Result<LayerCost> {
    measure_layer(
        Spatial::<f32>::new(kind, config)?,
        kind,
        config,
        h,
        w,
        0,
        None,
    )
}

/// Measures the sw layer of `config` with a uniform random mask at `sparsity` (drawn from
/// `config.seed`), and returns the cost-function breakdown of its forward.
pub fn measure_sparse_sw(
    config: SwConfig,
    h: usize,
    w: usize,
    sparsity: f64,
) -> Result<(LayerCost, SparseBreakdown)> {
    check_sparsity("compare", sparsity)?;
    let mut layer = Spatial::<f32>::new(SpatialKind::Sw, config)?;
    let Spatial::Sw(sw) = &mut layer else {
        return Err(Error::Other("compare: not a sw layer".into()));
    };
    let (reps, nk, k) = (sw.reps(), sw.tables.nk(), config.small_kernel);
    let mask = uniform_mask(sw.kernels(), sparsity, &mut init::rng(config.seed));
    sw.set_mask(&mask)?;
    let live = LiveChannels::from_mask(reps, nk, &mask)?;
    // The bank convolutions one forward runs: one on the merged bank, or P unmerged.
    let convs = if sw.unmerged_banks && sw.banks.len() > 1 {
        sw.banks.len() as u64
    } else {
        1
    };
    let x_r = Shape::from(vec![1, reps, h, w]);
    let bank_w = Shape::from(vec![reps * nk, 1, k, k]);
    let sparse_bank = bank_conv::cost::<f32>(&x_r, k, &live)?;
    let all_live_bank = bank_conv::cost::<f32>(&x_r, k, &LiveChannels::all(reps, nk))?;
    let dense_bank = conv2d::cost::<f32>(&x_r, &bank_w, &sw.bank_params(), false)?;
    let detail = SparseBreakdown {
        bank_live: convs * sparse_bank.forward.flops,
        bank_dense: convs * dense_bank.forward.flops,
        shift_add_live: cost_sparse::<f32>(&sw.tables, &live, 1, h, w).forward.flops,
        shift_add_dense: shift_add_cost::<f32>(&sw.tables, 1, h, w).forward.flops,
        bank_bwd_live: convs * sparse_bank.backward.flops,
        bank_bwd_all_live: convs * all_live_bank.backward.flops,
        bank_bwd_dense: convs * dense_bank.backward.flops,
    };
    let pruned_weights = (mask.len() - live.len()) * k * k * config.n_path;
    let cost = measure_layer(
        layer,
        SpatialKind::Sw,
        config,
        h,
        w,
        pruned_weights,
        Some((live.len(), mask.len())),
    )?;
    Ok((cost, detail))
}

/// Measures `layer`; `pruned_weights` (zero weights of pruned kernels) are not counted.
fn measure_layer(
    mut layer: Spatial<f32>,
    kind: SpatialKind,
    config: SwConfig,
    h: usize,
    w: usize,
    pruned_weights: usize,
    live_kernels: Option<(usize, usize)>,
) -> Result<LayerCost> {
    let x: Tensor<f32> = init::normal(
        [1, config.channels, h, w],
        0.0,
        1.0,
        &mut init::rng(config.seed),
    );
    let xv = Var::param(x.clone());
    let count = |layer: &Spatial<f32>| {
        let mut ps = Vec::new();
        layer.parameters("", &mut ps);
        ps.iter().map(|p| p.var.value().numel()).sum::<usize>()
    };
    let params = count(&layer) - pruned_weights;
    let before = counters::snapshot();
    let y = layer.forward(&xv, Mode::Train)?;
    let mid = counters::snapshot();
    let loss = sum(&y)?;
    let after_sum = counters::snapshot();
    loss.backward()?;
    let after = counters::snapshot();
    fold_spatial(&mut layer)?;
    let folded_params = count(&layer);
    let f0 = counters::snapshot();
    no_grad(|| layer.forward(&Var::constant(x), Mode::Eval))?;
    let f1 = counters::snapshot();
    Ok(LayerCost {
        label: kind.to_string(),
        kind,
        params,
        forward_flops: mid.flops - before.flops,
        backward_flops: after.flops - after_sum.flops,
        forward_macs: mid.macs - before.macs,
        backward_macs: after.macs - after_sum.macs,
        folded_params,
        folded_forward_flops: f1.flops - f0.flops,
        live_kernels,
    })
}

fn row(out: &mut dyn Write, label: &str, r: &LayerCost) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<9} {:>10} {:>14} {:>14} {:>13} {:>16}",
        label, r.params, r.forward_flops, r.backward_flops, r.folded_params, r.folded_forward_flops
    )
}

/// The sw layer of `config` with its P bank paths merged into one (`reparam::merge_paths`):
/// what the trained layer computes, at the cost of one path.
pub fn merged_sw(config: SwConfig) -> Result<Spatial<f32>> {
    let mut layer = Spatial::<f32>::new(SpatialKind::Sw, config)?;
    if let Spatial::Sw(sw) = &mut layer {
        merge_paths(sw)?;
    }
    Ok(layer)
}

/// Prints the table for every kind that accepts the configuration; with `sparsity > 0` the
/// masked sw layer too (row `sw*`, after `sw`) and a line on its mask and cost breakdown.
pub fn run(
    config: SwConfig,
    h: usize,
    w: usize,
    sparsity: f64,
    out: &mut dyn Write,
) -> Result<Vec<LayerCost>> {
    check_sparsity("compare", sparsity)?;
    let io = |e: std::io::Error| Error::Other(format!("compare: {e}"));
    writeln!(
        out,
        "one spatial layer: C={} M={} k={} ghost={} P={} G={} on a 1x{}x{}x{} input (f32); FLOPs measured by the op counters",
        config.channels, config.big_kernel, config.small_kernel, config.ghost_ratio, config.n_path, config.n_rep, config.channels, h, w
    )
    .map_err(io)?;
    writeln!(
        out,
        "{:<9} {:>10} {:>14} {:>14} {:>13} {:>16}",
        "kind", "params", "fwd FLOPs", "bwd FLOPs", "folded params", "folded fwd FLOPs"
    )
    .map_err(io)?;
    let mut rows = Vec::new();
    let mut sparse = None;
    for kind in [
        SpatialKind::Sw,
        SpatialKind::Slak,
        SpatialKind::Dense,
        SpatialKind::Small,
    ] {
        let dense_sw = match measure(kind, config, h, w) {
            Ok(r) => {
                row(out, &kind.to_string(), &r).map_err(io)?;
                let fwd = r.forward_flops;
                rows.push(r);
                Some(fwd)
            }
            Err(e) => {
                writeln!(out, "{:<9} skipped: {e}", kind.to_string()).map_err(io)?;
                None
            }
        };
        if kind == SpatialKind::Sw && dense_sw.is_some() && config.n_path > 1 {
            let mut r = measure_layer(merged_sw(config)?, kind, config, h, w, 0, None)?;
            r.label = MERGED.into();
            row(out, MERGED, &r).map_err(io)?;
            rows.push(r);
        }
        if kind == SpatialKind::Sw && sparsity > 0.0 {
            let Some(dense_fwd) = dense_sw else {
                writeln!(out, "{:<9} skipped: sw was", "sw*").map_err(io)?;
                continue;
            };
            let (mut r, d) = measure_sparse_sw(config, h, w, sparsity)?;
            r.label = "sw*".into();
            // The counters must show exactly the saving the cost functions predict.
            let predicted = i128::from(dense_fwd) + i128::from(d.bank_live)
                - i128::from(d.bank_dense)
                + i128::from(d.shift_add_live)
                - i128::from(d.shift_add_dense);
            if i128::from(r.forward_flops) != predicted {
                return Err(Error::Other(format!(
                    "compare: the sparse sw forward counted {} FLOPs, the cost functions \
                     predict {predicted} (sw {dense_fwd} - bank conv {} + {} - shift-add {} + {})",
                    r.forward_flops, d.bank_dense, d.bank_live, d.shift_add_dense, d.shift_add_live
                )));
            }
            row(out, "sw*", &r).map_err(io)?;
            sparse = Some((r.live_kernels.unwrap_or_default(), d));
            rows.push(r);
        }
    }
    if let Some(((live, total), d)) = sparse {
        writeln!(
            out,
            "sw*: sw at sparsity {sparsity}, {live} of {total} small kernels live (uniform mask from seed {}); \
             params count the live kernels only",
            config.seed
        )
        .map_err(io)?;
        writeln!(
            out,
            "sw*: fwd FLOPs of the bank conv {} (sw: {}) and the shift-add {} (sw: {}), by \
             bank_conv::cost and shift_add::cost_sparse; the counters agree",
            d.bank_live, d.bank_dense, d.shift_add_live, d.shift_add_dense
        )
        .map_err(io)?;
        writeln!(
            out,
            "sw*: bwd FLOPs of the bank conv {} (all live: {}; sw's conv2d: {})",
            d.bank_bwd_live, d.bank_bwd_all_live, d.bank_bwd_dense
        )
        .map_err(io)?;
        writeln!(
            out,
            "sw*: folded, the same L x L kernel as sw (pruned kernels add nothing to it)"
        )
        .map_err(io)?;
    }
    Ok(rows)
}

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
