// sum / mean of all elements to one value, and the broadcast of its gradient.
// Built with -D real=float|double. One work-group of WG items: each strides over the input,
// then a tree reduction in local memory. The order of additions is fixed, so the result is
// the same on every run.

#define WG 128

__kernel void sum_all(__global const real* x, __global real* out, const uint n, const real scale) {
    __local real part[WG];
    const uint lid = get_local_id(0);
    real acc = (real)0;
    for (uint i = lid; i < n; i += WG) {
        acc += x[i];
    }
    part[lid] = acc;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint s = WG / 2; s > 0; s >>= 1) {
        if (lid < s) {
            part[lid] += part[lid + s];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0) {
        out[0] = part[0] * scale;
    }
}

__kernel void broadcast_scaled(__global const real* g, __global real* dx, const uint n, const real scale) {
    const uint i = get_global_id(0);
    if (i < n) {
        dx[i] = g[0] * scale;
    }
}
