// One block of the bank convolution's output, shared by bank_conv_forward and the fused
// shift-wise forward (prepended to both sources after segments.cl). Needs -D K and -D RB.
//
// acc[r] = columns v0 .. v0 + VW - 1 of output row u0 + r (r < RB) of the plane that kernel
// wk (K*K taps, in registers) makes from the input plane at x[x_plane] (h x w, zero padding
// K - 1; x_len: the whole buffer's length). Input row i (iy = u0 - (K - 1) + i, i < RB + K - 1)
// meets output row r through kernel row ky = i - r, so each segment of x is loaded once for
// the up to K*RB multiply-adds it feeds (i, r, ky and kx are compile-time after unrolling; the
// only run-time branch is whether the input row exists). For every output row the terms are
// added with ky outer and kx inner, the order of the CPU reference.
INLINE void bank_rows(vec* acc, __global const real* x, int x_plane, int h, int w, int x_len,
                      const real* wk, int u0, int v0) {
    const int pad = K - 1;
#pragma unroll
    for (int r = 0; r < RB; r++) {
        acc[r] = (vec)(real)0;
    }
#pragma unroll
    for (int i = 0; i < RB + K - 1; i++) {
        const int iy = u0 - pad + i;
        if (iy < 0 || iy >= h) {
            continue;
        }
#pragma unroll
        for (int kx = 0; kx < K; kx++) {
            const vec xs = load_seg(x, x_plane + iy * w, v0 + kx - pad, w, x_len);
#pragma unroll
            for (int r = 0; r < RB; r++) {
                if (i - r >= 0 && i - r < K) {
                    acc[r] += wk[(i - r) * K + kx] * xs;
                }
            }
        }
    }
}
