// conv2d's plane-per-work-item depthwise kernels (CONV_DEPTHWISE), after conv2d.cl's
// definitions.

#ifdef CONV_DEPTHWISE
// Depthwise convolutions with stride 1 and small kernels (KH x KW, build-time constants: the
// taps unroll and the kernel's weights sit in registers), one work-item per plane (n, c),
// row after row, VW columns at a time: every tap of an output segment is one segment load
// and one multiply-add, nothing multiplied by zero.
//
// Forward: out[n, c, oy, ox] = b[c] + sum_{ky, kx} w[c, ky, kx] * src[n, c, oy + ky - top,
// ox + kx - left], zero outside src's in_h x in_w plane. The data gradient is the same sum over
// dy with the kernel flipped (`flip`: w[c, KH-1-ky, KW-1-kx]) and top = KH-1-top, left =
// KW-1-left, written into the input's plane.
__kernel void conv2d_depthwise(__global const real* src, __global const real* w,
                               __global const real* bias, const int has_bias,
                               __global real* out, const int planes, const int channels,
                               const int in_h, const int in_w, const int out_h,
                               const int out_w, const int top, const int left, const int flip) {
    const int gid = get_global_id(0);
    if (gid >= planes) {
        return;
    }
    const int c = gid % channels;
    real wk[KH * KW];
#pragma unroll
    for (int i = 0; i < KH * KW; i++) {
        wk[i] = w[c * KH * KW + (flip ? KH * KW - 1 - i : i)];
    }
    const real b = has_bias ? bias[c] : (real)0;
    const int src_len = planes * in_h * in_w;
    const int at0 = gid * in_h * in_w;
    __global real* dst = out + gid * out_h * out_w;
    for (int oy = 0; oy < out_h; oy++, dst += out_w) {
        for (int seg = 0; seg < out_w; seg += VW) {
            // A row of at least VW columns ends with a full segment moved back to end at the
            // row's end (its first lanes recompute columns already written, with the same
            // values): every store is a vector store.
            const int ox0 = out_w >= VW ? min(seg, out_w - VW) : seg;
            vec acc = (vec)b;
#pragma unroll
            for (int ky = 0; ky < KH; ky++) {
                const int iy = oy + ky - top;
                if (iy >= 0 && iy < in_h) {
                    const int at = at0 + iy * in_w;
#pragma unroll
                    for (int kx = 0; kx < KW; kx++) {
                        const int i0 = ox0 + kx - left;
                        const vec v = i0 >= 0 && i0 + VW <= in_w ? vload8(0, src + at + i0)
                                    : at + i0 >= 0 && at + i0 + VW <= src_len
                                        ? load_masked(src + at, i0, 1, in_w)
                                        : gather_row(src + at, i0, 1, in_w);
                        acc += wk[ky * KW + kx] * v;
                    }
                }
            }
            store_row(dst + ox0, acc, min(VW, out_w - ox0), 1);
        }
    }
}

// The weight gradient of the same convolutions: dw[c, ky, kx] = sum over the samples of
// chunk s and the output positions of dy[n, c, oy, ox] * x[n, c, oy + ky - top, ox + kx -
// left]. Work-item s*C + c holds KH*KW vector accumulators; per output segment one dy load
// (zero past the row) and one masked x load per tap. Partial sums (chunk-major) when there
// are several chunks, added in order by conv2d_sum_chunks.
__kernel void conv2d_depthwise_wgrad(__global const real* dy, __global const real* x,
                                     __global real* out, const int n_total, const int channels,
                                     const int h, const int w, const int ho, const int wo,
                                     const int top, const int left, const int chunk,
                                     const int chunks) {
    const int gid = get_global_id(0);
    if (gid >= chunks * channels) {
        return;
    }
    const int c = gid % channels;
    const int s = gid / channels;
    vec acc[KH * KW];
#pragma unroll
    for (int i = 0; i < KH * KW; i++) {
        acc[i] = (vec)(real)0;
    }
    const int x_len = n_total * channels * h * w;
    const int dy_len = n_total * channels * ho * wo;
    const int n1 = min(n_total, (s + 1) * chunk);
    for (int n = s * chunk; n < n1; n++) {
        const int xp = (n * channels + c) * h * w;
        const int dp = (n * channels + c) * ho * wo;
        for (int oy = 0; oy < ho; oy++) {
            for (int ox0 = 0; ox0 < wo; ox0 += VW) {
                const int d_at = dp + oy * wo;
                const vec dv = ox0 + VW <= wo ? vload8(0, dy + d_at + ox0)
                             : d_at + ox0 + VW <= dy_len ? load_masked(dy + d_at, ox0, 1, wo)
                                                         : gather_row(dy + d_at, ox0, 1, wo);
#pragma unroll
                for (int ky = 0; ky < KH; ky++) {
                    const int iy = oy + ky - top;
                    if (iy >= 0 && iy < h) {
                        const int at = xp + iy * w;
#pragma unroll
                        for (int kx = 0; kx < KW; kx++) {
                            const int i0 = ox0 + kx - left;
                            const vec v = at + i0 >= 0 && at + i0 + VW <= x_len
                                              ? load_masked(x + at, i0, 1, w)
                                              : gather_row(x + at, i0, 1, w);
                            acc[ky * KW + kx] += dv * v;
                        }
                    }
                }
            }
        }
    }
#pragma unroll
    for (int i = 0; i < KH * KW; i++) {
        out[(s * channels + c) * KH * KW + i] = lane_sum(acc[i]);
    }
}
#endif
