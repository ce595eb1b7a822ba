//! The dense equivalent of bank convolution + shift-add (SPEC 1.4): three depthwise kernels
//! whose cross-correlation with `X_r` gives exactly `Hout`, `Vout`, `Iout`.
//!
//! Derivation (cross-correlation, `p = k - 1`, `e = k/2`, `s_i = M/2 - i*k - p`). The bank
//! convolution gives `Y[c, r, q] = sum_{a,b<k} X[o, r + a - p, q + b - p] W[c, a, b]`, and it
//! is exactly zero outside `[0, H+2e) x [0, W+2e)` (with padding `p = k - 1` it is the "full"
//! correlation), so dropping out-of-range terms in the shift-add loses nothing. With
//! `c_i = o*nk + rh[g][o][i]`, the slot-`i` term of the horizontal path is
//!
//! ```text
//! Y[c_i, y+e, x-s_i] = sum_{a,b} X[o, y + (a - k/2), x + (i*k + b - M/2)] W[c_i, a, b]
//! ```
//!
//! because `e - p = -k/2` and `-s_i + b - p = i*k + b - M/2`. So kernel row `a` reads row
//! offset `a - k/2` (centred, pad `k/2` above and below), and kernel column `t = i*k + b`
//! (`t < L = nk*k`) reads column offset `t - M/2`. A depthwise cross-correlation with a
//! `k x L` kernel reads offset `t - left` at column `t`, so `left = M/2`, and keeping the
//! output width `W` needs `left + right = L - 1`, so `right = L - 1 - M/2`. The kernel is
//! therefore symmetric only when `L - 1 = 2*(M/2)`, i.e. `L = M` with `M` odd; otherwise it
//! is shifted (M = 49, k = 3: L = 51, offsets -24..+26; M = 12, k = 3: L = 12, -6..+5).
//! The vertical path is the transpose (`L x k`, rows `t` at offset `t - M/2`); the identity
//! path reads `Y[., y+e, x+e]`, offsets `a - k/2`, `b - k/2`: a centred `k x k` kernel.
//! Summing over the groups `g` sums the kernels; a bank channel used by several slots or
//! groups appears in several blocks.

use super::ShiftTables;
use shiftgrad_tensor::{Error, Real, Result, Tensor};

/// `[top, bottom, left, right]` paddings of the dense horizontal, vertical and identity kernels.
pub fn dense_padding(tables: &ShiftTables) -> ([usize; 4], [usize; 4], [usize; 4]) {
    let half_k = tables.small / 2;
    let half_m = tables.big / 2;
    let l = tables.nk() * tables.small;
    let far = l - 1 - half_m; // L - 1 - M/2 >= 0 since L >= M
    (
        [half_k, half_k, half_m, far],
        [half_m, far, half_k, half_k],
        [half_k; 4],
    )
}

/// SPEC 1.4 dense kernels from a (merged) bank `W` of shape `(R*nk, 1, k, k)`:
/// `dense_h (R, 1, k, L)`, `dense_v (R, 1, L, k)`, `dense_i (R, 1, k, k)`, `L = nk*k`.
/// Column block `i` of `dense_h[o]` is `sum_g W[o*nk + rh[g][o][i]]`; row block `i` of
/// `dense_v[o]` is `sum_g W[o*nk + rv[g][o][i]]`; `dense_i[o] = sum_g W[idx_identit[o,g]]`.
pub fn dense_kernels<T: Real>(
    tables: &ShiftTables,
    bank: &Tensor<T>,
) -> Result<(Tensor<T>, Tensor<T>, Tensor<T>)> {
    tables.validate()?;
    let (r, nk, k, groups) = (tables.reps, tables.nk(), tables.small, tables.groups);
    if bank.dims() != [r * nk, 1, k, k] {
        return Err(Error::shape(
            "shift_add",
            format!(
                "bank weight must have shape [{}, 1, {k}, {k}] (R*nk = {r}*{nk}), got {}",
                r * nk,
                bank.shape()
            ),
        ));
    }
    let l = nk * k;
    let w = bank.data();
    let kernel = |c: usize| &w[c * k * k..(c + 1) * k * k];
    let mut dense_h = Tensor::zeros([r, 1, k, l]);
    let mut dense_v = Tensor::zeros([r, 1, l, k]);
    let mut dense_i = Tensor::zeros([r, 1, k, k]);
    for o in 0..r {
        for g in 0..groups {
            let (rh, rv) = (tables.rh(g, o), tables.rv(g, o));
            for i in 0..nk {
                let wh = kernel(o * nk + rh[i]);
                let wv = kernel(o * nk + rv[i]);
                for a in 0..k {
                    for b in 0..k {
                        // dense_h[o, 0, a, i*k + b]; dense_v[o, 0, i*k + a, b].
                        dense_h.data_mut()[(o * k + a) * l + i * k + b] += wh[a * k + b];
                        dense_v.data_mut()[(o * l + i * k + a) * k + b] += wv[a * k + b];
                    }
                }
            }
            let wi = kernel(tables.idx_identit[o * groups + g] as usize);
            for (d, &v) in dense_i.data_mut()[o * k * k..(o + 1) * k * k]
                .iter_mut()
                .zip(wi)
            {
                *d += v;
            }
        }
    }
    Ok((dense_h, dense_v, dense_i))
}
