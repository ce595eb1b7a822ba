// global_avg_pool: y[plane] = (sum of the plane's HW values) / HW, and its backward
// dx[plane, i] = dy[plane] / HW. Built with -D real=float|double.
//
// Both kernels: one work-item per (n, c) plane, looping over the plane's HW contiguous values
// (HW is small where this op is used: the 7x7 or 8x8 maps at the head of a network). The
// loop's trip count is the same for every item, which lets PoCL vectorise across items; one
// work-item per element of dx with a 2-D index was several times slower there.
// gap_forward sums the plane into LANES compensated partial sums (element i into lane
// i % LANES; two_sum_add), added in a fixed order at the end: independent lanes let the
// compiler vectorise and hide the latency of the additions (one dependent chain ran 5x
// slower on PoCL). gap_backward writes the plane's HW copies of dy / HW.

// Every operation rounds as written (no fused multiply-add), as two_sum_add requires.
#pragma OPENCL FP_CONTRACT OFF

// Compensated summation: the sum is hi + lo, lo collecting the exact rounding error of each
// addition into hi (Knuth's TwoSum), so a plane whose values cancel keeps its digits, as the
// CPU reference's f64 accumulation does.
inline void two_sum_add(real* hi, real* lo, const real v) {
    const real s = *hi + v;
    const real v_part = s - *hi;
    *lo += (*hi - (s - v_part)) + (v - v_part);
    *hi = s;
}

#define LANES 8

__kernel void gap_forward(__global const real* x, __global real* y, const uint planes,
                          const uint hw) {
    const uint plane = get_global_id(0);
    if (plane < planes) {
        __global const real* row = x + (size_t)plane * hw;
        real hi[LANES], lo[LANES];
        for (uint k = 0; k < LANES; k++) {
            hi[k] = (real)0;
            lo[k] = (real)0;
        }
        uint i = 0;
        for (; i + LANES <= hw; i += LANES) {
            for (uint k = 0; k < LANES; k++) {
                two_sum_add(&hi[k], &lo[k], row[i + k]);
            }
        }
        for (uint k = 0; i < hw; i++, k++) {
            two_sum_add(&hi[k], &lo[k], row[i]);
        }
        // Fixed pairwise order: lanes k and k + w, for w = 4, 2, 1.
        for (uint w = LANES / 2; w > 0; w >>= 1) {
            for (uint k = 0; k < w; k++) {
                two_sum_add(&hi[k], &lo[k], hi[k + w]);
                lo[k] += lo[k + w];
            }
        }
        y[plane] = (hi[0] + lo[0]) / (real)hw;
    }
}

__kernel void gap_backward(__global const real* dy, __global real* dx, const uint planes,
                           const uint hw, const real scale) {
    const uint plane = get_global_id(0);
    if (plane < planes) {
        __global real* row = dx + (size_t)plane * hw;
        const real v = dy[plane] * scale;
        for (uint i = 0; i < hw; i++) {
            row[i] = v;
        }
    }
}
