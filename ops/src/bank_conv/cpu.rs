//! CPU reference for the sparse bank convolution: plain loops over the live kernels, written
//! to be read (see mod.rs for the formulas). Every output element is one sum in a fixed order
//! (taps `ky` outer, `kx` inner; for `dx` the live kernels of the rep first; for `dw` samples,
//! then rows, then columns).

use super::Dims;
use crate::shift_add::LiveChannels;
use shiftgrad_tensor::{Real, Tensor};

/// The valid range of `t` in `0..n` for which `i + t - pad` lies in `0..len`.
fn taps(i: usize, pad: usize, n: usize, len: usize) -> std::ops::Range<usize> {
    let lo = pad.saturating_sub(i);
    let hi = n.min((len + pad).saturating_sub(i));
    lo..hi.max(lo)
}

/// `Y[b, l, u, v] = sum_{ky, kx} w[c, ky, kx] * x[b, o, u + ky - p, v + kx - p]`.
pub fn forward<T: Real>(d: &Dims, x: &Tensor<T>, w: &Tensor<T>, live: &LiveChannels) -> Tensor<T> {
    let (k, p, hp, wp) = (d.k, d.pad(), d.hp(), d.wp());
    let mut y = Tensor::zeros([d.batch, d.live, hp, wp]);
    let (xd, wd, yd) = (x.data(), w.data(), y.data_mut());
    for b in 0..d.batch {
        for (l, &c) in live.channels.iter().enumerate() {
            let (c, o) = (c as usize, c as usize / d.nk);
            let xp = &xd[(b * d.reps + o) * d.h * d.w..][..d.h * d.w];
            let wk = &wd[c * k * k..][..k * k];
            let yp = &mut yd[(b * d.live + l) * hp * wp..][..hp * wp];
            for u in 0..hp {
                for v in 0..wp {
                    let mut acc = T::zero();
                    for ky in taps(u, p, k, d.h) {
                        for kx in taps(v, p, k, d.w) {
                            acc += wk[ky * k + kx] * xp[(u + ky - p) * d.w + v + kx - p];
                        }
                    }
                    yp[u * wp + v] = acc;
                }
            }
        }
    }
    y
}

/// `dx[b, o, y, x] = sum_{l of rep o} sum_{ky, kx} w[c, ky, kx] * dY[b, l, y + p - ky, x + p - kx]`.
pub fn data_grad<T: Real>(
    d: &Dims,
    dy: &Tensor<T>,
    w: &Tensor<T>,
    live: &LiveChannels,
) -> Tensor<T> {
    let (k, p, hp, wp) = (d.k, d.pad(), d.hp(), d.wp());
    let mut dx = Tensor::zeros([d.batch, d.reps, d.h, d.w]);
    let (gd, wd, xd) = (dy.data(), w.data(), dx.data_mut());
    for b in 0..d.batch {
        for o in 0..d.reps {
            let xp = &mut xd[(b * d.reps + o) * d.h * d.w..][..d.h * d.w];
            for y in 0..d.h {
                for x in 0..d.w {
                    let mut acc = T::zero();
                    for (l, c) in live.of_rep(o) {
                        let gp = &gd[(b * d.live + l) * hp * wp..][..hp * wp];
                        let wk = &wd[c * k * k..][..k * k];
                        for ky in 0..k {
                            for kx in 0..k {
                                acc += wk[ky * k + kx] * gp[(y + p - ky) * wp + x + p - kx];
                            }
                        }
                    }
                    xp[y * d.w + x] = acc;
                }
            }
        }
    }
    dx
}

/// `dw[c, 0, ky, kx] = sum_b sum_{y, x} x[b, o, y, x] * dY[b, l, y + p - ky, x + p - kx]` for
/// the live kernels; zero for the pruned ones (not computed).
pub fn weight_grad<T: Real>(
    d: &Dims,
    dy: &Tensor<T>,
    x: &Tensor<T>,
    live: &LiveChannels,
) -> Tensor<T> {
    let (k, p, hp, wp) = (d.k, d.pad(), d.hp(), d.wp());
    let mut dw = Tensor::zeros([d.reps * d.nk, 1, k, k]);
    let (gd, xd, wd) = (dy.data(), x.data(), dw.data_mut());
    for (l, &c) in live.channels.iter().enumerate() {
        let (c, o) = (c as usize, c as usize / d.nk);
        for ky in 0..k {
            for kx in 0..k {
                let mut acc = T::zero();
                for b in 0..d.batch {
                    let xp = &xd[(b * d.reps + o) * d.h * d.w..][..d.h * d.w];
                    let gp = &gd[(b * d.live + l) * hp * wp..][..hp * wp];
                    for y in 0..d.h {
                        for x in 0..d.w {
                            acc += xp[y * d.w + x] * gp[(y + p - ky) * wp + x + p - kx];
                        }
                    }
                }
                wd[(c * k + ky) * k + kx] = acc;
            }
        }
    }
    dw
}
