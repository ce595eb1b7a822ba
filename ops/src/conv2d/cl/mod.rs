//! OpenCL conv2d: the launches of the kernels in `conv2d*.cl` (the work-item mappings are
//! documented there, above each kernel). PoCL, the CPU OpenCL this engine trains on, runs a
//! work-group as a loop over its work-items, so a kernel is fast when one work-item does
//! enough vector work in short, branch-free inner loops. Hence:
//!
//! * forward: a work-item computes `CB` output channels of one group times `RB` output rows,
//!   one segment of 8 columns (a `real8`) after the other; the loops run over input rows,
//!   taps, then input channels innermost, so each loaded segment feeds `CB x RB`
//!   multiply-adds and the edge handling is decided once per tap for all channels;
//! * data gradient: the same for `CB` input channels times `RB` input rows, a gather over the
//!   outputs that read them, one stride phase of columns at a time so that every tap reads
//!   consecutive dy columns;
//! * 1x1 convolutions with stride 1, no padding and one group (the pointwise convolutions of
//!   the network) take a matmul-like kernel for both instead: `CB` channels times 16
//!   positions of the flattened plane, the channel sum innermost;
//! * weight gradient: `CB` output channels times `TB` (input channel, kernel column) pairs of
//!   one kernel row, a fixed-order sum over (N, Ho, Wo) in vector accumulators; the samples
//!   are split into chunks small enough to stay in the cache while the work-items of a chunk
//!   run (and numerous enough to occupy the device), whose partial sums a second kernel adds
//!   in chunk order;
//! * the weight gradient of a 1x1 convolution (stride 1, no padding, one group) is a product
//!   of dy and x along the positions instead: `CB` output channels times `TB` input channels,
//!   both read as plain segments of the flattened plane (`conv2d_pointwise_wgrad`); on planes
//!   of fewer than [`FLAT_BELOW_POSITIONS`] positions it runs on channel-major copies of both
//!   (`conv2d_swap_axes`), whose rows span every sample;
//! * the weight gradient of a convolution with one group and a long channel sum (the 3x3
//!   stride-2 down-sampling ones) is the same product with x unfolded (`conv2d_im2col`,
//!   channel-major) and dy copied channel-major: 8.76 and 6.66 ms against the direct kernel's
//!   14.95 and 18.73 ms for the network's two (`conv2d_kernel_times` in
//!   tests/parity_conv2d.rs, best of 5, one run). [`DIRECT_ENV`] (or
//!   [`with_direct`]) forces the direct kernel, the twin the parity suite compares against;
//! * depthwise convolutions with stride 1 and kernels up to [`DEPTHWISE_MAX_KERNEL`] a side
//!   (the small variant's 3x3): one work-item per plane, the taps unrolled with the plane's
//!   weights in registers, one segment load and one multiply-add per tap and output segment
//!   (the row-blocked kernel multiplies zero weights where its rows overlap); the data
//!   gradient is the same kernel over dy with the kernel flipped, and the weight gradient
//!   holds the KH x KW taps' accumulators per (channel, sample chunk);
//! * bias gradient: per (channel, chunk) partial sums, then the same second kernel.
//!
//! `CB`, `RB` and `TB` are compile-time constants (the accumulators must be registers, which a
//! private array indexed by a run-time bound never is). `CB` is the largest divisor of the
//! channels per group up to 16 (forward, data gradient: 16 vector accumulators, each loaded
//! segment feeding 16 multiply-adds; with 8, the network's down-sampling convolutions took
//! 4.6 and 5.6 ms forward and 4.1-4.6 and 5.1-5.4 ms data gradient, with 16 3.5-3.9 and 3.8-3.9
//! ms, 4.1-4.4 and 4.1-4.2 ms: `conv2d_kernel_times`, 2-3 runs each) or 5 (weight gradient,
//! which holds `CB x TB` accumulators), so a block never straddles two groups and needs no
//! tail; `RB` is 4, 2 or 1 as `CB` grows (few channels per loaded segment: several rows share
//! it instead); `TB` is the largest that keeps `CB x TB` accumulators and `CB + TB` loaded
//! segments in about 26 vector registers, evened out over the pairs. The stride (1 or 2) and whether the channel
//! sum has a single term (depthwise) are build-time constants too. Programs are cached per
//! set of constants; a network uses a handful.
//!
//! The forward and data-gradient kernels read the weight permuted so that the `CB` weights
//! of a tap are adjacent, with rows of zeros above and below each kernel: an input row then
//! meets zero weights in the output rows of a work-item it does not reach, which costs less
//! than a branch per row and tap (a small kernel per call permutes the weight).
//!
//! On a GPU (or with `SHIFTGRAD_GPU_KERNELS` set, `device::gpu_shaped`) every convolution runs
//! the GPU-shaped kernels of `conv2d_items.cl` instead (`conv2d_*_items`): an element per
//! work-item for the forward and the data gradient, consecutive work-items on consecutive
//! columns, and a work-group tree per weight element for the weight gradient. They are
//! plain gathers with no blocking for any one device; the parity suite runs both forms.
//! (They were not timed on a GPU: none was at hand.)
//!
//! We rejected a single kernel with run-time blocking (its accumulators spill to memory),
//! a padded copy of the input (masked loads cost less than the extra pass and memory), atomics
//! for the weight gradient (not deterministic), and `__local` tiles: on a CPU device local
//! memory is ordinary cached memory, the inputs a work-item re-reads are already in L1/L2, and
//! the barriers a tile needs split PoCL's work-item loops and save the live vectors to memory
//! at every barrier.

