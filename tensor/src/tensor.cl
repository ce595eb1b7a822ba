// Kernels of the tensor type itself. Built with -D real=float or -D real=double.

// acc[i] += g[i]: gradient accumulation on the device.
__kernel void accumulate(__global real* acc, __global const real* g, const uint n) {
    const uint i = get_global_id(0);
    if (i < n) {
        acc[i] += g[i];
    }
}
