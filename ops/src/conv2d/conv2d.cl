// conv2d on OpenCL: forward, data gradient, weight gradient and bias gradient of a 2-D
// cross-correlation with stride, per-side zero padding and groups (see mod.rs for the maths).
//
// Built with -D real=float|double, -D ireal=int|long (the integer type of the same width, for
// lane masks), one of -D CONV_FORWARD / CONV_DATA_GRAD / CONV_WEIGHT_GRAD / CONV_POINTWISE /
// CONV_UTIL (a program holds only the kernels it is built for), and compile-time constants
// that make the accumulators registers and the inner loops branch-free: CB channels and RB
// rows per work-item, TB input vectors per work-item (weight gradient), SW the column stride
// (1 or 2; 0 reads it from the parameters) and ONE_CHANNEL (see below).
//
// Every kernel is a gather: each output element is written by exactly one work-item, after a
// sum in a fixed order. No atomics, no scatter: the same inputs give bitwise the same outputs.
//
// Work-items hold a segment of VW = 8 consecutive columns of one row as a vector (real8), so
// that PoCL (a CPU OpenCL that runs a work-group as a loop over its work-items, one SIMD lane
// per vector element) executes one vector multiply-add per kernel tap and channel instead of
// eight scalar ones. A row segment x[i0 + j*sw] is read
//   - inside the row: one vector load (stride 1) or a double-width load and an even-lane
//     shuffle (stride 2); lanes past the last output column may read the next row;
//   - across the zero padding: the same load, then the lanes outside the row set to zero
//     (this reads a little before or after the row, always inside the buffer);
//   - at the very start or end of the buffer, or for strides above 2: lane by lane, clamped.

#define VW 8
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
typedef CAT(real, 8) vec;
typedef CAT(ireal, 8) ivec;
#define LANES ((ivec)(0, 1, 2, 3, 4, 5, 6, 7))
#define INLINE __attribute__((always_inline)) inline
// ONE_CHANNEL: the channel sum of the forward (data gradient) runs over one input (output)
// channel per group, as in depthwise convolutions: the channel loop disappears at build time.
// STEP: the column stride, a constant where SW > 0, so that loads specialise.
#if SW > 0
#define STEP SW
#else
#define STEP p.sw
#endif

// Mirrors ClParams in cl.rs field for field: the geometry of the convolution, then what
// depends on the launch.
typedef struct {
    int n, c_in, h, w;     // input (N, C_in, H, W)
    int c_out, ho, wo;     // output (N, C_out, Ho, Wo)
    int kh, kw, sh, sw;    // kernel and stride
    int top, left;         // zero padding before the first row and column
    int cig, cog;          // input and output channels per group
    int src_len;           // elements of the tensor read by segments (x, or dy for the data gradient)
    int blocks;            // column segments of VW per output row (weight gradient)
    int chunk, chunks;     // samples per partial sum, and the number of partial sums
} ConvParams;

// Lanes j of row[i0 + j*step]; every element row[i0 .. i0 + VW*step - 1] may be read.
INLINE vec load_row(__global const real* row, int i0, int step) {
    if (step == 1) {
        return vload8(0, row + i0);
    }
    if (step == 2) {
        return vload16(0, row + i0).even;
    }
    real t[VW];
#pragma unroll
    for (int j = 0; j < VW; j++) {
        t[j] = row[i0 + j * step];
    }
    return vload8(0, t);
}

// As load_row, with zero in the lanes whose column lies outside 0..len-1 (the mask depends
// on i0 only, so a loop over channels computes it once).
INLINE vec load_masked(__global const real* row, int i0, int step, int len) {
    const ivec col = LANES * step + i0;
    return select((vec)(real)0, load_row(row, i0, step), col >= 0 && col < len);
}

// As load_masked, reading only inside the row: each index is clamped.
INLINE vec gather_row(__global const real* row, int i0, int step, int len) {
    real t[VW];
#pragma unroll
    for (int j = 0; j < VW; j++) {
        const int i = i0 + j * step;
        const real v = row[clamp(i, 0, len - 1)];
        t[j] = (i >= 0 && i < len) ? v : (real)0;
    }
    return vload8(0, t);
}