use super::Geometry;
use crate::device::{buf, gpu_shaped, launch, output, round_up, vector_program};
use shiftgrad_tensor::opencl::{Arg, Context, KernelParams, Program};
use shiftgrad_tensor::{Error, Real, Result, Tensor};

mod depthwise;
mod products;
mod weight_grad;
use depthwise::*;
use products::*;
use weight_grad::in_chunks;
pub use weight_grad::{bias_grad, weight_grad};

/// The program source: conv2d.cl's definitions and direct kernels, then the other kernel
/// families, each in its own file and behind its own build define.
const SOURCE: &str = concat!(
    include_str!("../conv2d.cl"),
    include_str!("../conv2d_weight_grad.cl"),
    include_str!("../conv2d_products.cl"),
    include_str!("../conv2d_depthwise.cl"),
    include_str!("../conv2d_items.cl"),
);
const OP: &str = "conv2d";
/// Columns per work-item (`VW` in conv2d.cl).
const VW: usize = 8;
/// Below this many work-items the weight and bias gradients split the samples into chunks.
const MIN_ITEMS: usize = 64;
/// Bytes of input (x and dy) per chunk of samples of the weight gradient: about half of a
/// core's L2 cache.
const CHUNK_BYTES: usize = 512 << 10;
/// Work-group size of the forward and data-gradient kernels. Fixed, because PoCL compiles a
/// kernel once per work-group size: letting the driver choose compiles a new variant for
/// almost every new shape.
const GROUP: usize = 32;
/// Work-group size of the reductions (fewer, longer work-items: small groups balance the
/// cores).
const REDUCE_GROUP: usize = 4;

/// Mirrors `ConvParams` in conv2d.cl field for field.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct ClParams {
    n: i32,
    c_in: i32,
    h: i32,
    w: i32,
    c_out: i32,
    ho: i32,
    wo: i32,
    kh: i32,
    kw: i32,
    sh: i32,
    sw: i32,
    top: i32,
    left: i32,
    cig: i32,
    cog: i32,
    src_len: i32,
    blocks: i32,
    chunk: i32,
    chunks: i32,
}

// SAFETY: #[repr(C)], nineteen i32 fields (no padding, no pointers), mirrored by ConvParams.
unsafe impl KernelParams for ClParams {}

/// Set (to anything) to run every convolution on the row-blocked direct kernels
/// (`conv2d_forward`, `conv2d_data_grad`, `conv2d_weight_grad`; the pointwise forward and data
/// gradient stay): no weight gradient as a pointwise product (see `unfolds`), no
/// plane-per-work-item depthwise kernel. The twin the parity tests compare against, and a
/// switch for measuring both.
pub const DIRECT_ENV: &str = "SHIFTGRAD_CONV_DIRECT";

