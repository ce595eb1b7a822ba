//! relu: `y = max(x, 0)`, NaN propagated; `dx = dy * [not y <= 0]` (so relu'(0) = 0 and a NaN
//! output passes its gradient, both as in PyTorch).
//!
//! The backward reads the saved output rather than the input: the output is kept anyway by
//! the graph, so relu saves nothing of its own.

pub(crate) mod cases;
mod cl;
mod cpu;
#[cfg(test)]
mod tests;

use crate::cost::{bytes, Cost, Work};
use shiftgrad_autograd::Var;
use shiftgrad_tensor::{Device, Real, Result};

/// Cost of relu on `n` elements: one comparison per element forward; backward one comparison
/// and one select per element, counted as one FLOP each.
pub fn cost<T: Real>(n: usize) -> Cost {
    Cost {
        forward: Work::new(n as u64, bytes::<T>(2 * n)),
        backward: Work::new(n as u64, bytes::<T>(3 * n)),
    }
}

/// `max(x, 0)` element-wise.
pub fn relu<T: Real>(x: &Var<T>) -> Result<Var<T>> {
    let c = cost::<T>(x.value().numel());
    let y = match x.value().device() {
        Device::Cpu => cpu::forward(&x.value()),
        Device::OpenCl(c) => cl::forward(&c, &x.value())?,
    };
    c.forward.record();
    Ok(Var::from_op("relu", y, &[x], move |ctx| {
        c.backward.record();
        let dx = match ctx.output.device() {
            Device::Cpu => cpu::backward(ctx.grad_out, ctx.output)?,
            Device::OpenCl(c) => cl::backward(&c, ctx.grad_out, ctx.output)?,
        };
        Ok(vec![Some(dx)])
    }))
}
