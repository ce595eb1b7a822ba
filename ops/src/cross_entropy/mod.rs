//! cross_entropy: softmax cross-entropy of logits (N, K) against integer labels, the mean over
//! the batch of `-log softmax(logits_i)[label_i] = lse_i - logits[i, label_i]`, with
//! `lse_i = m_i + ln sum_j exp(logits[i, j] - m_i)` and `m_i` the row maximum (so no exp
//! overflows, however large the logits). Same as PyTorch's `F.cross_entropy(logits, labels)`.
//!
//! Backward: `dlogits[i, j] = (softmax_ij - [j == label_i]) * dloss / N`. The forward saves
//! two numbers per row and the backward recomputes `softmax_ij = exp(logits[i, j] - lse_i)`
//! from the logits (kept by the graph anyway); we rejected saving the N×K probabilities,
//! which trades memory for 2NK FLOPs. We also rejected composing log_softmax and an NLL op:
//! fused, the loss never forms `log(softmax)`, which underflows to -inf for a confident wrong
//! class.
//!
//! Precision: `lse` is kept as its two parts, `m` and `tail = ln_1p(sum_{j != argmax}
//! exp(x_j - m))`. The row loss is `(m - x[label]) + tail` and `x - lse` is
//! `(x - m) - tail`, so neither is rounded to the precision of `m` (large logits would
//! otherwise cost all the digits of a small loss: in f32 a logit of 30 is known to 2e-6);
//! and on the label `softmax - 1` is `expm1(x - lse)`, exact when the softmax is near 1. For
//! a confident, correct row both the loss and its gradient stay accurate to the last digits
//! instead of rounding to zero.
//!
//! On OpenCL (`cl.rs`, `cross_entropy.cl`) the labels are uploaded as an `int` buffer; one
//! work-group computes every row's `(m, tail)` (one work-item per row) and the batch mean
//! through a fixed tree in local memory, leaving the loss on the device as a scalar. The
//! backward owns one logit per work-item and reads the upstream gradient from its device
//! buffer (no read back). Row arithmetic is in `T` there (f64 on the CPU).

pub(crate) mod cases;
mod cl;
mod cpu;
#[cfg(test)]
mod tests;

use crate::cost::{bytes, Cost, Work};
use shiftgrad_autograd::Var;
use shiftgrad_tensor::opencl::Context;
use shiftgrad_tensor::{Device, Error, Real, Result, Tensor};

const OP: &str = "cross_entropy";

/// Bytes of one label (labels are counted as int64, as PyTorch stores them).
const LABEL_BYTES: u64 = 8;

/// Cost of cross-entropy on logits (n, k). Comparisons, exp and ln count 1 FLOP each.
///
/// Forward, `4nk + 2n` FLOPs: per row, max `k - 1` comparisons, `x - max` `k`, exp `k`, sum
/// `k - 1`, ln 1, `+ max` 1, `- x[label]` 1 (`4k + 1`); the batch mean `n - 1` additions and a
/// division. Bytes: logits, labels (8 bytes each) and the scalar loss.
///
/// Backward, `3nk + n + 1` FLOPs: `dloss / n` once; per element subtract `lse`, exp, multiply
/// by the scale; per row one subtraction of the one-hot target. Bytes: read logits, labels,
/// the saved lse and dloss, write dlogits.
pub fn cost<T: Real>(n: usize, k: usize) -> Cost {
    let (nk, n64) = ((n * k) as u64, n as u64);
    Cost {
        forward: Work::new(4 * nk + 2 * n64, bytes::<T>(n * k + 1) + LABEL_BYTES * n64),
        backward: Work::new(
            3 * nk + n64 + 1,
            bytes::<T>(2 * n * k + n + 1) + LABEL_BYTES * n64,
        ),
    }
}

/// Mean over the batch of `-log softmax(logits)[label]`: logits (N, K), `labels.len() == N`,
/// every label `< K`. Returns a scalar.
pub fn cross_entropy<T: Real>(logits: &Var<T>, labels: &[usize]) -> Result<Var<T>> {
    let shape = logits.shape();
    let &[n, k] = shape.dims() else {
        return Err(Error::shape(
            OP,
            format!("logits must have 2 dimensions (N, K), got {shape}"),
        ));
    };
    if labels.len() != n {
        return Err(Error::shape(
            OP,
            format!(
                "{} labels for a batch of {n} (logits {shape})",
                labels.len()
            ),
        ));
    }
    if n == 0 {
        return Err(Error::shape(
            OP,
            format!("empty batch (logits {shape}): the mean is undefined"),
        ));
    }
    if let Some((i, &l)) = labels.iter().enumerate().find(|(_, &l)| l >= k) {
        return Err(Error::arg(
            OP,
            format!("label {l} at position {i} is out of range for {k} classes"),
        ));
    }
    let c = cost::<T>(n, k);
    let device = logits.value().device();
    let (loss, saved) = match device {
        Device::Cpu => {
            let (loss, rows) = cpu::forward(&logits.value(), labels, k);
            let saved = Saved::Host {
                labels: labels.to_vec(),
                rows,
            };
            (Tensor::scalar(T::of_f64(loss)), saved)
        }
        Device::OpenCl(ctx) => {
            let (loss, saved) = cl::forward(&ctx, &logits.value(), labels, k)?;
            (loss, Saved::Device(ctx, saved))
        }
    };
    c.forward.record();
    let logits_saved = logits.save();
    Ok(Var::from_op(OP, loss, &[logits], move |ctx| {
        c.backward.record();
        let logits = logits_saved.value(OP, "logits")?;
        let dx = match &saved {
            Saved::Host { labels, rows } => {
                let g = ctx.grad_out.item()?.as_f64();
                cpu::backward(&logits, labels, rows, k, g)
            }
            Saved::Device(c, saved) => cl::backward(c, &logits, saved, ctx.grad_out, k)?,
        };
        Ok(vec![Some(dx)])
    }))
}

/// What the backward keeps: the labels and each row's max and tail (its log-sum-exp is their
/// sum), on the host (f64) or on the device.
enum Saved<T: Real> {
    Host {
        labels: Vec<usize>,
        rows: Vec<cpu::RowStats>,
    },
    Device(Context, cl::Saved<T>),
}
