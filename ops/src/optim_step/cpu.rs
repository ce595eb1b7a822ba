//! The per-element update rules, written once, generic over `T`, and the host loops over them.
//!
//! The device kernels in optim_step.cl perform the same operations in the same order on the
//! same `T` coefficients (computed once on the host, in f64, by [`SgdCoeffs::new`] and
//! [`AdamWCoeffs::new`]), with floating-point contraction off, so the two paths agree to the
//! rounding of division and square root.

use shiftgrad_tensor::{Real, Tensor};

/// The hyper-parameters of one SGD step, as `T`.
#[derive(Clone, Copy, Debug)]
pub struct SgdCoeffs<T> {
    /// Learning rate of this step.
    pub lr: T,
    /// Momentum factor `mu` (0: no momentum buffer is kept).
    pub momentum: T,
    /// L2 weight decay `wd`, added to the gradient as `wd * w`.
    pub weight_decay: T,
    /// Nesterov momentum: step `d + mu*b` instead of `b`.
    pub nesterov: bool,
}

impl<T: Real> SgdCoeffs<T> {
    /// The coefficients from the f64 hyper-parameters, each rounded once to `T`.
    pub fn new(lr: f64, momentum: f64, nesterov: bool, weight_decay: f64) -> Self {
        SgdCoeffs {
            lr: T::of_f64(lr),
            momentum: T::of_f64(momentum),
            weight_decay: T::of_f64(weight_decay),
            nesterov,
        }
    }
}

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

/// The hyper-parameters of AdamW step `t`, as `T`: the decoupled decay factor `1 - lr*wd`,
/// the moment rates and their complements, and the bias corrections `1 - beta^t`.
#[derive(Clone, Copy, Debug)]
pub struct AdamWCoeffs<T> {
    /// Learning rate of this step.
    pub lr: T,
    /// Decoupled weight-decay factor `1 - lr*wd`, applied to the weight before the update.
    pub decay: T,
    /// First-moment rate `beta1`.
    pub beta1: T,
    /// `1 - beta1`, rounded once (not recomputed per element).
    pub one_minus_beta1: T,
    /// Second-moment rate `beta2`.
    pub beta2: T,
    /// `1 - beta2`, rounded once.
    pub one_minus_beta2: T,
    /// First-moment bias correction `1 - beta1^t`.
    pub bias1: T,
    /// Second-moment bias correction `1 - beta2^t`.
    pub bias2: T,
    /// Denominator guard `eps`, added to `sqrt(v_hat)`.
    pub eps: T,
}

impl<T: Real> AdamWCoeffs<T> {
    /// The coefficients of step `step` (counted from 1) from the f64 hyper-parameters.
    pub fn new(step: u64, lr: f64, beta1: f64, beta2: f64, eps: f64, weight_decay: f64) -> Self {
        let t = step as f64;
        AdamWCoeffs {
            lr: T::of_f64(lr),
            decay: T::of_f64(1.0 - lr * weight_decay),
            beta1: T::of_f64(beta1),
            one_minus_beta1: T::of_f64(1.0 - beta1),
            beta2: T::of_f64(beta2),
            one_minus_beta2: T::of_f64(1.0 - beta2),
            bias1: T::of_f64(1.0 - beta1.powf(t)),
            bias2: T::of_f64(1.0 - beta2.powf(t)),
            eps: T::of_f64(eps),
        }
    }
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
