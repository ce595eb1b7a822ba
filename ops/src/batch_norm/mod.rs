//! batch_norm2d: per-channel normalisation of an NCHW tensor, with PyTorch's semantics.
//!
//! For channel `c` with statistics `(mu_c, var_c)`:
//!
//! ```text
//! inv_std_c = 1 / sqrt(var_c + eps),  xhat = (x - mu_c) * inv_std_c,  y = gamma_c * xhat + beta_c
//! ```
//!
//! **Training** takes `mu`, `var` from the batch: the mean and the *biased* variance over
//! (N, H, W). It also updates the running statistics in place,
//! `running = (1 - momentum) * running + momentum * batch_stat`, feeding running_var the
//! *unbiased* variance (`var * n / (n - 1)`, `n = N*H*W`), exactly as `torch.nn.BatchNorm2d`
//! does. `n == 1` is an error, as in PyTorch (the variance of one value says nothing).
//! **Evaluation** uses the running statistics as constants: gradients flow to x, gamma and beta
//! but not into the statistics.
//!
//! Backward, per channel: `dbeta = sum dy`, `dgamma = sum dy * xhat`, and
//!
//! ```text
//! training:   dx = gamma * inv_std / n * (n * dy - sum dy - xhat * sum(dy * xhat))
//! evaluation: dx = gamma * inv_std * dy
//! ```
//!
//! (the training form is the closed form of differentiating through `mu` and `var`). The
//! forward saves only `mean` and `inv_std` per channel; the backward recomputes `xhat`
//! from x (kept alive by the graph anyway) at one subtract and one multiply per element, rather
//! than saving an `xhat` tensor the size of x. We rejected composing batch-norm from mean, sub,
//! mul and add graph ops: that saves several N×C×H×W intermediates and takes many more passes.
//!
//! On the CPU, channel sums are accumulated in f64 whatever `T` is. The variance is computed in two passes
//! (mean, then squared deviations) rather than as `E[x^2] - E[x]^2`, which cancels
//! catastrophically when |mean| >> std.
//!
//! **OpenCL** (`cl.rs`, `batch_norm.cl`): the same two-pass statistics, one work-group per
//! channel reducing its N*H*W elements through a fixed-order tree in local memory (we rejected
//! one work-item looping over a whole channel: 50176 elements in a row at (64, 32, 28, 28),
//! and no parallelism inside a channel; and atomics, which make the sums depend on timing).
//! Each work-item walks runs of up to 64 contiguous elements of a plane into 8 independent
//! partial sums, which CPU OpenCL compilers vectorise (PoCL ran 5-10x slower with one element
//! per work-item or one accumulator). The same work-group writes the channel's mean and
//! `inv_std` (as `T`, on the device) and updates the running statistics in place, so they
//! must live on x's device. The sums of exact inputs that can cancel (`sum x` for the mean,
//! `sum dy`) are compensated (TwoSum), standing in for the CPU's f64 accumulation on devices
//! without fp64; `sum dy * xhat` is not (each of its terms is already rounded in `T`).
//! The element-wise passes (normalise, dx) give each work-item a run of 64 elements of one
//! plane. On a GPU (`device::gpu_shaped`) the same kernels are built with runs of one element,
//! so that consecutive work-items touch consecutive elements (not timed on a GPU: none was at
//! hand).
//!
//! Not supported: PyTorch's `momentum=None` (cumulative average) and `affine=False` (pass
//! gamma = 1, beta = 0 as constants instead).

pub(crate) mod cases;
pub(crate) mod cl;
mod cpu;
pub mod sync;
#[cfg(test)]
mod tests;

use sync::Synced;
pub use sync::{set_sync, StatsSync};

use crate::cost::{bytes, Cost, Work};
use crate::device::common_device;
use shiftgrad_autograd::Var;
use shiftgrad_tensor::opencl::Context;
use shiftgrad_tensor::{Device, Error, Real, Result, Shape, Tensor};

const OP: &str = "batch_norm2d";

