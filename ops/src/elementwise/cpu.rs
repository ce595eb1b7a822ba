//! CPU reference for the element-wise ops.

use shiftgrad_tensor::{Real, Result, Tensor};

/// `xs[0] + ... + xs[k-1]`, one pass over the output (shapes already checked, `k >= 1`).
/// Each input is added in turn into the output buffer, so every loop runs over contiguous
/// memory.
pub fn add_n<T: Real>(xs: &[&Tensor<T>]) -> Tensor<T> {
    let mut y = xs[0].clone();
    for x in &xs[1..] {
        for (acc, &v) in y.data_mut().iter_mut().zip(x.data()) {
            *acc += v;
        }
    }
    y
}

/// `a * b` element-wise (also the backward: `da = dy * b`, `db = dy * a`).
pub fn mul<T: Real>(a: &Tensor<T>, b: &Tensor<T>) -> Result<Tensor<T>> {
    a.zip_map(b, "mul", |x, y| x * y)
}
