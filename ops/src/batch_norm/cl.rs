//! OpenCL batch-norm: launches of the kernels in `batch_norm.cl` (see its header for the
//! mapping of work-items to elements). The per-channel statistics stay on the device as
//! `T` tensors of C elements; the running statistics are updated in place by the statistics
//! kernel, so a training step never reads anything back.

use crate::device::{buf, dev_err, gpu_shaped, launch, output};
use shiftgrad_tensor::opencl::{Arg, Context, KernelParams, Program};
use shiftgrad_tensor::{Error, Real, Result, Tensor};

use super::OP;

pub(crate) const SOURCE: &str = include_str!("batch_norm.cl");
/// Work-group size of the per-channel reductions (`WG` in the .cl file).
pub(crate) const WG: usize = 64;
/// Elements per segment (`SEG` in the .cl file): runs of 64 contiguous elements per work-item
/// for CPU devices; one element per work-item for the GPU-shaped form (`device::gpu_shaped`),
/// so that consecutive work-items read consecutive elements (the same kernels, built with
/// `SEG = 1`: the element-wise passes give bitwise the same values, the channel sums are
/// grouped differently and agree to rounding).
pub(crate) fn seg(ctx: &Context) -> usize {
    if gpu_shaped(ctx) {
        1
    } else {
        64
    }
}

/// Mirrors `BnParams` in batch_norm.cl: the reals first, then the sizes, so there is no
/// padding for either `T`.
#[repr(C)]
#[derive(Clone, Copy)]
struct BnParams<T> {
    eps: T,
    momentum: T,
    keep: T,
    bessel: T,
    n: u32,
    c: u32,
    hw: u32,
    count: u32,
}

// SAFETY: #[repr(C)], four `T` (f32 or f64) then four u32: no padding for either type, no
// pointers; mirrored field for field by `BnParams` in batch_norm.cl.
unsafe impl<T: Real> KernelParams for BnParams<T> {}

impl<T: Real> BnParams<T> {
    fn new([n, c, h, w]: [usize; 4], momentum: f64, eps: f64) -> Result<Self> {
        let count = n * h * w;
        let u = |v: usize| {
            u32::try_from(v).map_err(|_| {
                Error::arg(
                    OP,
                    format!("size {v} is too large for a 32-bit kernel index"),
                )
            })
        };
        // Elements are indexed with 32-bit arithmetic in the kernels.
        u(n * c * h * w)?;
        Ok(BnParams {
            eps: T::of_f64(eps),
            momentum: T::of_f64(momentum),
            keep: T::of_f64(1.0 - momentum),
            bessel: T::of_f64(count as f64 / (count.max(2) - 1) as f64),
            n: u(n)?,
            c: u(c)?,
            hw: u(h * w)?,
            count: u(count)?,
        })
    }
}

fn prog<T: Real>(ctx: &Context) -> Result<Program> {
    let defines = [
        ("real", T::DTYPE.cl_name().to_string()),
        ("SEG", seg(ctx).to_string()),
    ];
    ctx.program("batch_norm", SOURCE, &defines).map_err(dev_err)
}

