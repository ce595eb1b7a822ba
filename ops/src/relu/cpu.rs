//! CPU reference for relu.

use shiftgrad_tensor::{Real, Result, Tensor};

pub fn forward<T: Real>(x: &Tensor<T>) -> Tensor<T> {
    x.map(|v| if v > T::zero() { v } else { T::zero() })
}

/// `dx = dy` where the output is positive, else 0.
pub fn backward<T: Real>(dy: &Tensor<T>, y: &Tensor<T>) -> Result<Tensor<T>> {
    dy.zip_map(
        y,
        "relu",
        |g, out| if out > T::zero() { g } else { T::zero() },
    )
}
