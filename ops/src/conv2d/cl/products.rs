//! Convolutions as products along the positions: the pointwise (1x1) forward, data and weight
//! gradients, and the weight gradient of a convolution with its input unfolded (`conv2d_im2col`),
//! with the channel-major copies (`conv2d_swap_axes`) they read.

use super::*;

/// Below this many unfolded rows (`C_in * KH * KW`) a convolution stays on the direct kernels:
/// the product's channel sum would be too short to pay for the unfolded copy (the stem's 1 x
/// 3 x 3 has 9).
pub(super) const UNFOLD_MIN_ROWS: usize = 32;

/// Above this many elements the unfolded input is not made (direct kernels instead).
pub(super) const UNFOLD_MAX_ELEMENTS: usize = 64 << 20;

/// 1x1 weight gradients on planes of fewer positions run on channel-major copies of x and dy
/// (rows of N*H*W instead of H*W: the 7x7 planes of the last stage make rows of 6 segments
/// and a one-element tail otherwise; measured 3.7-4.2 ms against 1.0-1.3 ms plus 0.5 ms of
/// copies for C = 128, 7x7, batch 64).
pub(super) const FLAT_BELOW_POSITIONS: usize = 256;

/// Whether the weight gradient of convolution `g` runs as a pointwise product with its input
/// unfolded (`conv2d_im2col`): one group, not already pointwise, a sum over at least
/// [`UNFOLD_MIN_ROWS`] unfolded rows, an unfolded input of at most [`UNFOLD_MAX_ELEMENTS`], and
/// the direct kernels not forced. The 3x3 stride-2 down-sampling convolutions of the network
/// are the ones this picks. (Their forward through the unfolded input measured no faster than
/// the direct kernel: the copy costs what the product saves.)
pub(super) fn unfolds(g: &Geometry) -> bool {
    !direct()
        && g.p.groups == 1
        && !is_pointwise(g)
        && g.c_in * g.kh * g.kw >= UNFOLD_MIN_ROWS
        && g.n * g.c_in * g.kh * g.kw * g.ho * g.wo <= UNFOLD_MAX_ELEMENTS
}

/// The pointwise product `out[n, r, q] = bias[r] + sum_k a[k, r] * src[n, k, q]`.
#[allow(clippy::too_many_arguments)]
pub(super) fn pointwise<T: Real>(
    ctx: &Context,
    src: &Tensor<T>,
    a: &Tensor<T>,
    bias: Option<&Tensor<T>>,
    out: &Tensor<T>,
    (n, k, r, positions): (usize, usize, usize, usize),
) -> Result<()> {
    let cb = block(r, 8);
    let p = program::<T>(ctx, "CONV_POINTWISE", cb, 1, 0, false)?;
    let items = n * (r / cb) * positions.div_ceil(2 * VW);
    launch_1d(
        ctx,
        &p,
        "conv2d_pointwise",
        items,
        GROUP,
        &[
            buf(src),
            buf(a),
            buf(bias.unwrap_or(a)),
            Arg::I32(bias.is_some() as i32),
            buf(out),
            Arg::I32(int(n)?),
            Arg::I32(int(k)?),
            Arg::I32(int(r)?),
            Arg::I32(int(positions)?),
        ],
    )
}

/// The pointwise weight gradient `dw[r, k] = sum_{n, q} dy[n, r, q] * src[n, k, q]` into `dw`
/// (`R x K`), in sample chunks as [`weight_grad`] makes them.
pub(super) fn pointwise_wgrad<T: Real>(
    ctx: &Context,
    dy: &Tensor<T>,
    src: &Tensor<T>,
    dw: &Tensor<T>,
    (n, k, r, positions): (usize, usize, usize, usize),
) -> Result<()> {
    let cb = block(r, 4);
    // CB*TB accumulators, CB dy segments and one x segment in about 29 vector registers.
    let tb = even_block(k, 6);
    let items = (r / cb) * k.div_ceil(tb);
    let sample = (k + r) * positions * T::DTYPE.size();
    let (chunks, chunk) = chunking(n, items, sample);
    int(n * k.max(r) * positions + 2 * VW)?;
    let p = program::<T>(ctx, "CONV_POINTWISE_WGRAD", cb, tb, 0, false)?;
    in_chunks(ctx, dw, r * k, chunks, |target| {
        launch_1d(
            ctx,
            &p,
            "conv2d_pointwise_wgrad",
            items * chunks,
            REDUCE_GROUP,
            &[
                buf(dy),
                buf(src),
                buf(target),
                Arg::I32(int(n)?),
                Arg::I32(int(k)?),
                Arg::I32(int(r)?),
                Arg::I32(int(positions)?),
                Arg::I32(int(chunk)?),
                Arg::I32(int(chunks)?),
            ],
        )
    })
}

/// The rows of the unfolded input: `C_in * KH * KW`.
pub(super) fn unfolded_rows(g: &Geometry) -> usize {
    g.c_in * g.kh * g.kw
}

/// `x` unfolded channel-major: `(C_in*KH*KW, N, Ho*Wo)`, the window of every output position
/// as a column, each unfolded row spanning all samples.
pub(super) fn im2col<T: Real>(ctx: &Context, g: &Geometry, x: &Tensor<T>) -> Result<Tensor<T>> {
    let rows = unfolded_rows(g);
    let plane = g.ho * g.wo;
    let col = output::<T>(ctx, [rows, g.n, plane])?;
    int(g.n * rows * plane)?;
    let params = ClParams {
        src_len: int(g.x_numel())?,
        ..ClParams::new(g)?
    };
    let p = program::<T>(ctx, "CONV_UTIL", 1, 1, g.p.stride.1, false)?;
    launch_1d(
        ctx,
        &p,
        "conv2d_im2col",
        g.n * rows,
        GROUP,
        &[buf(x), buf(&col), Arg::params(&params)],
    )?;
    Ok(col)
}

/// `src` `(A, B, L)` with its first two axes swapped: `(B, A, L)`.
pub(super) fn swap_axes<T: Real>(
    ctx: &Context,
    src: &Tensor<T>,
    (a, b, l): (usize, usize, usize),
) -> Result<Tensor<T>> {
    let dst = output::<T>(ctx, [b, a, l])?;
    let p = program::<T>(ctx, "CONV_UTIL", 1, 1, 0, false)?;
    launch_1d(
        ctx,
        &p,
        "conv2d_swap_axes",
        a * b,
        GROUP,
        &[
            buf(src),
            buf(&dst),
            Arg::I32(int(a)?),
            Arg::I32(int(b)?),
            Arg::I32(int(l)?),
        ],
    )?;
    Ok(dst)
}
