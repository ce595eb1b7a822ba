//! OpenCL sparse bank convolution: the three gathers of `bank_conv.cl` (forward, data
//! gradient, weight gradient), one launch each. The live-channel arrays are uploaded once per
//! [`LiveChannels`] object and cached, like the shift-add's tables (the same cache).

use super::Dims;
use crate::device::{
    buf, check_i32_indices, gpu_shaped, launch, launch_shaped, output, round_up, vector_program,
    zeros,
};
use crate::shift_add::{device_live, LiveChannels};
use shiftgrad_tensor::opencl::{Arg, Context, KernelParams, Program};
use shiftgrad_tensor::{Real, Result, Tensor};
use std::rc::Rc;

const SOURCE: &str = concat!(
    include_str!("../segments.cl"),
    include_str!("../bank_rows.cl"),
    include_str!("bank_conv.cl")
);
const OP: &str = "bank_conv";

/// Work-items per work-group (fixed, so that PoCL compiles each kernel once).
const GROUP: usize = 16;

/// Work-items per work-group of the GPU-shaped element-per-work-item kernels.
const ITEMS_GROUP: usize = 64;

/// Work-items per work-group of the GPU-shaped weight gradient (`WG_DW` in the source).
const WEIGHT_GROUP: usize = 64;

/// Output rows per work-item of the forward and the data gradient (`RB` in the source): each
/// loaded row segment feeds up to k of them.
const ROWS: usize = 4;

/// Sizes of one application, mirrored by `BankParams` in `bank_conv.cl`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct Params {
    batch: i32,
    reps: i32,
    nk: i32,
    k: i32,
    h: i32,
    w: i32,
    hp: i32,
    wp: i32,
    live: i32,
}

// SAFETY: #[repr(C)], nine i32 fields (no padding, no pointers), mirrored field for field by
// `BankParams` in bank_conv.cl.
unsafe impl KernelParams for Params {}

impl Params {
    /// The sizes as kernel ints; every tensor's element count must fit in an `i32`.
    fn new(d: &Dims) -> Result<Params> {
        check_i32_indices(
            OP,
            &[
                d.batch as u128 * d.live as u128 * d.hp() as u128 * d.wp() as u128,
                d.batch as u128 * d.reps as u128 * d.h as u128 * d.w as u128,
                d.reps as u128 * d.nk as u128 * d.k as u128 * d.k as u128,
            ],
        )?;
        let i = |n: usize| n as i32;
        Ok(Params {
            batch: i(d.batch),
            reps: i(d.reps),
            nk: i(d.nk),
            k: i(d.k),
            h: i(d.h),
            w: i(d.w),
            hp: i(d.hp()),
            wp: i(d.wp()),
            live: i(d.live),
        })
    }
}

/// The program for `T` and kernel size `k` (`K` is a compile-time constant of the kernels;
/// the row segments of `segments.cl` come first).
fn bank_program<T: Real>(ctx: &Context, k: usize) -> Result<Program> {
    vector_program::<T>(
        ctx,
        OP,
        SOURCE,
        &[("K", k.to_string()), ("RB", ROWS.to_string())],
    )
}

/// `Y` `(B, L, Hp, Wp)`.
pub fn forward<T: Real>(
    ctx: &Context,
    d: &Dims,
    x: &Tensor<T>,
    w: &Tensor<T>,
    live: &Rc<LiveChannels>,
) -> Result<Tensor<T>> {
    let y = output::<T>(ctx, [d.batch, d.live, d.hp(), d.wp()])?;
    let rows = d.batch * d.live * d.hp().div_ceil(ROWS);
    if rows == 0 {
        return Ok(y);
    }
    let params = Params::new(d)?;
    let prog = bank_program::<T>(ctx, d.k)?;
    let dl = device_live(ctx, &prog, live)?;
    // RB rows per work-item (CPU devices), or an element per work-item (GPU-shaped).
    let elements = d.batch * d.live * d.hp() * d.wp();
    let args = [
        buf(x),
        buf(w),
        dl.channels.arg(),
        buf(&y),
        Arg::params(&params),
    ];
    launch_shaped(
        ctx,
        &prog,
        "bank_conv_forward",
        (rows, GROUP),
        (elements, ITEMS_GROUP),
        &args,
    )?;
    Ok(y)
}

/// `dx` `(B, R, H, W)`; zero where a rep has no live kernel.
pub fn data_grad<T: Real>(
    ctx: &Context,
    d: &Dims,
    dy: &Tensor<T>,
    w: &Tensor<T>,
    live: &Rc<LiveChannels>,
) -> Result<Tensor<T>> {
    let shape = [d.batch, d.reps, d.h, d.w];
    let rows = d.batch * d.reps * d.h.div_ceil(ROWS);
    if d.live == 0 || rows == 0 {
        return zeros::<T>(ctx, shape);
    }
    let dx = output::<T>(ctx, shape)?;
    let params = Params::new(d)?;
    let prog = bank_program::<T>(ctx, d.k)?;
    let dl = device_live(ctx, &prog, live)?;
    let elements = d.batch * d.reps * d.h * d.w;
    let args = [
        buf(dy),
        buf(w),
        dl.channels.arg(),
        dl.rep_start.arg(),
        buf(&dx),
        Arg::params(&params),
    ];
    launch_shaped(
        ctx,
        &prog,
        "bank_conv_data_grad",
        (rows, GROUP),
        (elements, ITEMS_GROUP),
        &args,
    )?;
    Ok(dx)
}

/// `dw` `(R*nk, 1, k, k)`: the live kernels' gradients, zeros for the pruned ones.
pub fn weight_grad<T: Real>(
    ctx: &Context,
    d: &Dims,
    dy: &Tensor<T>,
    x: &Tensor<T>,
    live: &Rc<LiveChannels>,
) -> Result<Tensor<T>> {
    let dw = zeros::<T>(ctx, [d.reps * d.nk, 1, d.k, d.k])?;
    let items = d.live * d.k;
    if items == 0 || d.batch == 0 {
        return Ok(dw);
    }
    let params = Params::new(d)?;
    let prog = bank_program::<T>(ctx, d.k)?;
    let dl = device_live(ctx, &prog, live)?;
    if gpu_shaped(ctx) {
        // A work-group of WG_DW per (kernel, ky), reducing in local memory.
        launch(
            ctx,
            &prog,
            "bank_conv_weight_grad_items",
            [items * WEIGHT_GROUP],
            Some([WEIGHT_GROUP]),
            &[
                buf(dy),
                buf(x),
                dl.channels.arg(),
                buf(&dw),
                Arg::Local {
                    bytes: d.k * WEIGHT_GROUP * std::mem::size_of::<T>(),
                },
                Arg::params(&params),
            ],
        )?;
        return Ok(dw);
    }
    launch(
        ctx,
        &prog,
        "bank_conv_weight_grad",
        [round_up(items, GROUP)],
        Some([GROUP]),
        &[
            buf(dy),
            buf(x),
            dl.channels.arg(),
            buf(&dw),
            Arg::params(&params),
        ],
    )?;
    Ok(dw)
}
