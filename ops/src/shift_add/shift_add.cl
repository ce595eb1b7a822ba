// shift-add (SPEC 1.3) forward and backward, all gathers. Built with -D real=float|double and
// -D ireal=int|long (the integer type of the same width, for lane masks).
//
// Y is (B, L, Hp = H+2e, Wp = W+2e) with one channel per live kernel (L = R*nk when every
// kernel is live); Hout, Vout, Iout are (B, R, H, W); pad_hv is int (R*nk, 2G) and
// idx_identit int (R, G), exactly as stored on the host. With a mask (SPEC 1.6, p.sparse = 1)
// the live-channel arrays of LiveChannels say which bank channel each Y channel holds:
// channels int (L), rep_start int (R + 1), compact int (R*nk, -1 = pruned); without one
// (p.sparse = 0) Y's channel is the bank channel and those three arguments are placeholders
// that are never read.
//
// Work-item mapping: one work-item per output row (forward) or per output plane (backward),
// over a 1-D range (rounded up to whole work-groups; the extra work-items return at once). Every output element is written
// by exactly one work-item (no atomics), so the same inputs give bitwise the same outputs on
// every run.
//
//   shift_add_forward     work-item id = (b*R + o)*H + y owns row y of Hout, Vout and Iout
//                         for (b, o); it reads the nk bank channels of rep o.
//   shift_add_backward    work-item id = b*L + l owns the plane of dY for (b, l), row after
//                         row; it reads the output gradients (those that exist) of rep
//                         o = c / nk of its bank channel c.
//                         Positions that receive no term are written as zeros, so dY needs
//                         no fill, and dY is written once for the three paths.
//
// A work-item walks its row in segments of VW = 16 consecutive columns held as vectors
// (real16) in registers: for each segment it adds every term (channel, group) as one vector
// load of the shifted source row, with the lanes whose source column lies outside the map set
// to zero (a select), and stores the segment once. The terms are added in the CPU reference's
// order (j outer, g inner; for dY the H, V, I paths in that order), one accumulator per
// output, so both backends add the same terms in the same order: on PoCL they agree bit for
// bit (an out-of-map lane adds +0, which can only turn a -0 into +0).
//
// Measured on PoCL (2-core AVX-512 CPU; sw-resnet-tiny, batch 64, `shiftgrad profile
// --device opencl`, 3 runs of each binary alternated, medians of the ms/step per kernel):
// against the previous form (one scalar loop per term over its contiguous column range, added
// into the output row in memory) the forward went from 40.2 to 25.4 ms per step and the
// backward from 52.9 to 45.4 ms (the backward writes every element of the padded dY, zeros
// included: a kernel that only stored zeros took 27 ms). 8 lanes were slower than 16 for the
// forward (about 32 ms). PoCL runs a work-group as a loop over its work-items and vectorises
// that loop only when the kernel has no inner loops, so the vectors are written out by hand,
// as in conv2d.cl. Earlier, a work-item owning 4, 8 or 16 columns with per-lane bounds tests
// (scalar code) was 4-5x slower than a whole row per work-item. On a GPU, one work-item per
// element coalesces better: that form is at the end of this file (`*_items`, chosen by
// `device::gpu_shaped`). A whole plane per work-item in the backward (which has fewer terms per
// element than the forward, so per-work-item costs weigh more) took about 10 % less time than
// a row per work-item (57-61 against 62-69 ms per step, alternated runs).

// load_seg and store_seg: see segments.cl, prepended to this source.

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
    int live;   // L, the channels of Y
    int sparse; // 1: Y holds the live channels of the live-channel arrays; 0: all, in order
} ShiftParams;

