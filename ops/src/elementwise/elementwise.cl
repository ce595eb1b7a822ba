// Element-wise add_n, mul and the two-gradient backward of mul.
// Built with -D real=float|double (one source for f32 and f64).
//
// Work-item mapping: work-item g owns the four consecutive elements 4g .. 4g+3 of the flat
// arrays (global size ceil(n / 4)). When all four exist it moves them with vload4/vstore4,
// which need only element alignment; the one work-item at the end of an array whose length is
// not a multiple of 4 handles the 1 to 3 leftover elements one at a time. Every output element
// is written by exactly one work-item, and add_n sums in argument order x0 + x1 + ... + x7,
// the order of the CPU reference, so the results are bitwise reproducible (and bitwise equal
// to the CPU's: a vector add rounds each lane like a scalar add).

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
typedef CAT(real, 4) real4;

// add_n takes this many input buffers; a longer sum is chained by the host (see cl.rs).
#define MAX_INPUTS 8

// The sum of the first k of x0..x7 at one position; LOAD reads one input there.
#define SUM_K(LOAD, acc)             \
    acc = LOAD(x0);                  \
    if (k > 1) acc += LOAD(x1);      \
    if (k > 2) acc += LOAD(x2);      \
    if (k > 3) acc += LOAD(x3);      \
    if (k > 4) acc += LOAD(x4);      \
    if (k > 5) acc += LOAD(x5);      \
    if (k > 6) acc += LOAD(x6);      \
    if (k > 7) acc += LOAD(x7);

#define VEC(p) vload4(0, (p) + i)
#define ONE(p) (p)[j]

// y = x0 + ... + x_{k-1}, 1 <= k <= 8; inputs past k are never read (the host passes x0 for
// them). y may be the same buffer as x0 (a chained pass): each element is read before it is
// written, by the same work-item.
__kernel void add_n(__global const real* x0, __global const real* x1,
                    __global const real* x2, __global const real* x3,
                    __global const real* x4, __global const real* x5,
                    __global const real* x6, __global const real* x7,
                    __global real* y, const uint k, const uint n) {
    const size_t i = get_global_id(0) * 4;
    if (i + 4 <= n) {
        real4 acc;
        SUM_K(VEC, acc)
        vstore4(acc, 0, y + i);
    } else {
        for (size_t j = i; j < n; ++j) {
            real acc;
            SUM_K(ONE, acc)
            y[j] = acc;
        }
    }
}

// y = a * b (also one gradient of mul: da = dy * b).
__kernel void mul(__global const real* a, __global const real* b, __global real* y,
                  const uint n) {
    const size_t i = get_global_id(0) * 4;
    if (i + 4 <= n) {
        vstore4(vload4(0, a + i) * vload4(0, b + i), 0, y + i);
    } else {
        for (size_t j = i; j < n; ++j) {
            y[j] = a[j] * b[j];
        }
    }
}

// Both gradients of y = a * b in one pass over dy: da = dy * b, db = dy * a.
__kernel void mul_backward(__global const real* dy, __global const real* a,
                           __global const real* b, __global real* da, __global real* db,
                           const uint n) {
    const size_t i = get_global_id(0) * 4;
    if (i + 4 <= n) {
        const real4 g = vload4(0, dy + i);
        vstore4(g * vload4(0, b + i), 0, da + i);
        vstore4(g * vload4(0, a + i), 0, db + i);
    } else {
        for (size_t j = i; j < n; ++j) {
            da[j] = dy[j] * b[j];
            db[j] = dy[j] * a[j];
        }
    }
}
