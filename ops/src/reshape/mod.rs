//! reshape: the same elements, in the same row-major order, under a new shape with as many
//! elements. Backward reshapes `dy` back to the input's shape.
//!
//! Tensors are contiguous and have no views (see `shiftgrad_tensor::Tensor`), so the output is
//! a copy of the input's data under the new shape, and the gradient a copy of `dy` under the
//! old one. We rejected sharing the buffer between input and output: it would need
//! reference-counted storage in every tensor, for an op that SW-ResNets apply only to small
//! tensors (the pooled features before the linear head, weight banks).
//!
//! On an OpenCL device the copy is a device-to-device buffer copy (`Tensor::try_clone`), so
//! the tensor never leaves the device and no kernel of its own is needed.
//!
//! Cost (SPEC 4): no FLOPs; the copy reads and writes every element once, each way.

pub(crate) mod cases;
#[cfg(test)]
mod tests;

use crate::cost::{bytes, Cost, Work};
use shiftgrad_autograd::Var;
use shiftgrad_tensor::{Real, Result};

/// Cost of reshaping `n` elements: 0 FLOPs, `n` read and `n` written, forward and backward.
pub fn cost<T: Real>(n: usize) -> Cost {
    Cost {
        forward: Work::new(0, bytes::<T>(2 * n)),
        backward: Work::new(0, bytes::<T>(2 * n)),
    }
}

/// `x` under the shape `shape`, which must have as many elements as `x`.
pub fn reshape<T: Real>(x: &Var<T>, shape: &[usize]) -> Result<Var<T>> {
    let in_shape = x.shape();
    let y = x.value().try_clone()?.reshape(shape)?;
    let c = cost::<T>(in_shape.numel());
    c.forward.record();
    Ok(Var::from_op("reshape", y, &[x], move |ctx| {
        c.backward.record();
        Ok(vec![Some(ctx.grad_out.try_clone()?.reshape(in_shape)?)])
    }))
}
