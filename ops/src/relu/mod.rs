//! relu: `y = max(x, 0)`, NaN propagated; `dx = dy * [not y <= 0]` (so relu'(0) = 0 and a NaN
//! output passes its gradient, both as in PyTorch).
//!
//! The backward reads the saved output rather than the input: the output is kept anyway by
//! the graph, so relu saves nothing of its own.
//!
//! `add_relu(xs)` is `relu(add_n(xs))` as one op (SW-ResNet's residual sums, which all end in
//! a relu, now run as `bn_sum`, which takes the batch-norms before them in as well, and
//! composes `add_relu` on the CPU): on OpenCL one pass writes the activated sum
//! (elementwise.cl's `add_n` with its relu flag), so neither the sum nor a second output is
//! stored, and the backward masks `dy` once and hands that to the last input that needs a
//! gradient (copies to the others). The CPU reference composes `add_n` and relu, written as
//! the two ops are.

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

/// Cost of `add_relu` of `k` tensors of `n` elements: the sum's `(k - 1) * n` additions and
/// relu's `n` comparisons, reading `k * n` and writing `n` in one pass; backward the mask's
/// `n` (reads `dy` and `y`, writes one gradient) and a copy for every further input that
/// needs one.
pub fn add_relu_cost<T: Real>(k: usize, n: usize) -> Cost {
    Cost {
        forward: Work::new((k * n) as u64, bytes::<T>((k + 1) * n)),
        backward: add_relu_backward_work::<T>(k, n),
    }
}

fn add_relu_backward_work<T: Real>(needed: usize, n: usize) -> Work {
    if needed == 0 {
        return Work::new(0, 0);
    }
    Work::new(n as u64, bytes::<T>((3 + 2 * (needed - 1)) * n))
}

/// `relu(x_0 + ... + x_{k-1})`, the sum in argument order (as `add_n`), in one op (op name
/// "add_relu"); shapes must be equal.
pub fn add_relu<T: Real>(xs: &[&Var<T>]) -> Result<Var<T>> {
    let shape = crate::elementwise::sum_shape("add_relu", xs)?;
    let n = shape.numel();
    let c = add_relu_cost::<T>(xs.len(), n);
    let y = {
        let values: Vec<_> = xs.iter().map(|x| x.value()).collect();
        let refs: Vec<&shiftgrad_tensor::Tensor<T>> = values.iter().map(|v| &**v).collect();
        match crate::device::common_device("add_relu", &refs)? {
            Device::Cpu => cpu::forward(&crate::elementwise::cpu::add_n(&refs)),
            Device::OpenCl(ctx) => crate::elementwise::cl::add_n_act(&ctx, &refs, true)?,
        }
    };
    c.forward.record();
    Ok(Var::from_op("add_relu", y, xs, move |ctx| {
        let needed = ctx.needs.iter().filter(|&&b| b).count();
        add_relu_backward_work::<T>(needed, n).record();
        if needed == 0 {
            return Ok(vec![None; ctx.needs.len()]);
        }
        let g = match ctx.output.device() {
            Device::Cpu => cpu::backward(ctx.grad_out, ctx.output)?,
            Device::OpenCl(c) => cl::backward(&c, ctx.grad_out, ctx.output)?,
        };
        // The last input that needs a gradient takes g, the others copies of it.
        let mut remaining = needed;
        let mut g = Some(g);
        ctx.needs
            .iter()
            .map(|&need| {
                if !need {
                    return Ok(None);
                }
                remaining -= 1;
                match remaining {
                    0 => Ok(g.take()),
                    _ => g.as_ref().map(|t| t.try_clone()).transpose(),
                }
            })
            .collect()
    }))
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
