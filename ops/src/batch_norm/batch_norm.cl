// batch_norm2d on an NCHW tensor: per-channel statistics, the affine normalisation, and the
// backward (see mod.rs for the maths). Built with -D real=float|double.
//
// The unit of work is a SEGMENT: up to SEG contiguous elements of one (n, c) plane. A plane
// of HW elements has per = ceil(HW / SEG) segments; segment q of plane `plane` covers
// elements [q*SEG, min(q*SEG + SEG, HW)) of it. Every work-item loops over whole segments, so
// its inner loop runs along contiguous memory (a kernel with one element per work-item and a
// 2-D index ran 10x slower on PoCL). PoCL vectorises the element-wise loops in part and
// compiles the reductions' loop over their LANES partial sums to scalar instructions (seen in
// its kernel cache); a vector form of the reductions (the LANES sums as one vector, bitwise
// the same results) measured no faster in the network (bn_grad_sums 17.9-20.3 ms per step
// against 17.5-19.7, bn_train_stats 10.8-12.9 against 10.6-12.8, 3 alternated runs of
// `shiftgrad profile`): they wait on memory, so the scalar form stayed. Indices
// inside a run are size_t, so the compiler can see that they are consecutive (a 32-bit
// index may wrap, which blocks vector loads).
//
// Work-item mapping:
// * bn_train_stats, bn_grad_sums: ONE WORK-GROUP PER CHANNEL, WG items (global = C * WG).
//   Channel c has N * per segments (plane b = s / per, piece q = s % per); item lid takes
//   segments lid, lid + WG, lid + 2*WG, ... Within a segment, element i goes to partial sum
//   lane i % LANES (LANES independent accumulators, which the compiler can keep in one vector
//   register). Each item then adds its lanes in a fixed pairwise order, and the WG item sums
//   are added by an 8-ary tree in local memory (TREE_SUM). The order of every addition
//   depends on the shape only, so the results are bitwise reproducible; there are no
//   atomics. The sums of exact inputs that can cancel (sum x for the mean, sum dy) are
//   compensated: see two_sum_add.
// * bn_eval_stats: one work-item per channel.
// * bn_normalize, bn_grad_input_train, bn_grad_input_eval: a 2-D range (per, N*C); item
//   (q, plane) owns segment q of the plane and writes its elements, nothing else.

// Every operation rounds as written (no fused multiply-add): the compensated sums below rely
// on it, and the kernels then compute what the comments say.
#pragma OPENCL FP_CONTRACT OFF

#define WG 64
#ifndef SEG
#define SEG 64  // 1 for the GPU-shaped form (cl.rs): an element per work-item
#endif
#define LANES 8

// Mirrors BnParams in cl.rs (widest fields first, no padding).
typedef struct {
    real eps;       // added to the variance
    real momentum;  // weight of the batch statistic in the running average
    real keep;      // 1 - momentum
    real bessel;    // count / (count - 1), unbiasing the running variance
    uint n;         // batch
    uint c;         // channels
    uint hw;        // H * W
    uint count;     // N * H * W, elements per channel
} BnParams;

// Runs STMT for every element of channel ch that work-item lid owns (see above), with `idx`
// the element's flat index and `lane` its partial sum. A macro, so that each kernel's loop
// stays a plain loop around its own statement.
#define CHANNEL_FOR(p, ch, lid, STMT)                                                 \
    {                                                                                 \
        const uint per = ((p).hw + SEG - 1) / SEG;                                    \
        for (uint seg = (lid); seg < (p).n * per; seg += WG) {                        \
            const uint q = seg % per;                                                 \
            const uint base = ((seg / per) * (p).c + (ch)) * (p).hw + q * SEG;        \
            const uint len = min((uint)SEG, (p).hw - q * SEG);                        \
            uint i = 0;                                                               \
            for (; i + LANES <= len; i += LANES) {                                    \
                const size_t run = (size_t)(base + i);                                \
                for (uint lane = 0; lane < LANES; lane++) {                           \
                    const size_t idx = run + lane;                                    \
                    STMT;                                                             \
                }                                                                     \
            }                                                                         \
            for (uint lane = 0; i < len; i++, lane++) {                               \
                const size_t idx = (size_t)(base + i);                                \
                STMT;                                                                 \
            }                                                                         \
        }                                                                             \
    }