// The first `count` lanes of v to dst[j*step].
INLINE void store_row(__global real* dst, vec v, int count, int step) {
    if (count == VW && step == 1) {
        vstore8(v, 0, dst);
        return;
    }
    real t[VW];
    vstore8(v, 0, t);
    for (int j = 0; j < count; j++) {
        dst[j * step] = t[j];
    }
}

// Fixed-order sum of the lanes.
INLINE real lane_sum(vec v) {
    return ((v.s0 + v.s1) + (v.s2 + v.s3)) + ((v.s4 + v.s5) + (v.s6 + v.s7));
}

#ifdef CONV_FORWARD
// y[n, co, oy, ox] = b[co] + sum_{ci, ky, kx} w[co, ci, ky, kx] * x[n, g*cig + ci, iy, ix],
// iy = oy*sh + ky - top, ix = ox*sw + kx - left.
//
// Work-item (n*C_out/CB + cb)*rblocks + rb: output channels cb*CB .. cb*CB+CB-1 (CB divides
// C_out/G, so they share a group and read the same input channels) at rows rb*RB ..
// rb*RB+RB-1, one column segment of VW after the other. The loops run over input rows
// i (iy = iy0 + i, iy0 = rb*RB*sh - top; rows outside the input are skipped), then taps kx,
// then input channels ci innermost: where a segment crosses the padding depends on (i, kx)
// only, so the choice of load and its lane mask are made once for all channels, and the
// inner loop is a load and CB*RB multiply-adds. Each segment feeds the accumulators of every
// (row, channel): input row i meets output row r through kernel row ky = i - r*sh. `wf` is the
// weight permuted to (G, C_in/G, KH + 2*(RB-1)*sh, KW, C_out/G): the CB weights of a tap
// adjacent, and (RB-1)*sh rows of zeros above and below each kernel, so that an input row
// meets zero weights in the output rows it does not reach instead of a branch.
__kernel void conv2d_forward(__global const real* x, __global const real* wf,
                             __global const real* bias, const int has_bias,
                             __global real* y, const ConvParams p) {
    const int rblocks = (p.ho + RB - 1) / RB;
    const int gid = get_global_id(0);
    const int rb = gid % rblocks;
    const int z = gid / rblocks;
    const int cblocks = p.c_out / CB;
    if (z >= p.n * cblocks) {
        return;
    }
    const int n = z / cblocks;
    const int co0 = (z - n * cblocks) * CB;
    const int g = co0 / p.cog;
    const int oy0 = rb * RB;
    const int rows = min(RB, p.ho - oy0);
    const int pad_rows = (RB - 1) * p.sh;
    const int kernel_len = (p.kh + 2 * pad_rows) * p.kw * p.cog;  // one padded kernel
    const int iy0 = oy0 * p.sh - p.top;
    const int i_lo = max(0, -iy0);
    const int i_hi = p.w > 0 ? min((rows - 1) * p.sh + p.kh, p.h - iy0) : 0;
    const int reach = VW * STEP;  // elements a segment load may touch
    const int plane_in = p.h * p.w;
    const int plane_out = p.ho * p.wo;
    __global const real* wg = wf + g * p.cig * kernel_len + (co0 - g * p.cog);
    __global const real* xg = x + (n * p.c_in + g * p.cig) * plane_in;
    __global real* yrow = y + ((n * p.c_out + co0) * p.ho + oy0) * p.wo;

// For every input channel (its row at xr): segment LOAD of tap kx into all accumulators.
#define FORWARD_TAP(LOAD)                                                                   \
    do {                                                                                    \
        __global const real* xr = row;                                                      \
        __global const real* wp[RB];                                                        \
        _Pragma("unroll") for (int r = 0; r < RB; r++) {                                    \
            wp[r] = wr[r] + kx * p.cog;                                                     \
        }                                                                                   \
        for (int ci = 0; ci < (ONE_CHANNEL ? 1 : p.cig); ci++) {                            \
            const vec xv = LOAD;                                                            \
            _Pragma("unroll") for (int r = 0; r < RB; r++) {                                \
                _Pragma("unroll") for (int c = 0; c < CB; c++) {                            \
                    acc[r][c] += wp[r][c] * xv;                                             \
                }                                                                           \
                wp[r] += kernel_len;                                                        \
            }                                                                               \
            xr += plane_in;                                                                 \
        }                                                                                   \
    } while (0)

    for (int ox0 = 0; ox0 < p.wo; ox0 += VW) {
        const int nvalid = min(VW, p.wo - ox0);
        const int base = ox0 * STEP - p.left;
        const int kx_lo = clamp(-base, 0, p.kw);
        const int kx_hi = clamp(p.w - (nvalid - 1) * STEP - base, kx_lo, p.kw);
        // Where the buffer ends right after the row, stop plain loads at the row end.
        const int kx_hi_strict = clamp(p.w - reach - base + 1, kx_lo, kx_hi);

        vec acc[RB][CB];
#pragma unroll
        for (int c = 0; c < CB; c++) {
            const vec b = (vec)(has_bias ? bias[co0 + c] : (real)0);
#pragma unroll
            for (int r = 0; r < RB; r++) {
                acc[r][c] = b;
            }
        }

        for (int i = i_lo; i < i_hi; i++) {
            __global const real* row = xg + (iy0 + i) * p.w;  // channel 0 of the group
            __global const real* wr[RB];
#pragma unroll
            for (int r = 0; r < RB; r++) {
                wr[r] = wg + (i - r * p.sh + pad_rows) * p.kw * p.cog;
            }
            // Whether loads may reach from row[base] to row[base + kw - 1 + reach - 1] in
            // every channel's plane.
            const int at = (int)(row - x) + base;
            const bool safe =
                at >= 0 && at + (p.cig - 1) * plane_in + p.kw - 1 + reach <= p.src_len;
            const int hi = safe ? kx_hi : kx_hi_strict;
// Tap kx where its segment crosses the padding: masked where the buffer allows.
#define FORWARD_EDGE                                                                        \
    do {                                                                                    \
        const int i0 = base + kx;                                                           \
        if (safe) {                                                                         \
            FORWARD_TAP(load_masked(xr, i0, STEP, p.w));                                    \
        } else {                                                                            \
            FORWARD_TAP(gather_row(xr, i0, STEP, p.w));                                     \
        }                                                                                   \
    } while (0)

            int kx = 0;
            for (; kx < kx_lo; kx++) {
                FORWARD_EDGE;
            }
            for (; kx < hi; kx++) {
                FORWARD_TAP(load_row(xr, base + kx, STEP));
            }
            for (; kx < p.kw; kx++) {
                FORWARD_EDGE;
            }
        }

#pragma unroll
        for (int r = 0; r < RB; r++) {
            if (r < rows) {
#pragma unroll
                for (int c = 0; c < CB; c++) {
                    store_row(yrow + c * plane_out + r * p.wo + ox0, acc[r][c], nvalid, 1);
                }
            }
        }
    }
}
#endif

