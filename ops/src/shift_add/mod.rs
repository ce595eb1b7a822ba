//! shift-add (SPEC 1.3): the op that turns the bank convolution `Y` of shape
//! `(B, R*nk, H+2e, W+2e)` into the three paths of the shift-wise layer, each `(B, R, H, W)`:
//!
//! ```text
//! Hout[b,o,y,x] = sum_g sum_{j<nk} Y[b, o*nk+j, y+e,                   x - pad_hv[o*nk+j, g]]
//! Vout[b,o,y,x] = sum_g sum_{j<nk} Y[b, o*nk+j, y - pad_hv[o*nk+j, G+g], x+e]
//! Iout[b,o,y,x] = sum_g            Y[b, idx_identit[o,g],  y+e,          x+e]
//! ```
//!
//! with out-of-range `Y` terms contributing zero. The op is linear and has no parameters; its
//! index tables ([`ShiftTables`], SPEC 1.2) are part of the model and live in `tables.rs`.
//!
//! **Gathers, both directions.** The reference CUDA forward is a scatter (one thread per `Y`
//! element, `atomicAdd` into the outputs), whose floating-point sums vary from run to run. Here
//! the forward loops over output rows `(b, o, y)` and gathers every term into that row, and
//! the backward loops over `dY` rows `(b, c, u)` and gathers
//! `dY[b,c,u,v] = sum_g (dHout[b,o,u-e,v+pad_hv[c,g]] + dVout[b,o,u+pad_hv[c,G+g],v-e] +
//! [c == idx_identit[o,g]] dIout[b,o,u-e,v-e])`, so each output element is owned by one loop
//! iteration: deterministic, with no atomics. We rejected the scatter form of the backward (the
//! transpose of the forward loop) for the same reason. See `cpu.rs` for the loop order.
//!
//! **Devices.** The op runs where `y` lives (and its backward where the output gradients
//! live): the CPU reference in `cpu.rs`, or the OpenCL kernels of `cl.rs` / `shift_add.cl`,
//! the same gathers with one work-item per output row, adding the terms in the same order as
//! the CPU loops. The tables are uploaded to a device once per
//! tables object and cached (see `cl.rs`).
//!
//! **One graph node, three outputs.** [`Var::from_op_multi`] records one node whose backward
//! receives the three output gradients together (`None` for an output nothing used) and
//! gathers `dY` from all of them in one pass, writing it once. The earlier form, three nodes
//! `shift_add.h/.v/.i`, wrote three full `dY` tensors (each `nk` times the size of the
//! input of the layer) and had the engine add them: two extra writes, two extra reads and two
//! accumulation launches per layer. The other alternative, one node producing a stacked
//! `(3, B, R, H, W)` tensor followed by three slicing nodes, copies every output once more in
//! both directions.
//!
//! **Cost (SPEC 4).** One addition per in-bounds term: at most `(2nk + 1) G` per output pixel
//! and rep channel, exactly the count of `Y` terms that fall inside the map (a function of the
//! tables and the sizes). Forward bytes: `Y` read once, the three outputs written once, the
//! tables (int32) read once. Backward: every output gradient that exists is read once with
//! its part of the tables, with as many additions as its path's forward terms, and `dY` is
//! written once.
//!
//! **Sparse (SPEC 1.6).** [`shift_add_sparse`] takes `Y` with one channel per live kernel of
//! a mask ([`LiveChannels`], `live.rs`): the loops visit only live channels, an identity
//! choice on a pruned kernel adds nothing, `dY` has only the live channels, and
//! [`cost_sparse`] counts only live terms. [`shift_add`] is the all-live case (on OpenCL it
//! passes no live-channel arrays).
//!
//! The dense equivalent of bank convolution + shift-add (SPEC 1.4) is in `dense.rs`.

pub(crate) mod cases;
pub(crate) mod cl;
pub(crate) mod cpu;
mod dense;
mod live;
mod tables;
#[cfg(test)]
mod tests;

pub(crate) use cl::device_live;
pub use dense::{dense_kernels, dense_padding};
pub use live::LiveChannels;
pub use tables::ShiftTables;

use crate::cost::{bytes, Cost, Work};
use shiftgrad_autograd::Var;
use shiftgrad_tensor::{Device, Error, Real, Result};
use std::rc::Rc;

/// Sizes of one application: `y` is `(B, L, Hp, Wp)` (L live channels of the R*nk), the
/// outputs `(B, R, H, W)`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dims {
    pub batch: usize,
    pub reps: usize,
    pub nk: usize,
    pub groups: usize,
    pub extra: usize,
    pub h: usize,
    pub w: usize,
    /// L, the channels of `Y`: the live kernels (R*nk when every kernel is live).
    pub live: usize,
}

