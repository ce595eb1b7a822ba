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
