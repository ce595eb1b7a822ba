// conv2d as products along the positions, after conv2d.cl's definitions: the pointwise
// forward and data gradient (CONV_POINTWISE), the pointwise weight gradient
// (CONV_POINTWISE_WGRAD), and the helpers (CONV_UTIL: unfolding, channel-major copies, the
// weight permutation, the bias partial sums, the sum of chunks).

#ifdef CONV_POINTWISE
// A 1x1 convolution with stride 1, no padding and one group, as a product with the weight:
// out[n, r, q] = bias[r] + sum_k a[k, r] * in[n, k, q] over the P = H*W positions q. The
// forward takes in = x and a = w transposed (C_in, C_out); the data gradient in = dy and
// a = w itself (C_out, C_in), no bias.
//
// Work-item (n*R/CB + rb)*qblocks + qb: channels rb*CB .. rb*CB+CB-1 at the 2*VW positions
// from qb*2*VW; the last block of a plane is moved back to end at P (when P >= 2*VW), so every
// load is a plain vector load, and stores only its own positions. Per k: two segment loads,
// CB weights, 2*CB multiply-adds.
__kernel void conv2d_pointwise(__global const real* in, __global const real* a,
                               __global const real* bias, const int has_bias,
                               __global real* out, const int N, const int K, const int R,
                               const int P) {
    const int qblocks = (P + 2 * VW - 1) / (2 * VW);
    const int gid = get_global_id(0);
    const int qb = gid % qblocks;
    const int z = gid / qblocks;
    const int rblocks = R / CB;
    if (z >= N * rblocks) {
        return;
    }
    const int n = z / rblocks;
    const int r0 = (z - n * rblocks) * CB;
    const int q0 = qb * 2 * VW;
    const int qs = P >= 2 * VW ? min(q0, P - 2 * VW) : q0;

    vec acc0[CB], acc1[CB];
#pragma unroll
    for (int c = 0; c < CB; c++) {
        acc0[c] = acc1[c] = (vec)(has_bias ? bias[r0 + c] : (real)0);
    }
    __global const real* src = in + n * K * P + qs;
    __global const real* ak = a + r0;
    if (P >= 2 * VW) {
        for (int k = 0; k < K; k++, src += P, ak += R) {
            const vec v0 = vload8(0, src);
            const vec v1 = vload8(1, src);
#pragma unroll
            for (int c = 0; c < CB; c++) {
                acc0[c] += ak[c] * v0;
                acc1[c] += ak[c] * v1;
            }
        }
    } else {
        for (int k = 0; k < K; k++, src += P, ak += R) {
            const vec v0 = gather_row(src, 0, 1, P - qs);
            const vec v1 = gather_row(src, VW, 1, P - qs);
#pragma unroll
            for (int c = 0; c < CB; c++) {
                acc0[c] += ak[c] * v0;
                acc1[c] += ak[c] * v1;
            }
        }
    }

    // Positions q0 .. min(q0 + 2*VW, P) - 1 are lanes q - qs.
    const int skip = q0 - qs;
    const int end = min(q0 + 2 * VW, P) - qs;
#pragma unroll
    for (int c = 0; c < CB; c++) {
        __global real* dst = out + (n * R + r0 + c) * P + qs;
        real t[2 * VW];
        vstore8(acc0[c], 0, t);
        vstore8(acc1[c], 1, t);
        if (skip == 0 && end == 2 * VW) {
            vstore16(vload16(0, t), 0, dst);
        } else {
            for (int j = skip; j < end; j++) {
                dst[j] = t[j];
            }
        }
    }
}
#endif

