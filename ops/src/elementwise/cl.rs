//! OpenCL add, add_n and mul (the work-item mappings, and the measurements behind them, are in
//! elementwise.cl).
//!
//! A sum of two tensors uses the two-input kernel. add_n passes up to [`MAX_INPUTS`] input buffers to one kernel. A longer sum is chained in
//! a fixed order: the first pass writes `x_0 + ... + x_7` into the output, and each further
//! pass adds the next (up to) seven inputs to it in place, `y = y + x_8 + ... + x_14`, so the
//! additions happen in the same left-to-right order as the CPU reference. We rejected a
//! kernel taking an array of buffer pointers: OpenCL 1.2 has no pointers to buffers inside a
//! buffer, and copying the inputs into one staging buffer would cost a full extra pass.

use crate::device::{buf, launch, output, program, u32_arg};
use shiftgrad_tensor::opencl::{Arg, Context};
use shiftgrad_tensor::{Real, Result, Tensor};

const SOURCE: &str = include_str!("elementwise.cl");

/// Input buffers of one add_n launch (mirrors MAX_INPUTS in elementwise.cl).
pub const MAX_INPUTS: usize = 8;

/// `xs[0] + ... + xs[k-1]` (shapes already checked, `k >= 1`, all on `ctx`).
pub fn add_n<T: Real>(ctx: &Context, xs: &[&Tensor<T>]) -> Result<Tensor<T>> {
    add_n_act(ctx, xs, false)
}

/// The sum of `xs`, activated by relu where `relu` (in the last pass: `ops::add_relu`).
pub fn add_n_act<T: Real>(ctx: &Context, xs: &[&Tensor<T>], relu: bool) -> Result<Tensor<T>> {
    let p = program::<T>(ctx, "elementwise", SOURCE)?;
    let y = output::<T>(ctx, xs[0].shape().clone())?;
    let n = xs[0].numel();
    let n_arg = u32_arg("add", n)?;
    if let ([a, b], false) = (xs, relu) {
        launch(
            ctx,
            &p,
            "add2",
            [n],
            None,
            &[buf(*a), buf(*b), buf(&y), n_arg],
        )?;
        return Ok(y);
    }
    // First pass: up to MAX_INPUTS inputs; then MAX_INPUTS - 1 more per pass, with y as x0.
    let mut rest = xs;
    let mut first = true;
    while !rest.is_empty() {
        let mut args: Vec<Arg<'_>> = Vec::with_capacity(MAX_INPUTS + 4);
        let take = if first {
            MAX_INPUTS.min(rest.len())
        } else {
            args.push(buf(&y));
            (MAX_INPUTS - 1).min(rest.len())
        };
        args.extend(rest[..take].iter().map(|x| buf(*x)));
        let k = args.len();
        // Unused slots repeat x0 (always a valid load); the kernel adds only the first k.
        let x0 = args[0];
        args.resize(MAX_INPUTS, x0);
        rest = &rest[take..];
        let last = rest.is_empty();
        args.extend([
            buf(&y),
            Arg::U32(k as u32),
            n_arg,
            Arg::U32((relu && last) as u32),
        ]);
        launch(ctx, &p, "add_n", [n], None, &args)?;
        first = false;
    }
    Ok(y)
}

/// `a * b` element-wise (same shape, on `ctx`).
pub fn mul<T: Real>(ctx: &Context, a: &Tensor<T>, b: &Tensor<T>) -> Result<Tensor<T>> {
    let p = program::<T>(ctx, "elementwise", SOURCE)?;
    let y = output::<T>(ctx, a.shape().clone())?;
    let n = a.numel();
    launch(
        ctx,
        &p,
        "mul",
        [n],
        None,
        &[buf(a), buf(b), buf(&y), u32_arg("mul", n)?],
    )?;
    Ok(y)
}

/// Both gradients of `a * b` in one pass: `(dy * b, dy * a)`.
pub fn mul_backward<T: Real>(
    ctx: &Context,
    dy: &Tensor<T>,
    a: &Tensor<T>,
    b: &Tensor<T>,
) -> Result<(Tensor<T>, Tensor<T>)> {
    let p = program::<T>(ctx, "elementwise", SOURCE)?;
    let da = output::<T>(ctx, a.shape().clone())?;
    let db = output::<T>(ctx, b.shape().clone())?;
    let n = a.numel();
    launch(
        ctx,
        &p,
        "mul_backward",
        [n],
        None,
        &[
            buf(dy),
            buf(a),
            buf(b),
            buf(&da),
            buf(&db),
            u32_arg("mul", n)?,
        ],
    )?;
    Ok((da, db))
}
