//! OpenCL relu: one work-item per element.

use crate::device::{buf, launch, output, program, u32_arg};
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
