//! Synchronised batch-norm (data-parallel training, `shiftgrad train --distributed --sync-bn`):
//! the training-mode statistics of the whole job's batch, not of each process's shard.
//!
//! The op stays the same op ([`super::batch_norm2d_train`]); while a [`StatsSync`] is
//! installed on this thread ([`set_sync`]), its training forward and backward add their
//! per-channel sums over every process before using them:
//!
//! * forward, pass 1: `sum x` per channel and the local count, summed over the processes,
//!   give the job's mean; pass 2: `sum (x - mean)^2` about that mean, summed, gives the job's
//!   biased variance (the two passes of the one-process op, so no `E[x^2] - E[x]^2`
//!   cancellation). The running statistics are updated from these (identical on every
//!   process), with the job's count in the unbiasing factor.
//! * backward: `sum dy` and `sum dy * xhat`, summed over the processes, enter `dx` with the
//!   job's count. The op's `dgamma` and `dbeta` stay this process's sums: they are parameter
//!   gradients, which the trainer sums over the processes with every other gradient.
//!
//! A process then computes what the one-process op computes on the whole batch, up to the
//! order of the floating-point additions (the sums of each shard are added in f64 in rank
//! order). The per-channel vectors go through the host (C values each): on OpenCL a
//! synchronised batch-norm reads back seven of them per training step (the sum's two halves,
//! the squared deviations and the two running statistics in the forward, the two gradient
//! sums in the backward) and writes seven (the mean of the second pass, the two running
//! statistics, the mean and `inv_std` the normalisation uses, the job's two gradient sums).

use super::cpu;
use shiftgrad_tensor::opencl::Context;
use shiftgrad_tensor::{Real, Result, Tensor};
use std::cell::RefCell;
use std::rc::Rc;

/// Adds per-channel vectors over the processes of a job.
pub trait StatsSync {
    /// Replaces `v` by its element-wise sum over every process; every process must call it
    /// with a vector of the same length, and gets the same result bit for bit.
    fn sum(&self, v: &mut [f64]) -> Result<()>;
}

thread_local! {
    static SYNC: RefCell<Option<Rc<dyn StatsSync>>> = const { RefCell::new(None) };
}

/// Installs (or with `None` removes) the synchronisation of this thread's training-mode
/// batch-norms; returns the previous one. A graph recorded while one is installed keeps it for
/// its backward.
pub fn set_sync(sync: Option<Rc<dyn StatsSync>>) -> Option<Rc<dyn StatsSync>> {
    SYNC.with(|s| std::mem::replace(&mut *s.borrow_mut(), sync))
}

/// The synchronisation installed on this thread, if any.
pub(super) fn current() -> Option<Rc<dyn StatsSync>> {
    SYNC.with(|s| s.borrow().clone())
}

/// Whether statistics are synchronised on this thread (`bn_sum` then composes batch-norm).
pub(crate) fn active() -> bool {
    SYNC.with(|s| s.borrow().is_some())
}

/// What the backward of a synchronised forward needs: the synchronisation and the job's count
/// of values per channel.
#[derive(Clone)]
pub(super) struct Synced {
    pub sync: Rc<dyn StatsSync>,
    pub count: usize,
}

/// The job's per-channel `(mean, biased variance, count)` for this process's `x`.
pub(super) fn job_stats<T: Real>(
    sync: &dyn StatsSync,
    x: &Tensor<T>,
    dims: [usize; 4],
    ctx: Option<&Context>,
) -> Result<(Vec<f64>, Vec<f64>, usize)> {
    let [n, _, h, w] = dims;
    let mut sums = match ctx {
        None => cpu::channel_sums(x, dims),
        Some(c) => super::cl::channel_sums(c, x, dims)?,
    };
    sums.push((n * h * w) as f64);
    sync.sum(&mut sums)?;
    let count = sums.pop().unwrap_or(0.0) as usize;
    let total = count.max(1) as f64;
    let mean: Vec<f64> = sums.iter().map(|s| s / total).collect();
    let mut sq = match ctx {
        None => cpu::channel_square_deviations(x, dims, &mean),
        Some(c) => {
            // The device's pass 2 uses the mean as T, as the one-process kernel does.
            let device = shiftgrad_tensor::Device::OpenCl(c.clone());
            let m = Tensor::from_fn([mean.len()], |i| T::of_f64(mean[i])).to_device(&device)?;
            super::cl::channel_square_deviations(c, x, &m, dims)?
        }
    };
    sync.sum(&mut sq)?;
    let var = sq.iter().map(|s| s / total).collect();
    Ok((mean, var, count))
}

/// The running statistics updated in place (on their device) from the job's statistics:
/// `running = (1 - momentum) * running + momentum * stat`, the variance unbiased with the
/// job's count.
pub(super) fn update_running<T: Real>(
    running_mean: &mut Tensor<T>,
    running_var: &mut Tensor<T>,
    (mean, var, count): (&[f64], &[f64], usize),
    momentum: f64,
) -> Result<()> {
    let bessel = count as f64 / (count.max(2) - 1) as f64;
    let keep = 1.0 - momentum;
    for (t, stat, scale) in [(running_mean, mean, 1.0), (running_var, var, bessel)] {
        let old = t.to_vec()?;
        let new = Tensor::from_fn([old.len()], |i| {
            T::of_f64(keep * old[i].as_f64() + momentum * stat[i] * scale)
        });
        *t = new.to_device(&t.device())?;
    }
    Ok(())
}

/// The job's `(sum dy, sum dy * xhat)` from this process's sums, as f64 vectors.
pub(super) fn job_grad_sums(
    sync: &dyn StatsSync,
    sum_dy: &[f64],
    sum_dy_xhat: &[f64],
) -> Result<(Vec<f64>, Vec<f64>)> {
    let c = sum_dy.len();
    let mut v: Vec<f64> = sum_dy.iter().chain(sum_dy_xhat).copied().collect();
    sync.sum(&mut v)?;
    let xhat = v.split_off(c);
    Ok((v, xhat))
}

/// A device vector as f64 on the host.
pub(super) fn host_vec<T: Real>(t: &Tensor<T>) -> Result<Vec<f64>> {
    Ok(t.to_vec()?.iter().map(|v| v.as_f64()).collect())
}
