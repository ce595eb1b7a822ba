//! sum and mean of all elements, to a scalar: `s = sum_i x_i`, `m = s / n`.
//! Backward broadcasts the scalar gradient: `dx_i = ds` (sum) or `dm / n` (mean).
//!
//! The sum is accumulated in f64 whatever `T` is, so that a large f32 reduction does not lose
//! the small terms (we rejected pairwise summation: as accurate here, more code).

pub(crate) mod cases;
mod cl;
#[cfg(test)]
mod tests;

use crate::cost::{bytes, Cost, Work};
use shiftgrad_autograd::Var;
use shiftgrad_tensor::{Device, Real, Result, Tensor};

/// Cost of sum over `n` elements: n - 1 additions forward; the backward writes n elements.
/// Mean adds one division forward and n multiplications backward.
pub fn cost<T: Real>(n: usize, mean: bool) -> Cost {
    let adds = n.saturating_sub(1) as u64;
    let m = mean as u64;
    Cost {
        forward: Work::new(adds + m, bytes::<T>(n + 1)),
        backward: Work::new(m * n as u64, bytes::<T>(n + 1)),
    }
}

fn reduce<T: Real>(x: &Var<T>, mean: bool) -> Result<Var<T>> {
    let n = x.value().numel();
    let c = cost::<T>(n, mean);
    let scale = if mean { 1.0 / n.max(1) as f64 } else { 1.0 };
    let value = match x.value().device() {
        Device::Cpu => {
            let s = x.value().data().iter().map(|v| v.as_f64()).sum::<f64>() * scale;
            Tensor::scalar(T::of_f64(s))
        }
        Device::OpenCl(c) => cl::forward(&c, &x.value(), scale)?,
    };
    c.forward.record();
    let shape = x.shape();
    let op = if mean { "mean" } else { "sum" };
    Ok(Var::from_op(op, value, &[x], move |ctx| {
        c.backward.record();
        let dx = match ctx.grad_out.device() {
            Device::Cpu => Tensor::full(shape, ctx.grad_out.item()? * T::of_f64(scale)),
            Device::OpenCl(c) => cl::backward(&c, ctx.grad_out, &shape, scale)?,
        };
        Ok(vec![Some(dx)])
    }))
}

/// Sum of all elements, as a scalar.
pub fn sum<T: Real>(x: &Var<T>) -> Result<Var<T>> {
    reduce(x, false)
}

/// Mean of all elements, as a scalar.
pub fn mean<T: Real>(x: &Var<T>) -> Result<Var<T>> {
    reduce(x, true)
}
