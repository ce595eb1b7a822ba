//! Element-wise `add`, `mul` and `add_n` of same-shape tensors.
//!
//! - `add`: `y = a + b`; backward `da = dy`, `db = dy`.
//! - `mul`: `y = a * b`; backward `da = dy * b`, `db = dy * a` (the inputs are kept by
//!   reference, not copied: a mask or a weight is alive anyway).
//! - `add_n`: `y = x_0 + ... + x_{k-1}` in one pass over the output; backward hands `dy` to
//!   every input. Used for `Z = BN_h + BN_v + BN_i + X_r` (SPEC 1.5): one pass writes the
//!   output once instead of three chained `add`s writing two temporaries.
//!
//! On an OpenCL device every kernel runs one element per work-item (elementwise.cl gives the
//! measurements against four elements per work-item); add_n passes up to eight inputs to one kernel and chains longer sums in a
//! fixed order (cl.rs), and mul's backward computes both gradients in one pass over `dy` when
//! both are needed. The gradients of add are device copies of `dy`.
//!
//! There is no broadcasting: shapes must be equal, and a caller with a per-kernel mask
//! expands it to the weight's shape first. We rejected NumPy-style broadcasting because every
//! use in SW-ResNets has equal shapes, and broadcasting would add a reduction to every
//! backward and make the byte counts depend on the broadcast pattern.
//! Gradients are computed only for the inputs that need one (`ctx.needs`), and the work
//! recorded in the backward is that of the gradients actually computed.

pub(crate) mod cases;
pub(crate) mod cl;
pub(crate) mod cpu;
#[cfg(test)]
mod tests;

use crate::cost::{bytes, Cost, Work};
use crate::device::common_device;
use shiftgrad_autograd::Var;
use shiftgrad_tensor::{Device, Error, Real, Result, Shape, Tensor};

/// Cost of `add_n` of `k` tensors of `n` elements each (`add` is `k = 2`).
/// Forward: `(k - 1) * n` additions, reads `k * n`, writes `n`.
/// Backward: no arithmetic; reads `dy` once and writes `k` gradients.
pub fn add_cost<T: Real>(k: usize, n: usize) -> Cost {
    Cost {
        forward: Work::new((k.saturating_sub(1) * n) as u64, bytes::<T>((k + 1) * n)),
        backward: add_backward_work::<T>(k, n),
    }
}

/// Backward work of `add_n` when `needed` of its `k` inputs take a gradient.
fn add_backward_work<T: Real>(needed: usize, n: usize) -> Work {
    Work::new(0, bytes::<T>((needed + 1) * n))
}

/// Cost of `mul` on `n` elements. Forward: `n` multiplications, reads `2n`, writes `n`.
/// Backward: `n` multiplications per input gradient; with both, reads `dy, a, b` and writes
/// `da, db`.
pub fn mul_cost<T: Real>(n: usize) -> Cost {
    Cost {
        forward: Work::new(n as u64, bytes::<T>(3 * n)),
        backward: mul_backward_work::<T>(2, n),
    }
}

/// Backward work of `mul` when `needed` (1 or 2) gradients are computed: each reads `dy` and
/// the other factor and writes one tensor (`dy` is read once when both are computed).
fn mul_backward_work<T: Real>(needed: usize, n: usize) -> Work {
    let reads = if needed == 0 { 0 } else { 1 + needed };
    Work::new((needed * n) as u64, bytes::<T>((reads + needed) * n))
}

/// `a + b` element-wise; the shapes must be equal.
pub fn add<T: Real>(a: &Var<T>, b: &Var<T>) -> Result<Var<T>> {
    a.value().check_same_shape(&b.value(), "add")?;
    add_n(&[a, b])
}

/// The shape shared by the inputs of a sum (`op` names it in errors): at least one input, all
/// of the same shape.
pub(crate) fn sum_shape<T: Real>(op: &'static str, xs: &[&Var<T>]) -> Result<Shape> {
    let Some(first) = xs.first() else {
        return Err(Error::arg(op, "needs at least one input, got none"));
    };
    let shape = first.shape();
    for (i, x) in xs.iter().enumerate().skip(1) {
        if x.shape() != shape {
            return Err(Error::shape(
                op,
                format!(
                    "input {i} has shape {}, input 0 has shape {shape}",
                    x.shape()
                ),
            ));
        }
    }
    Ok(shape)
}

/// The sum of several same-shape tensors, computed in one pass (op name "add").
pub fn add_n<T: Real>(xs: &[&Var<T>]) -> Result<Var<T>> {
    let shape = sum_shape("add", xs)?;
    let n = shape.numel();
    let c = add_cost::<T>(xs.len(), n);
    let y = {
        let values: Vec<_> = xs.iter().map(|x| x.value()).collect();
        let refs: Vec<&Tensor<T>> = values.iter().map(|v| &**v).collect();
        match common_device("add", &refs)? {
            Device::Cpu => cpu::add_n(&refs),
            Device::OpenCl(c) => cl::add_n(&c, &refs)?,
        }
    };
    c.forward.record();
    Ok(Var::from_op("add", y, xs, move |ctx| {
        let needed = ctx.needs.iter().filter(|&&b| b).count();
        add_backward_work::<T>(needed, n).record();
        // Each needed gradient is a copy of dy, on dy's device.
        ctx.needs
            .iter()
            .map(|&need| need.then(|| ctx.grad_out.try_clone()).transpose())
            .collect()
    }))
}

/// `a * b` element-wise; the shapes must be equal (a mask is expanded by the caller).
pub fn mul<T: Real>(a: &Var<T>, b: &Var<T>) -> Result<Var<T>> {
    let n = a.value().numel();
    let y = {
        let (av, bv) = (a.value(), b.value());
        av.check_same_shape(&bv, "mul")?;
        match common_device("mul", &[&av, &bv])? {
            Device::Cpu => cpu::mul(&av, &bv)?,
            Device::OpenCl(c) => cl::mul(&c, &av, &bv)?,
        }
    };
    mul_cost::<T>(n).forward.record();
    let (a_saved, b_saved) = (a.save(), b.save());
    Ok(Var::from_op("mul", y, &[a, b], move |ctx| {
        let needed = ctx.needs.iter().filter(|&&b| b).count();
        mul_backward_work::<T>(needed, n).record();
        let (av, bv, dy) = (
            a_saved.value("mul", "first factor")?,
            b_saved.value("mul", "second factor")?,
            ctx.grad_out,
        );
        let grads = match (dy.device(), ctx.needs[0], ctx.needs[1]) {
            (Device::OpenCl(c), true, true) => {
                let (da, db) = cl::mul_backward(&c, dy, &av, &bv)?;
                (Some(da), Some(db))
            }
            (Device::OpenCl(c), need_a, need_b) => (
                need_a.then(|| cl::mul(&c, dy, &bv)).transpose()?,
                need_b.then(|| cl::mul(&c, dy, &av)).transpose()?,
            ),
            (Device::Cpu, need_a, need_b) => (
                need_a.then(|| cpu::mul(dy, &bv)).transpose()?,
                need_b.then(|| cpu::mul(dy, &av)).transpose()?,
            ),
        };
        Ok(vec![grads.0, grads.1])
    }))
}
