//! cross_entropy: softmax cross-entropy of logits (N, K) against integer labels, the mean over
//! the batch of `-log softmax(logits_i)[label_i] = lse_i - logits[i, label_i]`, with
//! `lse_i = m_i + ln sum_j exp(logits[i, j] - m_i)` and `m_i` the row maximum (so no exp
//! overflows, however large the logits). Same as PyTorch's `F.cross_entropy(logits, labels)`.
//!
//! Backward: `dlogits[i, j] = (softmax_ij - [j == label_i]) * dloss / N`. The forward saves one
//! `lse` per row (f64) and the backward recomputes `softmax_ij = exp(logits[i, j] - lse_i)`
//! from the logits (kept by the graph anyway); we rejected saving the N×K probabilities,
//! which trades memory for 2NK FLOPs. We also rejected composing log_softmax and an NLL op:
//! fused, the loss never forms `log(softmax)`, which underflows to -inf for a confident wrong
//! class.

pub(crate) mod cases;
mod cpu;
#[cfg(test)]
mod tests;

use crate::cost::{bytes, Cost, Work};
use shiftgrad_autograd::Var;
use shiftgrad_tensor::{Error, Real, Result, Tensor};

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
    let (loss, lse) = cpu::forward(&logits.value(), labels, k);
    c.forward.record();
    let labels = labels.to_vec();
    let logits_saved = logits.clone();
    Ok(Var::from_op(
        OP,
        Tensor::scalar(T::of_f64(loss)),
        &[logits],
        move |ctx| {
            c.backward.record();
            let g = ctx.grad_out.item()?.as_f64();
            Ok(vec![Some(cpu::backward(
                &logits_saved.value(),
                &labels,
                &lse,
                k,
                g,
            ))])
        },
    ))
}