impl Dims {
    /// The padded height of `Y`, `H + 2e`.
    pub fn hp(&self) -> usize {
        self.h + 2 * self.extra
    }
    /// The padded width of `Y`, `W + 2e`.
    pub fn wp(&self) -> usize {
        self.w + 2 * self.extra
    }
    /// The channels of `Y` (L).
    pub fn channels(&self) -> usize {
        self.live
    }
}

const OP: &str = "shift_add";

/// Int32 bytes of the tables read by the horizontal (or vertical) path and the identity path
/// (with the live-channel arrays where a mask prunes kernels).
fn table_bytes(t: &ShiftTables, live: &LiveChannels) -> (u64, u64) {
    let sparse = !live.is_dense() as usize;
    (
        ((live.len() * t.groups + sparse * (live.len() + live.rep_start.len())) * 4) as u64,
        ((t.reps * t.groups + sparse * live.compact.len()) * 4) as u64,
    )
}

/// The work of a shift-add: the forward, the backward reading of each path's output
/// gradient (h, v, i) and the backward writing of `dY`, once.
pub(crate) struct Works {
    pub(crate) forward: Work,
    paths: [Work; 3],
    write_dy: Work,
}

impl Works {
    /// The backward work when the output gradients `present` exist.
    pub(crate) fn backward(&self, present: [bool; 3]) -> Work {
        self.paths
            .iter()
            .zip(present)
            .filter(|(_, p)| *p)
            .fold(self.write_dy, |acc, (w, _)| acc + *w)
    }
}

/// The work of a shift-add producing `(batch, R, h, w)` outputs from the live channels.
pub(crate) fn works<T: Real>(
    tables: &ShiftTables,
    live: &LiveChannels,
    batch: usize,
    h: usize,
    w: usize,
) -> Works {
    if tables.validate().is_err() || live.validate(tables.reps, tables.nk()).is_err() {
        return Works {
            forward: Work::default(),
            paths: [Work::default(); 3],
            write_dy: Work::default(),
        };
    }
    let d = Dims {
        batch,
        reps: tables.reps,
        nk: tables.nk(),
        groups: tables.groups,
        extra: tables.extra(),
        h,
        w,
        live: live.len(),
    };
    let (terms_h, terms_v) = cpu::terms_hv(tables, live, d);
    let (terms_h, terms_v) = (batch as u64 * terms_h, batch as u64 * terms_v);
    let out = batch * d.reps * h * w;
    // Identity choices that land on a live kernel, over all reps.
    let live_choices = tables
        .idx_identit
        .iter()
        .filter(|&&c| live.compact_of(c as usize).is_some())
        .count();
    let terms_i = (batch * h * w * live_choices) as u64;
    let y = batch * d.channels() * d.hp() * d.wp();
    let (tb_hv, tb_i) = table_bytes(tables, live);
    let forward = Work::new(
        terms_h + terms_v + terms_i,
        bytes::<T>(y + 3 * out) + 2 * tb_hv + tb_i,
    );
    let back = |terms, tb| Work::new(terms, bytes::<T>(out) + tb);
    Works {
        forward,
        paths: [
            back(terms_h, tb_hv),
            back(terms_v, tb_hv),
            back(terms_i, tb_i),
        ],
        write_dy: Work::new(0, bytes::<T>(y)),
    }
}

/// Cost of the shift-add producing `(batch, R, h, w)` outputs (SPEC 4; see the module doc).
/// `tables` must be valid (as built by [`ShiftTables::random`] or
/// [`ShiftTables::from_arrays`]); invalid tables cost zero.
pub fn cost<T: Real>(tables: &ShiftTables, batch: usize, h: usize, w: usize) -> Cost {
    cost_sparse::<T>(
        tables,
        &LiveChannels::all(tables.reps, tables.nk()),
        batch,
        h,
        w,
    )
}

/// Cost of the sparse shift-add ([`shift_add_sparse`]): the live kernels' terms only.
/// Invalid tables or live channels cost zero.
pub fn cost_sparse<T: Real>(
    tables: &ShiftTables,
    live: &LiveChannels,
    batch: usize,
    h: usize,
    w: usize,
) -> Cost {
    let w = works::<T>(tables, live, batch, h, w);
    Cost {
        forward: w.forward,
        backward: w.backward([true; 3]),
    }
}

