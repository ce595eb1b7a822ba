// The fused shift-wise forward (issue 10; SPEC 1.1 + 1.3 with the mask of 1.6): the bank
// convolution and the shift-add in one kernel, with Y kept in local memory instead of being
// written to global memory and read back. Built with -D real, -D ireal and -D K (the small
// kernel), after segments.cl, and with the block shapes cl.rs chooses for the map's width:
// NY x FRB (bank blocks: segments of VW columns x rows), NX x RO (output blocks), DNX x DRB
// (the backward's dx blocks), and NG, the groups G.
//
// One work-group per (b, o), image b and rep channel o: one work-item on a CPU device, up to
// 16 on a GPU (cl.rs, group_size). Phase 0: the input plane x[b, o] into local memory with
// zero columns around each row. Phase 1: the work-items compute the Y planes of rep o's live
// kernels (blocks of FRB rows x NY segments shared out round-robin) into `ys`, (n, Hp + RO,
// rs) with n = rep_start[o+1] - rep_start[o]. Phase 2, after a barrier: each work-item
// produces blocks of RO rows x NX segments of Hout, Vout and Iout from `ys`. Both phases add
// their terms in the order of the unfused kernels (bank_conv_forward: ky outer, kx inner;
// shift_add_forward: live channel outer, group inner, then the identity), so the fused
// forward equals the unfused one. Register blocking: a weight read feeds a row's NY segments,
// a segment read a block's FRB rows.
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
    // sw_fused_forward (zero in the backward's launch)
    int margin; // m >= every |horizontal shift|: zero columns left of a local Y row
    int rs;     // local row stride, whole vectors: m, Wp (or NX-segment blocks), reach, VW
    int xrs;    // local input row stride, whole vectors: at least K - 1 + W + K - 1 + VW
    // sw_fused_backward (zero in the forward's launch)
    int gm;    // left zero margin of a staged gradient row: >= every |shift| and >= e
    int gs_rs; // staged gradient row stride: gm + Wp (in whole NY-segment blocks) + VW + gm
    int dy_rs; // local dY row stride: W (in whole DNX-segment blocks) + 2 (K - 1) + VW
    int paths; // which output gradients exist: 1 H, 2 V, 4 I
    int need_dx;
    int need_dw;
} FusedParams;

// The first `count` lanes of v to local dst[0 .. count - 1], and zeros to dst[count .. VW - 1]:
// one vector store. Every caller stores a row's last segment this way into a row whose zero
// margin follows it (at least VW - 1 elements), so the zeros land where zeros belong. This and
// store_out replace a scalar loop through a private array for each row's partial last segment
// (sw-resnet-tiny's Y and dY rows of 30 and 9 columns, staged gradient and output rows of 28,
// 14 and 7 all end in one); with the evened block rows (cl.rs) the network's fused kernels
// took 44.0 ms per step against 51.9 ms (medians of 6 alternated rounds, README).
INLINE void store_local(__local real* dst, vec v, int count) {
    vstore16(count == VW ? v : select((vec)(real)0, v, LANES < (ivec)count), 0, dst);
}

// The first `count` lanes of v to global dst[0 .. count - 1]; where `spill`, all VW lanes
// with one vector store instead (the caller knows that dst[count .. VW - 1] lie in its own
// plane at positions it stores later, so the extra lanes are overwritten: see spill_ok).
INLINE void store_out(__global real* dst, vec v, int count, bool spill) {
    if (spill) {
        vstore16(v, 0, dst);
    } else {
        store_seg(dst, v, count);
    }
}

// Whether a row segment ending at element `end` of a plane of `len` elements may be stored
// whole (store_out): on a CPU device (one work-item per group, lsize == 1, which stores its
// plane's rows in increasing order, a block of whole rows at a time: blocks_per_row == 1), the
// lanes past the row's end land in the next rows, which the same work-item stores afterwards,
// as long as the vector ends inside the plane.
INLINE bool spill_ok(int lsize, int blocks_per_row, int end, int len) {
    return lsize == 1 && blocks_per_row == 1 && end <= len;
}

// Zeros to local dst[0 .. len - 1] and nothing else: vector stores (the last one moved back to
// end at len) where len >= VW, else element by element.
INLINE void zero_local(__local real* dst, int len) {
    if (len < VW) {
        for (int t = 0; t < len; t++) {
            dst[t] = (real)0;
        }
        return;
    }
    for (int t = 0; t < len; t += VW) {
        vstore16((vec)(real)0, 0, dst + min(t, len - VW));
    }
}