// Hout[b,o,y,x] = sum_j sum_g Y[b, o*nk+j, y+e, x - pad_hv[c,g]]
// Vout[b,o,y,x] = sum_j sum_g Y[b, o*nk+j, y - pad_hv[c,G+g], x+e]
// Iout[b,o,y,x] = sum_g       Y[b, idx_identit[o,g], y+e, x+e]
__kernel void shift_add_forward(__global const real* restrict y,
                                __global const int* restrict pad_hv,
                                __global const int* restrict idx_identit,
                                __global const int* restrict channels,
                                __global const int* restrict rep_start,
                                __global const int* restrict compact,
                                __global real* restrict hout, __global real* restrict vout,
                                __global real* restrict iout, const ShiftParams p) {
    if (get_global_id(0) >= (size_t)(p.batch * p.reps * p.h)) {
        return;
    }
    const int id = (int)get_global_id(0);
    const int bo = id / p.h;
    const int row = id - bo * p.h;
    const int b = bo / p.reps;
    const int o = bo - b * p.reps;
    const int G = p.groups;
    const int e = p.extra;
    const int W = p.w;
    const int plane = p.hp * p.wp;
    const int y_len = p.batch * p.live * plane;
    // Channel 0 of batch b; channel l is `l * plane` further.
    const int y_b = b * p.live * plane;
    // The Y channels of rep o.
    const int l0 = p.sparse ? rep_start[o] : o * p.nk;
    const int l1 = p.sparse ? rep_start[o + 1] : (o + 1) * p.nk;
    const int out = ((b * p.reps + o) * p.h + row) * W;

    for (int x0 = 0; x0 < W; x0 += VW) {
        vec h = (vec)(real)0;
        vec v = (vec)(real)0;
        vec i = (vec)(real)0;
        for (int l = l0; l < l1; l++) {
            const int c = p.sparse ? channels[l] : l;
            const int y_c = y_b + l * plane;
            __global const int* shift = pad_hv + c * 2 * G;
            for (int g = 0; g < G; g++) {
                // Horizontal: column x reads column x - s of row y + e.
                h += load_seg(y, y_c + (row + e) * p.wp, x0 - shift[g], p.wp, y_len);
                // Vertical: row y - s, valid in [0, Hp); column x reads column x + e.
                const int r = row - shift[G + g];
                if (r >= 0 && r < p.hp) {
                    v += load_seg(y, y_c + r * p.wp, x0 + e, p.wp, y_len);
                }
            }
        }
        for (int g = 0; g < G; g++) {
            const int c = idx_identit[o * G + g];
            const int l = p.sparse ? compact[c] : c;
            if (l >= 0) {
                i += load_seg(y, y_b + l * plane + (row + e) * p.wp, x0 + e, p.wp, y_len);
            }
        }
        const int count = min(VW, W - x0);
        store_seg(hout + out + x0, h, count);
        store_seg(vout + out + x0, v, count);
        store_seg(iout + out + x0, i, count);
    }
}

// The whole backward, written once:
// dY[b,c,u,v] = sum_g dHout[b,o, u-e, v + pad_hv[c,g]]            (if paths & 1)
//             + sum_g dVout[b,o, u + pad_hv[c,G+g], v-e]           (if paths & 2)
//             + sum_g [c == idx_identit[o,g]] dIout[b,o, u-e, v-e] (if paths & 4)
// in that order, each sum in group order: the CPU reference's order. An absent path's
// buffer argument is a placeholder that is never read.
__kernel void shift_add_backward(__global const real* restrict dh,
                                 __global const real* restrict dv,
                                 __global const real* restrict di,
                                 __global const int* restrict pad_hv,
                                 __global const int* restrict idx_identit,
                                 __global const int* restrict channels,
                                 __global real* restrict dy, const ShiftParams p,
                                 const uint paths) {
    const int L = p.live;
    if (get_global_id(0) >= (size_t)(p.batch * L)) {
        return;
    }
    const int bl = (int)get_global_id(0);
    const int b = bl / L;
    const int l = bl - b * L;
    const int c = p.sparse ? channels[l] : l;
    const int o = c / p.nk;
    const int e = p.extra;
    const int G = p.groups;
    const int out_len = p.batch * p.reps * p.h * p.w;
    // Plane (b, o) of the output gradients, and its row u - e (used where it exists).
    const int rep = (b * p.reps + o) * p.h * p.w;
    __global const int* shift = pad_hv + c * 2 * G;
    for (int u = 0; u < p.hp; u++) {
        const int row = u - e;
        const int row_ok = row >= 0 && row < p.h;
        __global real* restrict d_row = dy + (bl * p.hp + u) * p.wp;

        for (int v0 = 0; v0 < p.wp; v0 += VW) {
            vec acc = (vec)(real)0;
            if ((paths & 1u) && row_ok) {
                // Column v reads column v + s of row u - e.
                for (int g = 0; g < G; g++) {
                    acc += load_seg(dh, rep + row * p.w, v0 + shift[g], p.w, out_len);
                }
            }
            if (paths & 2u) {
                // Row u + s, valid in [0, H); column v reads column v - e.
                for (int g = 0; g < G; g++) {
                    const int r = u + shift[G + g];
                    if (r >= 0 && r < p.h) {
                        acc += load_seg(dv, rep + r * p.w, v0 - e, p.w, out_len);
                    }
                }
            }
            if ((paths & 4u) && row_ok) {
                for (int g = 0; g < G; g++) {
                    if (idx_identit[o * G + g] == c) {
                        acc += load_seg(di, rep + row * p.w, v0 - e, p.w, out_len);
                    }
                }
            }
            store_seg(d_row + v0, acc, min(VW, p.wp - v0));
        }
    }
}

