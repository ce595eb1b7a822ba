// linear: the three products of y = x w^T + b and its backward as one strided matrix
// multiply, plus the column sums that give db. Built with -D real=float|double.
//
// matmul: C (m x n, row-major, contiguous) = A (m x k) * B (k x n) [+ bias over columns],
// where A(i, p) = a[i*a_sm + p*a_sk] and B(p, j) = b[p*b_sk + j*b_sn], so a transposed operand
// is just other strides (mod.rs/cl.rs lists the three uses):
//
//   forward  y  = x  . w^T : A = x (N, in),    B = w^T (in, out)
//   backward dx = dy . w   : A = dy (N, out),  B = w (out, in)
//            dw = dy^T . x : A = dy^T (out, N), B = x (N, in)
//
// Work-item mapping: a work-group of 8 x 8 items owns a TM x TN = 32 x 32 tile of C; item
// (tx, ty) owns the 4 x 4 outputs C(row0 + ty + 8r, col0 + tx + 8s), r, s < 4 (strided by 8 so
// that the 8 items of a row read 8 different local words). The k dimension is walked in
// slices of TK = 16: the group copies the 32 x 16 slice of A and the 16 x 32 slice of B into
// local memory (8 elements per item, zero outside the matrices), then every item does
// 16 x 16 multiply-adds from local memory and registers. Each output is accumulated by one
// item in increasing p, the same order as the CPU reference, so results are reproducible.
//
// col_sums: db[j] = sum_i dy[i, j], one work-item per column, rows in order.
//
// FP_CONTRACT is off: every product and sum rounds separately, in the CPU reference's order,
// so the device computes the reference's values exactly (fused multiply-adds would make
// results differ in the last bits, and by more where a dot product cancels).
#pragma OPENCL FP_CONTRACT OFF

#define TM 32
#define TN 32
#define TK 16
#define RM 4
#define RN 4
#define LX 8  // TN / RN
#define LY 8  // TM / RM

// Mirrors MatmulParams in cl.rs.
typedef struct {
    uint m, n, k;
    uint a_sm, a_sk;
    uint b_sk, b_sn;
    uint has_bias;  // 1: add bias[j] to column j
} MatmulParams;

__kernel __attribute__((reqd_work_group_size(LX, LY, 1)))
void matmul(__global const real* a, __global const real* b, __global const real* bias,
            __global real* out, const MatmulParams p) {
    __local real a_tile[TK][TM];
    __local real b_tile[TK][TN];
    const uint tx = get_local_id(0), ty = get_local_id(1);
    const uint lid = ty * LX + tx;
    const uint row0 = get_group_id(1) * TM, col0 = get_group_id(0) * TN;

    real acc[RM][RN];
    for (uint r = 0; r < RM; r++)
        for (uint s = 0; s < RN; s++)
            acc[r][s] = (real)0;

    for (uint p0 = 0; p0 < p.k; p0 += TK) {
        // Copy the slices. Consecutive items take consecutive elements along whichever
        // dimension is contiguous in memory (p when a_sk == 1, else i; likewise for B).
        for (uint e = lid; e < TK * TM; e += LX * LY) {
            const uint pp = p.a_sk == 1 ? e % TK : e / TM;
            const uint ii = p.a_sk == 1 ? e / TK : e % TM;
            const uint i = row0 + ii, q = p0 + pp;
            a_tile[pp][ii] = (i < p.m && q < p.k) ? a[i * p.a_sm + q * p.a_sk] : (real)0;
        }
        for (uint e = lid; e < TK * TN; e += LX * LY) {
            const uint pp = p.b_sn == 1 ? e / TN : e % TK;
            const uint jj = p.b_sn == 1 ? e % TN : e / TK;
            const uint j = col0 + jj, q = p0 + pp;
            b_tile[pp][jj] = (j < p.n && q < p.k) ? b[q * p.b_sk + j * p.b_sn] : (real)0;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        const uint kk_end = min((uint)TK, p.k - p0);
        for (uint kk = 0; kk < kk_end; kk++) {
            real av[RM], bv[RN];
            for (uint r = 0; r < RM; r++)
                av[r] = a_tile[kk][ty + LY * r];
            for (uint s = 0; s < RN; s++)
                bv[s] = b_tile[kk][tx + LX * s];
            for (uint r = 0; r < RM; r++)
                for (uint s = 0; s < RN; s++)
                    acc[r][s] += av[r] * bv[s];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }

    for (uint r = 0; r < RM; r++) {
        const uint i = row0 + ty + LY * r;
        for (uint s = 0; s < RN; s++) {
            const uint j = col0 + tx + LX * s;
            if (i < p.m && j < p.n) {
                out[i * p.n + j] = p.has_bias ? acc[r][s] + bias[j] : acc[r][s];
            }
        }
    }
}

__kernel void col_sums(__global const real* dy, __global real* db, const uint rows,
                       const uint cols) {
    const uint j = get_global_id(0);
    if (j < cols) {
        real acc = (real)0;
        for (uint i = 0; i < rows; i++) {
            acc += dy[i * cols + j];
        }
        db[j] = acc;
    }
}
