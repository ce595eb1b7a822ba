//! CPU reference for softmax cross-entropy. One row of K logits at a time, contiguous;
//! row arithmetic in f64.

use shiftgrad_tensor::{Real, Tensor};

/// What one row's softmax needs: its maximum `m` and `tail = ln(1 + sum_{j != a} exp(x_j - m))`
/// (`a` the first position of the maximum), so that `lse = m + tail`.
#[derive(Clone, Copy, Debug)]
pub struct RowStats {
    pub max: f64,
    pub tail: f64,
}

/// Per row: [`RowStats`] (the max subtracted first, so no exp overflows; `ln_1p` of the other
/// terms, so a confident row keeps its tiny loss) and the loss
/// `(max - x[label]) + tail = lse - x[label]`. Returns the batch mean and the row statistics.
pub fn forward<T: Real>(logits: &Tensor<T>, labels: &[usize], k: usize) -> (f64, Vec<RowStats>) {
    let mut stats = Vec::with_capacity(labels.len());
    let mut total = 0.0f64;
    for (row, &label) in logits.data().chunks_exact(k).zip(labels) {
        let (arg, max) = row.iter().map(|v| v.as_f64()).enumerate().fold(
            (0, f64::NEG_INFINITY),
            |(a, m), (j, v)| if v > m { (j, v) } else { (a, m) },
        );
        let rest: f64 = row
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != arg)
            .map(|(_, v)| (v.as_f64() - max).exp())
            .sum();
        let tail = rest.ln_1p();
        total += (max - row[label].as_f64()) + tail;
        stats.push(RowStats { max, tail });
    }
    (total / labels.len() as f64, stats)
}

/// `dx[i, j] = (softmax(x_i)_j - [j == label_i]) * g / N` with `z = (x_ij - max_i) - tail_i`
/// (= `x_ij - lse_i`): `exp(z)` off the label and `expm1(z)` on it, which keeps
/// `softmax - 1` accurate when the softmax is close to 1.
pub fn backward<T: Real>(
    logits: &Tensor<T>,
    labels: &[usize],
    stats: &[RowStats],
    k: usize,
    g: f64,
) -> Tensor<T> {
    let scale = g / labels.len() as f64;
    let mut dx = Tensor::zeros(logits.shape().clone());
    let rows = dx
        .data_mut()
        .chunks_exact_mut(k)
        .zip(logits.data().chunks_exact(k));
    for (((drow, row), &label), s) in rows.zip(labels).zip(stats) {
        for (j, (d, &x)) in drow.iter_mut().zip(row).enumerate() {
            let z = (x.as_f64() - s.max) - s.tail;
            let p_minus_target = if j == label { z.exp_m1() } else { z.exp() };
            *d = T::of_f64(p_minus_target * scale);
        }
    }
    dx
}
