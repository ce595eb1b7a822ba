//! Channel gather and concat of NCHW tensors: the ghost split of the SW module (SPEC 1.5).
//!
//! - `gather_channels(x, idx)`: `out[:, j] = x[:, idx[j]]`. Indices may repeat; the backward
//!   is then a scatter-add, `dx[:, c] = sum_{j: idx[j] = c} dy[:, j]` (zero for channels
//!   nobody gathered).
//! - `concat_channels(xs)`: stacks 4-D tensors along dim 1; the backward splits `dy` back into
//!   the inputs' channel ranges.
//!
//! Both move whole `H*W` planes, which are contiguous in NCHW, so every inner loop is a slice
//! copy (or a slice add). On the CPU the backward of gather walks the output channels in order
//! and adds each plane into its source channel of a zeroed `dx`, which handles repeats without
//! building the inverse index. On an OpenCL device that scatter would race where an index
//! repeats, so the backward is a gather instead: the host builds the inverse index (for each
//! input channel, the entries that read it, in increasing order), uploads it as a small i32
//! table, and each work-item sums its channel's `dy` planes in that order, the CPU's order
//! (channels.cl; four elements per work-item). Concat is one strided copy kernel per input in
//! each direction. We rejected expressing the ghost split as a multiplication by a 0/1
//! selection matrix: it costs `C*K*H*W` MACs for pure data movement.
//!
//! Cost (SPEC 4): data movement has no FLOPs, only bytes, except the additions the gather
//! backward needs when an index repeats.

pub(crate) mod cases;
pub(crate) mod cl;
mod cpu;
#[cfg(test)]
mod tests;

use crate::cost::{bytes, Cost, Work};
use crate::device::common_device;
use shiftgrad_autograd::Var;
use shiftgrad_tensor::{Device, Error, Real, Result, Shape};

/// Cost of `gather_channels` of `x` with dims `(N, C, H, W)` and the index list `idx`
/// (`K = idx.len()` output channels, `D` distinct indices).
/// Forward: 0 FLOPs; reads and writes `N*K*H*W` elements.
/// Backward: `N*(K - D)*H*W` additions (repeats accumulate); reads `dy` (`N*K*H*W`) and
/// writes all of `dx` (`N*C*H*W`, ungathered channels are zeros).
pub fn gather_cost<T: Real>(x_dims: [usize; 4], idx: &[usize]) -> Cost {
    let [n, c, h, w] = x_dims;
    let plane = n * h * w;
    let k = idx.len();
    let mut seen = idx.to_vec();
    seen.sort_unstable();
    seen.dedup();
    let repeats = k - seen.len();
    Cost {
        forward: Work::new(0, bytes::<T>(2 * k * plane)),
        backward: Work::new((repeats * plane) as u64, bytes::<T>((k + c) * plane)),
    }
}

/// Cost of `concat_channels` of inputs with dims `(N, C_i, H, W)`: no FLOPs; forward reads
/// every input and writes the output; backward reads `dy` and writes every input's gradient.
pub fn concat_cost<T: Real>(xs_dims: &[[usize; 4]]) -> Cost {
    let total: usize = xs_dims.iter().map(|d| d.iter().product::<usize>()).sum();
    Cost {
        forward: Work::new(0, bytes::<T>(2 * total)),
        backward: Work::new(0, bytes::<T>(2 * total)),
    }
}

/// `x: (N, C, H, W) -> (N, idx.len(), H, W)` with `out[:, j] = x[:, idx[j]]`.
/// Every index must be below `C`; repeats are allowed (their gradients add up).
pub fn gather_channels<T: Real>(x: &Var<T>, idx: &[usize]) -> Result<Var<T>> {
    let dims = x.shape().nchw("gather_channels", "input")?;
    let [n, c, h, w] = dims;
    if let Some((j, &bad)) = idx.iter().enumerate().find(|(_, &i)| i >= c) {
        return Err(Error::arg(
            "gather_channels",
            format!(
                "index {bad} (entry {j}) is out of range for input of shape {} with {c} channels",
                x.shape()
            ),
        ));
    }
    let out_shape = Shape::new(&[n, idx.len(), h, w]);
    let cost = gather_cost::<T>(dims, idx);
    let y = match x.value().device() {
        Device::Cpu => cpu::gather_forward(&x.value(), idx, out_shape),
        Device::OpenCl(c) => cl::gather_forward(&c, &x.value(), idx, out_shape)?,
    };
    cost.forward.record();
    let idx = idx.to_vec();
    Ok(Var::from_op("gather_channels", y, &[x], move |ctx| {
        cost.backward.record();
        let dx = match ctx.grad_out.device() {
            Device::Cpu => cpu::gather_backward(ctx.grad_out, &idx, dims),
            Device::OpenCl(c) => cl::gather_backward(&c, ctx.grad_out, &idx, dims)?,
        };
        Ok(vec![Some(dx)])
    }))
}

/// Concatenation of 4-D tensors along dim 1 (channels); N, H and W must agree.
pub fn concat_channels<T: Real>(xs: &[&Var<T>]) -> Result<Var<T>> {
    let Some(first) = xs.first() else {
        return Err(Error::arg(
            "concat_channels",
            "needs at least one input, got none",
        ));
    };
    let first_dims = first.shape().nchw("concat_channels", "input 0")?;
    let mut all_dims = vec![first_dims];
    for (i, x) in xs.iter().enumerate().skip(1) {
        let d = x.shape().nchw("concat_channels", &format!("input {i}"))?;
        if (d[0], d[2], d[3]) != (first_dims[0], first_dims[2], first_dims[3]) {
            return Err(Error::shape(
                "concat_channels",
                format!(
                    "input {i} has shape {}, input 0 has shape {}; N, H and W must agree",
                    x.shape(),
                    first.shape()
                ),
            ));
        }
        all_dims.push(d);
    }
    let [n, _, h, w] = first_dims;
    let channels: Vec<usize> = all_dims.iter().map(|d| d[1]).collect();
    let out_shape = Shape::new(&[n, channels.iter().sum(), h, w]);
    let cost = concat_cost::<T>(&all_dims);
    let y = {
        let values: Vec<_> = xs.iter().map(|x| x.value()).collect();
        let refs: Vec<_> = values.iter().map(|v| &**v).collect();
        match common_device("concat_channels", &refs)? {
            Device::Cpu => cpu::concat_forward(&refs, out_shape),
            Device::OpenCl(c) => cl::concat_forward(&c, &refs, out_shape)?,
        }
    };
    cost.forward.record();
    Ok(Var::from_op("concat_channels", y, xs, move |ctx| {
        let work: Vec<[usize; 4]> = all_dims
            .iter()
            .zip(ctx.needs)
            .filter(|(_, &need)| need)
            .map(|(d, _)| *d)
            .collect();
        concat_cost::<T>(&work).backward.record();
        match ctx.grad_out.device() {
            Device::Cpu => Ok(cpu::concat_backward(ctx.grad_out, &channels, ctx.needs)),
            Device::OpenCl(c) => cl::concat_backward(&c, ctx.grad_out, &channels, ctx.needs),
        }
    }))
}