/// Cost of batch-norm on an input of shape `x` = (N, C, H, W), with `E = N*C*H*W` elements.
/// A sum of n terms counts n - 1 additions; sqrt and division count 1 each; scalars computed
/// once per call (`1 - momentum`, `n / (n - 1)`) are free.
///
/// Training forward, `7E + 11C` FLOPs: mean `E` (adds + one division per channel), biased
/// variance `3E` (subtract, square, add; division), `inv_std` `3C` (add eps, sqrt, divide),
/// `scale = gamma * inv_std` `C`, `y = (x - mean) * scale + beta` `3E`, running mean `3C`,
/// running variance `4C` (with the unbiasing multiply). Bytes: x and y, gamma and beta, the
/// running statistics read and written: `2E + 6C` elements.
///
/// Evaluation forward, `3E + 4C` FLOPs (`inv_std`, `scale`, normalise); bytes `2E + 4C`.
///
/// Backward (every gradient): the sums `sum dy` (`E - C`) and `sum dy * xhat` (`4E - C`:
/// subtract, two multiplies, add); then training `dx` costs `2C + 7E` (per element: `xhat`
/// 2, `n * dy`, `- sum dy`, `xhat * sum`, subtract, times `gamma * inv_std / n`), total `12E`;
/// evaluation `dx = dy * scale` costs `C + E`, total `6E - C`. Bytes, both modes: read dy, x,
/// gamma and the saved mean and inv_std, write dx, dgamma, dbeta: `3E + 5C` elements.
pub fn cost<T: Real>(x: &Shape, training: bool) -> Cost {
    let e = x.numel() as u64;
    let c = x.dims().get(1).copied().unwrap_or(0) as u64;
    let backward_bytes = bytes::<T>((3 * e + 5 * c) as usize);
    if training {
        Cost {
            forward: Work::new(7 * e + 11 * c, bytes::<T>((2 * e + 6 * c) as usize)),
            backward: Work::new(12 * e, backward_bytes),
        }
    } else {
        Cost {
            forward: Work::new(3 * e + 4 * c, bytes::<T>((2 * e + 4 * c) as usize)),
            backward: Work::new((6 * e).saturating_sub(c), backward_bytes),
        }
    }
}

/// Checks the shapes, the devices and `eps`; returns (N, C, H, W) and the device of all five.
fn check<T: Real>(
    x: &Var<T>,
    gamma: &Var<T>,
    beta: &Var<T>,
    [running_mean, running_var]: [&Tensor<T>; 2],
    eps: f64,
) -> Result<([usize; 4], Device)> {
    let shape = x.shape();
    let (gv, bv) = (gamma.value(), beta.value());
    let per_channel = [
        ("gamma", &*gv),
        ("beta", &*bv),
        ("running_mean", running_mean),
        ("running_var", running_var),
    ];
    let dims = shape.nchw(OP, "input")?;
    let c = dims[1];
    for (name, t) in per_channel {
        if t.dims() != [c] {
            return Err(Error::shape(
                OP,
                format!(
                    "{name} has shape {}, expected [{c}] (one per channel of input {shape})",
                    t.shape()
                ),
            ));
        }
    }
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(Error::arg(
            OP,
            format!("eps must be finite and >= 0, got {eps}"),
        ));
    }
    let device = common_device(OP, &[&x.value(), &gv, &bv, running_mean, running_var])?;
    Ok((dims, device))
}

/// [`check`] for another op that computes batch-norms (`bn_sum`): the same errors.
pub(crate) fn check_term<T: Real>(
    x: &Var<T>,
    gamma: &Var<T>,
    beta: &Var<T>,
    running: [&Tensor<T>; 2],
    eps: f64,
) -> Result<()> {
    check(x, gamma, beta, running, eps).map(|_| ())
}

