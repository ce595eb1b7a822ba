//! global_avg_pool: `(N, C, H, W) -> (N, C)`, `y[n, c] = (1 / HW) sum_{h, w} x[n, c, h, w]`;
//! backward spreads `dy[n, c] / HW` uniformly over the plane.
//!
//! The output is (N, C), not (N, C, 1, 1): the head of an SW-ResNet feeds it straight into
//! linear, and we rejected keeping the unit dimensions plus a separate flatten op (one more
//! graph node for nothing). On the CPU, plane sums are accumulated in f64.
//!
//! On OpenCL (`cl.rs`, `pool.cl`) one work-item sums one plane: at the head of an SW-ResNet
//! the planes are 7x7 and there are N*C = 8192 of them, plenty of work-items; we rejected a
//! work-group tree per plane, which only pays for large planes. The sum is compensated
//! (TwoSum), so a plane whose values cancel keeps about the digits of the CPU's f64 sum. The
//! backward also takes one plane per work-item.

pub(crate) mod cases;
mod cl;
mod cpu;
#[cfg(test)]
mod tests;

use crate::cost::{bytes, Cost, Work};
use shiftgrad_autograd::Var;
use shiftgrad_tensor::{Device, Error, Real, Result, Shape, Tensor};

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
    let y = match x.value().device() {
        Device::Cpu => Tensor::new([n, c], cpu::forward(&x.value(), n * c, hw))?,
        Device::OpenCl(ctx) => cl::forward(&ctx, &x.value(), [n, c], hw)?,
    };
    cst.forward.record();
    Ok(Var::from_op(OP, y, &[x], move |ctx| {
        cst.backward.record();
        let dx = match ctx.grad_out.device() {
            Device::Cpu => cpu::backward(ctx.grad_out, &shape, hw),
            Device::OpenCl(c) => cl::backward(&c, ctx.grad_out, &shape, hw)?,
        };
        Ok(vec![Some(dx)])
    }))
}
