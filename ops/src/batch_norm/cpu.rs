//! CPU reference for batch-norm 2d.
//!
//! Every loop walks the (n, c) planes of an NCHW tensor in memory order, the H*W elements of a
//! plane innermost and contiguous. Per-channel sums are accumulated in f64 whatever `T` is;
//! per-channel statistics (`mean`, `inv_std`) are f64.

use shiftgrad_tensor::{Real, Tensor};

/// The H*W elements of plane (b, ch) of an NCHW buffer with `c` channels.
fn plane<T>(data: &[T], b: usize, ch: usize, c: usize, hw: usize) -> &[T] {
    &data[(b * c + ch) * hw..][..hw]
}

fn plane_mut<T>(data: &mut [T], b: usize, ch: usize, c: usize, hw: usize) -> &mut [T] {
    &mut data[(b * c + ch) * hw..][..hw]
}

/// Per-channel batch mean and biased variance over (N, H, W), in two passes: the mean first,
/// then the mean squared deviation from it.
pub fn batch_stats<T: Real>(x: &Tensor<T>, dims: [usize; 4]) -> (Vec<f64>, Vec<f64>) {
    let [n, _, h, w] = dims;
    let count = (n * h * w) as f64;
    let mut mean = channel_sums(x, dims);
    mean.iter_mut().for_each(|m| *m /= count);
    let mut var = channel_square_deviations(x, dims, &mean);
    var.iter_mut().for_each(|v| *v /= count);
    (mean, var)
}

/// Per channel, `sum x` over (N, H, W).
pub fn channel_sums<T: Real>(x: &Tensor<T>, [n, c, h, w]: [usize; 4]) -> Vec<f64> {
    let hw = h * w;
    let data = x.data();
    let mut sums = vec![0.0f64; c];
    for b in 0..n {
        for (ch, m) in sums.iter_mut().enumerate() {
            *m += plane(data, b, ch, c, hw)
                .iter()
                .map(|v| v.as_f64())
                .sum::<f64>();
        }
    }
    sums
}

/// Per channel, `sum (x - mean_c)^2` over (N, H, W).
pub fn channel_square_deviations<T: Real>(
    x: &Tensor<T>,
    [n, c, h, w]: [usize; 4],
    mean: &[f64],
) -> Vec<f64> {
    let hw = h * w;
    let data = x.data();
    let mut sq = vec![0.0f64; c];
    for b in 0..n {
        for ch in 0..c {
            let m = mean[ch];
            sq[ch] += plane(data, b, ch, c, hw)
                .iter()
                .map(|v| (v.as_f64() - m) * (v.as_f64() - m))
                .sum::<f64>();
        }
    }
    sq
}

/// `y = (x - mean_c) * (gamma_c * inv_std_c) + beta_c`.
pub fn normalize<T: Real>(
    x: &Tensor<T>,
    [n, c, h, w]: [usize; 4],
    mean: &[f64],
    inv_std: &[f64],
    gamma: &[T],
    beta: &[T],
) -> Tensor<T> {
    let hw = h * w;
    let mut y = Tensor::zeros(x.shape().clone());
    for b in 0..n {
        for ch in 0..c {
            let (m, scale, shift) = (
                mean[ch],
                gamma[ch].as_f64() * inv_std[ch],
                beta[ch].as_f64(),
            );
            let xs = plane(x.data(), b, ch, c, hw);
            let ys = plane_mut(y.data_mut(), b, ch, c, hw);
            for (yo, &xi) in ys.iter_mut().zip(xs) {
                *yo = T::of_f64((xi.as_f64() - m) * scale + shift);
            }
        }
    }
    y
}

/// Per channel: `sum dy` (= dbeta) and `sum dy * xhat` (= dgamma), `xhat = (x - mean) * inv_std`.
pub fn grad_sums<T: Real>(
    dy: &Tensor<T>,
    x: &Tensor<T>,
    [n, c, h, w]: [usize; 4],
    mean: &[f64],
    inv_std: &[f64],
) -> (Vec<f64>, Vec<f64>) {
    let hw = h * w;
    let mut sum_dy = vec![0.0f64; c];
    let mut sum_dy_xhat = vec![0.0f64; c];
    for b in 0..n {
        for ch in 0..c {
            let (m, s) = (mean[ch], inv_std[ch]);
            let gs = plane(dy.data(), b, ch, c, hw);
            let xs = plane(x.data(), b, ch, c, hw);
            for (&g, &xi) in gs.iter().zip(xs) {
                sum_dy[ch] += g.as_f64();
                sum_dy_xhat[ch] += g.as_f64() * (xi.as_f64() - m) * s;
            }
        }
    }
    (sum_dy, sum_dy_xhat)
}

/// Training-mode input gradient, the closed form with `count` the values per channel the
/// statistics came from (`N*H*W`, or the whole job's with synchronised statistics):
/// `dx = gamma * inv_std / count * (count * dy - sum dy - xhat * sum(dy * xhat))`.
#[allow(clippy::too_many_arguments)]
pub fn grad_input_train<T: Real>(
    dy: &Tensor<T>,
    x: &Tensor<T>,
    [n, c, h, w]: [usize; 4],
    count: usize,
    mean: &[f64],
    inv_std: &[f64],
    gamma: &[T],
    sum_dy: &[f64],
    sum_dy_xhat: &[f64],
) -> Tensor<T> {
    let hw = h * w;
    let count = count as f64;
    let mut dx = Tensor::zeros(x.shape().clone());
    for b in 0..n {
        for ch in 0..c {
            let (m, s) = (mean[ch], inv_std[ch]);
            let k = gamma[ch].as_f64() * s / count;
            let gs = plane(dy.data(), b, ch, c, hw);
            let xs = plane(x.data(), b, ch, c, hw);
            let dxs = plane_mut(dx.data_mut(), b, ch, c, hw);
            for ((d, &g), &xi) in dxs.iter_mut().zip(gs).zip(xs) {
                let xhat = (xi.as_f64() - m) * s;
                *d = T::of_f64(k * (count * g.as_f64() - sum_dy[ch] - xhat * sum_dy_xhat[ch]));
            }
        }
    }
    dx
}

/// Evaluation-mode input gradient (the statistics are constants): `dx = dy * gamma * inv_std`.
pub fn grad_input_eval<T: Real>(
    dy: &Tensor<T>,
    [n, c, h, w]: [usize; 4],
    inv_std: &[f64],
    gamma: &[T],
) -> Tensor<T> {
    let hw = h * w;
    let mut dx = Tensor::zeros(dy.shape().clone());
    for b in 0..n {
        for ch in 0..c {
            let scale = gamma[ch].as_f64() * inv_std[ch];
            let gs = plane(dy.data(), b, ch, c, hw);
            let dxs = plane_mut(dx.data_mut(), b, ch, c, hw);
            for (d, &g) in dxs.iter_mut().zip(gs) {
                *d = T::of_f64(g.as_f64() * scale);
            }
        }
    }
    dx
}