/// An element-wise pass of `kernel`: one work-item per segment of every (image, channel)
/// plane.
fn per_segment(
    ctx: &Context,
    p: &Program,
    kernel: &str,
    [n, c, h, w]: [usize; 4],
    args: &[Arg<'_>],
) -> Result<()> {
    launch(
        ctx,
        p,
        kernel,
        [(h * w).div_ceil(seg(ctx)), n * c],
        None,
        args,
    )
}

/// A per-channel reduction of `kernel`: one work-group of `WG` work-items per channel.
pub(crate) fn per_channel(
    ctx: &Context,
    p: &Program,
    kernel: &str,
    c: usize,
    args: &[Arg<'_>],
) -> Result<()> {
    launch(ctx, p, kernel, [c * WG], Some([WG]), args)
}

/// Per-channel statistics on the device: mean and `1 / sqrt(var + eps)`, C elements each.
pub struct Stats<T: Real> {
    pub mean: Tensor<T>,
    pub inv_std: Tensor<T>,
}

/// Which statistics a forward normalises with.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// Training: the batch's statistics (one work-group per channel), the running statistics
    /// updated in place with this momentum.
    Train { momentum: f64 },
    /// Evaluation: the running statistics as constants (copied, so a later update of the
    /// running statistics cannot change this graph's backward).
    Eval,
}

/// The forward: the statistics `mode` names (C elements each), then `y` normalised with them.
/// Returns `y` and the statistics the backward needs.
#[allow(clippy::too_many_arguments)]
pub fn forward<T: Real>(
    ctx: &Context,
    x: &Tensor<T>,
    gamma: &Tensor<T>,
    beta: &Tensor<T>,
    running_mean: &Tensor<T>,
    running_var: &Tensor<T>,
    dims: [usize; 4],
    mode: Mode,
    eps: f64,
) -> Result<(Tensor<T>, Stats<T>)> {
    let p = prog::<T>(ctx)?;
    let stats = stats_with(ctx, &p, x, [running_mean, running_var], dims, mode, eps)?;
    let params = BnParams::<T>::new(dims, 0.0, eps)?;
    let y = normalize(ctx, &p, &params, x, &stats, gamma, beta, dims)?;
    Ok((y, stats))
}

/// The statistics `mode` names for `x` (C elements each), with the kernels of `p` (a program
/// built from batch_norm.cl, alone or with more kernels after it: `bn_sum`); training updates
/// the running statistics in place.
pub(crate) fn stats_with<T: Real>(
    ctx: &Context,
    p: &Program,
    x: &Tensor<T>,
    [running_mean, running_var]: [&Tensor<T>; 2],
    dims: [usize; 4],
    mode: Mode,
    eps: f64,
) -> Result<Stats<T>> {
    let momentum = match mode {
        Mode::Train { momentum } => momentum,
        Mode::Eval => 0.0,
    };
    let params = BnParams::<T>::new(dims, momentum, eps)?;
    let c = dims[1];
    let stats = Stats {
        mean: output::<T>(ctx, [c])?,
        inv_std: output::<T>(ctx, [c])?,
    };
    let (mean, inv_std) = (buf(&stats.mean), buf(&stats.inv_std));
    let (rm, rv) = (buf(running_mean), buf(running_var));
    match mode {
        Mode::Train { .. } => {
            let args = [buf(x), mean, inv_std, rm, rv, Arg::params(&params)];
            per_channel(ctx, p, "bn_train_stats", c, &args)?;
        }
        Mode::Eval => {
            let args = [rm, rv, mean, inv_std, Arg::params(&params)];
            launch(ctx, p, "bn_eval_stats", [c], None, &args)?;
        }
    }
    Ok(stats)
}

#[allow(clippy::too_many_arguments)]
fn normalize<T: Real>(
    ctx: &Context,
    p: &Program,
    params: &BnParams<T>,
    x: &Tensor<T>,
    stats: &Stats<T>,
    gamma: &Tensor<T>,
    beta: &Tensor<T>,
    dims: [usize; 4],
) -> Result<Tensor<T>> {
    let y = output::<T>(ctx, x.shape().clone())?;
    let args = [
        buf(x),
        buf(&stats.mean),
        buf(&stats.inv_std),
        buf(gamma),
        buf(beta),
        buf(&y),
        Arg::params(params),
    ];
    per_segment(ctx, p, "bn_normalize", dims, &args)?;
    Ok(y)
}

/// Per channel `sum x` (compensated on the device, its two halves added in f64 here), read
/// back to the host: the first pass of synchronised statistics.
pub fn channel_sums<T: Real>(ctx: &Context, x: &Tensor<T>, dims: [usize; 4]) -> Result<Vec<f64>> {
    let p = prog::<T>(ctx)?;
    let params = BnParams::<T>::new(dims, 0.0, 0.0)?;
    let c = dims[1];
    let (hi, lo) = (output::<T>(ctx, [c])?, output::<T>(ctx, [c])?);
    let args = [buf(x), buf(&hi), buf(&lo), Arg::params(&params)];
    per_channel(ctx, &p, "bn_channel_sums", c, &args)?;
    let (hi, lo) = (hi.to_vec()?, lo.to_vec()?);
    Ok(hi
        .iter()
        .zip(&lo)
        .map(|(h, l)| h.as_f64() + l.as_f64())
        .collect())
}

/// Per channel `sum (x - mean_c)^2` about the device `mean` (C elements), read back to the
/// host: the second pass of synchronised statistics.
pub fn channel_square_deviations<T: Real>(
    ctx: &Context,
    x: &Tensor<T>,
    mean: &Tensor<T>,
    dims: [usize; 4],
) -> Result<Vec<f64>> {
    let p = prog::<T>(ctx)?;
    let params = BnParams::<T>::new(dims, 0.0, 0.0)?;
    let c = dims[1];
    let sq = output::<T>(ctx, [c])?;
    let args = [buf(x), buf(mean), buf(&sq), Arg::params(&params)];
    per_channel(ctx, &p, "bn_channel_square_deviations", c, &args)?;
    Ok(sq.to_vec()?.iter().map(|v| v.as_f64()).collect())
}

/// `y` from statistics computed elsewhere (synchronised batch-norm): `mean` and `inv_std`
/// are uploaded as `T`.
pub fn normalize_with<T: Real>(
    ctx: &Context,
    x: &Tensor<T>,
    gamma: &Tensor<T>,
    beta: &Tensor<T>,
    mean: &[f64],
    inv_std: &[f64],
    dims: [usize; 4],
) -> Result<(Tensor<T>, Stats<T>)> {
    let p = prog::<T>(ctx)?;
    let params = BnParams::<T>::new(dims, 0.0, 0.0)?;
    let device = shiftgrad_tensor::Device::OpenCl(ctx.clone());
    let up = |v: &[f64]| Tensor::from_fn([v.len()], |i| T::of_f64(v[i])).to_device(&device);
    let stats = Stats {
        mean: up(mean)?,
        inv_std: up(inv_std)?,
    };
    let y = normalize(ctx, &p, &params, x, &stats, gamma, beta, dims)?;
    Ok((y, stats))
}

/// Per channel `(sum dy, sum dy * xhat)`, i.e. `(dbeta, dgamma)`, one work-group per channel.
pub fn grad_sums<T: Real>(
    ctx: &Context,
    dy: &Tensor<T>,
    x: &Tensor<T>,
    stats: &Stats<T>,
    dims: [usize; 4],
) -> Result<(Tensor<T>, Tensor<T>)> {
    let p = prog::<T>(ctx)?;
    let params = BnParams::<T>::new(dims, 0.0, 0.0)?;
    let c = dims[1];
    let sum_dy = output::<T>(ctx, [c])?;
    let sum_dy_xhat = output::<T>(ctx, [c])?;
    let args = [
        buf(dy),
        buf(x),
        buf(&stats.mean),
        buf(&stats.inv_std),
        buf(&sum_dy),
        buf(&sum_dy_xhat),
        Arg::params(&params),
    ];
    per_channel(ctx, &p, "bn_grad_sums", c, &args)?;
    Ok((sum_dy, sum_dy_xhat))
}

/// Training-mode `dx` from the channel sums of [`grad_sums`]; `count` is the number of
/// values per channel the statistics came from (`N*H*W`, or the whole job's when they are
/// synchronised).
#[allow(clippy::too_many_arguments)]
pub fn grad_input_train<T: Real>(
    ctx: &Context,
    dy: &Tensor<T>,
    x: &Tensor<T>,
    stats: &Stats<T>,
    gamma: &Tensor<T>,
    sum_dy: &Tensor<T>,
    sum_dy_xhat: &Tensor<T>,
    dims: [usize; 4],
    count: usize,
) -> Result<Tensor<T>> {
    let p = prog::<T>(ctx)?;
    let mut params = BnParams::<T>::new(dims, 0.0, 0.0)?;
    params.count = u32::try_from(count).map_err(|_| {
        Error::arg(
            OP,
            format!("{count} values per channel is too many for a 32-bit kernel"),
        )
    })?;
    let dx = output::<T>(ctx, x.shape().clone())?;
    let args = [
        buf(dy),
        buf(x),
        buf(&stats.mean),
        buf(&stats.inv_std),
        buf(gamma),
        buf(sum_dy),
        buf(sum_dy_xhat),
        buf(&dx),
        Arg::params(&params),
    ];
    per_segment(ctx, &p, "bn_grad_input_train", dims, &args)?;
    Ok(dx)
}

/// Evaluation-mode `dx = dy * gamma * inv_std`.
pub fn grad_input_eval<T: Real>(
    ctx: &Context,
    dy: &Tensor<T>,
    stats: &Stats<T>,
    gamma: &Tensor<T>,
    dims: [usize; 4],
) -> Result<Tensor<T>> {
    let p = prog::<T>(ctx)?;
    let params = BnParams::<T>::new(dims, 0.0, 0.0)?;
    let dx = output::<T>(ctx, dy.shape().clone())?;
    let args = [
        buf(dy),
        buf(&stats.inv_std),
        buf(gamma),
        buf(&dx),
        Arg::params(&params),
    ];
    per_segment(ctx, &p, "bn_grad_input_eval", dims, &args)?;
    Ok(dx)
}
