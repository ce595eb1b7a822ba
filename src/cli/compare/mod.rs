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

use super::{check_sparsity, uniform_mask};
use plotters::prelude::*;
use serde::Serialize;
use shiftgrad_autograd::{no_grad, Var};
use shiftgrad_nn::baselines::{Spatial, SpatialKind};
use shiftgrad_nn::reparam::{fold_spatial, merge_paths};
use shiftgrad_nn::{Mode, Module, SwConfig};
use shiftgrad_ops::shift_add::{cost as shift_add_cost, cost_sparse, LiveChannels};
use shiftgrad_ops::{bank_conv, conv2d, sum};
use shiftgrad_tensor::{counters, init, Error, Result, Shape, Tensor};
use std::io::Write;

mod sweep;

pub use sweep::{sweep, Point, PointRow, Sweep, TimedRow, Timing};

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
