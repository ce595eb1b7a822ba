// conv2d's GPU-shaped kernels (CONV_ITEMS: an element per work-item), after conv2d.cl's
// definitions.

#ifdef CONV_ITEMS
// GPU-shaped variants (selected by `device::gpu_shaped`): an element per work-item for the
// forward and the data gradient, consecutive work-items on consecutive columns (coalesced
// loads and stores), each element's terms added in a fixed order; and for the weight
// gradient a work-group of WG_DW work-items per weight element, each summing a strided share
// of the (sample, row, column) positions, then a fixed-order tree in local memory. The same
// sums as the row kernels, grouped differently: they agree to rounding.

// y[n, co, oy, ox], work-item ((n*C_out + co)*Ho + oy)*Wo + ox; the sum over (ci, ky, kx) in
// that order.
__kernel void conv2d_forward_items(__global const real* restrict x,
                                   __global const real* restrict w,
                                   __global const real* restrict bias, const int has_bias,
                                   __global real* restrict y, const ConvParams p) {
    const int id = get_global_id(0);
    if (id >= p.n * p.c_out * p.ho * p.wo) {
        return;
    }
    const int ox = id % p.wo;
    const int oy = id / p.wo % p.ho;
    const int co = id / p.wo / p.ho % p.c_out;
    const int n = id / p.wo / p.ho / p.c_out;
    const int g = co / p.cog;
    real acc = has_bias ? bias[co] : (real)0;
    for (int ci = 0; ci < p.cig; ci++) {
        __global const real* plane = x + (n * p.c_in + g * p.cig + ci) * p.h * p.w;
        __global const real* wk = w + (co * p.cig + ci) * p.kh * p.kw;
        for (int ky = 0; ky < p.kh; ky++) {
            const int iy = oy * p.sh + ky - p.top;
            if (iy < 0 || iy >= p.h) {
                continue;
            }
            for (int kx = 0; kx < p.kw; kx++) {
                const int ix = ox * p.sw + kx - p.left;
                if (ix >= 0 && ix < p.w) {
                    acc += wk[ky * p.kw + kx] * plane[iy * p.w + ix];
                }
            }
        }
    }
    y[id] = acc;
}

// dx[n, ci, iy, ix], work-item ((n*C_in + ci)*H + iy)*W + ix: the sum over the output
// channels co of the group, then the taps (ky, kx) whose output position
// ((iy + top - ky)/sh, (ix + left - kx)/sw) exists, in that order.
__kernel void conv2d_data_grad_items(__global const real* restrict dy,
                                     __global const real* restrict w,
                                     __global real* restrict dx, const ConvParams p) {
    const int id = get_global_id(0);
    if (id >= p.n * p.c_in * p.h * p.w) {
        return;
    }
    const int ix = id % p.w;
    const int iy = id / p.w % p.h;
    const int c = id / p.w / p.h % p.c_in;
    const int n = id / p.w / p.h / p.c_in;
    const int g = c / p.cig;
    const int ci = c - g * p.cig;
    real acc = (real)0;
    for (int j = 0; j < p.cog; j++) {
        const int co = g * p.cog + j;
        __global const real* plane = dy + (n * p.c_out + co) * p.ho * p.wo;
        __global const real* wk = w + (co * p.cig + ci) * p.kh * p.kw;
        for (int ky = 0; ky < p.kh; ky++) {
            const int ty = iy + p.top - ky;
            if (ty < 0 || ty % p.sh != 0 || ty / p.sh >= p.ho) {
                continue;
            }
            for (int kx = 0; kx < p.kw; kx++) {
                const int tx = ix + p.left - kx;
                if (tx >= 0 && tx % p.sw == 0 && tx / p.sw < p.wo) {
                    acc += wk[ky * p.kw + kx] * plane[ty / p.sh * p.wo + tx / p.sw];
                }
            }
        }
    }
    dx[id] = acc;
}

#define WG_DW 64

// dw[co, ci, ky, kx], one work-group per element: item lid sums the positions lid,
// lid + WG_DW, ... of the (n, oy, ox) range whose input position exists, then the WG_DW
// partial sums go through a fixed-order tree (halving strides).
__kernel __attribute__((reqd_work_group_size(WG_DW, 1, 1)))
void conv2d_weight_grad_items(__global const real* restrict dy,
                              __global const real* restrict x, __global real* restrict dw,
                              const ConvParams p) {
    __local real part[WG_DW];
    const int e = get_group_id(0);
    const int lid = get_local_id(0);
    const int kx = e % p.kw;
    const int ky = e / p.kw % p.kh;
    const int ci = e / p.kw / p.kh % p.cig;
    const int co = e / p.kw / p.kh / p.cig;
    const int g = co / p.cog;
    const int positions = p.n * p.ho * p.wo;
    real acc = (real)0;
    for (int q = lid; q < positions; q += WG_DW) {
        const int ox = q % p.wo;
        const int oy = q / p.wo % p.ho;
        const int n = q / p.wo / p.ho;
        const int iy = oy * p.sh + ky - p.top;
        const int ix = ox * p.sw + kx - p.left;
        if (iy >= 0 && iy < p.h && ix >= 0 && ix < p.w) {
            acc += dy[((n * p.c_out + co) * p.ho + oy) * p.wo + ox] *
                   x[((n * p.c_in + g * p.cig + ci) * p.h + iy) * p.w + ix];
        }
    }
    part[lid] = acc;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = WG_DW / 2; s > 0; s /= 2) {
        if (lid < s) {
            part[lid] += part[lid + s];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0) {
        dw[e] = part[0];
    }
}
#endif
