//! Depthwise convolutions with stride 1 and small kernels: one plane per work-item, the taps
//! unrolled with the plane's weights in registers (`conv2d_depthwise`, `conv2d_depthwise_wgrad`).

use super::*;

/// Depthwise convolutions with stride 1 and kernels up to this size (both sides) run
/// `conv2d_depthwise` / `conv2d_depthwise_wgrad`: the small variant's 3x3 and SLaK's small
/// k x k branch.
pub(super) const DEPTHWISE_MAX_KERNEL: usize = 5;

/// Work-items the depthwise weight gradient aims for (channels times sample chunks).
pub(super) const DEPTHWISE_WGRAD_ITEMS: usize = 256;

/// Whether `g` runs the plane-per-work-item depthwise kernels: one input and one output
/// channel per group, stride 1, a kernel of at most [`DEPTHWISE_MAX_KERNEL`] a side, and the
/// direct kernels not forced.
pub(super) fn small_depthwise(g: &Geometry) -> bool {
    !direct()
        && g.cig() == 1
        && g.cog() == 1
        && g.p.stride == (1, 1)
        && g.kh <= DEPTHWISE_MAX_KERNEL
        && g.kw <= DEPTHWISE_MAX_KERNEL
}

/// The program of the depthwise kernels for a `kh x kw` kernel.
pub(super) fn depthwise_program<T: Real>(ctx: &Context, kh: usize, kw: usize) -> Result<Program> {
    vector_program::<T>(
        ctx,
        OP,
        SOURCE,
        &[
            ("CONV_DEPTHWISE", String::new()),
            ("KH", kh.to_string()),
            ("KW", kw.to_string()),
        ],
    )
}

/// `conv2d_depthwise` over `src` into `out`: planes of `input` (height, width) read, planes of
/// `output` written, the window offset by `(top, left)`, the kernel flipped where `flip`.
#[allow(clippy::too_many_arguments)]
pub(super) fn depthwise<T: Real>(
    ctx: &Context,
    g: &Geometry,
    src: &Tensor<T>,
    w: &Tensor<T>,
    bias: Option<&Tensor<T>>,
    out: &Tensor<T>,
    (input, output, top, left): ((usize, usize), (usize, usize), i64, i64),
    flip: bool,
) -> Result<()> {
    let p = depthwise_program::<T>(ctx, g.kh, g.kw)?;
    let planes = g.n * g.c_in;
    let i64_arg = |v: i64| {
        i32::try_from(v)
            .map(Arg::I32)
            .map_err(|_| Error::arg(OP, format!("padding {v} is too large")))
    };
    launch_1d(
        ctx,
        &p,
        "conv2d_depthwise",
        planes,
        REDUCE_GROUP,
        &[
            buf(src),
            buf(w),
            buf(bias.unwrap_or(w)),
            Arg::I32(bias.is_some() as i32),
            buf(out),
            Arg::I32(int(planes)?),
            Arg::I32(int(g.c_in)?),
            Arg::I32(int(input.0)?),
            Arg::I32(int(input.1)?),
            Arg::I32(int(output.0)?),
            Arg::I32(int(output.1)?),
            i64_arg(top)?,
            i64_arg(left)?,
            Arg::I32(flip as i32),
        ],
    )
}