/// The training mode's own checks: momentum in [0, 1], and more than one value per channel
/// (with synchronised statistics the job's count is checked later instead).
pub(crate) fn check_train<T: Real>(x: &Var<T>, momentum: f64) -> Result<()> {
    if !(0.0..=1.0).contains(&momentum) {
        return Err(Error::arg(
            OP,
            format!("momentum must be in [0, 1], got {momentum}"),
        ));
    }
    let dims = x.shape().nchw(OP, "input")?;
    let count = dims[0] * dims[2] * dims[3];
    if count <= 1 && sync::current().is_none() {
        return Err(Error::arg(
            OP,
            format!(
                "expected more than 1 value per channel when training, got input shape {}",
                x.shape()
            ),
        ));
    }
    Ok(())
}

fn to_tensor<T: Real>(v: &[f64]) -> Tensor<T> {
    Tensor::from_fn([v.len()], |i| T::of_f64(v[i]))
}

/// The per-channel statistics the backward reads: f64 vectors for the CPU reference, `T`
/// tensors (C elements each) on the device.
enum Stats<T: Real> {
    Host { mean: Vec<f64>, inv_std: Vec<f64> },
    Device(Context, cl::Stats<T>),
}

/// `1 / sqrt(var + eps)` per channel.
fn inv_std_of(var: impl Iterator<Item = f64>, eps: f64) -> Vec<f64> {
    var.map(|v| 1.0 / (v + eps).sqrt()).collect()
}

/// The CPU reference forward from per-channel statistics, whichever mode or process computed
/// them: `y` and the statistics its backward reads.
fn host_forward<T: Real>(
    x: &Var<T>,
    gamma: &Var<T>,
    beta: &Var<T>,
    dims: [usize; 4],
    mean: Vec<f64>,
    inv_std: Vec<f64>,
) -> (Tensor<T>, Stats<T>) {
    let (gv, bv) = (gamma.value(), beta.value());
    let y = cpu::normalize(&x.value(), dims, &mean, &inv_std, gv.data(), bv.data());
    (y, Stats::Host { mean, inv_std })
}

/// Training mode: normalise with the batch mean and biased batch variance over (N, H, W) per
/// channel; update the running statistics in place:
/// `running = (1 - momentum) * running + momentum * batch_stat`, with the UNBIASED variance
/// (`n / (n - 1)`) for running_var, as PyTorch does. x: (N, C, H, W); gamma, beta, running
/// statistics: (C), all on one device (on OpenCL the running statistics are updated there, by
/// the statistics kernel). Errors on bad shapes, mixed devices, `N*H*W < 2`, momentum outside
/// [0, 1], or eps < 0.
pub fn batch_norm2d_train<T: Real>(
    x: &Var<T>,
    gamma: &Var<T>,
    beta: &Var<T>,
    running_mean: &mut Tensor<T>,
    running_var: &mut Tensor<T>,
    momentum: f64,
    eps: f64,
) -> Result<Var<T>> {
    let (dims, device) = check(x, gamma, beta, [running_mean, running_var], eps)?;
    check_train(x, momentum)?;
    let count = dims[0] * dims[2] * dims[3];
    let c = cost::<T>(&x.shape(), true);
    if let Some(sync) = sync::current() {
        let ctx = match &device {
            Device::Cpu => None,
            Device::OpenCl(ctx) => Some(ctx),
        };
        let (mean, var, total) = sync::job_stats(sync.as_ref(), &x.value(), dims, ctx)?;
        if total <= 1 {
            return Err(Error::arg(
                OP,
                format!("expected more than 1 value per channel when training, got {total} over the job"),
            ));
        }
        sync::update_running(running_mean, running_var, (&mean, &var, total), momentum)?;
        let inv_std = inv_std_of(var.iter().copied(), eps);
        let (y, stats) = match ctx {
            None => host_forward(x, gamma, beta, dims, mean, inv_std),
            Some(ctx) => {
                let (gv, bv) = (gamma.value(), beta.value());
                let (y, s) = cl::normalize_with(ctx, &x.value(), &gv, &bv, &mean, &inv_std, dims)?;
                (y, Stats::Device(ctx.clone(), s))
            }
        };
        c.forward.record();
        let synced = Synced { sync, count: total };
        return Ok(graph(x, gamma, beta, y, stats, dims, true, c, Some(synced)));
    }
    let (y, stats) = match device {
        Device::Cpu => {
            let (mean, var) = cpu::batch_stats(&x.value(), dims);
            let bessel = count as f64 / (count - 1) as f64;
            let keep = 1.0 - momentum;
            for (r, m) in running_mean.data_mut().iter_mut().zip(&mean) {
                *r = T::of_f64(keep * r.as_f64() + momentum * m);
            }
            for (r, v) in running_var.data_mut().iter_mut().zip(&var) {
                *r = T::of_f64(keep * r.as_f64() + momentum * v * bessel);
            }
            let inv_std = inv_std_of(var.iter().copied(), eps);
            host_forward(x, gamma, beta, dims, mean, inv_std)
        }
        Device::OpenCl(ctx) => {
            let mode = cl::Mode::Train { momentum };
            let running = [&*running_mean, &*running_var];
            device_forward(ctx, x, [gamma, beta], running, dims, mode, eps)?
        }
    };
    c.forward.record();
    Ok(graph(x, gamma, beta, y, stats, dims, true, c, None))
}