// GPU-shaped variants (selected by `device::gpu_shaped`: a GPU device, or
// SHIFTGRAD_GPU_KERNELS set): one work-item per output element, so that neighbouring
// work-items read and write neighbouring addresses (coalesced), instead of a row or a plane
// per work-item in 16-lane vectors (the form a CPU device vectorises). Each element adds the
// same terms in the same order as one lane of the row kernels, an out-of-map term as +0 as
// the vector select gives it, so the two forms agree bit for bit (tests/parity_shift_add.rs).

// The element at (row, col) of the plane at buf[base] of n_rows x n_cols, or 0 outside it.
INLINE real at_or_zero(__global const real* buf, int base, int row, int col, int n_rows,
                       int n_cols) {
    return (row >= 0 && row < n_rows && col >= 0 && col < n_cols) ? buf[base + row * n_cols + col]
                                                                 : (real)0;
}

// shift_add_forward, work-item id = ((b*R + o)*H + y)*W + x.
__kernel void shift_add_forward_items(__global const real* restrict y,
                                      __global const int* restrict pad_hv,
                                      __global const int* restrict idx_identit,
                                      __global const int* restrict channels,
                                      __global const int* restrict rep_start,
                                      __global const int* restrict compact,
                                      __global real* restrict hout, __global real* restrict vout,
                                      __global real* restrict iout, const ShiftParams p) {
    if (get_global_id(0) >= (size_t)(p.batch * p.reps * p.h * p.w)) {
        return;
    }
    const int id = (int)get_global_id(0);
    const int4 at = split_index(id, p.reps, p.h, p.w);
    const int b = at.x, o = at.y, row = at.z, col = at.w;
    const int G = p.groups;
    const int e = p.extra;
    const int plane = p.hp * p.wp;
    const int y_b = b * p.live * plane;
    const int l0 = p.sparse ? rep_start[o] : o * p.nk;
    const int l1 = p.sparse ? rep_start[o + 1] : (o + 1) * p.nk;
    real h = (real)0;
    real v = (real)0;
    real i = (real)0;
    for (int l = l0; l < l1; l++) {
        const int c = p.sparse ? channels[l] : l;
        const int y_c = y_b + l * plane;
        __global const int* shift = pad_hv + c * 2 * G;
        for (int g = 0; g < G; g++) {
            h += at_or_zero(y, y_c, row + e, col - shift[g], p.hp, p.wp);
            const int r = row - shift[G + g];
            if (r >= 0 && r < p.hp) {
                v += at_or_zero(y, y_c, r, col + e, p.hp, p.wp);
            }
        }
    }
    for (int g = 0; g < G; g++) {
        const int c = idx_identit[o * G + g];
        const int l = p.sparse ? compact[c] : c;
        if (l >= 0) {
            i += at_or_zero(y, y_b + l * plane, row + e, col + e, p.hp, p.wp);
        }
    }
    hout[id] = h;
    vout[id] = v;
    iout[id] = i;
}

// shift_add_backward, work-item id = ((b*L + l)*Hp + u)*Wp + v.
__kernel void shift_add_backward_items(__global const real* restrict dh,
                                       __global const real* restrict dv,
                                       __global const real* restrict di,
                                       __global const int* restrict pad_hv,
                                       __global const int* restrict idx_identit,
                                       __global const int* restrict channels,
                                       __global real* restrict dy, const ShiftParams p,
                                       const uint paths) {
    const int L = p.live;
    if (get_global_id(0) >= (size_t)(p.batch * L * p.hp * p.wp)) {
        return;
    }
    const int id = (int)get_global_id(0);
    const int4 at = split_index(id, L, p.hp, p.wp);
    const int b = at.x, l = at.y, u = at.z, col = at.w;
    const int c = p.sparse ? channels[l] : l;
    const int o = c / p.nk;
    const int e = p.extra;
    const int G = p.groups;
    const int rep = (b * p.reps + o) * p.h * p.w;
    __global const int* shift = pad_hv + c * 2 * G;
    const int row = u - e;
    const int row_ok = row >= 0 && row < p.h;
    real acc = (real)0;
    if ((paths & 1u) && row_ok) {
        for (int g = 0; g < G; g++) {
            acc += at_or_zero(dh, rep, row, col + shift[g], p.h, p.w);
        }
    }
    if (paths & 2u) {
        for (int g = 0; g < G; g++) {
            const int r = u + shift[G + g];
            if (r >= 0 && r < p.h) {
                acc += at_or_zero(dv, rep, r, col - e, p.h, p.w);
            }
        }
    }
    if ((paths & 4u) && row_ok) {
        for (int g = 0; g < G; g++) {
            if (idx_identit[o * G + g] == c) {
                acc += at_or_zero(di, rep, row, col - e, p.h, p.w);
            }
        }
    }
    dy[id] = acc;
}
