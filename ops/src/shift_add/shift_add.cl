// shift-add (SPEC 1.3) forward and backward, all gathers. Built with -D real=float|double.
//
// Y is (B, C = R*nk, Hp = H+2e, Wp = W+2e); Hout, Vout, Iout are (B, R, H, W); pad_hv is
// int (C, 2G) and idx_identit int (R, G), exactly as stored on the host.
//
// Work-item mapping: one work-item per output ROW, over a 1-D range of all rows (rounded up
// to whole work-groups; the extra work-items return at once). Every output element is written
// by exactly one work-item (no atomics), so the same inputs give bitwise the same outputs on
// every run.
//
//   shift_add_forward     work-item id = (b*R + o)*H + y owns row y of Hout, Vout and Iout
//                         for (b, o); it reads the nk bank channels of rep o.
//   shift_add_backward    work-item id = (b*C + c)*Hp + u owns row u of dY for (b, c); it
//                         reads the output gradients (those that exist) of rep o = c / nk.
//                         Positions that receive no term are written as zeros, so dY needs
//                         no fill, and dY is written once for the three paths.
//
// A work-item first zeroes its row, then for every (channel, group) pair adds one source row
// over the contiguous column range [lo, hi) where the source index is inside the map; that
// range depends only on the pair's shift, so it is computed once per pair and the innermost
// loop is a plain contiguous add with no bounds test, which the compiler can vectorise. The loops
// over j < nk and g < G run in the same order as the CPU reference (j outer, g inner), so both
// backends add the same terms in the same order.
//
// Why rows rather than a few columns per work-item: on PoCL (the CPU device the models train
// on) a work-item owning 4, 8 or 16 consecutive columns, with per-lane bounds tests, was about
// 4-5x slower than this at the SW-ResNet size (B 64, R 24, nk 5, G 4, 28x28): each work-item
// pays the index arithmetic and the lane masks for a handful of additions. A whole row turns
// every term into one contiguous loop, the CPU reference's loop. On a GPU, one work-item per element would coalesce better; that is the
// variant to add if a GPU ever becomes the training device.

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
} ShiftParams;

// dst[x] += src[off + x] for x in [lo, hi). The offset is kept apart from the pointer (rather
// than folded into it) because it may be negative: only off + x is guaranteed in bounds.
#define ADD_RANGE(dst, src, off, lo, hi)                                                        \
    do {                                                                                        \
        for (int x = (lo); x < (hi); x++) {                                                     \
            (dst)[x] += (src)[(off) + x];                                                       \
        }                                                                                       \
    } while (0)

// Hout[b,o,y,x] = sum_j sum_g Y[b, o*nk+j, y+e, x - pad_hv[c,g]]
// Vout[b,o,y,x] = sum_j sum_g Y[b, o*nk+j, y - pad_hv[c,G+g], x+e]
// Iout[b,o,y,x] = sum_g       Y[b, idx_identit[o,g], y+e, x+e]
__kernel void shift_add_forward(__global const real* restrict y,
                                __global const int* restrict pad_hv,
                                __global const int* restrict idx_identit,
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
    // Channel 0 of batch b; channel c is `c * plane` further.
    __global const real* y_b = y + b * p.reps * p.nk * plane;
    const int out = ((b * p.reps + o) * p.h + row) * W;
    __global real* restrict h_row = hout + out;
    __global real* restrict v_row = vout + out;
    __global real* restrict i_row = iout + out;

    for (int x = 0; x < W; x++) {
        h_row[x] = (real)0;
        v_row[x] = (real)0;
        i_row[x] = (real)0;
    }
    for (int j = 0; j < p.nk; j++) {
        const int c = o * p.nk + j;
        __global const real* y_c = y_b + c * plane;
        __global const int* shift = pad_hv + c * 2 * G;
        for (int g = 0; g < G; g++) {
            // Horizontal: column x reads column x - s of row y + e, valid for x - s in [0, Wp).
            const int s = shift[g];
            ADD_RANGE(h_row, y_c, (row + e) * p.wp - s, max(0, s), min(W, p.wp + s));
            // Vertical: row y - s, valid in [0, Hp); columns x + e are always inside.
            const int r = row - shift[G + g];
            if (r >= 0 && r < p.hp) {
                ADD_RANGE(v_row, y_c, r * p.wp + e, 0, W);
            }
        }
    }
    for (int g = 0; g < G; g++) {
        const int c = idx_identit[o * G + g];
        ADD_RANGE(i_row, y_b, c * plane + (row + e) * p.wp + e, 0, W);
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
                                 __global real* restrict dy, const ShiftParams p,
                                 const uint paths) {
    const int C = p.reps * p.nk;
    if (get_global_id(0) >= (size_t)(p.batch * C * p.hp)) {
        return;
    }
    const int id = (int)get_global_id(0);
    const int bc = id / p.hp;
    const int u = id - bc * p.hp;
    const int b = bc / C;
    const int c = bc - b * C;
    const int o = c / p.nk;
    const int e = p.extra;
    __global real* restrict d_row = dy + id * p.wp;

    for (int v = 0; v < p.wp; v++) {
        d_row[v] = (real)0;
    }
    const int row = u - e;
    const int row_ok = row >= 0 && row < p.h;
    if ((paths & 1u) && row_ok) {
        __global const real* g_row = dh + ((b * p.reps + o) * p.h + row) * p.w;
        for (int g = 0; g < p.groups; g++) {
            // Column v reads column v + s, valid for v + s in [0, W).
            const int s = pad_hv[c * 2 * p.groups + g];
            ADD_RANGE(d_row, g_row, s, max(0, -s), min(p.wp, p.w - s));
        }
    }
    if (paths & 2u) {
        __global const real* g_rep = dv + (b * p.reps + o) * p.h * p.w;
        for (int g = 0; g < p.groups; g++) {
            // Row u + s, valid in [0, H); column v reads v - e, valid for v in [e, e + W).
            const int r = u + pad_hv[c * 2 * p.groups + p.groups + g];
            if (r >= 0 && r < p.h) {
                ADD_RANGE(d_row, g_rep, r * p.w - e, e, e + p.w);
            }
        }
    }
    if ((paths & 4u) && row_ok) {
        __global const real* g_row = di + ((b * p.reps + o) * p.h + row) * p.w;
        for (int g = 0; g < p.groups; g++) {
            if (idx_identit[o * p.groups + g] == c) {
                ADD_RANGE(d_row, g_row, -e, e, e + p.w);
            }
        }
    }
}