/// Evaluation mode: normalise with the running statistics (constants; gradients still flow to
/// x, gamma and beta). Shapes and devices as in [`batch_norm2d_train`].
pub fn batch_norm2d_eval<T: Real>(
    x: &Var<T>,
    gamma: &Var<T>,
    beta: &Var<T>,
    running_mean: &Tensor<T>,
    running_var: &Tensor<T>,
    eps: f64,
) -> Result<Var<T>> {
    let (dims, device) = check(x, gamma, beta, [running_mean, running_var], eps)?;
    let c = cost::<T>(&x.shape(), false);
    let (y, stats) = match device {
        Device::Cpu => {
            let mean: Vec<f64> = running_mean.data().iter().map(|m| m.as_f64()).collect();
            let inv_std = inv_std_of(running_var.data().iter().map(|v| v.as_f64()), eps);
            host_forward(x, gamma, beta, dims, mean, inv_std)
        }
        Device::OpenCl(ctx) => {
            let mode = cl::Mode::Eval;
            let running = [running_mean, running_var];
            device_forward(ctx, x, [gamma, beta], running, dims, mode, eps)?
        }
    };
    c.forward.record();
    Ok(graph(x, gamma, beta, y, stats, dims, false, c, None))
}

/// The OpenCL forward of either mode, its statistics kept on the device.
fn device_forward<T: Real>(
    ctx: Context,
    x: &Var<T>,
    [gamma, beta]: [&Var<T>; 2],
    [running_mean, running_var]: [&Tensor<T>; 2],
    dims: [usize; 4],
    mode: cl::Mode,
    eps: f64,
) -> Result<(Tensor<T>, Stats<T>)> {
    let (y, stats) = cl::forward(
        &ctx,
        &x.value(),
        &gamma.value(),
        &beta.value(),
        running_mean,
        running_var,
        dims,
        mode,
        eps,
    )?;
    Ok((y, Stats::Device(ctx, stats)))
}

/// Registers the op on the graph; the backward keeps x and gamma (alive in the graph anyway)
/// and the per-channel statistics (and, for synchronised statistics, what sums them).
#[allow(clippy::too_many_arguments)]
fn graph<T: Real>(
    x: &Var<T>,
    gamma: &Var<T>,
    beta: &Var<T>,
    y: Tensor<T>,
    stats: Stats<T>,
    dims: [usize; 4],
    training: bool,
    c: Cost,
    synced: Option<Synced>,
) -> Var<T> {
    let (x_saved, gamma_saved) = (x.save(), gamma.save());
    Var::from_op(OP, y, &[x, gamma, beta], move |ctx| {
        c.backward.record();
        let (x, gamma) = (x_saved.value(OP, "input")?, gamma_saved.value(OP, "gamma")?);
        let mode = Backward {
            training,
            synced: synced.as_ref(),
        };
        backward(ctx.grad_out, &x, &gamma, &stats, dims, mode, ctx.needs)
    })
}

