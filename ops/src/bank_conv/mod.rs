//! The sparse bank convolution (SPEC 1.1 with the mask of 1.6): the depthwise `k x k`
//! convolution of the shift-wise layer computed for the live small kernels only.
//!
//! ```text
//! Y[b, l, u, v] = sum_{ky, kx < k} w[c, 0, ky, kx] * x[b, o, u + ky - p, v + kx - p]
//! ```
//!
//! for every live kernel `l` of [`LiveChannels`] (bank channel `c = channels[l]`, rep channel
//! `o = c / nk`), stride 1, zero padding `p = k - 1`; `x` is `(B, R, H, W)`, `w` the whole
//! bank `(R*nk, 1, k, k)` and `Y` the compact `(B, L, H + 2e, W + 2e)` that
//! [`crate::shift_add::shift_add_sparse`] reads. With every kernel live it is exactly
//! `conv2d(x, w, groups = R, padding p)`; a pruned kernel is not computed, its `Y` channel
//! does not exist, and its weight gradient is zero without being computed.
//!
//! Backward, both gathers (every output element owned by one loop iteration, no atomics):
//!
//! ```text
//! dx[b, o, y, x]  = sum_{l of rep o} sum_{ky, kx} w[c, ky, kx] * dY[b, l, y + p - ky, x + p - kx]
//! dw[c, 0, ky, kx] = sum_b sum_{y, x} x[b, o, y, x] * dY[b, l, y + p - ky, x + p - kx]
//! ```
//!
//! (every `dY` index there is inside the map, since `Hp = H + k - 1`), and `dw` is zero for
//! pruned `c`.
//!
//! **Why an op of its own** rather than `conv2d` on gathered inputs: a gather of `x` per live
//! kernel would write a tensor as large as `Y` and scatter-add it back in the backward, so
//! pruning would save the convolution's arithmetic but not its memory traffic. This op reads
//! `x` in place through the owner of each live channel.
//!
//! **Devices.** The CPU reference is in `cpu.rs` (plain loops, written to be read); the
//! OpenCL kernels in `bank_conv.cl` walk rows in 16-lane vector segments, as the shift-add's
//! do. The two add the same terms in different groupings (vector lanes, then a lane sum), so
//! they agree to rounding, not bit for bit; each backend is deterministic.
//!
//! **Cost (SPEC 4)**, counted like `conv2d`'s (nominal taps, padding included), for the live
//! kernels only: `B*L*Hp*Wp*k^2` MACs for the forward, the data gradient and the weight
//! gradient each (with every kernel live, exactly what `conv2d` counts for the bank). Bytes: every input read once, every output written once.

pub(crate) mod cases;
pub(crate) mod cl;
pub(crate) mod cpu;
#[cfg(test)]
mod tests;

use crate::cost::{bytes, Cost, Work};
use crate::device::common_device;
use crate::shift_add::LiveChannels;
use shiftgrad_autograd::Var;
use shiftgrad_tensor::{Device, Error, Real, Result, Shape};
use std::rc::Rc;

const OP: &str = "bank_conv";

/// The sizes of one application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dims {
    pub batch: usize,
    pub reps: usize,
    pub nk: usize,
    pub k: usize,
    pub h: usize,
    pub w: usize,
    /// L, the live kernels (channels of `Y`).
    pub live: usize,
}

impl Dims {
    /// `p = k - 1`, the zero padding.
    pub fn pad(&self) -> usize {
        self.k - 1
    }
    pub fn hp(&self) -> usize {
        self.h + self.k - 1
    }
    pub fn wp(&self) -> usize {
        self.w + self.k - 1
    }
    fn y_numel(&self) -> usize {
        self.batch * self.live * self.hp() * self.wp()
    }
    fn x_numel(&self) -> usize {
        self.batch * self.reps * self.h * self.w
    }
    fn w_live(&self) -> usize {
        self.live * self.k * self.k
    }

