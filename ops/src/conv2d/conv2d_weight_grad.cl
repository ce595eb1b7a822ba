// conv2d's direct weight gradient (CONV_WEIGHT_GRAD), after conv2d.cl's definitions.

#ifdef CONV_WEIGHT_GRAD
// dw[co, ci, ky, kx] = sum_{n, oy, ox} dy[n, co, oy, ox] * x[n, g*cig + ci, iy, ix].
//
// Work-item ((s*C_out/CB + cb)*KH + ky)*ublocks + ub: output channels cb*CB .. cb*CB+CB-1
// (one group) times TB input vectors of kernel row ky, summed over the samples of chunk s.
// The input vectors of a row are the pairs u = ci*KW + kx (input channel ci shifted by tap
// kx), TB consecutive ones per work-item; the last block repeats the final pair and stores it
// once. The sum runs over samples, rows and column segments in that order with one vector
// accumulator per (channel, pair), whose lanes are added in a fixed order at the end: a dy
// segment is loaded once for TB pairs, an x segment once for CB channels. With one chunk the
// sums go straight to dw; otherwise to partial sums (chunk-major) that conv2d_sum_chunks adds
// in order.
__kernel void conv2d_weight_grad(__global const real* dy, __global const real* x,
                                 __global real* out, const ConvParams p) {
    const int npairs = p.cig * p.kw;
    const int ublocks = (npairs + TB - 1) / TB;
    const int gid = get_global_id(0);
    const int ub = gid % ublocks;
    const int ky = gid / ublocks % p.kh;
    const int z = gid / ublocks / p.kh;
    const int cblocks = p.c_out / CB;
    if (z >= p.chunks * cblocks) {
        return;
    }
    const int s = z / cblocks;
    const int co0 = (z - s * cblocks) * CB;
    const int g = co0 / p.cog;
    const int plane_in = p.h * p.w;
    const int plane_out = p.ho * p.wo;

    // Pair t reads input channel g*cig + cis[t] shifted by kxs[t] - left columns.
    int cis[TB];
    int kxs[TB];
    int kx_min = p.kw;
    int kx_max = 0;
#pragma unroll
    for (int t = 0; t < TB; t++) {
        const int u = min(ub * TB + t, npairs - 1);
        cis[t] = u / p.kw;
        kxs[t] = u - cis[t] * p.kw;
        kx_min = min(kx_min, kxs[t]);
        kx_max = max(kx_max, kxs[t]);
    }
    const int shift_lo = kx_min - p.left;
    const int shift_hi = kx_max - p.left;
    const int reach = VW * STEP;
    const int dy_len = p.n * p.c_out * plane_out;

    vec acc[CB][TB];
#pragma unroll
    for (int c = 0; c < CB; c++) {
#pragma unroll
        for (int t = 0; t < TB; t++) {
            acc[c][t] = (vec)(real)0;
        }
    }

    // Output rows whose input row oy*sh + ky - top lies inside the input.
    const int dtop = p.top - ky;
    const int oy_lo = dtop > 0 ? (dtop + p.sh - 1) / p.sh : 0;
    const int oy_hi = p.w > 0 && p.h + dtop > 0 ? min(p.ho, (p.h + dtop + p.sh - 1) / p.sh) : 0;
    const int n0 = s * p.chunk;
    const int n1 = min(p.n, n0 + p.chunk);

    for (int n = n0; n < n1; n++) {
        for (int oy = oy_lo; oy < oy_hi; oy++) {
            // Offset of row iy of channel g*cig in sample n; pair t adds cis[t] planes.
            const int xrow = (n * p.c_in + g * p.cig) * plane_in + (oy * p.sh - dtop) * p.w;
            const int dyoff = ((n * p.c_out + co0) * p.ho + oy) * p.wo;
            __global const real* dyrow = dy + dyoff;
            // Whether masked loads of this row stay inside x and dy.
            const int first = xrow + cis[0] * plane_in + shift_lo;
            const int last = xrow + cis[TB - 1] * plane_in + shift_hi + (p.blocks - 1) * reach + reach;
            const bool safe = first >= 0 && last <= p.src_len &&
                              dyoff + (CB - 1) * plane_out + p.blocks * VW <= dy_len;
            for (int bx = 0; bx < p.blocks; bx++) {
                const int ox0 = bx * VW;
                const int nvalid = min(VW, p.wo - ox0);
                const int i0 = ox0 * STEP;
                vec dv[CB];
                vec xv[TB];
                // dy is zero past the last output column, so x lanes there may hold anything
                // (finite) read from the buffer.
#pragma unroll
                for (int c = 0; c < CB; c++) {
                    __global const real* d = dyrow + c * plane_out;
                    dv[c] = nvalid == VW ? vload8(0, d + ox0)
                          : safe         ? load_masked(d, ox0, 1, p.wo)
                                         : gather_row(d, ox0, 1, p.wo);
                }
                if (i0 + shift_lo >= 0 && i0 + shift_hi + (nvalid - 1) * STEP < p.w &&
                    (safe || i0 + shift_hi + reach <= p.w)) {
#pragma unroll
                    for (int t = 0; t < TB; t++) {
                        xv[t] = load_row(x + xrow + cis[t] * plane_in, i0 + kxs[t] - p.left, STEP);
                    }
                } else if (safe) {
#pragma unroll
                    for (int t = 0; t < TB; t++) {
                        xv[t] = load_masked(x + xrow + cis[t] * plane_in, i0 + kxs[t] - p.left,
                                            STEP, p.w);
                    }
                } else {
#pragma unroll
                    for (int t = 0; t < TB; t++) {
                        xv[t] = gather_row(x + xrow + cis[t] * plane_in, i0 + kxs[t] - p.left,
                                           STEP, p.w);
                    }
                }
#pragma unroll
                for (int c = 0; c < CB; c++) {
#pragma unroll
                    for (int t = 0; t < TB; t++) {
                        acc[c][t] += dv[c] * xv[t];
                    }
                }
            }
        }
    }

    const int kk = p.kh * p.kw;
    const int wnumel = p.c_out * p.cig * kk;
#pragma unroll
    for (int t = 0; t < TB; t++) {
        // A repeated pair (clamped above) is stored by its first occurrence only.
        if (ub * TB + t < npairs) {
#pragma unroll
            for (int c = 0; c < CB; c++) {
                out[s * wnumel + ((co0 + c) * p.cig + cis[t]) * kk + ky * p.kw + kxs[t]] =
                    lane_sum(acc[c][t]);
            }
        }
    }
}
#endif
