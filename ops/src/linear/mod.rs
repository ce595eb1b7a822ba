//! linear: `y = x w^T + b` with x (N, in), w (out, in) (PyTorch's layout), optional b (out).
//!
//! Backward: `dx = dy w` (N, in), `dw = dy^T x` (out, in), `db = sum over the batch of dy`.
//! The three products are written as plain loops whose innermost index runs along `in`, which
//! is contiguous in x, w, dx and dw, so no transposed copy of w or x is ever made. We rejected
//! building linear from a general matmul plus a transpose op plus a broadcast add: three graph
//! nodes and two materialised intermediates for what is, in an SW-ResNet, only the classifier.
//!
//! On OpenCL (`cl.rs`, `linear.cl`) the three products are one tiled matrix multiply whose
//! operands are described by strides, so `w^T` and `dy^T` are read in place, never copied:
//! each work-group computes a 32 x 32 tile of the output from 16-deep slices staged in local
//! memory, each work-item 4 x 4 outputs held in registers. `db` is a column sum, one
//! work-item per output. Every output is summed by one work-item in the CPU's order.

pub(crate) mod cases;
mod cl;
mod cpu;
#[cfg(test)]
mod tests;

use crate::cost::{bytes, Cost, Work};
use crate::device::common_device;
use shiftgrad_autograd::Var;
use shiftgrad_tensor::{Device, Error, Real, Result};

const OP: &str = "linear";

/// Cost of linear on a batch of `n` rows, `fin` inputs, `fout` outputs.
///
/// Forward: `n*fin*fout` MACs, plus `n*fout` bias additions; bytes x, w, b and y.
/// Backward (every gradient): `dx` and `dw` are `n*fin*fout` MACs each; `db` is `(n-1)*fout`
/// additions; bytes: read dy, x, w, write dx, dw, db.
pub fn cost<T: Real>(n: usize, fin: usize, fout: usize, bias: bool) -> Cost {
    let b = bias as usize;
    let macs = (n * fin * fout) as u64;
    Cost {
        forward: Work::with_macs(
            macs,
            (b * n * fout) as u64,
            bytes::<T>(n * fin + fout * fin + b * fout + n * fout),
        ),
        backward: Work::with_macs(
            2 * macs,
            (b * n.saturating_sub(1) * fout) as u64,
            bytes::<T>(n * fout + 2 * (n * fin + fout * fin) + b * fout),
        ),
    }
}

/// `x w^T + b`: x (N, in), w (out, in), b (out) -> (N, out).
pub fn linear<T: Real>(x: &Var<T>, w: &Var<T>, b: Option<&Var<T>>) -> Result<Var<T>> {
    let (xs, ws) = (x.shape(), w.shape());
    let &[n, fin] = xs.dims() else {
        return Err(Error::shape(
            OP,
            format!("input must have 2 dimensions (N, in), got {xs}"),
        ));
    };
    let &[fout, w_in] = ws.dims() else {
        return Err(Error::shape(
            OP,
            format!("weight must have 2 dimensions (out, in), got {ws}"),
        ));
    };
    if fin != w_in {
        return Err(Error::shape(
            OP,
            format!("input has {fin} features, weight expects {w_in}"),
        ));
    }
    if let Some(b) = b {
        if b.value().dims() != [fout] {
            return Err(Error::shape(
                OP,
                format!(
                    "bias has shape {}, weight has {fout} outputs (expected [{fout}])",
                    b.shape()
                ),
            ));
        }
    }
    let c = cost::<T>(n, fin, fout, b.is_some());
    let y = {
        let (xv, wv, bias) = (x.value(), w.value(), b.map(|b| b.value()));
        let mut all = vec![&*xv, &*wv];
        all.extend(bias.as_deref());
        match common_device(OP, &all)? {
            Device::Cpu => cpu::forward(&xv, &wv, bias.as_deref(), n, fin, fout),
            Device::OpenCl(ctx) => cl::forward(&ctx, &xv, &wv, bias.as_deref(), n, fin, fout)?,
        }
    };
    c.forward.record();
    let mut inputs = vec![x, w];
    inputs.extend(b);
    let (x_saved, w_saved) = (x.save(), w.save());
    Ok(Var::from_op(OP, y, &inputs, move |ctx| {
        c.backward.record();
        let dy = ctx.grad_out;
        let (x, w) = (x_saved.value(OP, "input")?, w_saved.value(OP, "weight")?);
        let with_bias = ctx.needs.len() == 3;
        let need = |i: usize| ctx.needs.get(i).copied().unwrap_or(false);
        let grads = match dy.device() {
            Device::Cpu => vec![
                need(0).then(|| cpu::grad_input(dy, &w, n, fin, fout)),
                need(1).then(|| cpu::grad_weight(dy, &x, n, fin, fout)),
                need(2).then(|| cpu::grad_bias(dy, n, fout)),
            ],
            Device::OpenCl(c) => vec![
                need(0)
                    .then(|| cl::grad_input(&c, dy, &w, n, fin, fout))
                    .transpose()?,
                need(1)
                    .then(|| cl::grad_weight(&c, dy, &x, n, fin, fout))
                    .transpose()?,
                need(2)
                    .then(|| cl::grad_bias(&c, dy, n, fout))
                    .transpose()?,
            ],
        };
        Ok(grads.into_iter().take(2 + with_bias as usize).collect())
    }))
}
