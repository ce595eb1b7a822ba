//! The per-element update rules, written once, generic over `T`, and the host loops over them.
//!
//! The device kernels in optim_step.cl perform the same operations in the same order on the
//! same `T` coefficients (computed once on the host, in f64, by [`SgdCoeffs::new`] and
//! [`AdamWCoeffs::new`], defined in `mod.rs` because both backends read them), with
//! floating-point contraction off, so the two paths agree to the rounding of division and
//! square root.

use super::{AdamWCoeffs, SgdCoeffs};
use shiftgrad_tensor::{Real, Tensor};

/// One element of `torch.optim.SGD`:
/// `d = g + wd*w`; with a momentum buffer `b = d` on the first step, else `b = mu*b + d`, and
/// the step is `d + mu*b` (Nesterov) or `b`; without one the step is `d`; then `w -= lr*step`.
#[inline]
pub fn sgd_element<T: Real>(w: &mut T, g: T, buf: Option<&mut T>, first: bool, k: &SgdCoeffs<T>) {
    let d = g + k.weight_decay * *w;
    let step = match buf {
        None => d,
        Some(b) => {
            *b = if first { d } else { k.momentum * *b + d };
            if k.nesterov {
                d + k.momentum * *b
            } else {
                *b
            }
        }
    };
    *w -= k.lr * step;
}

/// One element of `torch.optim.AdamW`: `w *= 1 - lr*wd`; `m = b1*m + (1-b1)*g`;
/// `v = b2*v + (1-b2)*g^2`; `w -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)`.
#[inline]
pub fn adamw_element<T: Real>(w: &mut T, g: T, m: &mut T, v: &mut T, k: &AdamWCoeffs<T>) {
    *w *= k.decay;
    *m = k.beta1 * *m + k.one_minus_beta1 * g;
    *v = k.beta2 * *v + k.one_minus_beta2 * (g * g);
    *w -= k.lr * (*m / k.bias1) / ((*v / k.bias2).sqrt() + k.eps);
}

/// SGD over host tensors (shapes checked by the caller); `first` says `buf` is fresh.
pub fn sgd<T: Real>(
    w: &mut Tensor<T>,
    g: &Tensor<T>,
    buf: Option<&mut Tensor<T>>,
    first: bool,
    k: &SgdCoeffs<T>,
) {
    let (w, g) = (w.data_mut(), g.data());
    match buf {
        None => {
            for (w, &g) in w.iter_mut().zip(g) {
                sgd_element(w, g, None, first, k);
            }
        }
        Some(b) => {
            for ((w, &g), b) in w.iter_mut().zip(g).zip(b.data_mut()) {
                sgd_element(w, g, Some(b), first, k);
            }
        }
    }
}

/// AdamW over host tensors (shapes checked by the caller).
pub fn adamw<T: Real>(
    w: &mut Tensor<T>,
    g: &Tensor<T>,
    m: &mut Tensor<T>,
    v: &mut Tensor<T>,
    k: &AdamWCoeffs<T>,
) {
    let it = w
        .data_mut()
        .iter_mut()
        .zip(g.data())
        .zip(m.data_mut())
        .zip(v.data_mut());
    for (((w, &g), m), v) in it {
        adamw_element(w, g, m, v, k);
    }
}
