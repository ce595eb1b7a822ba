// conv2d on OpenCL: forward, data gradient, weight gradient and bias gradient of a 2-D
// cross-correlation with stride, per-side zero padding and groups (see mod.rs for the maths).
//
// Built with -D real=float|double, -D ireal=int|long (the integer type of the same width, for
// lane masks), one of -D CONV_FORWARD / CONV_DATA_GRAD (here) / CONV_WEIGHT_GRAD
// (conv2d_weight_grad.cl) / CONV_POINTWISE / CONV_POINTWISE_WGRAD / CONV_UTIL
// (conv2d_products.cl) / CONV_DEPTHWISE (conv2d_depthwise.cl) / CONV_ITEMS (conv2d_items.cl),
// the files concatenated in that order after this one (a program holds only the kernels it is
// built for), and compile-time constants
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

// Mirrors ClParams in cl/mod.rs field for field: the geometry of the convolution, then what
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
