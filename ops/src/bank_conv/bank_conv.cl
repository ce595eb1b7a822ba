// Sparse bank convolution (SPEC 1.1 with the mask of 1.6; see mod.rs for the formulas).
// Built with -D real=float|double, -D ireal=int|long (the integer type of the same width,
// for lane masks) and -D K=k, the kernel size, so that the tap loops unroll and the weight
// gradient's K accumulators are registers (one program per k; the shift-wise layers use 3
// or 5), and -D RB, the rows per work-item of the forward and data gradient.
//
// x is (B, R, H, W); w the whole bank (R*nk, 1, k, k); Y the compact (B, L, Hp, Wp),
// Hp = H + k - 1, channel l holding bank channel channels[l] of rep channel channels[l] / nk;
// rep_start (R + 1) gives the Y channels of each rep.
//
// Every kernel is a gather: each output element is written by exactly one work-item after a
// sum in a fixed order, so results are the same bitwise from run to run. A work-item walks
// its row (or, for the weight gradient, every row it sums) in segments of VW = 16 columns
// held as vectors in registers, as the shift-add kernels do (PoCL vectorises a work-group's
// loop over work-items only when the kernel has no inner loops, so the vectors are explicit).
//
//   bank_conv_forward       work-item (b*L + l)*ceil(Hp/RB) + u/RB: rows u .. u+RB-1 of Y[b, l]
//   bank_conv_data_grad     work-item (b*R + o)*ceil(H/RB) + y/RB:  rows y .. y+RB-1 of dx[b, o]
//   bank_conv_weight_grad   work-item l*k + ky: dw[channels[l], 0, ky, 0..k], summed over
//                           samples, rows and segments, lanes added in a fixed order; each
//                           segment of x is loaded once for the k taps of the row.
//
// Their GPU-shaped forms (`*_items`, at the end; chosen by `device::gpu_shaped`) give a
// work-item one element (forward, data gradient) or a work-group one (l, ky) (weight gradient).

// load_seg, store_seg and lane_sum: see segments.cl, prepended to this source.

typedef struct {
    int batch;
    int reps;
    int nk;
    int k;
    int h;
    int w;
    int hp;
    int wp;
    int live;
} BankParams;

// Y[b, l, u, v] = sum_{ky, kx} w[c, ky, kx] * x[b, o, u + ky - p, v + kx - p]
//
// RB output rows u0 .. u0 + RB - 1 per work-item, computed by bank_rows (bank_rows.cl).
__kernel void bank_conv_forward(__global const real* restrict x, __global const real* restrict w,
                                __global const int* restrict channels,
                                __global real* restrict y, const BankParams p) {
    const int rblocks = (p.hp + RB - 1) / RB;
    if (get_global_id(0) >= (size_t)(p.batch * p.live * rblocks)) {
        return;
    }
    const int id = (int)get_global_id(0);
    const int bl = id / rblocks;
    const int u0 = (id - bl * rblocks) * RB;
    const int b = bl / p.live;
    const int l = bl - b * p.live;
    const int c = channels[l];
    const int o = c / p.nk;
    const int x_len = p.batch * p.reps * p.h * p.w;
    const int x_plane = (b * p.reps + o) * p.h * p.w;
    const int rows = min(RB, p.hp - u0);
    real wk[K * K];
#pragma unroll
    for (int t = 0; t < K * K; t++) {
        wk[t] = w[c * K * K + t];
    }
    __global real* restrict y_rows = y + (bl * p.hp + u0) * p.wp;

    for (int v0 = 0; v0 < p.wp; v0 += VW) {
        vec acc[RB];
        bank_rows(acc, x, x_plane, p.h, p.w, x_len, wk, u0, v0);
        const int cols = min(VW, p.wp - v0);
#pragma unroll
        for (int r = 0; r < RB; r++) {
            if (r < rows) {
                store_seg(y_rows + r * p.wp + v0, acc[r], cols);
            }
        }
    }
}