#ifdef CONV_DATA_GRAD
// dx[n, ci, iy, ix] = sum over the (co, ky, kx) with iy + top - ky = oy*sh, ix + left - kx =
// ox*sw, 0 <= oy < Ho, 0 <= ox < Wo, of w[co, ci, ky, kx] * dy[n, co, oy, ox]: the transposed
// convolution written as a gather over the outputs that read each input element.
//
// Work-item (n*C_in/CB + cb)*rblocks + rb: input channels cb*CB .. cb*CB+CB-1 (one group) at
// rows rb*RB .. rb*RB+RB-1, one column segment after the other: segment (phase, b) holds the
// columns ix_j = phase + sw*(b*VW + j). All columns of one phase (ix mod sw) take the same taps
// kx = kx_first + m*sw (kx_first = phase + left mod sw), and for such a tap the output columns
// they read, ox_j = ox_first - m + j (ox_first = (phase + left)/sw + b*VW), are consecutive:
// one vector load of a dy row per tap, whatever the stride. The loops run over the dy rows oy
// that reach the work-item's rows, then taps, then output channels co innermost (as in the
// forward: one choice of load per (oy, tap)); a dy row feeds row r through kernel row
// ky = iy0 + r + top - oy*sh. `wd` is the weight permuted to (G, C_out/G, KH + 2*(RB-1), KW,
// C_in/G): the CB weights of a tap adjacent, and RB-1 rows of zeros above and below each kernel.
__kernel void conv2d_data_grad(__global const real* dy, __global const real* wd,
                               __global real* dx, const ConvParams p) {
    const int rblocks = (p.h + RB - 1) / RB;
    const int gid = get_global_id(0);
    const int rb = gid % rblocks;
    const int z = gid / rblocks;
    const int cblocks = p.c_in / CB;
    if (z >= p.n * cblocks) {
        return;
    }
    const int n = z / cblocks;
    const int ci0 = (z - n * cblocks) * CB;
    const int g = ci0 / p.cig;
    const int iy0 = rb * RB;
    const int rows = min(RB, p.h - iy0);
    const int kernel_len = (p.kh + 2 * (RB - 1)) * p.kw * p.cig;  // one padded kernel
    const int plane_in = p.h * p.w;
    const int plane_out = p.ho * p.wo;
    // dy rows oy with 0 <= iy0 + r + top - oy*sh < KH for some row r.
    const int qy = iy0 + p.top;
    const int oy_lo = max(0, qy - p.kh + p.sh) / p.sh;
    const int oy_hi = min(p.ho - 1, (qy + rows - 1) / p.sh);
    __global const real* wg = wd + g * p.cog * kernel_len + (ci0 - g * p.cig);
    __global const real* dyg = dy + (n * p.c_out + g * p.cog) * plane_out;
    __global real* dxrow = dx + ((n * p.c_in + ci0) * p.h + iy0) * p.w;

// For every output channel (its dy row at dr): segment LOAD of tap m into all accumulators.
#define DATA_TAP(LOAD)                                                                      \
    do {                                                                                    \
        const int kx = kx_first + m * p.sw;                                                 \
        __global const real* dr = row;                                                      \
        __global const real* wp[RB];                                                        \
        _Pragma("unroll") for (int r = 0; r < RB; r++) {                                    \
            wp[r] = wr[r] + kx * p.cig;                                                     \
        }                                                                                   \
        for (int co = 0; co < (ONE_CHANNEL ? 1 : p.cog); co++) {                            \
            const vec dv = LOAD;                                                            \
            _Pragma("unroll") for (int r = 0; r < RB; r++) {                                \
                _Pragma("unroll") for (int c = 0; c < CB; c++) {                            \
                    acc[r][c] += wp[r][c] * dv;                                             \
                }                                                                           \
                wp[r] += kernel_len;                                                        \
            }                                                                               \
            dr += plane_out;                                                                \
        }                                                                                   \
    } while (0)

    for (int phase = 0; phase < p.sw; phase++) {
        const int count = (p.w - phase + p.sw - 1) / p.sw;  // columns in this phase
        const int qx = phase + p.left;
        const int kx_first = qx % p.sw;
        const int taps = kx_first < p.kw ? (p.kw - kx_first + p.sw - 1) / p.sw : 0;
        for (int b = 0; b * VW < count; b++) {
            const int nvalid = min(VW, count - b * VW);
            const int ox_first = qx / p.sw + b * VW;
            // Taps m_lo .. m_hi-1 read their needed lanes inside the row.
            const int m_hi = clamp(ox_first + 1, 0, taps);
            const int m_lo = clamp(ox_first + nvalid - p.wo, 0, m_hi);
            const int m_lo_strict = clamp(ox_first + VW - p.wo, m_lo, m_hi);

            vec acc[RB][CB];
#pragma unroll
            for (int r = 0; r < RB; r++) {
#pragma unroll
                for (int c = 0; c < CB; c++) {
                    acc[r][c] = (vec)(real)0;
                }
            }

            for (int oy = oy_lo; oy <= oy_hi; oy++) {
                __global const real* row = dyg + oy * p.wo;  // output channel 0 of the group
                __global const real* wr[RB];
#pragma unroll
                for (int r = 0; r < RB; r++) {
                    wr[r] = wg + (qy + r - oy * p.sh + RB - 1) * p.kw * p.cig;
                }
                // Whether loads may reach from row[ox_first - taps + 1] to
                // row[ox_first + VW - 1] in every channel's plane.
                const int at = (int)(row - dy) + ox_first;
                const bool safe =
                    at - taps >= 0 && at + (p.cog - 1) * plane_out + VW <= p.src_len;
                const int lo = safe ? m_lo : m_lo_strict;
// Tap m where its segment crosses an end of the row: masked where the buffer allows.
#define DATA_EDGE                                                                           \
    do {                                                                                    \
        const int o0 = ox_first - m;                                                        \
        if (safe) {                                                                         \
            DATA_TAP(load_masked(dr, o0, 1, p.wo));                                         \
        } else {                                                                            \
            DATA_TAP(gather_row(dr, o0, 1, p.wo));                                          \
        }                                                                                   \
    } while (0)

                int m = 0;
                for (; m < lo; m++) {
                    DATA_EDGE;
                }
                for (; m < m_hi; m++) {
                    DATA_TAP(vload8(0, dr + ox_first - m));
                }
                for (; m < taps; m++) {
                    DATA_EDGE;
                }
            }

            __global real* dst = dxrow + phase + p.sw * b * VW;
#pragma unroll
            for (int r = 0; r < RB; r++) {
                if (r < rows) {
#pragma unroll
                    for (int c = 0; c < CB; c++) {
                        store_row(dst + c * plane_in + r * p.w, acc[r][c], nvalid, p.sw);
                    }
                }
            }
        }
    }
}
#endif