    /// Checks `x` `(B, R, H, W)` and `w` `(R*nk, 1, k, k)` against `live`.
    pub(crate) fn new(x: &Shape, w: &Shape, live: &LiveChannels) -> Result<Dims> {
        let [batch, reps, h, wd] = x.nchw(OP, "input")?;
        let &[bank, one, k, k2] = w.dims() else {
            return Err(Error::shape(
                OP,
                format!("weight must have 4 dimensions (R*nk, 1, k, k), got {w}"),
            ));
        };
        if one != 1 || k != k2 || k % 2 == 0 {
            return Err(Error::shape(
                OP,
                format!("weight must be (R*nk, 1, k, k) with k odd, got {w}"),
            ));
        }
        if reps != live.reps || bank != live.reps * live.nk {
            return Err(Error::shape(
                OP,
                format!(
                    "input has {reps} channels and the weight {bank} kernels; the live channels \
                     are for R = {}, nk = {} ({} kernels)",
                    live.reps,
                    live.nk,
                    live.reps * live.nk
                ),
            ));
        }
        live.validate(live.reps, live.nk)?;
        if h == 0 || wd == 0 {
            return Err(Error::shape(
                OP,
                format!("input map {h}x{wd} is empty (input {x})"),
            ));
        }
        Ok(Dims {
            batch,
            reps,
            nk: live.nk,
            k,
            h,
            w: wd,
            live: live.len(),
        })
    }

    pub(crate) fn forward_work<T: Real>(&self) -> Work {
        let macs = self.y_numel() * self.k * self.k;
        Work::with_macs(
            macs as u64,
            0,
            bytes::<T>(self.x_numel() + self.w_live() + self.y_numel()),
        )
    }

    /// `dx` and/or `dw`; `dY` read once if either is computed.
    pub(crate) fn backward_work<T: Real>(&self, dx: bool, dw: bool) -> Work {
        // Counted like conv2d's gradients: the output's elements times the taps.
        let macs = self.y_numel() * self.k * self.k;
        let mut work = Work::default();
        if dx {
            work =
                work + Work::with_macs(macs as u64, 0, bytes::<T>(self.w_live() + self.x_numel()));
        }
        if dw {
            work =
                work + Work::with_macs(macs as u64, 0, bytes::<T>(self.x_numel() + self.w_live()));
        }
        if dx || dw {
            work.bytes += bytes::<T>(self.y_numel());
        }
        work
    }
}

/// Forward and backward cost of the sparse bank convolution of an input `(B, R, H, W)` with
/// `k x k` kernels, for the live kernels of `live` (see the module doc).
pub fn cost<T: Real>(x: &Shape, k: usize, live: &LiveChannels) -> Result<Cost> {
    let w = Shape::from(vec![live.reps * live.nk, 1, k, k]);
    let d = Dims::new(x, &w, live)?;
    Ok(Cost {
        forward: d.forward_work::<T>(),
        backward: d.backward_work::<T>(true, true),
    })
}

/// The bank convolution of `x` `(B, R, H, W)` with the live kernels of `w` `(R*nk, 1, k, k)`:
/// `Y` `(B, L, H + k - 1, W + k - 1)` in the compact order of `live` (see the module doc).
pub fn bank_conv<T: Real>(x: &Var<T>, w: &Var<T>, live: &Rc<LiveChannels>) -> Result<Var<T>> {
    let d = Dims::new(&x.shape(), &w.shape(), live)?;
    let y = {
        let (xv, wv) = (x.value(), w.value());
        match common_device(OP, &[&xv, &wv])? {
            Device::Cpu => cpu::forward(&d, &xv, &wv, live),
            Device::OpenCl(c) => cl::forward(&c, &d, &xv, &wv, live)?,
        }
    };
    d.forward_work::<T>().record();
    let (xs, ws) = (x.save(), w.save());
    let live = live.clone();
    Ok(Var::from_op(OP, y, &[x, w], move |ctx| {
        let [need_dx, need_dw] = [ctx.needs[0], ctx.needs[1]];
        let (xv, wv) = (xs.value(OP, "input")?, ws.value(OP, "weight")?);
        let dy = ctx.grad_out;
        let grads = match common_device(OP, &[dy, &xv, &wv])? {
            Device::Cpu => vec![
                need_dx.then(|| cpu::data_grad(&d, dy, &wv, &live)),
                need_dw.then(|| cpu::weight_grad(&d, dy, &xv, &live)),
            ],
            Device::OpenCl(c) => vec![
                need_dx
                    .then(|| cl::data_grad(&c, &d, dy, &wv, &live))
                    .transpose()?,
                need_dw
                    .then(|| cl::weight_grad(&c, &d, dy, &xv, &live))
                    .transpose()?,
            ],
        };
        d.backward_work::<T>(need_dx, need_dw).record();
        Ok(grads)
    }))
}
