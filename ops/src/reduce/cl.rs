//! OpenCL sum/mean: a single work-group tree reduction (the op reduces a loss-sized tensor;
//! a multi-pass reduction would be more code for no measurable gain here).

use crate::device::{buf, launch, output, program, u32_arg};
use shiftgrad_tensor::opencl::Context;
use shiftgrad_tensor::{Real, Result, Shape, Tensor};

const SOURCE: &str = include_str!("reduce.cl");
const WG: usize = 128;

pub fn forward<T: Real>(ctx: &Context, x: &Tensor<T>, scale: f64) -> Result<Tensor<T>> {
    let p = program::<T>(ctx, "reduce", SOURCE)?;
    let out = output::<T>(ctx, Shape::scalar())?;
    let n = x.numel();
    launch(
        ctx,
        &p,
        "sum_all",
        [WG],
        Some([WG]),
        &[
            buf(x),
            buf(&out),
            u32_arg("sum", n)?,
            T::of_f64(scale).arg(),
        ],
    )?;
    Ok(out)
}

pub fn backward<T: Real>(
    ctx: &Context,
    g: &Tensor<T>,
    shape: &Shape,
    scale: f64,
) -> Result<Tensor<T>> {
    let p = program::<T>(ctx, "reduce", SOURCE)?;
    let dx = output::<T>(ctx, shape.clone())?;
    let n = shape.numel();
    launch(
        ctx,
        &p,
        "broadcast_scaled",
        [n],
        None,
        &[buf(g), buf(&dx), u32_arg("sum", n)?, T::of_f64(scale).arg()],
    )?;
    Ok(dx)
}
