// relu: y = max(x, 0) with NaN propagated (PyTorch: relu(NaN) = NaN); dx = dy unless y <= 0
// (relu'(0) = 0, and a NaN output passes its gradient on, as PyTorch's threshold_backward
// does). Built with -D real=float|double.

__kernel void relu_forward(__global const real* x, __global real* y, const uint n) {
    const uint i = get_global_id(0);
    if (i < n) {
        const real v = x[i];
        y[i] = (v > (real)0 || isnan(v)) ? v : (real)0;
    }
}

__kernel void relu_backward(__global const real* dy, __global const real* y, __global real* dx, const uint n) {
    const uint i = get_global_id(0);
    if (i < n) {
        dx[i] = y[i] <= (real)0 ? (real)0 : dy[i];
    }
}

// y = relu(x0 + ... + x_{k-1}), 1 <= k <= 8, the sum as elementwise.cl's add_n forms it (in
// argument order, unused inputs loaded and discarded by a select), then relu as above.
__kernel void add_relu(__global const real* x0, __global const real* x1,
                       __global const real* x2, __global const real* x3,
                       __global const real* x4, __global const real* x5,
                       __global const real* x6, __global const real* x7,
                       __global real* y, const uint k, const uint n) {
    const size_t i = get_global_id(0);
    if (i < n) {
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
        y[i] = (acc > (real)0 || isnan(acc)) ? acc : (real)0;
    }
}
