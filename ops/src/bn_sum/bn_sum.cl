// bn_sum: K <= 3 batch-norms summed, with a residual's channels added (and appended), then an
// optional relu, in one output pass; and its backward (see mod.rs for the maths). Appended to
// batch_norm.cl (one program: its statistics kernels, CHANNEL_FOR, the compensated and tree
// sums, FP_CONTRACT OFF), built with -D real=float|double and SEG.
//
// Every expression is the one the composed ops evaluate, in their order: a term is
// batch_norm.cl's `(z - mean) * (gamma * inv_std) + beta`, the sum is add_n's
// `((t0 + t1) + t2) + x`, relu is relu.cl's (NaN kept), its backward `out <= 0 ? 0 : dout`, and
// the channel sums walk CHANNEL_FOR exactly as bn_grad_sums does. So the fused op gives
// bitwise the composed ops' outputs and gradients (tests/parity_bn_sum.rs checks it).
//
// Layouts: the terms z_k are (N, R, H, W); the residual x and the output are (N, C, H, W) with
// output channel j < R the sum plus x[:, cmap[j]] and channel j >= R x[:, cmap[j]] alone (cmap a
// permutation of 0..C); without a residual the output is (N, R, H, W). The masked output
// gradient g is written in x's channel order (g channel cmap[j]), so that it is x's gradient
// as it stands; without a residual, in the output's.
//
// Work-item mapping as batch_norm.cl's: the element-wise kernels give an item one segment of
// SEG elements of one (image, output channel) plane, on a 2-D range (per, N * planes); the
// channel sums one work-group of WG items per channel j < R.

// Mirrors SumParams in cl.rs (u32 fields only).
typedef struct {
    uint n;      // batch
    uint r;      // channels of each term
    uint cout;   // channels of the output (C with a residual, else R)
    uint hw;     // H * W
    uint count;  // values per channel of the statistics, N * H * W
    uint k;      // terms, 1 to 3
    uint flags;  // SUM_* below
    uint pad;
} SumParams;

#define SUM_RESIDUAL 1u  // x is added (channels j < R) and appended (j >= R)
#define SUM_RELU 2u      // the output is activated
#define SUM_TRAIN 4u     // the statistics are the batch's (the training-mode input gradient)
#define SUM_NEED0 8u     // dz_0 is wanted (then dz_1, dz_2 at the next bits)

inline real sum_act(const real v, const uint flags) {
    return ((flags & SUM_RELU) == 0 || v > (real)0 || isnan(v)) ? v : (real)0;
}

// One term's value at element e of its plane: batch_norm.cl's bn_normalize.
#define TERM(z, m, scale, shift, e) (((z)[e] - (m)) * (scale) + (shift))

// y[b, j] = act(t_0 + ... + t_{k-1} [+ x[b, cmap[j]]]) for j < R; act(x[b, cmap[j]]) beyond.
__kernel void bn_sum_forward(__global const real* z0, __global const real* z1,
                             __global const real* z2, __global const real* mean0,
                             __global const real* mean1, __global const real* mean2,
                             __global const real* inv0, __global const real* inv1,
                             __global const real* inv2, __global const real* gamma0,
                             __global const real* gamma1, __global const real* gamma2,
                             __global const real* beta0, __global const real* beta1,
                             __global const real* beta2, __global const real* x,
                             __global const int* cmap, __global real* y, const SumParams p) {
    const uint q = get_global_id(0);
    const uint plane = get_global_id(1);
    const uint b = plane / p.cout, j = plane % p.cout;
    const uint off = q * SEG;
    const uint len = min((uint)SEG, p.hw - off);
    const size_t yb = (size_t)plane * p.hw + off;
    const uint res = p.flags & SUM_RESIDUAL;
    const size_t xb = res ? ((size_t)b * p.cout + (uint)cmap[j]) * p.hw + off : 0;
    if (j >= p.r) {
        for (uint i = 0; i < len; i++) {
            y[yb + i] = sum_act(x[xb + i], p.flags);
        }
        return;
    }
    const size_t zb = ((size_t)b * p.r + j) * p.hw + off;
    const real m0 = mean0[j], s0 = gamma0[j] * inv0[j], t0 = beta0[j];
    const real m1 = p.k > 1 ? mean1[j] : (real)0, s1 = p.k > 1 ? gamma1[j] * inv1[j] : (real)0;
    const real t1 = p.k > 1 ? beta1[j] : (real)0;
    const real m2 = p.k > 2 ? mean2[j] : (real)0, s2 = p.k > 2 ? gamma2[j] * inv2[j] : (real)0;
    const real t2 = p.k > 2 ? beta2[j] : (real)0;
    // One plain loop per (terms, residual) combination: a load under a condition inside the
    // loop (`res ? acc + x[e] : acc`) keeps the compiler from vectorising it, which made this
    // pass slower than the composed ops' three normalisations and add_n together.
#define T0 TERM(z0, m0, s0, t0, zb + i)
#define T1 TERM(z1, m1, s1, t1, zb + i)
#define T2 TERM(z2, m2, s2, t2, zb + i)
#define FORWARD_LOOP(EXPR)                                                            \
    for (uint i = 0; i < len; i++) {                                                  \
        y[yb + i] = sum_act(EXPR, p.flags);                                           \
    }
    if (res) {
        if (p.k == 1) {
            FORWARD_LOOP(T0 + x[xb + i])
        } else if (p.k == 2) {
            FORWARD_LOOP((T0 + T1) + x[xb + i])
        } else {
            FORWARD_LOOP(((T0 + T1) + T2) + x[xb + i])
        }
    } else {
        if (p.k == 1) {
            FORWARD_LOOP(T0)
        } else if (p.k == 2) {
            FORWARD_LOOP(T0 + T1)
        } else {
            FORWARD_LOOP((T0 + T1) + T2)
        }
    }
#undef FORWARD_LOOP
#undef T0
#undef T1
#undef T2
}

