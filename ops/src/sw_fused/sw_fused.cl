// The fused shift-wise forward (issue 10; SPEC 1.1 + 1.3 with the mask of 1.6): the bank
// convolution and the shift-add in one kernel, with Y kept in local memory instead of being
// written to global memory and read back. Built with -D real, -D ireal and -D K (the small
// kernel), after segments.cl.
//
// One work-group per (b, o), image b and rep channel o. Phase 1: the work-items compute the
// Y planes of rep o's live kernels (rows shared out round-robin) into `ys`, (n, Hp, Wp) with
// n = rep_start[o+1] - rep_start[o]. Phase 2, after a barrier: each work-item produces rows of
// Hout, Vout and Iout from `ys`. Both phases add their terms in the order of the unfused
// kernels (bank_conv_forward: ky outer, kx inner; shift_add_forward: live channel outer,
// group inner, then the identity), so the fused forward equals the unfused one.
//
// Y is (Hp, Wp) = (H + k - 1, W + k - 1) per live kernel, as bank_conv writes it; the
// shift-add's extra margin e = (k - 1) / 2.

typedef struct {
    int batch;
    int reps;
    int nk;
    int groups;
    int extra;
    int h;
    int w;
    int hp;
    int wp;
    int live;
} FusedParams;

// As load_seg, from local memory.
INLINE vec load_local(__local const real* buf, int base, int i0, int n, int len) {
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

// The first `count` lanes of v to local dst[0 .. count - 1].
INLINE void store_local(__local real* dst, vec v, int count) {
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

__kernel void sw_fused_forward(__global const real* restrict x, __global const real* restrict w,
                               __global const int* restrict pad_hv,
                               __global const int* restrict idx_identit,
                               __global const int* restrict channels,
                               __global const int* restrict rep_start,
                               __global const int* restrict compact,
                               __global real* restrict hout, __global real* restrict vout,
                               __global real* restrict iout, __local real* ys,
                               const FusedParams p) {
    const int bo = (int)get_group_id(0);
    const int lid = (int)get_local_id(0);
    const int lsize = (int)get_local_size(0);
    const int b = bo / p.reps;
    const int o = bo - b * p.reps;
    const int pad = K - 1;
    const int G = p.groups;
    const int e = p.extra;
    const int plane = p.hp * p.wp;
    const int l0 = rep_start[o];
    const int n = rep_start[o + 1] - l0;
    const int ys_len = n * plane;
    const int x_len = p.batch * p.reps * p.h * p.w;
    const int x_plane = (b * p.reps + o) * p.h * p.w;

    // Phase 1: Y rows (j, u), j < n live kernels of rep o, u < Hp.
    for (int r = lid; r < n * p.hp; r += lsize) {
        const int j = r / p.hp;
        const int u = r - j * p.hp;
        __global const real* wk = w + channels[l0 + j] * K * K;
        __local real* y_row = ys + j * plane + u * p.wp;
        for (int v0 = 0; v0 < p.wp; v0 += VW) {
            vec acc = (vec)(real)0;
            for (int ky = 0; ky < K; ky++) {
                const int iy = u + ky - pad;
                if (iy < 0 || iy >= p.h) {
                    continue;
                }
#pragma unroll
                for (int kx = 0; kx < K; kx++) {
                    acc += wk[ky * K + kx] *
                           load_seg(x, x_plane + iy * p.w, v0 + kx - pad, p.w, x_len);
                }
            }
            store_local(y_row + v0, acc, min(VW, p.wp - v0));
        }
    }
    barrier(CLK_LOCAL_MEM_FENCE);

    // Phase 2: rows of Hout, Vout, Iout for (b, o).
    for (int row = lid; row < p.h; row += lsize) {
        const int out = ((b * p.reps + o) * p.h + row) * p.w;
        for (int x0 = 0; x0 < p.w; x0 += VW) {
            vec h = (vec)(real)0;
            vec v = (vec)(real)0;
            vec i = (vec)(real)0;
            for (int j = 0; j < n; j++) {
                __global const int* shift = pad_hv + channels[l0 + j] * 2 * G;
                const int y_c = j * plane;
                for (int g = 0; g < G; g++) {
                    h += load_local(ys, y_c + (row + e) * p.wp, x0 - shift[g], p.wp, ys_len);
                    const int r = row - shift[G + g];
                    if (r >= 0 && r < p.hp) {
                        v += load_local(ys, y_c + r * p.wp, x0 + e, p.wp, ys_len);
                    }
                }
            }
            for (int g = 0; g < G; g++) {
                const int l = compact[idx_identit[o * G + g]];
                if (l >= 0) {
                    i += load_local(ys, (l - l0) * plane + (row + e) * p.wp, x0 + e, p.wp,
                                    ys_len);
                }
            }
            const int count = min(VW, p.w - x0);
            store_seg(hout + out + x0, h, count);
            store_seg(vout + out + x0, v, count);
            store_seg(iout + out + x0, i, count);
        }
    }
}
