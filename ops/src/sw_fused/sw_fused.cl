// The fused shift-wise forward (issue 10; SPEC 1.1 + 1.3 with the mask of 1.6): the bank
// convolution and the shift-add in one kernel, with Y kept in local memory instead of being
// written to global memory and read back. Built with -D real, -D ireal and -D K (the small
// kernel), after segments.cl and bank_rows.cl.
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
    int margin; // m >= every |horizontal shift|: zero columns each side of a local Y row
    int rs;     // local row stride: m + Wp + m + VW
} FusedParams;

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
    const int G = p.groups;
    const int e = p.extra;
    const int plane = p.hp * p.rs;
    const int m = p.margin;
    const int l0 = rep_start[o];
    const int n = rep_start[o + 1] - l0;
    const int ys_len = n * plane;
    const int x_len = p.batch * p.reps * p.h * p.w;
    const int x_plane = (b * p.reps + o) * p.h * p.w;

    // Phase 1: Y rows (j, u), j < n live kernels of rep o, u < Hp, in blocks of RB rows per
    // work-item, computed by bank_rows (bank_rows.cl) as in bank_conv_forward.
    const int rblocks = (p.hp + RB - 1) / RB;
    for (int r = lid; r < n * rblocks; r += lsize) {
        const int j = r / rblocks;
        const int u0 = (r - j * rblocks) * RB;
        const int rows = min(RB, p.hp - u0);
        __global const real* wg = w + channels[l0 + j] * K * K;
        real wk[K * K];
#pragma unroll
        for (int t = 0; t < K * K; t++) {
            wk[t] = wg[t];
        }
        __local real* y_rows = ys + j * plane + u0 * p.rs + m;
        // The zero margins of the block's rows (local memory starts undefined).
        for (int q = 0; q < rows; q++) {
            for (int t = 0; t < m; t++) {
                y_rows[q * p.rs - m + t] = (real)0;
            }
            for (int t = p.wp; t < p.rs - m; t++) {
                y_rows[q * p.rs + t] = (real)0;
            }
        }
        for (int v0 = 0; v0 < p.wp; v0 += VW) {
            vec acc[RB];
            bank_rows(acc, x, x_plane, p.h, p.w, x_len, wk, u0, v0);
            const int cols = min(VW, p.wp - v0);
#pragma unroll
            for (int q = 0; q < RB; q++) {
                if (q < rows) {
                    store_local(y_rows + q * p.rs + v0, acc[q], cols);
                }
            }
        }
    }
    barrier(CLK_LOCAL_MEM_FENCE);

    // Phase 2: rows of Hout, Vout, Iout for (b, o). A local row holds Y's Wp columns from
    // offset m with m zeros before and m + VW after, so every segment is one plain vector
    // load: where the unfused kernel selects zero for a column outside the row, this reads a
    // margin zero; lanes past W are not stored.
    for (int row = lid; row < p.h; row += lsize) {
        const int out = ((b * p.reps + o) * p.h + row) * p.w;
        for (int x0 = 0; x0 < p.w; x0 += VW) {
            vec h = (vec)(real)0;
            vec v = (vec)(real)0;
            vec i = (vec)(real)0;
            for (int j = 0; j < n; j++) {
                __global const int* shift = pad_hv + channels[l0 + j] * 2 * G;
                __local const real* y_c = ys + j * plane + m;
                for (int g = 0; g < G; g++) {
                    h += vload16(0, y_c + (row + e) * p.rs + x0 - shift[g]);
                    const int r = row - shift[G + g];
                    if (r >= 0 && r < p.hp) {
                        v += vload16(0, y_c + r * p.rs + x0 + e);
                    }
                }
            }
            for (int g = 0; g < G; g++) {
                const int l = compact[idx_identit[o * G + g]];
                if (l >= 0) {
                    i += vload16(0, ys + (l - l0) * plane + m + (row + e) * p.rs + x0 + e);
                }
            }
            const int count = min(VW, p.w - x0);
            store_seg(hout + out + x0, h, count);
            store_seg(vout + out + x0, v, count);
            store_seg(iout + out + x0, i, count);
        }
    }
}