// dx[b, o, y, x] = sum_{l of rep o} sum_{ky, kx} w[c, ky, kx] * dY[b, l, y + p - ky, x + p - kx]
//
// RB rows y0 .. y0 + RB - 1 of dx per work-item, blocked like the forward: row t = y0 + j of
// dY (j < RB + K - 1) meets dx row r through ky = r + p - j. j runs downwards so that every
// dx row still adds its terms with l outer, then ky ascending, then kx. Rows t past the
// plane are reached only by dx rows past H, which are not stored, and are skipped.
__kernel void bank_conv_data_grad(__global const real* restrict dy,
                                  __global const real* restrict w,
                                  __global const int* restrict channels,
                                  __global const int* restrict rep_start,
                                  __global real* restrict dx, const BankParams p) {
    const int rblocks = (p.h + RB - 1) / RB;
    if (get_global_id(0) >= (size_t)(p.batch * p.reps * rblocks)) {
        return;
    }
    const int id = (int)get_global_id(0);
    const int bo = id / rblocks;
    const int y0 = (id - bo * rblocks) * RB;
    const int b = bo / p.reps;
    const int o = bo - b * p.reps;
    const int pad = K - 1;
    const int dy_len = p.batch * p.live * p.hp * p.wp;
    const int rows = min(RB, p.h - y0);
    __global real* restrict dx_rows = dx + (bo * p.h + y0) * p.w;

    for (int x0 = 0; x0 < p.w; x0 += VW) {
        vec acc[RB];
#pragma unroll
        for (int r = 0; r < RB; r++) {
            acc[r] = (vec)(real)0;
        }
        for (int l = rep_start[o]; l < rep_start[o + 1]; l++) {
            __global const real* wk = w + channels[l] * K * K;
            const int plane = (b * p.live + l) * p.hp * p.wp;
#pragma unroll
            for (int j = RB + K - 2; j >= 0; j--) {
                if (y0 + j >= p.hp) {
                    continue;
                }
                const int base = plane + (y0 + j) * p.wp;
#pragma unroll
                for (int kx = 0; kx < K; kx++) {
                    const vec ds = load_seg(dy, base, x0 + pad - kx, p.wp, dy_len);
#pragma unroll
                    for (int r = 0; r < RB; r++) {
                        if (r + pad - j >= 0 && r + pad - j < K) {
                            acc[r] += wk[(r + pad - j) * K + kx] * ds;
                        }
                    }
                }
            }
        }
        const int cols = min(VW, p.w - x0);
#pragma unroll
        for (int r = 0; r < RB; r++) {
            if (r < rows) {
                store_seg(dx_rows + r * p.w + x0, acc[r], cols);
            }
        }
    }
}

// dw[c, 0, ky, kx] = sum_b sum_{y, x} x[b, o, y, x] * dY[b, l, y + p - ky, x + p - kx]. Both
// segments are masked to the W columns of x, so lanes past the row add exact zeros.
__kernel void bank_conv_weight_grad(__global const real* restrict dy,
                                    __global const real* restrict x,
                                    __global const int* restrict channels,
                                    __global real* restrict dw, const BankParams p) {
    const int k = K;
    if (get_global_id(0) >= (size_t)(p.live * k)) {
        return;
    }
    const int id = (int)get_global_id(0);
    const int l = id / k;
    const int ky = id - l * k;
    const int c = channels[l];
    const int o = c / p.nk;
    const int pad = k - 1;
    const int x_len = p.batch * p.reps * p.h * p.w;
    const int dy_len = p.batch * p.live * p.hp * p.wp;

    vec acc[K];
#pragma unroll
    for (int kx = 0; kx < K; kx++) {
        acc[kx] = (vec)(real)0;
    }
    for (int b = 0; b < p.batch; b++) {
        const int x_plane = (b * p.reps + o) * p.h * p.w;
        const int dy_plane = (b * p.live + l) * p.hp * p.wp;
        for (int row = 0; row < p.h; row++) {
            const int xb = x_plane + row * p.w;
            // Row row + p - ky of dY; tap kx reads it from column p - kx, W columns.
            const int db = dy_plane + (row + pad - ky) * p.wp + pad;
            for (int x0 = 0; x0 < p.w; x0 += VW) {
                const vec xs = load_seg(x, xb, x0, p.w, x_len);
#pragma unroll
                for (int kx = 0; kx < K; kx++) {
                    acc[kx] += xs * load_seg(dy, db - kx, x0, p.w, dy_len);
                }
            }
        }
    }
#pragma unroll
    for (int kx = 0; kx < K; kx++) {
        dw[(c * k + ky) * k + kx] = lane_sum(acc[kx]);
    }
}

// GPU-shaped variants (selected by `device::gpu_shaped`): an element per work-item for the
// forward and the data gradient, adding each element's terms in the order of one lane of the
// row kernels above (ky, then kx; an input column outside the map as a product with zero,
// as the vector select gives it), so the two forms agree bit for bit; and for the weight
// gradient a work-group of WG_DW work-items per (kernel, ky), each summing a strided share of
// the (image, row, column) positions, then a fixed-order tree in local memory (the sums are
// grouped differently from bank_conv_weight_grad: they agree to rounding).

