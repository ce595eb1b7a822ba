//! OpenCL launches of the optimiser updates (kernels in optim_step.cl).

use super::{AdamWCoeffs, SgdCoeffs};
use crate::device::{buf, launch, program};
use shiftgrad_tensor::opencl::{Arg, Context, KernelParams};
use shiftgrad_tensor::{Error, Real, Result, Tensor};

const SOURCE: &str = include_str!("optim_step.cl");

/// Mirrors `SgdParams` in optim_step.cl.
#[repr(C)]
#[derive(Clone, Copy)]
struct SgdParams<T> {
    lr: T,
    momentum: T,
    weight_decay: T,
    n: u32,
    has_buf: u32,
    first: u32,
    nesterov: u32,
}

// SAFETY: repr(C); three `T` (f32 or f64) then four u32: 28 bytes for f32, 40 for f64, no
// padding either way, no pointers; mirrored field for field by `SgdParams` in optim_step.cl.
unsafe impl<T: Real> KernelParams for SgdParams<T> {}

/// Mirrors `AdamWParams` in optim_step.cl.
#[repr(C)]
#[derive(Clone, Copy)]
struct AdamWParams<T> {
    lr: T,
    decay: T,
    beta1: T,
    one_minus_beta1: T,
    beta2: T,
    one_minus_beta2: T,
    bias1: T,
    bias2: T,
    eps: T,
    n: u32,
    pad: u32,
}

// SAFETY: repr(C); nine `T` then two u32: 44 bytes for f32, 80 for f64, no padding either way
// (`pad` fills the f64 tail), no pointers; mirrored field for field by `AdamWParams` in
// optim_step.cl.
unsafe impl<T: Real> KernelParams for AdamWParams<T> {}

fn count(op: &'static str, n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| {
        Error::arg(
            op,
            format!("size {n} is too large for a 32-bit kernel index"),
        )
    })
}

/// SGD in place on device tensors; `buf` is `None` without momentum, `first` when it is fresh.
pub fn sgd<T: Real>(
    ctx: &Context,
    w: &Tensor<T>,
    g: &Tensor<T>,
    buffer: Option<&Tensor<T>>,
    first: bool,
    k: &SgdCoeffs<T>,
) -> Result<()> {
    let p = program::<T>(ctx, "optim_step", SOURCE)?;
    let n = w.numel();
    let params = SgdParams {
        lr: k.lr,
        momentum: k.momentum,
        weight_decay: k.weight_decay,
        n: count("sgd_step", n)?,
        has_buf: buffer.is_some() as u32,
        first: first as u32,
        nesterov: k.nesterov as u32,
    };
    let b = buffer.map_or_else(|| buf(g), |b| buf(b));
    launch(
        ctx,
        &p,
        "sgd_step",
        [n],
        None,
        &[buf(w), buf(g), b, Arg::params(&params)],
    )
}

/// AdamW in place on device tensors.
pub fn adamw<T: Real>(
    ctx: &Context,
    w: &Tensor<T>,
    g: &Tensor<T>,
    m: &Tensor<T>,
    v: &Tensor<T>,
    k: &AdamWCoeffs<T>,
) -> Result<()> {
    let p = program::<T>(ctx, "optim_step", SOURCE)?;
    let n = w.numel();
    let params = AdamWParams {
        lr: k.lr,
        decay: k.decay,
        beta1: k.beta1,
        one_minus_beta1: k.one_minus_beta1,
        beta2: k.beta2,
        one_minus_beta2: k.one_minus_beta2,
        bias1: k.bias1,
        bias2: k.bias2,
        eps: k.eps,
        n: count("adamw_step", n)?,
        pad: 0,
    };
    launch(
        ctx,
        &p,
        "adamw_step",
        [n],
        None,
        &[buf(w), buf(g), buf(m), buf(v), Arg::params(&params)],
    )
}
