//! OpenCL softmax cross-entropy (see cross_entropy.cl for the work-item mapping). The labels,
//! a host slice, are uploaded once per forward as an `int` buffer that the backward reuses;
//! the loss stays on the device as a scalar, and the backward reads its upstream gradient from
//! the device buffer, so nothing comes back to the host.

use crate::device::{buf, dev_err, launch, output, program, u32_arg};
use shiftgrad_tensor::opencl::{Buffer, Context};
use shiftgrad_tensor::{Error, Real, Result, Shape, Tensor};

use super::OP;

const SOURCE: &str = include_str!("cross_entropy.cl");
/// Work-group size of `ce_forward` (`WG` in the .cl file).
const WG: usize = 64;

/// What the backward needs from the forward: the labels on the device and each row's max
/// and tail (see mod.rs).
pub struct Saved<T: Real> {
    labels: Buffer<i32>,
    row_max: Tensor<T>,
    row_tail: Tensor<T>,
}

/// The loss (a device scalar) and what the backward needs. `labels` are already checked
/// to be `< k`.
pub fn forward<T: Real>(
    ctx: &Context,
    logits: &Tensor<T>,
    labels: &[usize],
    k: usize,
) -> Result<(Tensor<T>, Saved<T>)> {
    let p = program::<T>(ctx, "cross_entropy", SOURCE)?;
    let n = labels.len();
    u32_arg(OP, n * k)?;
    let as_i32: Vec<i32> = labels
        .iter()
        .map(|&l| {
            i32::try_from(l).map_err(|_| Error::arg(OP, format!("label {l} does not fit an int")))
        })
        .collect::<Result<_>>()?;
    let labels = ctx.upload(&as_i32).map_err(dev_err)?;
    let row_max = output::<T>(ctx, [n])?;
    let row_tail = output::<T>(ctx, [n])?;
    let loss = output::<T>(ctx, Shape::scalar())?;
    launch(
        ctx,
        &p,
        "ce_forward",
        [WG],
        Some([WG]),
        &[
            buf(logits),
            labels.arg(),
            buf(&row_max),
            buf(&row_tail),
            buf(&loss),
            u32_arg(OP, n)?,
            u32_arg(OP, k)?,
        ],
    )?;
    Ok((
        loss,
        Saved {
            labels,
            row_max,
            row_tail,
        },
    ))
}

/// `dlogits = (softmax - onehot) * g / N`, `g` the device scalar upstream gradient.
pub fn backward<T: Real>(
    ctx: &Context,
    logits: &Tensor<T>,
    saved: &Saved<T>,
    g: &Tensor<T>,
    k: usize,
) -> Result<Tensor<T>> {
    let p = program::<T>(ctx, "cross_entropy", SOURCE)?;
    let n = saved.row_max.numel();
    let dx = output::<T>(ctx, logits.shape().clone())?;
    launch(
        ctx,
        &p,
        "ce_backward",
        [k, n],
        None,
        &[
            buf(logits),
            saved.labels.arg(),
            buf(&saved.row_max),
            buf(&saved.row_tail),
            buf(g),
            buf(&dx),
            u32_arg(OP, n)?,
            u32_arg(OP, k)?,
        ],
    )?;
    Ok(dx)
}
