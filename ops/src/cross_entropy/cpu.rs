//! CPU reference for softmax cross-entropy. One row of K logits at a time, contiguous;
//! row arithmetic in f64.

use shiftgrad_tensor::{Real, Tensor};

/// Per row: `lse = max + ln sum_j exp(x_j - max)` (the max subtracted first, so no exp
/// overflows); the loss is `mean_i (lse_i - x[i, label_i])`. Returns the loss and the `lse`s.
pub fn forward<T: Real>(logits: &Tensor<T>, labels: &[usize], k: usize) -> (f64, Vec<f64>) {
    let mut lse = Vec::with_capacity(labels.len());
    let mut total = 0.0f64;
    for (row, &label) in logits.data().chunks_exact(k).zip(labels) {
        let max = row
            .iter()
            .map(|v| v.as_f64())
            .fold(f64::NEG_INFINITY, f64::max);
        let sum_exp: f64 = row.iter().map(|v| (v.as_f64() - max).exp()).sum();
        let l = max + sum_exp.ln();
        total += l - row[label].as_f64();
        lse.push(l);
    }
    (total / labels.len() as f64, lse)
}

/// `dx[i, j] = (softmax(x_i)_j - [j == label_i]) * g / N`, `softmax(x_i)_j = exp(x_ij - lse_i)`.
pub fn backward<T: Real>(
    logits: &Tensor<T>,
    labels: &[usize],
    lse: &[f64],
    k: usize,
    g: f64,
) -> Tensor<T> {
    let scale = g / labels.len() as f64;
    let mut dx = Tensor::zeros(logits.shape().clone());
    let rows = dx
        .data_mut()
        .chunks_exact_mut(k)
        .zip(logits.data().chunks_exact(k));
    for (((drow, row), &label), &l) in rows.zip(labels).zip(lse) {
        for (j, (d, &x)) in drow.iter_mut().zip(row).enumerate() {
            let p = (x.as_f64() - l).exp();
            let target = if j == label { 1.0 } else { 0.0 };
            *d = T::of_f64((p - target) * scale);
        }
    }
    dx
}