#ifdef CONV_WEIGHT_GRAD
// dw[co, ci, ky, kx] = sum_{n, oy, ox} dy[n, co, oy, ox] * x[n, g*cig + ci, iy, ix].
//
// Work-item ((s*C_out/CB + cb)*KH + ky)*ublocks + ub: output channels cb*CB .. cb*CB+CB-1
// (one group) times TB input vectors of kernel row ky, summed over the samples of chunk s.
// The input vectors of a row are the pairs u = ci*KW + kx (input channel ci shifted by tap
// kx), TB consecutive ones per work-item; the last block repeats the final pair and stores it
// once. The sum runs over samples, rows and column segments in that order with one vector
// accumulator per (channel, pair), whose lanes are added in a fixed order at the end: a dy
// segment is loaded once for TB pairs, an x segment once for CB channels. With one chunk the
// sums go straight to dw; otherwise to partial sums (chunk-major) that conv2d_sum_chunks adds
// in order.
__kernel void conv2d_weight_grad(__global const real* dy, __global const real* x,
                                 __global real* out, const ConvParams p) {
    const int npairs = p.cig * p.kw;
    const int ublocks = (npairs + TB - 1) / TB;
    const int gid = get_global_id(0);
    const int ub = gid % ublocks;
    const int ky = gid / ublocks % p.kh;
    const int z = gid / ublocks / p.kh;
    const int cblocks = p.c_out / CB;
    if (z >= p.chunks * cblocks) {
        return;
    }
    const int s = z / cblocks;
    const int co0 = (z - s * cblocks) * CB;
    const int g = co0 / p.cog;
    const int plane_in = p.h * p.w;
    const int plane_out = p.ho * p.wo;

    // Pair t reads input channel g*cig + cis[t] shifted by kxs[t] - left columns.
    int cis[TB];
    int kxs[TB];
    int kx_min = p.kw;
    int kx_max = 0;
#pragma unroll
    for (int t = 0; t < TB; t++) {
        const int u = min(ub * TB + t, npairs - 1);
        cis[t] = u / p.kw;
        kxs[t] = u - cis[t] * p.kw;
        kx_min = min(kx_min, kxs[t]);
        kx_max = max(kx_max, kxs[t]);
    }
    const int shift_lo = kx_min - p.left;
    const int shift_hi = kx_max - p.left;
    const int reach = VW * STEP;
    const int dy_len = p.n * p.c_out * plane_out;

    vec acc[CB][TB];
#pragma unroll
    for (int c = 0; c < CB; c++) {
#pragma unroll
        for (int t = 0; t < TB; t++) {
            acc[c][t] = (vec)(real)0;
        }
    }

    // Output rows whose input row oy*sh + ky - top lies inside the input.
    const int dtop = p.top - ky;
    const int oy_lo = dtop > 0 ? (dtop + p.sh - 1) / p.sh : 0;
    const int oy_hi = p.w > 0 && p.h + dtop > 0 ? min(p.ho, (p.h + dtop + p.sh - 1) / p.sh) : 0;
    const int n0 = s * p.chunk;
    const int n1 = min(p.n, n0 + p.chunk);

    for (int n = n0; n < n1; n++) {
        for (int oy = oy_lo; oy < oy_hi; oy++) {
            // Offset of row iy of channel g*cig in sample n; pair t adds cis[t] planes.
            const int xrow = (n * p.c_in + g * p.cig) * plane_in + (oy * p.sh - dtop) * p.w;
            const int dyoff = ((n * p.c_out + co0) * p.ho + oy) * p.wo;
            __global const real* dyrow = dy + dyoff;
            // Whether masked loads of this row stay inside x and dy.
            const int first = xrow + cis[0] * plane_in + shift_lo;
            const int last = xrow + cis[TB - 1] * plane_in + shift_hi + (p.blocks - 1) * reach + reach;
            const bool safe = first >= 0 && last <= p.src_len &&
                              dyoff + (CB - 1) * plane_out + p.blocks * VW <= dy_len;
            for (int bx = 0; bx < p.blocks; bx++) {
                const int ox0 = bx * VW;
                const int nvalid = min(VW, p.wo - ox0);
                const int i0 = ox0 * STEP;
                vec dv[CB];
                vec xv[TB];
                // dy is zero past the last output column, so x lanes there may hold anything
                // (finite) read from the buffer.
#pragma unroll
                for (int c = 0; c < CB; c++) {
                    __global const real* d = dyrow + c * plane_out;
                    dv[c] = nvalid == VW ? vload8(0, d + ox0)
                          : safe         ? load_masked(d, ox0, 1, p.wo)
                                         : gather_row(d, ox0, 1, p.wo);
                }
                if (i0 + shift_lo >= 0 && i0 + shift_hi + (nvalid - 1) * STEP < p.w &&
                    (safe || i0 + shift_hi + reach <= p.w)) {
#pragma unroll
                    for (int t = 0; t < TB; t++) {
                        xv[t] = load_row(x + xrow + cis[t] * plane_in, i0 + kxs[t] - p.left, STEP);
                    }
                } else if (safe) {
#pragma unroll
                    for (int t = 0; t < TB; t++) {
                        xv[t] = load_masked(x + xrow + cis[t] * plane_in, i0 + kxs[t] - p.left,
                                            STEP, p.w);
                    }
                } else {
#pragma unroll
                    for (int t = 0; t < TB; t++) {
                        xv[t] = gather_row(x + xrow + cis[t] * plane_in, i0 + kxs[t] - p.left,
                                           STEP, p.w);
                    }
                }
#pragma unroll
                for (int c = 0; c < CB; c++) {
#pragma unroll
                    for (int t = 0; t < TB; t++) {
                        acc[c][t] += dv[c] * xv[t];
                    }
                }
            }
        }
    }

    const int kk = p.kh * p.kw;
    const int wnumel = p.c_out * p.cig * kk;
#pragma unroll
    for (int t = 0; t < TB; t++) {
        // A repeated pair (clamped above) is stored by its first occurrence only.
        if (ub * TB + t < npairs) {
#pragma unroll
            for (int c = 0; c < CB; c++) {
                out[s * wnumel + ((co0 + c) * p.cig + cis[t]) * kk + ky * p.kw + kxs[t]] =
                    lane_sum(acc[c][t]);
            }
        }
    }
}
#endif

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