/// How the backward treats the statistics: constants (evaluation), the batch's, or the
/// whole job's (synchronised).
#[derive(Clone, Copy)]
struct Backward<'a> {
    training: bool,
    synced: Option<&'a Synced>,
}

/// `[dx, dgamma, dbeta]`, each only where `needs` asks. The channel sums `sum dy` (= dbeta)
/// and `sum dy * xhat` (= dgamma) are computed once when dgamma, dbeta or the training-mode dx
/// needs them. With synchronised statistics, the training-mode dx uses the job's sums and
/// count ([`sync`]); dgamma and dbeta stay this process's sums.
fn backward<T: Real>(
    dy: &Tensor<T>,
    x: &Tensor<T>,
    gamma: &Tensor<T>,
    stats: &Stats<T>,
    dims: [usize; 4],
    mode: Backward,
    needs: &[bool],
) -> Result<Vec<Option<Tensor<T>>>> {
    let training = mode.training;
    let need_sums = needs[1] || needs[2] || (training && needs[0]);
    const SUMS: &str = "the training-mode dx computes the channel sums first";
    let [n, _, h, w] = dims;
    let count = mode.synced.map_or(n * h * w, |s| s.count);
    let (dx, sums) = match stats {
        Stats::Host { mean, inv_std } => {
            let sums = need_sums.then(|| cpu::grad_sums(dy, x, dims, mean, inv_std));
            let dx = match (needs[0], training) {
                (false, _) => None,
                (true, true) => {
                    let (sum_dy, sum_dy_xhat) = sums.as_ref().expect(SUMS);
                    let job = match mode.synced {
                        Some(s) => Some(sync::job_grad_sums(s.sync.as_ref(), sum_dy, sum_dy_xhat)?),
                        None => None,
                    };
                    let (sdy, sdyx) = job.as_ref().map_or((sum_dy, sum_dy_xhat), |(a, b)| (a, b));
                    Some(cpu::grad_input_train(
                        dy,
                        x,
                        dims,
                        count,
                        mean,
                        inv_std,
                        gamma.data(),
                        sdy,
                        sdyx,
                    ))
                }
                (true, false) => Some(cpu::grad_input_eval(dy, dims, inv_std, gamma.data())),
            };
            let sums = sums.map(|(a, b)| (to_tensor(&a), to_tensor(&b)));
            (dx, sums)
        }
        Stats::Device(ctx, s) => {
            let sums = match need_sums {
                true => Some(cl::grad_sums(ctx, dy, x, s, dims)?),
                false => None,
            };
            let dx = match (needs[0], training) {
                (false, _) => None,
                (true, true) => {
                    let (sum_dy, sum_dy_xhat) = sums.as_ref().expect(SUMS);
                    let job = match mode.synced {
                        Some(synced) => {
                            let (a, b) = sync::job_grad_sums(
                                synced.sync.as_ref(),
                                &sync::host_vec(sum_dy)?,
                                &sync::host_vec(sum_dy_xhat)?,
                            )?;
                            let device = Device::OpenCl(ctx.clone());
                            Some((
                                to_tensor::<T>(&a).to_device(&device)?,
                                to_tensor::<T>(&b).to_device(&device)?,
                            ))
                        }
                        None => None,
                    };
                    let (sdy, sdyx) = job.as_ref().map_or((sum_dy, sum_dy_xhat), |(a, b)| (a, b));
                    Some(cl::grad_input_train(
                        ctx, dy, x, s, gamma, sdy, sdyx, dims, count,
                    )?)
                }
                (true, false) => Some(cl::grad_input_eval(ctx, dy, s, gamma, dims)?),
            };
            (dx, sums)
        }
    };
    let (sum_dy, sum_dy_xhat) = sums.unzip();
    let dgamma = if needs[1] { sum_dy_xhat } else { None };
    let dbeta = if needs[2] { sum_dy } else { None };
    Ok(vec![dx, dgamma, dbeta])
}
