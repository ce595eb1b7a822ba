// Element-wise add (two inputs), add_n (three to eight inputs), mul and mul's two-gradient
// backward. Built with -D real=float|double (one source for f32 and f64).
//
// Work-item mapping: work-item i owns element i of the flat arrays, in every kernel here.
// PoCL (CPU) runs a work-group as a loop over its work-items and vectorises that loop, packing
// 8 to 16 consecutive work-items into AVX lanes, provided the kernel body has no divergent
// branch. Measured at SW-ResNet sizes (64 x 32 x 28 x 28 f32), explicit vectors per work-item
// (vload4/vstore4 over elements 4g .. 4g+3 plus a scalar tail) were slower: add 0.43 ms vs
// 0.25 ms, mul 0.40 vs 0.25 ms, add_n of four 0.40-0.44 vs 0.37 ms (7x7 maps: 0.076 vs
// 0.051 ms), because the tail branch defeats that vectoriser. On a GPU one element per
// work-item is the coalesced pattern anyway. So add_n loads all eight inputs and selects
// (`k > j ? acc + v : acc`) rather than branching on how many inputs are live: the branching
// form measured 2 to 3x slower (0.73 vs 0.39 ms; 7x7 maps 0.18 vs 0.06 ms).
//
// Every output element is written by exactly one work-item, and add_n sums in argument order
// x0 + x1 + ... + x7, the order of the CPU reference, so the results are bitwise reproducible
// and equal to the CPU's.

// add_n takes this many input buffers; a longer sum is chained by the host (see cl.rs).
#define MAX_INPUTS 8

// y = x0 + ... + x_{k-1}, 1 <= k <= 8 (the host uses add2 for a plain sum of two). The host
// passes x0 again for the unused inputs, so every load is in bounds; the loaded value is
// discarded by the select, which keeps the sum exact (adding a zero instead would turn -0
// into +0). y may be the same buffer as x0 (a chained pass): each work-item reads its element
// before writing it.
//
// With `relu` set the sum is activated as relu.cl's relu_forward does (NaN kept): the one pass
// of `add_relu` (relu/mod.rs), or its last pass.
__kernel void add_n(__global const real* x0, __global const real* x1,
                    __global const real* x2, __global const real* x3,
                    __global const real* x4, __global const real* x5,
                    __global const real* x6, __global const real* x7,
                    __global real* y, const uint k, const uint n, const uint relu) {
    const size_t i = get_global_id(0);
    if (i < n) {
        // All eight loads happen unconditionally (a load inside `?:` would be a branch).
        const real v1 = x1[i], v2 = x2[i], v3 = x3[i], v4 = x4[i];
        const real v5 = x5[i], v6 = x6[i], v7 = x7[i];
        real acc = x0[i];
        acc = k > 1 ? acc + v1 : acc;
        acc = k > 2 ? acc + v2 : acc;
        acc = k > 3 ? acc + v3 : acc;
        acc = k > 4 ? acc + v4 : acc;
        acc = k > 5 ? acc + v5 : acc;
        acc = k > 6 ? acc + v6 : acc;
        acc = k > 7 ? acc + v7 : acc;
        y[i] = (relu == 0 || acc > (real)0 || isnan(acc)) ? acc : (real)0;
    }
}

// y = a + b.
__kernel void add2(__global const real* a, __global const real* b, __global real* y,
                   const uint n) {
    const size_t i = get_global_id(0);
    if (i < n) {
        y[i] = a[i] + b[i];
    }
}

// y = a * b (also one gradient of mul: da = dy * b).
__kernel void mul(__global const real* a, __global const real* b, __global real* y,
                  const uint n) {
    const size_t i = get_global_id(0);
    if (i < n) {
        y[i] = a[i] * b[i];
    }
}

// Both gradients of y = a * b in one pass over dy: da = dy * b, db = dy * a.
__kernel void mul_backward(__global const real* dy, __global const real* a,
                           __global const real* b, __global real* da, __global real* db,
                           const uint n) {
    const size_t i = get_global_id(0);
    if (i < n) {
        const real g = dy[i];
        da[i] = g * b[i];
        db[i] = g * a[i];
    }
}
