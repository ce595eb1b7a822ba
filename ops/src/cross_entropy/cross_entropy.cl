// Softmax cross-entropy of logits (N, K) against int labels, mean over the batch, and its
// backward (the formulation and why: mod.rs). Built with -D real=float|double.
//
// ce_forward: ONE work-group of WG items for the whole batch (global = local = WG). Item lid
// takes rows lid, lid + WG, ...; for each it finds the row max m (first position a), the
// tail t = log1p(sum_{j != a} exp(x_j - m)) over the row's K contiguous logits, saves m and
// t in row_max[row], row_tail[row] and adds (m - x[label]) + t to its partial loss. The WG
// partials are added by a fixed tree in local memory; item 0 writes the mean. One launch, no
// atomics, the same order of additions on every run.
// ce_backward: a 2-D range (K, N); item (j, i) writes, with z = (x[i, j] - m_i) - t_i,
// dx[i, j] = (j == label_i ? expm1(z) : exp(z)) * g / N, g read from the device scalar.

#define WG 64

__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void ce_forward(__global const real* logits, __global const int* labels,
                __global real* row_max, __global real* row_tail, __global real* loss,
                const uint n, const uint k) {
    __local real part[WG];
    const uint lid = get_local_id(0);
    real acc = (real)0;
    for (uint i = lid; i < n; i += WG) {
        __global const real* row = logits + (size_t)i * k;
        uint a = 0;
        real m = row[0];
        for (uint j = 1; j < k; j++) {
            if (row[j] > m) {
                m = row[j];
                a = j;
            }
        }
        real rest = (real)0;
        for (uint j = 0; j < k; j++) {
            if (j != a) {
                rest += exp(row[j] - m);
            }
        }
        const real tail = log1p(rest);
        row_max[i] = m;
        row_tail[i] = tail;
        acc += (m - row[labels[i]]) + tail;
    }
    part[lid] = acc;
    for (uint h = WG / 2; h > 0; h >>= 1) {
        barrier(CLK_LOCAL_MEM_FENCE);
        if (lid < h) {
            part[lid] += part[lid + h];
        }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lid == 0) {
        loss[0] = part[0] / (real)n;
    }
}

__kernel void ce_backward(__global const real* logits, __global const int* labels,
                          __global const real* row_max, __global const real* row_tail,
                          __global const real* g, __global real* dx, const uint n,
                          const uint k) {
    const uint j = get_global_id(0);
    const uint i = get_global_id(1);
    if (j < k) {
        const uint idx = i * k + j;
        const real z = (logits[idx] - row_max[i]) - row_tail[i];
        const real p_minus_target = labels[i] == (int)j ? expm1(z) : exp(z);
        dx[idx] = p_minus_target * (g[0] / (real)n);
    }
}
