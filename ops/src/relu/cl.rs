//! OpenCL relu: one work-item per element.

use crate::device::{buf, launch, output, program, u32_arg};
use shiftgrad_tensor::opencl::Arg;
use shiftgrad_tensor::opencl::Context;
use shiftgrad_tensor::{Real, Result, Tensor};

const SOURCE: &str = include_str!("relu.cl");

pub fn forward<T: Real>(ctx: &Context, x: &Tensor<T>) -> Result<Tensor<T>> {
    let p = program::<T>(ctx, "relu", SOURCE)?;
    let y = output::<T>(ctx, x.shape().clone())?;
    let n = x.numel();
    launch(
        ctx,
        &p,
        "relu_forward",
        [n],
        None,
        &[buf(x), buf(&y), u32_arg("relu", n)?],
    )?;
    Ok(y)
}

pub fn backward<T: Real>(ctx: &Context, dy: &Tensor<T>, y: &Tensor<T>) -> Result<Tensor<T>> {
    let p = program::<T>(ctx, "relu", SOURCE)?;
    let dx = output::<T>(ctx, y.shape().clone())?;
    let n = y.numel();
    launch(
        ctx,
        &p,
        "relu_backward",
        [n],
        None,
        &[buf(dy), buf(y), buf(&dx), u32_arg("relu", n)?],
    )?;
    Ok(dx)
}

/// Inputs of one `add_relu` launch (`k` in relu.cl).
const MAX_INPUTS: usize = 8;

/// `relu(xs[0] + ... )` in one pass for up to [`MAX_INPUTS`] inputs; a longer sum is formed by
/// `add_n` first (its chained passes), then activated.
pub fn add_relu<T: Real>(ctx: &Context, xs: &[&Tensor<T>]) -> Result<Tensor<T>> {
    if xs.len() > MAX_INPUTS {
        let sum = crate::elementwise::cl::add_n(ctx, xs)?;
        return forward(ctx, &sum);
    }
    let p = program::<T>(ctx, "relu", SOURCE)?;
    let y = output::<T>(ctx, xs[0].shape().clone())?;
    let n = xs[0].numel();
    let mut args: Vec<Arg<'_>> = xs.iter().map(|x| buf(*x)).collect();
    // Unused slots repeat x0 (always a valid load); the kernel adds only the first k.
    let x0 = args[0];
    args.resize(MAX_INPUTS, x0);
    args.extend([buf(&y), Arg::U32(xs.len() as u32), u32_arg("add_relu", n)?]);
    launch(ctx, &p, "add_relu", [n], None, &args)?;
    Ok(y)
}
