//! CPU reference for relu.
//!
//! NaN semantics follow PyTorch: `relu(NaN) = NaN` (a diverged activation is not silently
//! turned into 0, which would hide it behind a finite loss), and the backward passes the
//! gradient wherever the output is not `<= 0` (PyTorch's `threshold_backward`), so a NaN
//! output passes its gradient on.

use shiftgrad_tensor::{Real, Result, Tensor};

pub fn forward<T: Real>(x: &Tensor<T>) -> Tensor<T> {
    x.map(|v| {
        if v > T::zero() || v.is_nan() {
            v
        } else {
            T::zero()
        }
    })
}

/// `dx = dy` except where the output is `<= 0` (relu'(0) = 0).
pub fn backward<T: Real>(dy: &Tensor<T>, y: &Tensor<T>) -> Result<Tensor<T>> {
    dy.zip_map(
        y,
        "relu",
        |g, out| if out <= T::zero() { T::zero() } else { g },
    )
}
