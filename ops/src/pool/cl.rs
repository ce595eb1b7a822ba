//! OpenCL global average pooling: one work-item per plane, forward and backward (see pool.cl).

use crate::device::{buf, launch, output, program, u32_arg};
use shiftgrad_tensor::opencl::Context;
use shiftgrad_tensor::{Real, Result, Shape, Tensor};

use super::OP;

const SOURCE: &str = include_str!("pool.cl");

/// `y (planes) = mean of each HW plane`; the caller shapes it (N, C).
pub fn forward<T: Real>(
    ctx: &Context,
    x: &Tensor<T>,
    y_shape: [usize; 2],
    hw: usize,
) -> Result<Tensor<T>> {
    let p = program::<T>(ctx, "pool", SOURCE)?;
    let planes = y_shape[0] * y_shape[1];
    u32_arg(OP, x.numel())?;
    let y = output::<T>(ctx, y_shape)?;
    launch(
        ctx,
        &p,
        "gap_forward",
        [planes],
        None,
        &[buf(x), buf(&y), u32_arg(OP, planes)?, u32_arg(OP, hw)?],
    )?;
    Ok(y)
}

/// `dx[plane, :] = dy[plane] / HW`.
pub fn backward<T: Real>(
    ctx: &Context,
    dy: &Tensor<T>,
    x_shape: &Shape,
    hw: usize,
) -> Result<Tensor<T>> {
    let p = program::<T>(ctx, "pool", SOURCE)?;
    u32_arg(OP, x_shape.numel())?;
    let dx = output::<T>(ctx, x_shape.clone())?;
    // The same scale as the CPU reference: 1 / HW rounded to T, then one multiply.
    let scale = T::one() / T::of_usize(hw);
    launch(
        ctx,
        &p,
        "gap_backward",
        [dy.numel()],
        None,
        &[
            buf(dy),
            buf(&dx),
            u32_arg(OP, dy.numel())?,
            u32_arg(OP, hw)?,
            scale.arg(),
        ],
    )?;
    Ok(dx)
}
