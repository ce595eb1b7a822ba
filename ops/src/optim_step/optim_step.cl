// In-place optimiser updates: torch.optim.SGD and torch.optim.AdamW, one element at a time.
// Built with -D real=float|double (one source for f32 and f64).
//
// The arithmetic is that of sgd_element / adamw_element in cpu.rs, operation for operation
// and on the same coefficients (computed on the host), and contraction into fused
// multiply-adds is off, so the device rounds like the CPU reference (up to division and
// square root in f32, which OpenCL does not require to be correctly rounded).
//
// Work-item mapping: work-item i updates element i, which no other work-item touches. One
// element per work-item lets PoCL's work-group vectoriser pack consecutive work-items into
// SIMD lanes; a loop over four elements per work-item measured 4x (SGD) to 7x (AdamW) slower
// on PoCL for 2^20 f32 parameters (0.25 ms vs 1.1 ms, 0.56 ms vs 4.3 ms).

#pragma OPENCL FP_CONTRACT OFF

// Mirrors SgdParams in cl.rs. has_buf: a momentum buffer exists (momentum != 0);
// first: it is fresh (its contents are not read, b = d); nesterov: the Nesterov step.
typedef struct {
    real lr;
    real momentum;
    real weight_decay;
    uint n;
    uint has_buf;
    uint first;
    uint nesterov;
} SgdParams;

// Without a momentum buffer the host passes g for `buf`; it is then neither read nor written.
__kernel void sgd_step(__global real* w, __global const real* g, __global real* buf,
                       const SgdParams p) {
    const size_t i = get_global_id(0);
    if (i < p.n) {
        const real wi = w[i];
        const real d = g[i] + p.weight_decay * wi;
        real step = d;
        if (p.has_buf) {
            const real b = p.first ? d : p.momentum * buf[i] + d;
            buf[i] = b;
            step = p.nesterov ? d + p.momentum * b : b;
        }
        w[i] = wi - p.lr * step;
    }
}

// Mirrors AdamWParams in cl.rs (pad keeps the struct free of implicit padding in f64).
typedef struct {
    real lr;
    real decay;
    real beta1;
    real one_minus_beta1;
    real beta2;
    real one_minus_beta2;
    real bias1;
    real bias2;
    real eps;
    uint n;
    uint pad;
} AdamWParams;

__kernel void adamw_step(__global real* w, __global const real* g, __global real* m,
                         __global real* v, const AdamWParams p) {
    const size_t i = get_global_id(0);
    if (i < p.n) {
        const real gi = g[i];
        const real wi = w[i] * p.decay;
        const real mi = p.beta1 * m[i] + p.one_minus_beta1 * gi;
        const real vi = p.beta2 * v[i] + p.one_minus_beta2 * (gi * gi);
        m[i] = mi;
        v[i] = vi;
        w[i] = wi - p.lr * (mi / p.bias1) / (sqrt(vi / p.bias2) + p.eps);
    }
}