#ifdef CONV_POINTWISE_WGRAD
// The weight gradient of a pointwise product (a 1x1 convolution with stride 1, no padding and
// one group; or any convolution with one group, its input unfolded by conv2d_im2col):
// dw[r, k] = sum_n sum_q dy[n, r, q] * in[n, k, q] over the P positions q, for R rows of dy
// (the output channels) and K rows of in (the input channels, or the unfolded (channel, ky,
// kx) rows).
//
// Work-item (s*R/CB + rb)*kblocks + kb: rows rb*CB .. rb*CB+CB-1 of dy times rows kb*TB ..
// kb*TB+TB-1 of in (the last block repeats row K-1 and stores it once), summed over the
// samples of chunk s. Both operands are read along q, VW positions at a time: per step CB + TB
// vector loads feed CB*TB multiply-adds into vector accumulators, whose lanes are added in a
// fixed order at the end. The positions past the last full segment of a plane are one
// gathered segment, zero beyond P. With one chunk the sums go straight to dw; otherwise to
// partial sums (chunk-major) that conv2d_sum_chunks adds in order.
__kernel void conv2d_pointwise_wgrad(__global const real* dy, __global const real* in,
                                     __global real* out, const int N, const int K, const int R,
                                     const int P, const int chunk, const int chunks) {
    const int kblocks = (K + TB - 1) / TB;
    const int gid = get_global_id(0);
    const int kb = gid % kblocks;
    const int z = gid / kblocks;
    const int rblocks = R / CB;
    if (z >= chunks * rblocks) {
        return;
    }
    const int s = z / rblocks;
    const int r0 = (z - s * rblocks) * CB;
    int ks[TB];
#pragma unroll
    for (int t = 0; t < TB; t++) {
        ks[t] = min(kb * TB + t, K - 1);
    }
    vec acc[CB][TB];
#pragma unroll
    for (int c = 0; c < CB; c++) {
#pragma unroll
        for (int t = 0; t < TB; t++) {
            acc[c][t] = (vec)(real)0;
        }
    }
    const int full = P / VW * VW;
    const int n1 = min(N, (s + 1) * chunk);
    for (int n = s * chunk; n < n1; n++) {
        __global const real* d = dy + (n * R + r0) * P;
        __global const real* x = in + n * K * P;
        for (int q = 0; q < full; q += VW) {
            vec dv[CB];
#pragma unroll
            for (int c = 0; c < CB; c++) {
                dv[c] = vload8(0, d + c * P + q);
            }
#pragma unroll
            for (int t = 0; t < TB; t++) {
                const vec xv = vload8(0, x + ks[t] * P + q);
#pragma unroll
                for (int c = 0; c < CB; c++) {
                    acc[c][t] += dv[c] * xv;
                }
            }
        }
        if (full < P) {
            vec dv[CB];
#pragma unroll
            for (int c = 0; c < CB; c++) {
                dv[c] = gather_row(d + c * P, full, 1, P);
            }
#pragma unroll
            for (int t = 0; t < TB; t++) {
                const vec xv = gather_row(x + ks[t] * P, full, 1, P);
#pragma unroll
                for (int c = 0; c < CB; c++) {
                    acc[c][t] += dv[c] * xv;
                }
            }
        }
    }
#pragma unroll
    for (int t = 0; t < TB; t++) {
        if (kb * TB + t < K) {
#pragma unroll
            for (int c = 0; c < CB; c++) {
                out[(s * R + r0 + c) * K + ks[t]] = lane_sum(acc[c][t]);
            }
        }
    }
}
#endif

#ifdef CONV_UTIL
// The input unfolded for a product with the weight (one group), channel-major:
// col[(ci*KH + ky)*KW + kx, n, oy*Wo + ox] = x[n, ci, oy*sh + ky - top, ox*sw + kx - left], zero
// where that lies in the padding. One work-item per unfolded plane (n, ci, ky, kx), row after
// row, VW columns at a time: a masked segment load (lane by lane at the ends of the buffer)
// and a store.
__kernel void conv2d_im2col(__global const real* x, __global real* col, const ConvParams p) {
    const int gid = get_global_id(0);
    const int rows = p.c_in * p.kh * p.kw;
    const int u = gid % rows;
    const int n = gid / rows;
    if (n >= p.n) {
        return;
    }
    const int kx = u % p.kw;
    const int ky = u / p.kw % p.kh;
    const int ci = u / p.kw / p.kh;
    __global real* dst = col + (u * p.n + n) * p.ho * p.wo;
    const int plane_at = (n * p.c_in + ci) * p.h * p.w;
    for (int oy = 0; oy < p.ho; oy++, dst += p.wo) {
        const int iy = oy * p.sh + ky - p.top;
        if (iy < 0 || iy >= p.h) {
            for (int ox = 0; ox < p.wo; ox++) {
                dst[ox] = (real)0;
            }
            continue;
        }
        const int at = plane_at + iy * p.w;
        __global const real* src = x + at;
        for (int seg = 0; seg < p.wo; seg += VW) {
            // The last full segment moved back to end at the row's end (as in
            // conv2d_depthwise): vector stores only, for rows of at least VW columns.
            const int ox0 = p.wo >= VW ? min(seg, p.wo - VW) : seg;
            const int i0 = ox0 * STEP + kx - p.left;
            const bool safe = at + i0 >= 0 && at + i0 + VW * STEP <= p.src_len;
            const vec v = safe ? load_masked(src, i0, STEP, p.w) : gather_row(src, i0, STEP, p.w);
            store_row(dst + ox0, v, min(VW, p.wo - ox0), 1);
        }
    }
}

