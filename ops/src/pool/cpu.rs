//! CPU reference for global average pooling: one contiguous H*W plane per output element.

use shiftgrad_tensor::{Real, Tensor};

/// `y[n, c] = mean over the (n, c) plane`, summed in f64.
pub fn forward<T: Real>(x: &Tensor<T>, planes: usize, hw: usize) -> Vec<T> {
    (0..planes)
        .map(|p| {
            let sum: f64 = x.data()[p * hw..][..hw].iter().map(|v| v.as_f64()).sum();
            T::of_f64(sum / hw as f64)
        })
        .collect()
}

/// `dx[n, c, :, :] = dy[n, c] / (H*W)`.
pub fn backward<T: Real>(
    dy: &Tensor<T>,
    x_shape: &shiftgrad_tensor::Shape,
    hw: usize,
) -> Tensor<T> {
    let mut dx = Tensor::zeros(x_shape.clone());
    let scale = T::one() / T::of_usize(hw);
    for (plane, &g) in dx.data_mut().chunks_exact_mut(hw).zip(dy.data()) {
        plane.fill(g * scale);
    }
    dx
}