// One row's taps into a register block of ROWS rows x SEGS segments, with the small
// kernel's weights in registers (WK, K x K, row-major): for each kernel column kx, the row's
// SEGS segments at SRC + DIR * kx (segment s VW columns further), and for each block row q
// that the row meets through kernel row KY(q) (when that is in 0 .. K-1),
// acc[q][s] += WK[KY(q), kx] * segment s.
// Every weight read feeds SEGS multiply-adds and every segment read ROWS. The forward's bank
// blocks (phase 1: input rows, DIR 1) and the backward's dx blocks (phase 3a: dY rows, DIR -1,
// the kernel flipped) are this loop.
#define ROW_TAPS(acc, WK, ROWS, SEGS, SRC, DIR, KY)                                              \
    _Pragma("unroll") for (int kx = 0; kx < K; kx++) {                                         \
        vec seg_[SEGS];                                                                        \
        _Pragma("unroll") for (int s_ = 0; s_ < (SEGS); s_++) {                               \
            seg_[s_] = vload16(s_, (SRC) + (DIR) * kx);                                        \
        }                                                                                      \
        _Pragma("unroll") for (int q_ = 0; q_ < (ROWS); q_++) {                               \
            const int ky_ = KY(q_);                                                            \
            if (ky_ >= 0 && ky_ < K) {                                                         \
                const real wv_ = (WK)[ky_ * K + kx];                                           \
                _Pragma("unroll") for (int s_ = 0; s_ < (SEGS); s_++) {                       \
                    acc[q_][s_] += wv_ * seg_[s_];                                             \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
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
    const int e = p.extra;
    const int G = NG; // the groups, a build-time constant so that phase 2's loops unroll
    // Each plane: Hp rows of Y, then RO zero rows (see phase 2).
    const int plane = (p.hp + RO) * p.rs;
    const int m = p.margin;
    const int l0 = rep_start[o];
    const int n = rep_start[o + 1] - l0;
    const int ys_len = n * plane;
    const int x_plane = (b * p.reps + o) * p.h * p.w;

    // Phase 0: the input plane x[b, o] into `xs`, H rows of stride xrs with K - 1 zero columns
    // left of each row and at least K - 1 + VW right of it, so that every segment phase 1
    // reads is one plain vector load (the zeros are the values the unfused kernel's masked
    // loads select).
    __local real* xs = ys + ys_len;
    const int xl = K - 1;
    for (int row = lid; row < p.h; row += lsize) {
        __local real* dst = xs + row * p.xrs;
        __global const real* src = x + x_plane + row * p.w;
        for (int t = 0; t < xl; t++) {
            dst[t] = (real)0;
        }
        for (int t = 0; t < p.w; t++) {
            dst[xl + t] = src[t];
        }
        for (int t = xl + p.w; t < p.xrs; t++) {
            dst[t] = (real)0;
        }
    }
    barrier(CLK_LOCAL_MEM_FENCE);

    // Phase 1: Y of rep o's live kernels j < n in blocks of FRB rows x NY segments of VW
    // columns (build-time: a narrow row whole, a wide one in chunks), from `xs`: input row i
    // of a block (iy = u0 - (K - 1) + i) meets output row r through kernel row ky = i - r,
    // rows outside the input skipped, so each output element adds its terms with ky outer and
    // kx inner, the order of bank_rows (bank_rows.cl) in bank_conv_forward. Per tap, NY
    // segment loads and one weight for each row of the block: every weight read feeds NY
    // multiply-adds, every segment FRB.
    const int ychunk = NY * VW;
    const int yblocks = (p.wp + ychunk - 1) / ychunk;
    const int rblocks = (p.hp + FRB - 1) / FRB;
    for (int r = lid; r < n * rblocks * yblocks; r += lsize) {
        const int j = r / (rblocks * yblocks);
        const int rest = r - j * rblocks * yblocks;
        const int u0 = (rest / yblocks) * FRB;
        const int v0 = (rest - (rest / yblocks) * yblocks) * ychunk;
        const int rows = min(FRB, p.hp - u0);
        __global const real* wg = w + channels[l0 + j] * K * K;
        real wk[K * K];
#pragma unroll
        for (int t = 0; t < K * K; t++) {
            wk[t] = wg[t];
        }
        __local real* y_rows = ys + j * plane + u0 * p.rs + m;
        // The zero margins of the block's rows (local memory starts undefined): the left one
        // and, after the plane's last block, its RO zero rows by the row's first block; the
        // right one by its last block, which also stores the row's last segment (store_local
        // writes zeros past the row's end into that margin).
        if (v0 == 0) {
            for (int q = 0; q < rows; q++) {
                zero_local(y_rows + q * p.rs - m, m);
            }
            if (u0 + FRB >= p.hp) {
                zero_local(ys + j * plane + p.hp * p.rs, RO * p.rs);
            }
        }
        if (v0 + ychunk >= p.wp) {
            for (int q = 0; q < rows; q++) {
                zero_local(y_rows + q * p.rs + p.wp, p.rs - m - p.wp);
            }
        }
        vec acc[FRB][NY];
#pragma unroll
        for (int q = 0; q < FRB; q++) {
#pragma unroll
            for (int c = 0; c < NY; c++) {
                acc[q][c] = (vec)(real)0;
            }
        }
#pragma unroll
        for (int i = 0; i < FRB + K - 1; i++) {
            const int iy = u0 - xl + i;
            if (iy < 0 || iy >= p.h) {
                continue;
            }
            __local const real* xrow = xs + iy * p.xrs + v0;
#define FORWARD_KY(q) (i - (q))
            ROW_TAPS(acc, wk, FRB, NY, xrow, 1, FORWARD_KY);
#undef FORWARD_KY
        }
#pragma unroll
        for (int q = 0; q < FRB; q++) {
#pragma unroll
            for (int c = 0; c < NY; c++) {
                const int cols = min(VW, p.wp - v0 - c * VW);
                if (q < rows && cols > 0) {
                    store_local(y_rows + q * p.rs + v0 + c * VW, acc[q][c], cols);
                }
            }
        }
    }
    barrier(CLK_LOCAL_MEM_FENCE);

    // Phase 2: Hout, Vout, Iout of (b, o) in blocks of RO rows x NX segments of VW columns
    // (build-time: all of a narrow row, in chunks for a wide one). Each shift's table read and
    // address arithmetic serve the whole block, and each Y row it reads is read along its
    // length. A local row holds Y's Wp columns from offset m with m zeros before and more
    // after, so every segment is one plain vector load: where the unfused kernel selects zero
    // for a column outside the row, this reads a margin zero; lanes past W are not stored. A
    // vertical shift that leaves the plane reads the zero row Hp (where the unfused kernel
    // adds nothing: the same sum up to the sign of a zero), and rows past H read zero rows and
    // are not stored, so the loop has no branches. Each output element adds its terms in the
    // unfused kernel's order (live channel outer, group inner, then identity).
    const int chunk = NX * VW;
    for (int blk = lid; blk < ((p.h + RO - 1) / RO) * ((p.w + chunk - 1) / chunk); blk += lsize) {
        const int xblocks = (p.w + chunk - 1) / chunk;
        const int row0 = (blk / xblocks) * RO;
        const int x0 = (blk - (blk / xblocks) * xblocks) * chunk;
        vec h[RO][NX], v[RO][NX], i[RO][NX];
#pragma unroll
        for (int q = 0; q < RO; q++) {
#pragma unroll
            for (int c = 0; c < NX; c++) {
                h[q][c] = v[q][c] = i[q][c] = (vec)(real)0;
            }
        }
        for (int j = 0; j < n; j++) {
            __global const int* shift = pad_hv + channels[l0 + j] * 2 * G;
            __local const real* y_c = ys + j * plane + m + x0;
#pragma unroll
            for (int g = 0; g < G; g++) {
                __local const real* hs = y_c + (row0 + e) * p.rs - shift[g];
                const int r0 = row0 - shift[G + g];
#pragma unroll
                for (int q = 0; q < RO; q++) {
                    const int r = r0 + q >= 0 && r0 + q < p.hp ? r0 + q : p.hp;
                    __local const real* vs = y_c + r * p.rs + e;
#pragma unroll
                    for (int c = 0; c < NX; c++) {
                        h[q][c] += vload16(c, hs + q * p.rs);
                        v[q][c] += vload16(c, vs);
                    }
                }
            }
        }
#pragma unroll
        for (int g = 0; g < G; g++) {
            const int l = compact[idx_identit[o * G + g]];
            if (l >= 0) {
                __local const real* is = ys + (l - l0) * plane + m + (row0 + e) * p.rs + x0 + e;
#pragma unroll
                for (int q = 0; q < RO; q++) {
#pragma unroll
                    for (int c = 0; c < NX; c++) {
                        i[q][c] += vload16(c, is + q * p.rs);
                    }
                }
            }
        }
        const int out = ((b * p.reps + o) * p.h + row0) * p.w + x0;
#pragma unroll
        for (int q = 0; q < RO; q++) {
#pragma unroll
            for (int c = 0; c < NX; c++) {
                const int count = min(VW, p.w - x0 - c * VW);
                if (row0 + q < p.h && count > 0) {
                    const int at = out + q * p.w + c * VW;
                    const int end = (row0 + q) * p.w + x0 + c * VW + VW;
                    const bool spill = count == VW || spill_ok(lsize, xblocks, end, p.h * p.w);
                    store_out(hout + at, h[q][c], count, spill);
                    store_out(vout + at, v[q][c], count, spill);
                    store_out(iout + at, i[q][c], count, spill);
                }
            }
        }
    }
}

// The fused shift-wise backward: the shift-add's backward (dY from dHout, dVout, dIout) and
// the bank convolution's data and weight gradients in one kernel, with dY kept in local
// memory instead of being written to global memory and read back (twice).
//
// One work-group per (b, o), as the forward. Phase 1: the work-items copy the output
// gradients of (b, o) that exist (`paths`: 1 = dHout, 2 = dVout, 4 = dIout) into `gs`, one
// (H + 1, gs_rs) plane each, row r of the map at columns gm .. gm + W - 1 with zeros around
// it (gm >= every |shift| and >= e) and a zero row H, so that every later read is one plain
// vector load. Phase 2: the dY rows (j, u) of rep o's live kernels into `dys`, (n, Hp,
// dy_rs), in blocks of FRB rows x NY segments, with the terms in the order of
// shift_add_backward (H, V, I paths; groups in order; a zero margin right of each row).
// Phase 3: dx in blocks of DRB rows x DNX segments as bank_conv_data_grad computes it, and the partial weight gradients of image b (a work-item per (j, ky), as
// bank_conv_weight_grad, its sum over this image only) to dw_part[(b*L + l)*K*K + ky*K + kx];
// sw_fused_dw_sum adds the images in order. dx equals the unfused kernels' bit for bit; the
// weight gradient is grouped by image (each image's sum of lanes, then the images added),
// where the unfused kernel carries one vector sum across the images.

__kernel void sw_fused_backward(__global const real* restrict dh, __global const real* restrict dv,
                                __global const real* restrict di, __global const real* restrict x,
                                __global const real* restrict w,
                                __global const int* restrict pad_hv,
                                __global const int* restrict idx_identit,
                                __global const int* restrict channels,
                                __global const int* restrict rep_start,
                                __global real* restrict dx, __global real* restrict dw_part,
                                __local real* gs, __local real* dys, const FusedParams p) {
    const int bo = (int)get_group_id(0);
    const int lid = (int)get_local_id(0);
    const int lsize = (int)get_local_size(0);
    const int b = bo / p.reps;
    const int o = bo - b * p.reps;
    const int G = NG; // a build-time constant, as in the forward, so that the group loops unroll
    const int e = p.extra;
    const int l0 = rep_start[o];
    const int n = rep_start[o + 1] - l0;
    const int out_len = p.batch * p.reps * p.h * p.w;
    const int rep = (b * p.reps + o) * p.h * p.w;
    const int g_plane = (p.h + 1) * p.gs_rs; // the map's rows, then a zero row
    const int d_plane = p.hp * p.dy_rs;

    // Phase 1: the existing output gradients' rows of (b, o), zero margins around them, and
    // a zero row after each map.
    for (int r = lid; r < 3 * (p.h + 1); r += lsize) {
        const int path = r / (p.h + 1);
        if (!(p.paths & (1 << path))) {
            continue;
        }
        const int row = r - path * (p.h + 1);
        __local real* dst = gs + path * g_plane + row * p.gs_rs;
        if (row == p.h) {
            zero_local(dst, p.gs_rs);
            continue;
        }
        __global const real* src = path == 0 ? dh : (path == 1 ? dv : di);
        zero_local(dst, p.gm);
        for (int x0 = 0; x0 < p.w; x0 += VW) {
            store_local(dst + p.gm + x0, load_seg(src, rep + row * p.w, x0, p.w, out_len),
                        min(VW, p.w - x0));
        }
        zero_local(dst + p.gm + p.w, p.gs_rs - p.gm - p.w);
    }
    barrier(CLK_LOCAL_MEM_FENCE);

    // Phase 2: dY of the live kernels j < n of rep o in blocks of FRB rows x NY segments
    // (the forward's phase 1 blocks), each element's terms in shift_add_backward's order (H,
    // V, I paths; groups in order). A row outside the staged map reads the zero row H of its
    // plane (where shift_add_backward adds nothing: the same sum up to the sign of a zero),
    // so only the paths and the identity choices branch, once per block.
    __local const real* gh = gs + p.gm;
    __local const real* gv = gs + g_plane + p.gm;
    __local const real* gi = gs + 2 * g_plane + p.gm;
    const int ychunk = NY * VW;
    const int vblocks = (p.wp + ychunk - 1) / ychunk;
    const int ublocks = (p.hp + FRB - 1) / FRB;
    for (int r = lid; r < n * ublocks * vblocks; r += lsize) {
        const int j = r / (ublocks * vblocks);
        const int rest = r - j * ublocks * vblocks;
        const int u0 = (rest / vblocks) * FRB;
        const int v0 = (rest - (rest / vblocks) * vblocks) * ychunk;
        const int c = channels[l0 + j];
        __global const int* shift = pad_hv + c * 2 * G;
        vec acc[FRB][NY];
#pragma unroll
        for (int q = 0; q < FRB; q++) {
#pragma unroll
            for (int s = 0; s < NY; s++) {
                acc[q][s] = (vec)(real)0;
            }
        }
        if (p.paths & 1) {
#pragma unroll
            for (int g = 0; g < G; g++) {
                __local const real* src = gh + v0 + shift[g];
#pragma unroll
                for (int q = 0; q < FRB; q++) {
                    const int row = u0 + q - e;
                    const int rc = row >= 0 && row < p.h ? row : p.h;
#pragma unroll
                    for (int s = 0; s < NY; s++) {
                        acc[q][s] += vload16(s, src + rc * p.gs_rs);
                    }
                }
            }
        }
        if (p.paths & 2) {
#pragma unroll
            for (int g = 0; g < G; g++) {
                __local const real* src = gv + v0 - e;
#pragma unroll
                for (int q = 0; q < FRB; q++) {
                    const int rr = u0 + q + shift[G + g];
                    const int rc = rr >= 0 && rr < p.h ? rr : p.h;
#pragma unroll
                    for (int s = 0; s < NY; s++) {
                        acc[q][s] += vload16(s, src + rc * p.gs_rs);
                    }
                }
            }
        }
        if (p.paths & 4) {
#pragma unroll
            for (int g = 0; g < G; g++) {
                if (idx_identit[o * G + g] == c) {
                    __local const real* src = gi + v0 - e;
#pragma unroll
                    for (int q = 0; q < FRB; q++) {
                        const int row = u0 + q - e;
                        const int rc = row >= 0 && row < p.h ? row : p.h;
#pragma unroll
                        for (int s = 0; s < NY; s++) {
                            acc[q][s] += vload16(s, src + rc * p.gs_rs);
                        }
                    }
                }
            }
        }
#pragma unroll
        for (int q = 0; q < FRB; q++) {
            if (u0 + q < p.hp) {
                __local real* d_row = dys + j * d_plane + (u0 + q) * p.dy_rs;
#pragma unroll
                for (int s = 0; s < NY; s++) {
                    const int cols = min(VW, p.wp - v0 - s * VW);
                    if (cols > 0) {
                        store_local(d_row + v0 + s * VW, acc[q][s], cols);
                    }
                }
                if (v0 + ychunk >= p.wp) {
                    // The zero margin right of the row, by the block that stores the row's
                    // last segment (with zeros past the row's end: store_local).
                    zero_local(d_row + p.wp, p.dy_rs - p.wp);
                }
            }
        }
    }
    barrier(CLK_LOCAL_MEM_FENCE);

    // Phase 3a: dx of (b, o) in blocks of DRB rows x DNX segments (as the forward's phase 1
    // blocks, for rows of W columns), as bank_conv_data_grad computes it (j runs downwards so
    // that every dx element adds its terms with l outer, then ky ascending, then kx): per
    // tap, DNX segment loads and one weight for each row of the block.
    const int pad = K - 1;
    const int dchunk = DNX * VW;
    const int xblocks = (p.w + dchunk - 1) / dchunk;
    const int rblocks = (p.h + DRB - 1) / DRB;
    for (int item = lid; p.need_dx && item < rblocks * xblocks; item += lsize) {
        const int y0 = (item / xblocks) * DRB;
        const int x0 = (item - (item / xblocks) * xblocks) * dchunk;
        const int rows = min(DRB, p.h - y0);
        __global real* restrict dx_rows = dx + (bo * p.h + y0) * p.w;
        vec acc[DRB][DNX];
#pragma unroll
        for (int q = 0; q < DRB; q++) {
#pragma unroll
            for (int s = 0; s < DNX; s++) {
                acc[q][s] = (vec)(real)0;
            }
        }
        for (int jl = 0; jl < n; jl++) {
            __global const real* wg = w + channels[l0 + jl] * K * K;
            real wk[K * K];
#pragma unroll
            for (int t = 0; t < K * K; t++) {
                wk[t] = wg[t];
            }
            __local const real* plane = dys + jl * d_plane;
#pragma unroll
            for (int j = DRB + K - 2; j >= 0; j--) {
                if (y0 + j >= p.hp) {
                    continue;
                }
                __local const real* src = plane + (y0 + j) * p.dy_rs + x0 + pad;
#define DATA_GRAD_KY(q) ((q) + pad - j)
                ROW_TAPS(acc, wk, DRB, DNX, src, -1, DATA_GRAD_KY);
#undef DATA_GRAD_KY
            }
        }
#pragma unroll
        for (int q = 0; q < DRB; q++) {
#pragma unroll
            for (int s = 0; s < DNX; s++) {
                const int cols = min(VW, p.w - x0 - s * VW);
                if (q < rows && cols > 0) {
                    const int end = (y0 + q) * p.w + x0 + s * VW + VW;
                    const bool spill = cols == VW || spill_ok(lsize, xblocks, end, p.h * p.w);
                    store_out(dx_rows + q * p.w + x0 + s * VW, acc[q][s], cols, spill);
                }
            }
        }
    }

    // Phase 3b: this image's part of dw[channels[l0 + j], 0, ky, 0..K-1], a work-item per
    // (j, ky), as bank_conv_weight_grad: x masked to its W columns, so the lanes past the row
    // add zeros (dY there is finite: the staged margins are zeros).
    const int x_len = p.batch * p.reps * p.h * p.w;
    for (int item = lid; p.need_dw && item < n * K; item += lsize) {
        const int j = item / K;
        const int ky = item - j * K;
        vec acc[K];
#pragma unroll
        for (int kx = 0; kx < K; kx++) {
            acc[kx] = (vec)(real)0;
        }
        __local const real* plane = dys + j * d_plane;
        for (int row = 0; row < p.h; row++) {
            const int xb = rep + row * p.w;
            // Row row + pad - ky of dY; tap kx reads it from column pad - kx.
            __local const real* db = plane + (row + pad - ky) * p.dy_rs + pad;
            for (int x0 = 0; x0 < p.w; x0 += VW) {
                const vec xs = load_seg(x, xb, x0, p.w, x_len);
#pragma unroll
                for (int kx = 0; kx < K; kx++) {
                    acc[kx] += xs * vload16(0, db - kx + x0);
                }
            }
        }
        __global real* out = dw_part + ((b * p.live + l0 + j) * K + ky) * K;
#pragma unroll
        for (int kx = 0; kx < K; kx++) {
            out[kx] = lane_sum(acc[kx]);
        }
    }
}

// dw[channels[l], 0, t / K, t % K] = sum over b (in order) of dw_part[(b*L + l)*K*K + t]:
// a work-item per (l, t).
__kernel void sw_fused_dw_sum(__global const real* restrict dw_part,
                              __global const int* restrict channels, __global real* restrict dw,
                              const int batch, const int live) {
    const int id = (int)get_global_id(0);
    if (id >= live * K * K) {
        return;
    }
    const int l = id / (K * K);
    const int t = id - l * (K * K);
    real s = (real)0;
    for (int b = 0; b < batch; b++) {
        s += dw_part[(b * live + l) * K * K + t];
    }
    dw[channels[l] * K * K + t] = s;
}
