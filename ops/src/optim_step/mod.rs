//! Optimiser updates as in-place tensor operations, on the host or on an OpenCL device:
//! [`sgd_step`] (`torch.optim.SGD`) and [`adamw_step`] (`torch.optim.AdamW`).
//!
//! These are not differentiable ops: they modify a parameter tensor in place from its
//! gradient and the optimiser's state tensors, which they create on the parameter's device
//! on the first step, so a model trained on a device keeps its parameters, gradients and
//! optimiser state there. `shiftgrad_nn::optim::Optimizer::step` calls them.
//!
//! The update rule of one element is written once, generic over `T`, in cpu.rs
//! (`sgd_element`, `adamw_element`); optim_step.cl repeats it operation for operation. The
//! hyper-parameters are turned into `T` coefficients once per step on the host, so both paths
//! compute in `T` from the same numbers. We rejected computing the update in f64 for f32
//! parameters (what nn's optimiser did before): the device would then need f64 support to
//! train f32 models, and the extra precision buys nothing visible after rounding back to f32.
//! Each kernel launch updates all elements of one tensor; fusing all parameters into one
//! launch would need their buffers packed together, which the tensor type does not do.

mod cl;
pub mod cpu;
#[cfg(test)]
mod tests;

use crate::cost::Work;
use crate::device::common_device;
use shiftgrad_tensor::{Device, Error, Real, Result, Tensor};

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

fn check_state<T: Real>(
    op: &'static str,
    what: &str,
    w: &Tensor<T>,
    s: &Option<Tensor<T>>,
) -> Result<()> {
    if let Some(s) = s {
        if s.shape() != w.shape() {
            return Err(Error::shape(
                op,
                format!(
                    "{what} has shape {}, the parameter has shape {}",
                    s.shape(),
                    w.shape()
                ),
            ));
        }
    }
    Ok(())
}

/// The device of `w`, `g` and the existing state tensors, after checking their shapes.
fn checked_device<T: Real>(
    op: &'static str,
    w: &Tensor<T>,
    g: &Tensor<T>,
    states: &[(&str, &Option<Tensor<T>>)],
) -> Result<Device> {
    if g.shape() != w.shape() {
        return Err(Error::shape(
            op,
            format!(
                "gradient has shape {}, the parameter has shape {}",
                g.shape(),
                w.shape()
            ),
        ));
    }
    let mut all = vec![w, g];
    for (what, s) in states {
        check_state(op, what, w, s)?;
        all.extend(s.as_ref());
    }
    common_device(op, &all)
}

/// One `torch.optim.SGD` step on `w` in place, from its gradient `g`:
/// `d = g + weight_decay*w`; with `momentum != 0`, `buf = d` on the first step (when `buf` is
/// `None`; it is then created on `w`'s device) and `buf = momentum*buf + d` after, and the
/// step is `d + momentum*buf` if `nesterov`, else `buf`; with `momentum == 0` there is no
/// buffer (`buf` is left alone) and the step is `d`. Finally `w -= lr*step`.
/// `g` and `buf` must have `w`'s shape and device.
pub fn sgd_step<T: Real>(
    w: &mut Tensor<T>,
    g: &Tensor<T>,
    buf: &mut Option<Tensor<T>>,
    lr: f64,
    momentum: f64,
    nesterov: bool,
    weight_decay: f64,
) -> Result<()> {
    const OP: &str = "sgd_step";
    let device = checked_device(OP, w, g, &[("momentum buffer", buf)])?;
    let k = SgdCoeffs::<T>::new(lr, momentum, nesterov, weight_decay);
    let first = momentum != 0.0 && buf.is_none();
    if first {
        // Its contents are never read: the first step writes `buf = d`.
        *buf = Some(Tensor::alloc_on(w.shape().clone(), &device)?);
    }
    let buffer = if momentum != 0.0 { buf.as_mut() } else { None };
    let work = sgd_work::<T>(w.numel(), buffer.is_some(), first, nesterov);
    match device {
        Device::Cpu => cpu::sgd(w, g, buffer, first, &k),
        Device::OpenCl(c) => cl::sgd(&c, w, g, buffer.as_deref(), first, &k)?,
    }
    work.record();
    Ok(())
}

/// The work of one SGD step on `n` elements, as `sgd_element` executes it: `d = g + wd*w`
/// (2 FLOPs), with a buffer `b = mu*b + d` (2, none on the first step, which copies) and the
/// Nesterov step `d + mu*b` (2), then `w -= lr*step` (2). Reads `w`, `g` (and `b` after the
/// first step); writes `w` (and `b`).
pub fn sgd_work<T: Real>(n: usize, buffer: bool, first: bool, nesterov: bool) -> Work {
    let per = 4 + if buffer {
        (if first { 0 } else { 2 }) + if nesterov { 2 } else { 0 }
    } else {
        0
    };
    let arrays = 3 + if buffer { 1 + usize::from(!first) } else { 0 };
    Work::new((per * n) as u64, (arrays * n * T::DTYPE.size()) as u64)
}

/// The work of one AdamW step on `n` elements, as `adamw_element` executes it: the decay (1
/// FLOP), the first moment (3), the second (4), the update (7: two bias corrections, a square
/// root, `+ eps`, a division, `lr *`, the subtraction). Reads `w, g, m, v`; writes `w, m, v`.
pub fn adamw_work<T: Real>(n: usize) -> Work {
    Work::new((15 * n) as u64, (7 * n * T::DTYPE.size()) as u64)
}

/// One `torch.optim.AdamW` step number `step` (counted from 1) on `w` in place, from its
/// gradient `g`: `w *= 1 - lr*weight_decay`; `m = beta1*m + (1-beta1)*g`;
/// `v = beta2*v + (1-beta2)*g^2`; `w -= lr * (m / (1-beta1^step)) / (sqrt(v / (1-beta2^step))
/// + eps)`. `m` and `v` start as zeros, created on `w`'s device when `None`. `g`, `m` and `v`
/// must have `w`'s shape and device.
#[allow(clippy::too_many_arguments)]
pub fn adamw_step<T: Real>(
    w: &mut Tensor<T>,
    g: &Tensor<T>,
    m: &mut Option<Tensor<T>>,
    v: &mut Option<Tensor<T>>,
    step: u64,
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
) -> Result<()> {
    const OP: &str = "adamw_step";
    if step == 0 {
        return Err(Error::arg(
            OP,
            "step counts from 1 (the bias corrections divide by 1 - beta^step)",
        ));
    }
    let device = checked_device(OP, w, g, &[("first moment", m), ("second moment", v)])?;
    let k = AdamWCoeffs::<T>::new(step, lr, beta1, beta2, eps, weight_decay);
    let m = match m {
        Some(m) => m,
        slot @ None => slot.insert(Tensor::zeros_on(w.shape().clone(), &device)?),
    };
    let v = match v {
        Some(v) => v,
        slot @ None => slot.insert(Tensor::zeros_on(w.shape().clone(), &device)?),
    };
    match device {
        Device::Cpu => {
            cpu::adamw(w, g, m, v, &k);
        }
        Device::OpenCl(c) => cl::adamw(&c, w, g, m, v, &k)?,
    }
    adamw_work::<T>(w.numel()).record();
    Ok(())
}