// The first element and the end of segment get_global_id(0) of plane get_global_id(1), and
// the plane's channel; for the element-wise kernels.
#define SEGMENT_RANGE(p)                                                              \
    const uint q = get_global_id(0);                                                  \
    const uint plane = get_global_id(1);                                              \
    const uint c = plane % (p).c;                                                     \
    const uint start = plane * (p).hw + q * SEG;                                      \
    const uint end = plane * (p).hw + min(q * SEG + SEG, (p).hw);

// The sum of an item's LANES partial sums, in a fixed order.
inline real lanes_sum(const real* a) {
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

// Tree sum of part[0..WG) into part[0], visible to all items after it; every item of the
// group must reach it. The tree is 8-ary (WG = 64 = 8 * 8, two levels): item j < 8 adds
// part[8j .. 8j+7] in order into part[8j], then item 0 adds part[0], part[8], ..., part[56].
// Each level costs a barrier, which PoCL runs as a loop over the work-group, so two levels
// beat a binary tree's six.
#if WG != 64
#error "TREE_SUM and TREE_PAIR_SUM assume WG == 64"
#endif
#define TREE_SUM(part, lid)                                                           \
    barrier(CLK_LOCAL_MEM_FENCE);                                                     \
    if ((lid) < 8) {                                                                  \
        real t = part[(lid) * 8];                                                     \
        for (uint k = 1; k < 8; k++) {                                                \
            t += part[(lid) * 8 + k];                                                 \
        }                                                                             \
        part[(lid) * 8] = t;                                                          \
    }                                                                                 \
    barrier(CLK_LOCAL_MEM_FENCE);                                                     \
    if ((lid) == 0) {                                                                 \
        real t = part[0];                                                             \
        for (uint k = 1; k < 8; k++) {                                                \
            t += part[8 * k];                                                         \
        }                                                                             \
        part[0] = t;                                                                  \
    }                                                                                 \
    barrier(CLK_LOCAL_MEM_FENCE);

// Compensated summation: a running sum is the pair hi + lo, where lo collects the exact
// rounding error of every addition into hi (Knuth's TwoSum, exact in round-to-nearest as long
// as nothing is reassociated or fused, which OpenCL C does not do without fast-math options
// and FP_CONTRACT is off above). A sum that cancels to much less than its terms then keeps
// its digits: the CPU reference gets the same from accumulating in f64, which a device
// without fp64 cannot do.
inline void two_sum_add(real* hi, real* lo, const real v) {
    const real s = *hi + v;
    const real v_part = s - *hi;
    *lo += (*hi - (s - v_part)) + (v - v_part);
    *hi = s;
}

// (hi[0], lo[0]) = the compensated sum of the LANES pairs, in a fixed pairwise order
// (lanes k and k + 4, then k and k + 2, then 0 and 1), written out so that the arrays stay
// in registers.
#define LANES_PAIR_STEP(hi, lo, k, w)                                                 \
    two_sum_add(&hi[k], &lo[k], hi[(k) + (w)]);                                       \
    lo[k] += lo[(k) + (w)];
#define LANES_PAIR_SUM(hi, lo)                                                        \
    LANES_PAIR_STEP(hi, lo, 0, 4) LANES_PAIR_STEP(hi, lo, 1, 4)                       \
    LANES_PAIR_STEP(hi, lo, 2, 4) LANES_PAIR_STEP(hi, lo, 3, 4)                       \
    LANES_PAIR_STEP(hi, lo, 0, 2) LANES_PAIR_STEP(hi, lo, 1, 2)                       \
    LANES_PAIR_STEP(hi, lo, 0, 1)

// TREE_SUM of the pairs (hi[i], lo[i]), i < WG, into (hi[0], lo[0]), compensated.
#define TREE_PAIR_SUM(hi, lo, lid)                                                    \
    barrier(CLK_LOCAL_MEM_FENCE);                                                     \
    if ((lid) < 8) {                                                                  \
        real h = hi[(lid) * 8], l = lo[(lid) * 8];                                    \
        for (uint k = 1; k < 8; k++) {                                                \
            two_sum_add(&h, &l, hi[(lid) * 8 + k]);                                   \
            l += lo[(lid) * 8 + k];                                                   \
        }                                                                             \
        hi[(lid) * 8] = h;                                                            \
        lo[(lid) * 8] = l;                                                            \
    }                                                                                 \
    barrier(CLK_LOCAL_MEM_FENCE);                                                     \
    if ((lid) == 0) {                                                                 \
        real h = hi[0], l = lo[0];                                                    \
        for (uint k = 1; k < 8; k++) {                                                \
            two_sum_add(&h, &l, hi[8 * k]);                                           \
            l += lo[8 * k];                                                           \
        }                                                                             \
        hi[0] = h;                                                                    \
        lo[0] = l;                                                                    \
    }                                                                                 \
    barrier(CLK_LOCAL_MEM_FENCE);

#define ZERO_LANES {(real)0, (real)0, (real)0, (real)0, (real)0, (real)0, (real)0, (real)0}

// The two passes of the training statistics of channel c, by the work-group's WG items
// (every item must reach them: they end in barriers). CHANNEL_SUM: the compensated sum of x
// into the pair (part[0], part_lo[0]); CHANNEL_SQUARE_DEVIATIONS: sum (x - m)^2 into part[0].
#define CHANNEL_SUM(x, p, c, lid, part, part_lo)                                      \
    {                                                                                 \
        real hi[LANES] = ZERO_LANES, lo[LANES] = ZERO_LANES;                          \
        CHANNEL_FOR(p, c, lid, two_sum_add(&hi[lane], &lo[lane], x[idx]));            \
        LANES_PAIR_SUM(hi, lo);                                                       \
        part[lid] = hi[0];                                                            \
        part_lo[lid] = lo[0];                                                         \
        TREE_PAIR_SUM(part, part_lo, lid);                                            \
    }
#define CHANNEL_SQUARE_DEVIATIONS(x, p, c, lid, m, part)                              \
    {                                                                                 \
        real sq[LANES] = ZERO_LANES;                                                  \
        CHANNEL_FOR(p, c, lid, { const real d = x[idx] - (m); sq[lane] += d * d; });  \
        part[lid] = lanes_sum(sq);                                                    \
        TREE_SUM(part, lid);                                                          \
    }

// Training statistics of channel get_group_id(0): the mean, then the biased variance as the
// mean squared deviation from it (two passes: no E[x^2] - E[x]^2 cancellation). Item 0 writes
// mean and inv_std = 1 / sqrt(var + eps) and updates the running statistics in place.
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void bn_train_stats(__global const real* x, __global real* mean, __global real* inv_std,
                    __global real* running_mean, __global real* running_var, const BnParams p) {
    __local real part[WG];
    __local real part_lo[WG];
    const uint lid = get_local_id(0);
    const uint c = get_group_id(0);

    CHANNEL_SUM(x, p, c, lid, part, part_lo);
    const real m = (part[0] + part_lo[0]) / (real)p.count;
    barrier(CLK_LOCAL_MEM_FENCE);  // everyone has read part[0] before it is overwritten

    CHANNEL_SQUARE_DEVIATIONS(x, p, c, lid, m, part);
    if (lid == 0) {
        const real var = part[0] / (real)p.count;
        mean[c] = m;
        inv_std[c] = (real)1 / sqrt(var + p.eps);
        running_mean[c] = p.keep * running_mean[c] + p.momentum * m;
        running_var[c] = p.keep * running_var[c] + p.momentum * var * p.bessel;
    }
}

// Synchronised statistics (sync.rs): the two passes of bn_train_stats as separate kernels,
// so that the host can add every process's sums between them. bn_channel_sums writes the
// compensated sum of channel get_group_id(0) as the pair (sum_hi, sum_lo), which the host adds
// in f64; bn_channel_square_deviations writes sum (x - mean_c)^2 about the given mean.
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void bn_channel_sums(__global const real* x, __global real* sum_hi, __global real* sum_lo,
                     const BnParams p) {
    __local real part[WG];
    __local real part_lo[WG];
    const uint lid = get_local_id(0);
    const uint c = get_group_id(0);
    CHANNEL_SUM(x, p, c, lid, part, part_lo);
    if (lid == 0) {
        sum_hi[c] = part[0];
        sum_lo[c] = part_lo[0];
    }
}

__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void bn_channel_square_deviations(__global const real* x, __global const real* mean,
                                  __global real* sq_out, const BnParams p) {
    __local real part[WG];
    const uint lid = get_local_id(0);
    const uint c = get_group_id(0);
    const real m = mean[c];
    CHANNEL_SQUARE_DEVIATIONS(x, p, c, lid, m, part);
    if (lid == 0) {
        sq_out[c] = part[0];
    }
}

// Evaluation statistics: the running statistics as constants, one item per channel.
__kernel void bn_eval_stats(__global const real* running_mean, __global const real* running_var,
                            __global real* mean, __global real* inv_std, const BnParams p) {
    const uint c = get_global_id(0);
    if (c < p.c) {
        mean[c] = running_mean[c];
        inv_std[c] = (real)1 / sqrt(running_var[c] + p.eps);
    }
}

// y = (x - mean_c) * (gamma_c * inv_std_c) + beta_c.
__kernel void bn_normalize(__global const real* x, __global const real* mean,
                           __global const real* inv_std, __global const real* gamma,
                           __global const real* beta, __global real* y, const BnParams p) {
    SEGMENT_RANGE(p);
    const real m = mean[c], scale = gamma[c] * inv_std[c], shift = beta[c];
    for (uint idx = start; idx < end; idx++) {
        y[idx] = (x[idx] - m) * scale + shift;
    }
}

// Per channel (one work-group each): sum_dy = sum dy (= dbeta) and
// sum_dy_xhat = sum dy * xhat (= dgamma), xhat = (x - mean) * inv_std, both in one pass.
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void bn_grad_sums(__global const real* dy, __global const real* x, __global const real* mean,
                  __global const real* inv_std, __global real* sum_dy,
                  __global real* sum_dy_xhat, const BnParams p) {
    __local real part_dy[WG], part_dy_lo[WG];
    __local real part_dy_xhat[WG];
    const uint lid = get_local_id(0);
    const uint c = get_group_id(0);
    const real m = mean[c];
    const real s = inv_std[c];

    // sum dy is compensated (its terms are exact); each term of sum dy * xhat carries its own
    // rounding (xhat from the T mean and inv_std), so compensating that sum buys nothing.
    real dy_hi[LANES] = ZERO_LANES, dy_lo[LANES] = ZERO_LANES;
    real dyx[LANES] = ZERO_LANES;
    CHANNEL_FOR(p, c, lid, {
        const real g = dy[idx];
        two_sum_add(&dy_hi[lane], &dy_lo[lane], g);
        dyx[lane] += g * ((x[idx] - m) * s);
    });
    LANES_PAIR_SUM(dy_hi, dy_lo);
    part_dy[lid] = dy_hi[0];
    part_dy_lo[lid] = dy_lo[0];
    part_dy_xhat[lid] = lanes_sum(dyx);
    TREE_PAIR_SUM(part_dy, part_dy_lo, lid);
    TREE_SUM(part_dy_xhat, lid);
    if (lid == 0) {
        sum_dy[c] = part_dy[0] + part_dy_lo[0];
        sum_dy_xhat[c] = part_dy_xhat[0];
    }
}

// Training-mode input gradient:
// dx = gamma * inv_std / count * (count * dy - sum_dy - xhat * sum_dy_xhat).
__kernel void bn_grad_input_train(__global const real* dy, __global const real* x,
                                  __global const real* mean, __global const real* inv_std,
                                  __global const real* gamma, __global const real* sum_dy,
                                  __global const real* sum_dy_xhat, __global real* dx,
                                  const BnParams p) {
    SEGMENT_RANGE(p);
    const real count = (real)p.count;
    const real m = mean[c], s = inv_std[c];
    const real k = gamma[c] * s / count;
    const real sdy = sum_dy[c], sdyx = sum_dy_xhat[c];
    for (uint idx = start; idx < end; idx++) {
        const real xhat = (x[idx] - m) * s;
        dx[idx] = k * (count * dy[idx] - sdy - xhat * sdyx);
    }
}

// Evaluation-mode input gradient (constant statistics): dx = dy * (gamma * inv_std).
__kernel void bn_grad_input_eval(__global const real* dy, __global const real* inv_std,
                                 __global const real* gamma, __global real* dx,
                                 const BnParams p) {
    SEGMENT_RANGE(p);
    const real scale = gamma[c] * inv_std[c];
    for (uint idx = start; idx < end; idx++) {
        dx[idx] = dy[idx] * scale;
    }
}
