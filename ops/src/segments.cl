// Row segments of VW = 16 columns held as vectors, shared by the shift-add and the sparse bank
// convolution (prepended to their sources by `device::segment_program`). Needs -D real and
// -D ireal (the integer type of the same width, for lane masks).

#define VW 16
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
typedef CAT(real, 16) vec;
typedef CAT(ireal, 16) ivec;
#define LANES ((ivec)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15))
#define INLINE __attribute__((always_inline)) inline

// Columns i0 .. i0 + VW - 1 of the row of n elements that starts at buf[base], as a vector,
// with zero in the lanes outside 0 .. n - 1. Where the whole vector lies inside the buffer
// (len elements) it is one vector load and a select; at the buffer's two ends, where a vector
// load could leave the allocation, lane by lane with the index clamped into the row.
INLINE vec load_seg(__global const real* buf, int base, int i0, int n, int len) {
    const ivec col = LANES + i0;
    const int start = base + i0;
    if (start >= 0 && start + VW <= len) {
        return select((vec)(real)0, vload16(0, buf + start), col >= 0 && col < n);
    }
    real t[VW];
#pragma unroll
    for (int j = 0; j < VW; j++) {
        const int i = i0 + j;
        const real v = buf[base + clamp(i, 0, n - 1)];
        t[j] = (i >= 0 && i < n) ? v : (real)0;
    }
    return vload16(0, t);
}

// The first `count` lanes of v to dst[0 .. count - 1].
INLINE void store_seg(__global real* dst, vec v, int count) {
    if (count == VW) {
        vstore16(v, 0, dst);
        return;
    }
    real t[VW];
    vstore16(v, 0, t);
    for (int j = 0; j < count; j++) {
        dst[j] = t[j];
    }
}

// Fixed-order sum of the lanes.
INLINE real lane_sum(vec v) {
    const CAT(real, 8) a = v.lo + v.hi;
    const CAT(real, 4) b = a.lo + a.hi;
    const CAT(real, 2) c = b.lo + b.hi;
    return c.lo + c.hi;
}

// Element `id` of a row-major (n0, n1, rows, cols) array as its four indices
// (i0, i1, row, col): the element-per-work-item kernels' decomposition of their id.
INLINE int4 split_index(int id, int n1, int rows, int cols) {
    const int col = id % cols;
    const int t = id / cols;
    const int row = t % rows;
    const int plane = t / rows;
    return (int4)(plane / n1, plane % n1, row, col);
}
