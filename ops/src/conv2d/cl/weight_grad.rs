//! The weight and bias gradients: per-chunk partial sums over the samples (or a product along
//! the positions, see `products`), then the chunks added in order.

use super::*;

/// Adds the `chunks` partial sums of `len` elements in `part` into `out`, in chunk order.
pub(super) fn sum_chunks<T: Real>(
    ctx: &Context,
    part: &Tensor<T>,
    out: &Tensor<T>,
    len: usize,
    chunks: usize,
) -> Result<()> {
    let p = program::<T>(ctx, "CONV_UTIL", 1, 1, 0, false)?;
    launch_1d(
        ctx,
        &p,
        "conv2d_sum_chunks",
        len,
        GROUP,
        &[
            buf(part),
            buf(out),
            Arg::I32(int(len)?),
            Arg::I32(int(chunks)?),
        ],
    )
}

/// Runs `launch` with `out` as its target when there is one chunk; otherwise with `chunks`
/// partial sums of `len` elements (chunk-major), which [`sum_chunks`] then adds into `out` in
/// chunk order.
pub(super) fn in_chunks<T: Real>(
    ctx: &Context,
    out: &Tensor<T>,
    len: usize,
    chunks: usize,
    launch: impl FnOnce(&Tensor<T>) -> Result<()>,
) -> Result<()> {
    if chunks <= 1 {
        return launch(out);
    }
    let part = output::<T>(ctx, [chunks * len])?;
    launch(&part)?;
    sum_chunks(ctx, &part, out, len, chunks)
}

/// `dw[co, ci, ky, kx] = sum_{n, oy, ox} dy[n, co, oy, ox] * x[n, ci', iy, ix]`.
pub fn weight_grad<T: Real>(
    ctx: &Context,
    g: &Geometry,
    dy: &Tensor<T>,
    x: &Tensor<T>,
) -> Result<Tensor<T>> {
    let dw = output::<T>(ctx, [g.c_out, g.cig(), g.kh, g.kw])?;
    let len = g.w_numel();
    if len == 0 {
        return Ok(dw);
    }
    if gpu_shaped(ctx) {
        let params = ClParams::new(g)?;
        let args = [buf(dy), buf(x), buf(&dw), Arg::params(&params)];
        launch_items::<T>(ctx, "conv2d_weight_grad_items", len, true, &args)?;
        return Ok(dw);
    }
    if is_pointwise(g) && g.p.groups == 1 && !direct() {
        let plane = g.h * g.w;
        if plane < FLAT_BELOW_POSITIONS {
            // Channel-major copies of x and dy: one long row per channel over all samples.
            let xt = swap_axes(ctx, x, (g.n, g.c_in, plane))?;
            let dyt = swap_axes(ctx, dy, (g.n, g.c_out, plane))?;
            pointwise_wgrad(ctx, &dyt, &xt, &dw, (1, g.c_in, g.c_out, g.n * plane))?;
        } else {
            pointwise_wgrad(ctx, dy, x, &dw, (g.n, g.c_in, g.c_out, plane))?;
        }
        return Ok(dw);
    }
    if unfolds(g) {
        // x unfolded channel-major, (C_in*KH*KW, N, Ho*Wo), beside a channel-major copy of dy:
        // one long row per unfolded row and output channel over all samples. Unfolded here
        // rather than kept from the forward: the copy costs less than holding it.
        let plane = g.ho * g.wo;
        let col = im2col(ctx, g, x)?;
        let dyt = swap_axes(ctx, dy, (g.n, g.c_out, plane))?;
        let dims = (1, unfolded_rows(g), g.c_out, g.n * plane);
        pointwise_wgrad(ctx, &dyt, &col, &dw, dims)?;
        return Ok(dw);
    }
    if small_depthwise(g) {
        let c = g.c_in;
        let chunks = DEPTHWISE_WGRAD_ITEMS
            .div_ceil(c.max(1))
            .clamp(1, g.n.max(1));
        let chunk = g.n.div_ceil(chunks).max(1);
        let chunks = g.n.div_ceil(chunk).max(1);
        let p = depthwise_program::<T>(ctx, g.kh, g.kw)?;
        in_chunks(ctx, &dw, len, chunks, |target| {
            launch_1d(
                ctx,
                &p,
                "conv2d_depthwise_wgrad",
                c * chunks,
                REDUCE_GROUP,
                &[
                    buf(dy),
                    buf(x),
                    buf(target),
                    Arg::I32(int(g.n)?),
                    Arg::I32(int(c)?),
                    Arg::I32(int(g.h)?),
                    Arg::I32(int(g.w)?),
                    Arg::I32(int(g.ho)?),
                    Arg::I32(int(g.wo)?),
                    Arg::I32(int(g.p.pad[0])?),
                    Arg::I32(int(g.p.pad[2])?),
                    Arg::I32(int(chunk)?),
                    Arg::I32(int(chunks)?),
                ],
            )
        })?;
        return Ok(dw);
    }
    let kg = kernel_geometry(g);
    let cb = block(g.cog(), 5);
    // CB*TB accumulators plus CB dy and TB x segments in about 26 vector registers (of 32;
    // a fifth pair of four channels spills).
    let pairs = g.cig() * g.kw;
    let tb = even_block(pairs, ((26 - cb) / (cb + 1)).min(8));
    let vector_blocks = pairs.div_ceil(tb);
    let items = vector_blocks * g.kh * (g.c_out / cb);
    let sample = (g.c_in * g.h * g.w + g.c_out * g.ho * g.wo) * T::DTYPE.size();
    let (chunks, chunk) = chunking(g.n, items, sample);
    let params = ClParams {
        src_len: int(g.x_numel())?,
        blocks: int(kg.wo.div_ceil(VW))?,
        chunk: int(chunk)?,
        chunks: int(chunks)?,
        ..ClParams::new(g)?
    };
    let p = program::<T>(ctx, "CONV_WEIGHT_GRAD", cb, tb, g.p.stride.1, false)?;
    in_chunks(ctx, &dw, len, chunks, |target| {
        launch_1d(
            ctx,
            &p,
            "conv2d_weight_grad",
            items * chunks,
            REDUCE_GROUP,
            &[buf(dy), buf(x), buf(target), Arg::params(&params)],
        )
    })?;
    Ok(dw)
}

/// `db[co] = sum_{n, oy, ox} dy[n, co, oy, ox]`.
pub fn bias_grad<T: Real>(ctx: &Context, g: &Geometry, dy: &Tensor<T>) -> Result<Tensor<T>> {
    let db = output::<T>(ctx, [g.c_out])?;
    if g.c_out == 0 {
        return Ok(db);
    }
    let (chunks, chunk) = chunking(g.n, g.c_out, 0);
    let params = ClParams {
        chunk: int(chunk)?,
        chunks: int(chunks)?,
        ..ClParams::new(g)?
    };
    let p = program::<T>(ctx, "CONV_UTIL", 1, 1, 0, false)?;
    in_chunks(ctx, &db, g.c_out, chunks, |target| {
        launch_1d(
            ctx,
            &p,
            "conv2d_bias_partial",
            g.c_out * chunks,
            REDUCE_GROUP,
            &[buf(dy), buf(target), Arg::params(&params)],
        )
    })?;
    Ok(db)
}