// The channel of g that holds output channel j: cmap[j] with a residual, else j.
inline uint g_channel(__global const int* cmap, const uint j, const uint flags) {
    return (flags & SUM_RESIDUAL) ? (uint)cmap[j] : j;
}

// g = relu ? (out <= 0 ? 0 : dout) : dout, written at g's channel of output channel j.
__kernel void bn_sum_mask(__global const real* dout, __global const real* out,
                          __global const int* cmap, __global real* g, const SumParams p) {
    const uint q = get_global_id(0);
    const uint plane = get_global_id(1);
    const uint b = plane / p.cout, j = plane % p.cout;
    const uint off = q * SEG;
    const uint len = min((uint)SEG, p.hw - off);
    const size_t ob = (size_t)plane * p.hw + off;
    const size_t gb = ((size_t)b * p.cout + g_channel(cmap, j, p.flags)) * p.hw + off;
    if (p.flags & SUM_RELU) {
        for (uint i = 0; i < len; i++) {
            // Both loads unconditional (a load under the select would be a branch).
            const real d = dout[ob + i], o = out[ob + i];
            g[gb + i] = o <= (real)0 ? (real)0 : d;
        }
    } else {
        for (uint i = 0; i < len; i++) {
            g[gb + i] = dout[ob + i];
        }
    }
}

// Per channel j < R (one work-group each): sum g (= every term's dbeta, written k times) and
// sum g * xhat_k (= dgamma_k), as bn_grad_sums computes them for each term alone. CHANNEL_FOR
// walks the term's (N, R) layout; g's element sits at the same offset of its own plane.
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void bn_sum_grad_sums(__global const real* g, __global const int* cmap,
                      __global const real* z0, __global const real* z1,
                      __global const real* z2, __global const real* mean0,
                      __global const real* mean1, __global const real* mean2,
                      __global const real* inv0, __global const real* inv1,
                      __global const real* inv2, __global real* sdy0, __global real* sdy1,
                      __global real* sdy2, __global real* sdx0, __global real* sdx1,
                      __global real* sdx2, const SumParams p) {
    __local real part_dy[WG], part_dy_lo[WG];
    __local real part_x0[WG], part_x1[WG], part_x2[WG];
    const uint lid = get_local_id(0);
    const uint c = get_group_id(0);
    const BnParams bp = {(real)0, (real)0, (real)0, (real)0, p.n, p.r, p.hw, p.count};
    // g's plane of image b starts this far from the term's plane (elements): its channel
    // count is cout and its channel g_channel(c).
    const long gc = (long)g_channel(cmap, c, p.flags);
    const long img_shift = ((long)p.cout - (long)p.r) * (long)p.hw;
    const long ch_shift = (gc - (long)c) * (long)p.hw;
    const real m0 = mean0[c], i0 = inv0[c];
    const real m1 = p.k > 1 ? mean1[c] : (real)0, i1 = p.k > 1 ? inv1[c] : (real)0;
    const real m2 = p.k > 2 ? mean2[c] : (real)0, i2 = p.k > 2 ? inv2[c] : (real)0;

    real dy_hi[LANES] = ZERO_LANES, dy_lo[LANES] = ZERO_LANES;
    real x0[LANES] = ZERO_LANES, x1[LANES] = ZERO_LANES, x2[LANES] = ZERO_LANES;
    // One CHANNEL_FOR per term count (no condition inside the loop, as in the forward).
#define GV g[(size_t)((long)idx + (long)(seg / per) * img_shift + ch_shift)]
#define SUM_TERM(acc, z, m, iv) acc[lane] += gv * (((z)[idx] - (m)) * (iv))
    if (p.k == 1) {
        CHANNEL_FOR(bp, c, lid, {
            const real gv = GV;
            two_sum_add(&dy_hi[lane], &dy_lo[lane], gv);
            SUM_TERM(x0, z0, m0, i0);
        });
    } else if (p.k == 2) {
        CHANNEL_FOR(bp, c, lid, {
            const real gv = GV;
            two_sum_add(&dy_hi[lane], &dy_lo[lane], gv);
            SUM_TERM(x0, z0, m0, i0);
            SUM_TERM(x1, z1, m1, i1);
        });
    } else {
        CHANNEL_FOR(bp, c, lid, {
            const real gv = GV;
            two_sum_add(&dy_hi[lane], &dy_lo[lane], gv);
            SUM_TERM(x0, z0, m0, i0);
            SUM_TERM(x1, z1, m1, i1);
            SUM_TERM(x2, z2, m2, i2);
        });
    }
#undef SUM_TERM
#undef GV
    LANES_PAIR_SUM(dy_hi, dy_lo);
    part_dy[lid] = dy_hi[0];
    part_dy_lo[lid] = dy_lo[0];
    part_x0[lid] = lanes_sum(x0);
    part_x1[lid] = lanes_sum(x1);
    part_x2[lid] = lanes_sum(x2);
    TREE_PAIR_SUM(part_dy, part_dy_lo, lid);
    TREE_SUM(part_x0, lid);
    TREE_SUM(part_x1, lid);
    TREE_SUM(part_x2, lid);
    if (lid == 0) {
        const real sdy = part_dy[0] + part_dy_lo[0];
        sdy0[c] = sdy;
        sdx0[c] = part_x0[0];
        if (p.k > 1) {
            sdy1[c] = sdy;
            sdx1[c] = part_x1[0];
        }
        if (p.k > 2) {
            sdy2[c] = sdy;
            sdx2[c] = part_x2[0];
        }
    }
}