thread_local! {
    static DIRECT: std::cell::Cell<Option<bool>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with the direct kernels forced on (`true`) or the usual choice (`false`) on this
/// thread, whatever [`DIRECT_ENV`] says (tests compare the two forms in one process this way).
pub fn with_direct<R>(on: bool, f: impl FnOnce() -> R) -> R {
    let before = DIRECT.with(|d| d.replace(Some(on)));
    let r = f();
    DIRECT.with(|d| d.set(before));
    r
}

/// Work-items per work-group of the GPU-shaped kernels (`WG_DW` in conv2d_items.cl for the weight
/// gradient).
const ITEMS_GROUP: usize = 64;

/// Runs the GPU-shaped kernel `kernel` (`conv2d_*_items`) over `items` work-items, or
/// work-groups of [`ITEMS_GROUP`] for the weight gradient (`per_group`).
fn launch_items<T: Real>(
    ctx: &Context,
    kernel: &str,
    items: usize,
    per_group: bool,
    args: &[Arg<'_>],
) -> Result<()> {
    let p = vector_program::<T>(ctx, OP, SOURCE, &[("CONV_ITEMS", String::new())])?;
    let global = if per_group {
        items * ITEMS_GROUP
    } else {
        round_up(items, ITEMS_GROUP)
    };
    int(global)?;
    launch(ctx, &p, kernel, [global], Some([ITEMS_GROUP]), args)
}

/// Whether the direct kernels are forced ([`with_direct`], else [`DIRECT_ENV`]).
fn direct() -> bool {
    DIRECT
        .with(|d| d.get())
        .unwrap_or_else(|| std::env::var_os(DIRECT_ENV).is_some())
}

/// Whether `g` is a 1x1 convolution with stride 1 and no padding.
fn is_pointwise(g: &Geometry) -> bool {
    g.kh == 1 && g.kw == 1 && g.p.stride == (1, 1) && g.p.pad == [0; 4]
}

/// The geometry the kernels see: a 1x1 convolution with stride 1 and no padding reads each
/// plane as one row.
fn kernel_geometry(g: &Geometry) -> Geometry {
    if is_pointwise(g) {
        Geometry {
            h: 1,
            w: g.h * g.w,
            ho: 1,
            wo: g.ho * g.wo,
            ..*g
        }
    } else {
        *g
    }
}

/// An `i32` kernel argument, or the error saying the tensors are too large.
fn int(v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| {
        Error::arg(
            OP,
            format!("size {v} is too large for the OpenCL kernels' 32-bit indices"),
        )
    })
}

impl ClParams {
    /// The parameters of `g` (as [`kernel_geometry`] sees it), checking that every index the
    /// kernels form fits in an `i32`: flat indices reach past a tensor's end by at most a few
    /// segments of `VW * stride` columns and a kernel's width.
    fn new(g: &Geometry) -> Result<Self> {
        let g = kernel_geometry(g);
        let largest = [g.x_numel(), g.y_numel(), g.w_numel()]
            .into_iter()
            .max()
            .unwrap_or(0);
        let sizes = [g.h, g.w, g.ho, g.wo, g.kh, g.kw, g.p.stride.0, g.p.stride.1];
        let reach = sizes.iter().sum::<usize>() * 4 * VW + g.p.pad.iter().sum::<usize>();
        int(largest.saturating_add(reach))?;
        Ok(ClParams {
            n: int(g.n)?,
            c_in: int(g.c_in)?,
            h: int(g.h)?,
            w: int(g.w)?,
            c_out: int(g.c_out)?,
            ho: int(g.ho)?,
            wo: int(g.wo)?,
            kh: int(g.kh)?,
            kw: int(g.kw)?,
            sh: int(g.p.stride.0)?,
            sw: int(g.p.stride.1)?,
            top: int(g.p.pad[0])?,
            left: int(g.p.pad[2])?,
            cig: int(g.cig())?,
            cog: int(g.cog())?,
            ..Default::default()
        })
    }
}

/// The largest divisor of `n` that is at most `max` (1 for `n == 0`).
fn block(n: usize, max: usize) -> usize {
    (1..=max.min(n.max(1)))
        .rev()
        .find(|&d| n.is_multiple_of(d))
        .unwrap_or(1)
}

/// `n` items in near-equal blocks of at most `max`: the block size.
fn even_block(n: usize, max: usize) -> usize {
    let n = n.max(1);
    n.div_ceil(n.div_ceil(max))
}

/// Rows per work-item (`RB`) of the forward and data-gradient kernels for `cb` channels: with
/// few channels sharing a loaded segment, several rows share it instead.
fn rows_per_item(cb: usize) -> usize {
    match cb {
        1..=2 => 4,
        3..=5 => 2,
        _ => 1,
    }
}

/// The program holding the kernels of `part` (a `CONV_*` define) for `T`, blocked by `cb`
/// channels (and [`rows_per_item`] rows) and `tb` vectors, for column stride `sw`, with a
/// single-term channel sum where `one_channel`.
fn program<T: Real>(
    ctx: &Context,
    part: &str,
    cb: usize,
    tb: usize,
    sw: usize,
    one_channel: bool,
) -> Result<Program> {
    vector_program::<T>(
        ctx,
        OP,
        SOURCE,
        &[
            (part, String::new()),
            ("CB", cb.to_string()),
            ("RB", rows_per_item(cb).to_string()),
            ("TB", tb.to_string()),
            ("SW", if sw <= 2 { sw } else { 0 }.to_string()),
            ("ONE_CHANNEL", (one_channel as u8).to_string()),
        ],
    )
}

/// Launches `kernel` over `items` work-items in groups of `group` (the kernels skip the
/// work-items past `items`).
fn launch_1d(
    ctx: &Context,
    program: &Program,
    kernel: &str,
    items: usize,
    group: usize,
    args: &[Arg<'_>],
) -> Result<()> {
    let global = round_up(items, group);
    int(global)?;
    launch(ctx, program, kernel, [global], Some([group]), args)
}

/// The number of sample chunks for a reduction with `items` work-items per chunk, each
/// reading `sample_bytes` per sample, and the samples per chunk: chunks small enough that the
/// work-items of one chunk (which run one after the other) find its samples in the cache,
/// and enough of them for [`MIN_ITEMS`] work-items; at most one per sample.
fn chunking(n: usize, items: usize, sample_bytes: usize) -> (usize, usize) {
    let by_cache = n.div_ceil((CHUNK_BYTES / sample_bytes.max(1)).max(1));
    let by_items = MIN_ITEMS.div_ceil(items.max(1));
    let chunks = by_cache.max(by_items).clamp(1, n.max(1));
    let chunk = n.div_ceil(chunks).max(1);
    // Re-derive so that no chunk is empty.
    (n.div_ceil(chunk).max(1), chunk)
}

/// The weight permuted for the forward (`to_data == false`: `(G, C_in/G, KHP, KW, C_out/G)`)
/// or the data gradient (`(G, C_out/G, KHP, KW, C_in/G)`), with `pad_rows` rows of zeros above
/// and below each kernel (`KHP = KH + 2*pad_rows`).
fn permuted_weight<T: Real>(
    ctx: &Context,
    g: &Geometry,
    w: &Tensor<T>,
    to_data: bool,
    pad_rows: usize,
) -> Result<Tensor<T>> {
    let len = g.c_out * g.cig() * (g.kh + 2 * pad_rows) * g.kw;
    let out = output::<T>(ctx, [len])?;
    let params = ClParams::new(g)?;
    let p = program::<T>(ctx, "CONV_UTIL", 1, 1, 0, false)?;
    launch_1d(
        ctx,
        &p,
        "conv2d_permute_weight",
        len,
        GROUP,
        &[
            buf(w),
            buf(&out),
            Arg::params(&params),
            Arg::I32(to_data as i32),
            Arg::I32(int(pad_rows)?),
        ],
    )?;
    Ok(out)
}

/// `y = conv(x, w) + b`.
pub fn forward<T: Real>(
    ctx: &Context,
    g: &Geometry,
    x: &Tensor<T>,
    w: &Tensor<T>,
    b: Option<&Tensor<T>>,
) -> Result<Tensor<T>> {
    let y = output::<T>(ctx, g.y_shape())?;
    if g.y_numel() == 0 {
        return Ok(y);
    }
    let params = ClParams::new(g)?;
    if gpu_shaped(ctx) {
        let args = [
            buf(x),
            buf(w),
            buf(b.unwrap_or(w)),
            Arg::I32(b.is_some() as i32),
            buf(&y),
            Arg::params(&params),
        ];
        launch_items::<T>(ctx, "conv2d_forward_items", g.y_numel(), false, &args)?;
        return Ok(y);
    }
    if is_pointwise(g) && g.p.groups == 1 {
        // The transposed weight, (C_in, C_out).
        let wt = permuted_weight(ctx, g, w, false, 0)?;
        let dims = (g.n, g.c_in, g.c_out, g.h * g.w);
        pointwise(ctx, x, &wt, b, &y, dims)?;
        return Ok(y);
    }
    if small_depthwise(g) {
        let (top, left) = (g.p.pad[0] as i64, g.p.pad[2] as i64);
        let sizes = ((g.h, g.w), (g.ho, g.wo), top, left);
        depthwise(ctx, g, x, w, b, &y, sizes, false)?;
        return Ok(y);
    }
    let kg = kernel_geometry(g);
    let cb = block(g.cog(), 16);
    let wf = permuted_weight(ctx, g, w, false, (rows_per_item(cb) - 1) * g.p.stride.0)?;
    let params = ClParams {
        src_len: int(g.x_numel())?,
        ..params
    };
    let p = program::<T>(ctx, "CONV_FORWARD", cb, 1, g.p.stride.1, g.cig() == 1)?;
    launch_1d(
        ctx,
        &p,
        "conv2d_forward",
        kg.ho.div_ceil(rows_per_item(cb)) * g.n * (g.c_out / cb),
        GROUP,
        &[
            buf(x),
            buf(&wf),
            buf(b.unwrap_or(w)),
            Arg::I32(b.is_some() as i32),
            buf(&y),
            Arg::params(&params),
        ],
    )?;
    Ok(y)
}

/// `dx`: the gather over the outputs that read each input element.
pub fn data_grad<T: Real>(
    ctx: &Context,
    g: &Geometry,
    dy: &Tensor<T>,
    w: &Tensor<T>,
) -> Result<Tensor<T>> {
    let dx = output::<T>(ctx, [g.n, g.c_in, g.h, g.w])?;
    if g.x_numel() == 0 {
        return Ok(dx);
    }
    let params = ClParams::new(g)?;
    if gpu_shaped(ctx) {
        let args = [buf(dy), buf(w), buf(&dx), Arg::params(&params)];
        launch_items::<T>(ctx, "conv2d_data_grad_items", g.x_numel(), false, &args)?;
        return Ok(dx);
    }
    if is_pointwise(g) && g.p.groups == 1 {
        // dx[n, ci, q] = sum_co w[co, ci] * dy[n, co, q]: w is already (C_out, C_in).
        let dims = (g.n, g.c_out, g.c_in, g.h * g.w);
        pointwise(ctx, dy, w, None, &dx, dims)?;
        return Ok(dx);
    }
    if small_depthwise(g) {
        // The forward's sum over dy with the kernel flipped and the window mirrored.
        let top = (g.kh - 1) as i64 - g.p.pad[0] as i64;
        let left = (g.kw - 1) as i64 - g.p.pad[2] as i64;
        let sizes = ((g.ho, g.wo), (g.h, g.w), top, left);
        depthwise(ctx, g, dy, w, None, &dx, sizes, true)?;
        return Ok(dx);
    }
    let kg = kernel_geometry(g);
    let cb = block(g.cig(), 16);
    let wd = permuted_weight(ctx, g, w, true, rows_per_item(cb) - 1)?;
    let params = ClParams {
        src_len: int(g.y_numel())?,
        ..params
    };
    let p = program::<T>(ctx, "CONV_DATA_GRAD", cb, 1, 0, g.cog() == 1)?;
    launch_1d(
        ctx,
        &p,
        "conv2d_data_grad",
        kg.h.div_ceil(rows_per_item(cb)) * g.n * (g.c_in / cb),
        GROUP,
        &[buf(dy), buf(&wd), buf(&dx), Arg::params(&params)],
    )?;
    Ok(dx)
}