#ifdef CONV_ITEMS
// GPU-shaped variants (selected by `device::gpu_shaped`): an element per work-item for the
// forward and the data gradient, consecutive work-items on consecutive columns (coalesced
// loads and stores), each element's terms added in a fixed order; and for the weight
// gradient a work-group of WG_DW work-items per weight element, each summing a strided share
// of the (sample, row, column) positions, then a fixed-order tree in local memory. The same
// sums as the row kernels, grouped differently: they agree to rounding.

// y[n, co, oy, ox], work-item ((n*C_out + co)*Ho + oy)*Wo + ox; the sum over (ci, ky, kx) in
// that order.
__kernel void conv2d_forward_items(__global const real* restrict x,
                                   __global const real* restrict w,
                                   __global const real* restrict bias, const int has_bias,
                                   __global real* restrict y, const ConvParams p) {
    const int id = get_global_id(0);
    if (id >= p.n * p.c_out * p.ho * p.wo) {
        return;
    }
    const int ox = id % p.wo;
    const int oy = id / p.wo % p.ho;
    const int co = id / p.wo / p.ho % p.c_out;
    const int n = id / p.wo / p.ho / p.c_out;
    const int g = co / p.cog;
    real acc = has_bias ? bias[co] : (real)0;
    for (int ci = 0; ci < p.cig; ci++) {
        __global const real* plane = x + (n * p.c_in + g * p.cig + ci) * p.h * p.w;
        __global const real* wk = w + (co * p.cig + ci) * p.kh * p.kw;
        for (int ky = 0; ky < p.kh; ky++) {
            const int iy = oy * p.sh + ky - p.top;
            if (iy < 0 || iy >= p.h) {
                continue;
            }
            for (int kx = 0; kx < p.kw; kx++) {
                const int ix = ox * p.sw + kx - p.left;
                if (ix >= 0 && ix < p.w) {
                    acc += wk[ky * p.kw + kx] * plane[iy * p.w + ix];
                }
            }
        }
    }
    y[id] = acc;
}