// One term's input gradients over the work-item's segment, from g's elements: training
// mode bn_grad_input_train's `kk * (count * dy - sum_dy - xhat * sum_dy_xhat)`, evaluation
// bn_grad_input_eval's `dy * kk`; the mode is chosen outside the loop.
#define TERM_GRAD(dz, z, m, s, kk, sdyx)                                              \
    if (train) {                                                                      \
        for (uint i = 0; i < len; i++) {                                              \
            const real xhat = ((z)[zb + i] - (m)) * (s);                              \
            (dz)[zb + i] = (kk) * (count * g[gb + i] - sdy - xhat * (sdyx));          \
        }                                                                             \
    } else {                                                                          \
        for (uint i = 0; i < len; i++) {                                              \
            (dz)[zb + i] = g[gb + i] * (kk);                                          \
        }                                                                             \
    }

// dz_k for every wanted term, one segment of plane (b, j), j < R, per work-item.
__kernel void bn_sum_grad_input(__global const real* g, __global const int* cmap,
                                __global const real* z0, __global const real* z1,
                                __global const real* z2, __global const real* mean0,
                                __global const real* mean1, __global const real* mean2,
                                __global const real* inv0, __global const real* inv1,
                                __global const real* inv2, __global const real* gamma0,
                                __global const real* gamma1, __global const real* gamma2,
                                __global const real* sum_dy, __global const real* sdx0,
                                __global const real* sdx1, __global const real* sdx2,
                                __global real* dz0, __global real* dz1, __global real* dz2,
                                const SumParams p) {
    const uint q = get_global_id(0);
    const uint plane = get_global_id(1);
    const uint b = plane / p.r, j = plane % p.r;
    const uint off = q * SEG;
    const uint len = min((uint)SEG, p.hw - off);
    const size_t zb = (size_t)plane * p.hw + off;
    const size_t gb = ((size_t)b * p.cout + g_channel(cmap, j, p.flags)) * p.hw + off;
    const bool train = (p.flags & SUM_TRAIN) != 0;
    const real count = (real)p.count;
    const real sdy = sum_dy[j];
    // The per-channel factor: gamma * inv_std / count (training) or gamma * inv_std.
    #define FACTOR(gm, iv) (train ? (gm)[j] * (iv)[j] / count : (gm)[j] * (iv)[j])
    if (p.flags & SUM_NEED0) {
        const real m = mean0[j], s = inv0[j], kk = FACTOR(gamma0, inv0), sx = sdx0[j];
        TERM_GRAD(dz0, z0, m, s, kk, sx);
    }
    if (p.k > 1 && (p.flags & (SUM_NEED0 << 1))) {
        const real m = mean1[j], s = inv1[j], kk = FACTOR(gamma1, inv1), sx = sdx1[j];
        TERM_GRAD(dz1, z1, m, s, kk, sx);
    }
    if (p.k > 2 && (p.flags & (SUM_NEED0 << 2))) {
        const real m = mean2[j], s = inv2[j], kk = FACTOR(gamma2, inv2), sx = sdx2[j];
        TERM_GRAD(dz2, z2, m, s, kk, sx);
    }
    #undef FACTOR
}
