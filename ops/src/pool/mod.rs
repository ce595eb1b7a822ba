//! global_avg_pool: `(N, C, H, W) -> (N, C)`, `y[n, c] = (1 / HW) sum_{h, w} x[n, c, h, w]`;
//! backward spreads `dy[n, c] / HW` uniformly over the plane.
//!
//! The output is (N, C), not (N, C, 1, 1): the head of an SW-ResNet feeds it straight into
//! linear, and we rejected keeping the unit dimensions plus a separate flatten op (one more
//! graph node for nothing). Plane sums are accumulated in f64.

pub(crate) mod cases;
mod cpu;
#[cfg(test)]
mod tests;

use crate::cost::{bytes, Cost, Work};
use shiftgrad_autograd::Var;
use shiftgrad_tensor::{Error, Real, Result, Shape, Tensor};

const OP: &str = "global_avg_pool";

/// Cost of global average pooling of `x` = (N, C, H, W), `E = N*C*H*W`, `P = N*C` planes.
/// Forward: `HW - 1` additions and one division per plane, `E` FLOPs; bytes `E + P`.
/// Backward: one division `dy / HW` per plane, `P` FLOPs (the broadcast is a copy); bytes `P + E`.
pub fn cost<T: Real>(x: &Shape) -> Cost {
    let e = x.numel();
    let p = x.dims().iter().take(2).product::<usize>();
    Cost {
        forward: Work::new(e as u64, bytes::<T>(e + p)),
        backward: Work::new(p as u64, bytes::<T>(p + e)),
    }
}

/// Mean over H and W: (N, C, H, W) -> (N, C).
pub fn global_avg_pool<T: Real>(x: &Var<T>) -> Result<Var<T>> {
    let shape = x.shape();
    let [n, c, h, w] = shape.nchw(OP, "input")?;
    let hw = h * w;
    if hw == 0 {
        return Err(Error::shape(
            OP,
            format!("input {shape} has an empty spatial map"),
        ));
    }
    let cst = cost::<T>(&shape);
    let y = Tensor::new([n, c], cpu::forward(&x.value(), n * c, hw))?;
    cst.forward.record();
    Ok(Var::from_op(OP, y, &[x], move |ctx| {
        cst.backward.record();
        Ok(vec![Some(cpu::backward(ctx.grad_out, &shape, hw))])
    }))
}