// dx[n, ci, iy, ix], work-item ((n*C_in + ci)*H + iy)*W + ix: the sum over the output
// channels co of the group, then the taps (ky, kx) whose output position
// ((iy + top - ky)/sh, (ix + left - kx)/sw) exists, in that order.
__kernel void conv2d_data_grad_items(__global const real* restrict dy,
                                     __global const real* restrict w,
                                     __global real* restrict dx, const ConvParams p) {
    const int id = get_global_id(0);
    if (id >= p.n * p.c_in * p.h * p.w) {
        return;
    }
    const int ix = id % p.w;
    const int iy = id / p.w % p.h;
    const int c = id / p.w / p.h % p.c_in;
    const int n = id / p.w / p.h / p.c_in;
    const int g = c / p.cig;
    const int ci = c - g * p.cig;
    real acc = (real)0;
    for (int j = 0; j < p.cog; j++) {
        const int co = g * p.cog + j;
        __global const real* plane = dy + (n * p.c_out + co) * p.ho * p.wo;
        __global const real* wk = w + (co * p.cig + ci) * p.kh * p.kw;
        for (int ky = 0; ky < p.kh; ky++) {
            const int ty = iy + p.top - ky;
            if (ty < 0 || ty % p.sh != 0 || ty / p.sh >= p.ho) {
                continue;
            }
            for (int kx = 0; kx < p.kw; kx++) {
                const int tx = ix + p.left - kx;
                if (tx >= 0 && tx % p.sw == 0 && tx / p.sw < p.wo) {
                    acc += wk[ky * p.kw + kx] * plane[ty / p.sh * p.wo + tx / p.sw];
                }
            }
        }
    }
    dx[id] = acc;
}

