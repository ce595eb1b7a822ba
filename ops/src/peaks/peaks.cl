// The device's measured peaks for `shiftgrad bench`: multiply-add throughput and copy
// bandwidth. Built with -D real=float|double.
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
typedef CAT(real, 16) vec;

// Eight independent chains of vector multiply-adds per work-item, `iters` rounds: 8 * 16 * 2
// FLOPs per round. The result is written so that the compiler keeps the work.
__kernel void peak_fma(__global real* out, const int iters) {
    const size_t gid = get_global_id(0);
    const vec m = (vec)(real)0.999999;
    const vec c = (vec)(real)1e-7;
    vec a0 = (vec)((real)gid * (real)1e-9), a1 = a0 + c, a2 = a1 + c, a3 = a2 + c;
    vec a4 = a3 + c, a5 = a4 + c, a6 = a5 + c, a7 = a6 + c;
    for (int i = 0; i < iters; i++) {
        a0 = mad(a0, m, c);
        a1 = mad(a1, m, c);
        a2 = mad(a2, m, c);
        a3 = mad(a3, m, c);
        a4 = mad(a4, m, c);
        a5 = mad(a5, m, c);
        a6 = mad(a6, m, c);
        a7 = mad(a7, m, c);
    }
    const vec s = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7));
    out[gid] = s.s0 + s.s7 + s.sf;
}

// dst[i] = src[i], 16 elements per work-item: 2 * 16 * sizeof(real) bytes moved each.
__kernel void peak_copy(__global const real* restrict src, __global real* restrict dst) {
    const size_t i = get_global_id(0);
    vstore16(vload16(i, src), i, dst);
}