// Y[b, l, u, v], work-item ((b*L + l)*Hp + u)*Wp + v.
__kernel void bank_conv_forward_items(__global const real* restrict x,
                                      __global const real* restrict w,
                                      __global const int* restrict channels,
                                      __global real* restrict y, const BankParams p) {
    if (get_global_id(0) >= (size_t)(p.batch * p.live * p.hp * p.wp)) {
        return;
    }
    const int id = (int)get_global_id(0);
    const int4 at = split_index(id, p.live, p.hp, p.wp);
    const int b = at.x, l = at.y, u = at.z, v = at.w;
    const int c = channels[l];
    const int o = c / p.nk;
    const int pad = K - 1;
    const int x_plane = (b * p.reps + o) * p.h * p.w;
    real acc = (real)0;
    for (int ky = 0; ky < K; ky++) {
        const int iy = u - pad + ky;
        if (iy < 0 || iy >= p.h) {
            continue;
        }
        for (int kx = 0; kx < K; kx++) {
            const int ix = v + kx - pad;
            const real xv = (ix >= 0 && ix < p.w) ? x[x_plane + iy * p.w + ix] : (real)0;
            acc += w[c * K * K + ky * K + kx] * xv;
        }
    }
    y[id] = acc;
}

// dx[b, o, y, x], work-item ((b*R + o)*H + y)*W + x.
__kernel void bank_conv_data_grad_items(__global const real* restrict dy,
                                        __global const real* restrict w,
                                        __global const int* restrict channels,
                                        __global const int* restrict rep_start,
                                        __global real* restrict dx, const BankParams p) {
    if (get_global_id(0) >= (size_t)(p.batch * p.reps * p.h * p.w)) {
        return;
    }
    const int id = (int)get_global_id(0);
    const int4 at = split_index(id, p.reps, p.h, p.w);
    const int b = at.x, o = at.y, row = at.z, col = at.w;
    const int pad = K - 1;
    real acc = (real)0;
    for (int l = rep_start[o]; l < rep_start[o + 1]; l++) {
        __global const real* wk = w + channels[l] * K * K;
        __global const real* plane = dy + (b * p.live + l) * p.hp * p.wp;
        for (int ky = 0; ky < K; ky++) {
            for (int kx = 0; kx < K; kx++) {
                acc += wk[ky * K + kx] * plane[(row + pad - ky) * p.wp + col + pad - kx];
            }
        }
    }
    dx[id] = acc;
}

#define WG_DW 64

// dw[channels[l], 0, ky, 0..K-1], one work-group per (l, ky): item lid sums positions
// lid, lid + WG_DW, ... of the (b, row, col) range for the K taps of the row, then the K
// partial sums go through a fixed-order tree (halving strides).
__kernel __attribute__((reqd_work_group_size(WG_DW, 1, 1)))
void bank_conv_weight_grad_items(__global const real* restrict dy,
                                 __global const real* restrict x,
                                 __global const int* restrict channels,
                                 __global real* restrict dw, __local real* part,
                                 const BankParams p) {
    const int g = (int)get_group_id(0);
    const int lid = (int)get_local_id(0);
    const int l = g / K;
    const int ky = g - l * K;
    const int c = channels[l];
    const int o = c / p.nk;
    const int pad = K - 1;
    const int n = p.batch * p.h * p.w;
    real acc[K];
    for (int kx = 0; kx < K; kx++) {
        acc[kx] = (real)0;
    }
    for (int q = lid; q < n; q += WG_DW) {
        const int col = q % p.w;
        const int t = q / p.w;
        const int row = t % p.h;
        const int b = t / p.h;
        const real xv = x[((b * p.reps + o) * p.h + row) * p.w + col];
        __global const real* d =
            dy + ((b * p.live + l) * p.hp + row + pad - ky) * p.wp + col + pad;
        for (int kx = 0; kx < K; kx++) {
            acc[kx] += xv * d[-kx];
        }
    }
    for (int kx = 0; kx < K; kx++) {
        part[kx * WG_DW + lid] = acc[kx];
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = WG_DW / 2; s > 0; s /= 2) {
        if (lid < s) {
            for (int kx = 0; kx < K; kx++) {
                part[kx * WG_DW + lid] += part[kx * WG_DW + lid + s];
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0) {
        for (int kx = 0; kx < K; kx++) {
            dw[(c * K + ky) * K + kx] = part[kx * WG_DW];
        }
    }
}
