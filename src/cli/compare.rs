//! `shiftgrad compare`: parameters and measured FLOPs of one spatial layer of each kind
//! (SPEC 1.7), same channels, same big and small kernel, same map.
//!
//! FLOPs are not estimated here: the layer runs on a random input and the numbers are read
//! from the op counters (`shiftgrad_tensor::counters`) around the forward and the backward.

use shiftgrad_autograd::{no_grad, Var};
use shiftgrad_nn::baselines::{Spatial, SpatialKind};
use shiftgrad_nn::reparam::fold_spatial;
use shiftgrad_nn::{Mode, Module, SwConfig};
use shiftgrad_ops::sum;
use shiftgrad_tensor::{counters, init, Error, Result, Tensor};
use std::io::Write;

/// One row of the comparison.
#[derive(Debug, Clone)]
pub struct LayerCost {
    pub kind: SpatialKind,
    pub params: usize,
    pub forward_flops: u64,
    pub backward_flops: u64,
    pub folded_params: usize,
    pub folded_forward_flops: u64,
}

/// Measures one layer of `kind` for `config` on a (1, C, h, w) input.
pub fn measure(kind: SpatialKind, config: SwConfig, h: usize, w: usize) -> Result<LayerCost> {
    let mut layer = Spatial::<f32>::new(kind, config)?;
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
    let params = count(&layer);
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
        kind,
        params,
        forward_flops: mid.flops - before.flops,
        backward_flops: after.flops - after_sum.flops,
        folded_params,
        folded_forward_flops: f1.flops - f0.flops,
    })
}

/// Prints the table for every kind that accepts the configuration.
pub fn run(config: SwConfig, h: usize, w: usize, out: &mut dyn Write) -> Result<Vec<LayerCost>> {
    let io = |e: std::io::Error| Error::Other(format!("compare: {e}"));
    writeln!(
        out,
        "one spatial layer: C={} M={} k={} ghost={} P={} G={} on a 1x{}x{}x{} input (f32); FLOPs measured by the op counters",
        config.channels, config.big_kernel, config.small_kernel, config.ghost_ratio, config.n_path, config.n_rep, config.channels, h, w
    )
    .map_err(io)?;
    writeln!(
        out,
        "{:<6} {:>10} {:>14} {:>14} {:>13} {:>16}",
        "kind", "params", "fwd FLOPs", "bwd FLOPs", "folded params", "folded fwd FLOPs"
    )
    .map_err(io)?;
    let mut rows = Vec::new();
    for kind in [
        SpatialKind::Sw,
        SpatialKind::Slak,
        SpatialKind::Dense,
        SpatialKind::Small,
    ] {
        match measure(kind, config, h, w) {
            Ok(r) => {
                writeln!(
                    out,
                    "{:<6} {:>10} {:>14} {:>14} {:>13} {:>16}",
                    kind.to_string(),
                    r.params,
                    r.forward_flops,
                    r.backward_flops,
                    r.folded_params,
                    r.folded_forward_flops
                )
                .map_err(io)?;
                rows.push(r);
            }
            Err(e) => writeln!(out, "{:<6} skipped: {e}", kind.to_string()).map_err(io)?,
        }
    }
    Ok(rows)
}