// The first two axes of src (A, B, L) swapped: dst[b, a, l] = src[a, b, l]. One work-item per
// row (b, a) of L elements, VW at a time.
__kernel void conv2d_swap_axes(__global const real* src, __global real* dst, const int A,
                               const int B, const int L) {
    const int gid = get_global_id(0);
    if (gid >= A * B) {
        return;
    }
    const int a = gid % A;
    const int b = gid / A;
    __global const real* s = src + (a * B + b) * L;
    __global real* d = dst + gid * L;
    int l = 0;
    for (; l + VW <= L; l += VW) {
        vstore8(vload8(0, s + l), 0, d + l);
    }
    for (; l < L; l++) {
        d[l] = s[l];
    }
}

// The weight (G, C_out/G, C_in/G, KH, KW) permuted for the forward (to_data = 0):
// (G, C_in/G, KHP, KW, C_out/G), or for the data gradient (to_data = 1): (G, C_out/G, KHP, KW,
// C_in/G), where KHP = KH + 2*pad_rows and the pad_rows rows above and below each kernel are
// zero. One work-item per element of the result.
__kernel void conv2d_permute_weight(__global const real* w, __global real* out,
                                    const ConvParams p, const int to_data, const int pad_rows) {
    const int khp = p.kh + 2 * pad_rows;
    const int inner = to_data ? p.cig : p.cog;  // channels of a tap, adjacent in the result
    const int outer = to_data ? p.cog : p.cig;
    const int o = get_global_id(0);
    if (o >= p.c_out / p.cog * outer * khp * p.kw * inner) {
        return;
    }
    const int a = o % inner;
    const int kx = o / inner % p.kw;
    const int ky = o / inner / p.kw % khp - pad_rows;
    const int b = o / inner / p.kw / khp % outer;
    const int g = o / inner / p.kw / khp / outer;
    const int co = g * p.cog + (to_data ? b : a);
    const int ci = to_data ? a : b;
    out[o] = ky >= 0 && ky < p.kh ? w[((co * p.cig + ci) * p.kh + ky) * p.kw + kx] : (real)0;
}

// Partial bias gradients: part[s*C_out + co] = sum over the samples of chunk s and all output
// positions of dy[n, co, .., ..]. Work-item s*C_out + co; the plane is read as flat segments.
__kernel void conv2d_bias_partial(__global const real* dy, __global real* part,
                                  const ConvParams p) {
    const int co = get_global_id(0) % p.c_out;
    const int s = get_global_id(0) / p.c_out;
    if (s >= p.chunks) {
        return;
    }
    const int plane = p.ho * p.wo;
    const int n0 = s * p.chunk;
    const int n1 = min(p.n, n0 + p.chunk);
    vec acc = (vec)(real)0;
    for (int n = n0; n < n1; n++) {
        __global const real* src = dy + (n * p.c_out + co) * plane;
        int i = 0;
        for (; i + VW <= plane; i += VW) {
            acc += vload8(0, src + i);
        }
        if (i < plane) {
            acc += gather_row(src, i, 1, plane);
        }
    }
    part[s * p.c_out + co] = lane_sum(acc);
}

// out[i] = sum_{s < chunks} part[s*len + i], in order of s.
__kernel void conv2d_sum_chunks(__global const real* part, __global real* out, const int len,
                                const int chunks) {
    const int i = get_global_id(0);
    if (i < len) {
        real acc = part[i];
        for (int s = 1; s < chunks; s++) {
            acc += part[s * len + i];
        }
        out[i] = acc;
    }
}
#endif
