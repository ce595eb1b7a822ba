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
//! `dY[b,c,u,v] = sum_g (dHout[b,o,u-e,v+pad_hv[c,g]] + dVout[b,o,u+pad_hv[c,G+g],v-e]
//! + [c == idx_identit[o,g]] dIout[b,o,u-e,v-e])`, so each output element is owned by one loop
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
//! The dense equivalent of bank convolution + shift-add (SPEC 1.4) is in `dense.rs`.

pub(crate) mod cases;
mod cl;
mod cpu;
mod dense;
mod tables;
#[cfg(test)]
mod tests;

pub use dense::{dense_kernels, dense_padding};
pub use tables::ShiftTables;

use crate::cost::{bytes, Cost, Work};
use cpu::Dims;
use shiftgrad_autograd::Var;
use shiftgrad_tensor::{Device, Error, Real, Result};
use std::rc::Rc;

const OP: &str = "shift_add";

/// Int32 bytes of the tables read by the horizontal (or vertical) path and the identity path.
fn table_bytes(t: &ShiftTables) -> (u64, u64) {
    let channels = t.reps * t.big.div_ceil(t.small.max(1));
    (
        (channels * t.groups * 4) as u64,
        (t.reps * t.groups * 4) as u64,
    )
}

/// The work of a shift-add: the forward, the backward reading of each path's output
/// gradient (h, v, i) and the backward writing of `dY`, once.
struct Works {
    forward: Work,
    paths: [Work; 3],
    write_dy: Work,
}

impl Works {
    /// The backward work when the output gradients `present` exist.
    fn backward(&self, present: [bool; 3]) -> Work {
        self.paths
            .iter()
            .zip(present)
            .filter(|(_, p)| *p)
            .fold(self.write_dy, |acc, (w, _)| acc + *w)
    }
}

/// The work of a shift-add producing `(batch, R, h, w)` outputs.
fn works<T: Real>(tables: &ShiftTables, batch: usize, h: usize, w: usize) -> Works {
    if tables.validate().is_err() {
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
    };
    let (terms_h, terms_v) = cpu::terms_hv(tables, d);
    let (terms_h, terms_v) = (batch as u64 * terms_h, batch as u64 * terms_v);
    let out = batch * d.reps * h * w;
    let terms_i = (out * d.groups) as u64;
    let y = batch * d.channels() * d.hp() * d.wp();
    let (tb_hv, tb_i) = table_bytes(tables);
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
    let w = works::<T>(tables, batch, h, w);
    Cost {
        forward: w.forward,
        backward: w.backward([true; 3]),
    }
}

/// The sizes of an application to `y`, checked against the tables.
fn dims_of(y_dims: &[usize], tables: &ShiftTables) -> Result<Dims> {
    tables.validate()?;
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
    if ch != reps * nk {
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
    })
}

/// The shift-add of SPEC 1.3. `y`: `(B, R*nk, H+2e, W+2e)`, the output of the bank convolution;
/// returns `(Hout, Vout, Iout)`, each `(B, R, H, W)`. `H` and `W` are derived from `y`.
pub fn shift_add<T: Real>(
    y: &Var<T>,
    tables: &Rc<ShiftTables>,
) -> Result<(Var<T>, Var<T>, Var<T>)> {
    let d = dims_of(y.value().dims(), tables)?;
    let work = works::<T>(tables, d.batch, d.h, d.w);
    let outputs = {
        let yv = y.value();
        match yv.device() {
            Device::Cpu => vec![
                cpu::forward_h(&yv, tables, d),
                cpu::forward_v(&yv, tables, d),
                cpu::forward_i(&yv, tables, d),
            ],
            Device::OpenCl(c) => {
                let (h, v, i) = cl::forward(&c, &yv, tables, d)?;
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
            Device::Cpu => cpu::backward([dh, dv, di], &t, d),
            Device::OpenCl(c) => cl::backward(&c, [dh, dv, di], &t, d)?,
        };
        Ok(vec![Some(dy)])
    })
    .into_iter();
    match (outs.next(), outs.next(), outs.next()) {
        (Some(h), Some(v), Some(i)) => Ok((h, v, i)),
        _ => Err(Error::Other(format!("{OP}: expected 3 outputs"))),
    }
}