/// The sizes of an application to `y`, checked against the tables and the live channels.
pub(crate) fn dims_of(y_dims: &[usize], tables: &ShiftTables, live: &LiveChannels) -> Result<Dims> {
    tables.validate()?;
    live.validate(tables.reps, tables.nk())?;
    let [batch, ch, hp, wp] = match *y_dims {
        [b, c, h, w] => [b, c, h, w],
        _ => {
            return Err(Error::shape(
                OP,
                format!("y must have 4 dimensions (B, R*nk, H+2e, W+2e), got {y_dims:?}"),
            ))
        }
    };
    let (reps, nk, e) = (tables.reps, tables.nk(), tables.extra());
    if ch != live.len() && live.is_dense() {
        return Err(Error::shape(
            OP,
            format!(
                "y has {ch} channels, expected R*nk = {reps}*{nk} = {} (M = {}, k = {})",
                reps * nk,
                tables.big,
                tables.small
            ),
        ));
    }
    if ch != live.len() {
        return Err(Error::shape(
            OP,
            format!(
                "y has {ch} channels, expected one per live kernel: {} of R*nk = {}",
                live.len(),
                reps * nk
            ),
        ));
    }
    if hp <= 2 * e || wp <= 2 * e {
        return Err(Error::shape(
            OP,
            format!(
                "y of spatial size {hp}x{wp} is too small: it must be (H+2e)x(W+2e) with \
                 e = {e} and H, W >= 1"
            ),
        ));
    }
    Ok(Dims {
        batch,
        reps,
        nk,
        groups: tables.groups,
        extra: e,
        h: hp - 2 * e,
        w: wp - 2 * e,
        live: ch,
    })
}

/// The shift-add of SPEC 1.3. `y`: `(B, R*nk, H+2e, W+2e)`, the output of the bank convolution;
/// returns `(Hout, Vout, Iout)`, each `(B, R, H, W)`. `H` and `W` are derived from `y`.
pub fn shift_add<T: Real>(
    y: &Var<T>,
    tables: &Rc<ShiftTables>,
) -> Result<(Var<T>, Var<T>, Var<T>)> {
    apply(y, tables, None)
}

/// The sparse shift-add (SPEC 1.6): `y` is `(B, L, H+2e, W+2e)`, one channel per live kernel
/// of `live` in its compact order ([`LiveChannels`]); pruned kernels contribute nothing and
/// cost nothing. Equals [`shift_add`] of the dense `Y` whose pruned channels are zero.
pub fn shift_add_sparse<T: Real>(
    y: &Var<T>,
    tables: &Rc<ShiftTables>,
    live: &Rc<LiveChannels>,
) -> Result<(Var<T>, Var<T>, Var<T>)> {
    apply(y, tables, Some(live))
}

/// Both forms: `live` is `None` for the dense layout (every kernel live; on OpenCL the
/// kernels then use the bank channel as `Y`'s index and read no live-channel arrays).
fn apply<T: Real>(
    y: &Var<T>,
    tables: &Rc<ShiftTables>,
    live: Option<&Rc<LiveChannels>>,
) -> Result<(Var<T>, Var<T>, Var<T>)> {
    let all;
    let live_ref: &LiveChannels = match live {
        Some(l) => l,
        None => {
            all = LiveChannels::all(tables.reps, tables.nk());
            &all
        }
    };
    let d = dims_of(y.value().dims(), tables, live_ref)?;
    let work = works::<T>(tables, live_ref, d.batch, d.h, d.w);
    let live = live.cloned();
    let outputs = {
        let yv = y.value();
        match yv.device() {
            Device::Cpu => vec![
                cpu::forward_h(&yv, tables, live_ref, d),
                cpu::forward_v(&yv, tables, live_ref, d),
                cpu::forward_i(&yv, tables, live_ref, d),
            ],
            Device::OpenCl(c) => {
                let (h, v, i) = cl::forward(&c, &yv, tables, live.as_ref(), d)?;
                vec![h, v, i]
            }
        }
    };
    work.forward.record();
    let t = tables.clone();
    let mut outs = Var::from_op_multi(OP, outputs, &[y], move |ctx| {
        let [dh, dv, di] = match ctx.grads_out {
            [h, v, i] => [h.as_ref(), v.as_ref(), i.as_ref()],
            _ => return Err(Error::Other(format!("{OP}: expected 3 output gradients"))),
        };
        work.backward([dh, dv, di].map(|g| g.is_some())).record();
        let device = [dh, dv, di]
            .into_iter()
            .flatten()
            .next()
            .map(|g| g.device())
            .unwrap_or_default();
        let dy = match device {
            Device::Cpu => match &live {
                Some(l) => cpu::backward([dh, dv, di], &t, l, d),
                None => cpu::backward([dh, dv, di], &t, &LiveChannels::all(t.reps, t.nk()), d),
            },
            Device::OpenCl(c) => cl::backward(&c, [dh, dv, di], &t, live.as_ref(), d)?,
        };
        Ok(vec![Some(dy)])
    })
    .into_iter();
    match (outs.next(), outs.next(), outs.next()) {
        (Some(h), Some(v), Some(i)) => Ok((h, v, i)),
        _ => Err(Error::Other(format!("{OP}: expected 3 outputs"))),
    }
}