#define WG_DW 64

// dw[co, ci, ky, kx], one work-group per element: item lid sums the positions lid,
// lid + WG_DW, ... of the (n, oy, ox) range whose input position exists, then the WG_DW
// partial sums go through a fixed-order tree (halving strides).
__kernel __attribute__((reqd_work_group_size(WG_DW, 1, 1)))
void conv2d_weight_grad_items(__global const real* restrict dy,
                              __global const real* restrict x, __global real* restrict dw,
                              const ConvParams p) {
    __local real part[WG_DW];
    const int e = get_group_id(0);
    const int lid = get_local_id(0);
    const int kx = e % p.kw;
    const int ky = e / p.kw % p.kh;
    const int ci = e / p.kw / p.kh % p.cig;
    const int co = e / p.kw / p.kh / p.cig;
    const int g = co / p.cog;
    const int positions = p.n * p.ho * p.wo;
    real acc = (real)0;
    for (int q = lid; q < positions; q += WG_DW) {
        const int ox = q % p.wo;
        const int oy = q / p.wo % p.ho;
        const int n = q / p.wo / p.ho;
        const int iy = oy * p.sh + ky - p.top;
        const int ix = ox * p.sw + kx - p.left;
        if (iy >= 0 && iy < p.h && ix >= 0 && ix < p.w) {
            acc += dy[((n * p.c_out + co) * p.ho + oy) * p.wo + ox] *
                   x[((n * p.c_in + g * p.cig + ci) * p.h + iy) * p.w + ix];
        }
    }
    part[lid] = acc;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = WG_DW / 2; s > 0; s /= 2) {
        if (lid < s) {
            part[lid] += part[lid + s];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0) {
        dw[e] = part[0];
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
