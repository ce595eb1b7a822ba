//! The fused shift-wise operator (issue 10): the bank convolution (SPEC 1.1, sparse form of
//! 1.6) and the shift-add (SPEC 1.3) as one op, `x_r, w -> (Hout, Vout, Iout)`.
//!
//! What it is equal to, and tested against (`tests/parity_sw_fused.rs`), is the composition
//! `shift_add_sparse(bank_conv(x_r, w, live), tables, live)`: the readable reference. What it
//! saves is `Y`, the bank convolution's output (`L` planes of `(H + k - 1, W + k - 1)` per
//! image, nk times the input when every kernel is live): on OpenCL one work-group per (image,
//! rep channel) computes that rep's `Y` planes into local memory and adds the shifted rows
//! from there (`sw_fused.cl`), so `Y` is neither written to nor read from global memory, and
//! the graph does not hold it until the backward. On a CPU device (PoCL) a work-group is one
//! work-item, which stages the input plane in local memory with zero margins and computes
//! `Y` and the outputs in register blocks (several rows by a row's vector segments); on a GPU
//! up to 16 work-items share the rows (`device::gpu_shaped`). Where a rep's planes do not fit the
//! device's local memory, the OpenCL path runs the two unfused kernels instead. On the CPU
//! backend the op runs the two reference functions one after the other.
//!
//! Pruned kernels are skipped as in the sparse ops: phase 1 computes only the live kernels'
//! planes, phase 2 adds only their terms, and an identity choice on a pruned kernel adds
//! nothing. The dense layer is the all-live case ([`LiveChannels::all`]).
//!
//! Backward: `Y` itself is not needed (the shift-add is linear), so nothing is recomputed or
//! saved but the op's inputs. On OpenCL one work-group per (image, rep channel) copies that
//! rep's output gradients into local memory, gathers the rep's `dY` planes from them there
//! (the shift-add's backward), and computes from those the rows of `dx` and the image's part
//! of the weight gradient (`sw_fused_backward`); a second kernel adds the images' parts in
//! order (`sw_fused_dw_sum`). `dY` never goes to global memory. `dx` equals the unfused
//! kernels' (`shift_add_backward`, `bank_conv_data_grad`) bit for bit; the weight gradient is
//! grouped by image, where `bank_conv_weight_grad` carries one vector sum across the images,
//! so the two agree to rounding (`tests/parity_sw_fused.rs`). Where the planes do not fit the
//! local memory, or with `SHIFTGRAD_UNFUSED`, the unfused kernels run. On the CPU backend the
//! op runs the reference functions one after the other.
//!
//! FLOPs are the two ops' counts (the same arithmetic); bytes are counted as the unfused pair
//! moves them, so the saving shows in time and memory, not in the byte counter.

pub(crate) mod cases;
pub(crate) mod cl;

use crate::bank_conv::{self, Dims as BankDims};
use crate::device::common_device;
use crate::shift_add::{self, LiveChannels, ShiftTables};
use shiftgrad_autograd::Var;
use shiftgrad_tensor::opencl::region;
use shiftgrad_tensor::{Device, Error, Real, Result, Shape};
use std::rc::Rc;

const OP: &str = "sw_fused";

/// The profiling region (`shiftgrad_tensor::opencl::region`) of the shift-wise layers' bank
/// convolution, forward and backward (dense through conv2d, sparse through bank_conv).
pub const REGION_BANK: &str = "sw bank convolution";
/// The profiling region of the shift-wise layers' shift-add.
pub const REGION_SHIFT_ADD: &str = "sw shift-add";
/// The profiling region of the fused op (both parts; its FLOPs are still counted under the
/// two regions above, each part under its own).
pub const REGION_FUSED: &str = "sw fused bank convolution + shift-add";

/// `(Hout, Vout, Iout)` of the shift-wise operator on `x_r` `(B, R, H, W)` with the bank `w`
/// `(R*nk, 1, k, k)` (the merged bank in training), the index `tables` and the live kernels.
pub fn sw_fused<T: Real>(
    x: &Var<T>,
    w: &Var<T>,
    tables: &Rc<ShiftTables>,
    live: &Rc<LiveChannels>,
) -> Result<(Var<T>, Var<T>, Var<T>)> {
    let bd = BankDims::new(&x.shape(), &w.shape(), live)?;
    if tables.small != bd.k || 2 * tables.extra() != bd.k - 1 {
        return Err(Error::shape(
            OP,
            format!(
                "the tables are for k = {} (margin {}), the bank has k = {}",
                tables.small,
                tables.extra(),
                bd.k
            ),
        ));
    }
    let y_dims = [bd.batch, bd.live, bd.hp(), bd.wp()];
    let sd = shift_add::dims_of(&y_dims, tables, live)?;
    let works = shift_add::works::<T>(tables, live, bd.batch, bd.h, bd.w);
    let outputs = {
        let (xv, wv) = (x.value(), w.value());
        match common_device(OP, &[&xv, &wv])? {
            Device::Cpu => {
                let y = bank_conv::cpu::forward(&bd, &xv, &wv, live);
                vec![
                    shift_add::cpu::forward_h(&y, tables, live, sd),
                    shift_add::cpu::forward_v(&y, tables, live, sd),
                    shift_add::cpu::forward_i(&y, tables, live, sd),
                ]
            }
            Device::OpenCl(c) => {
                let (h, v, i) = cl::forward(&c, &bd, sd, &xv, &wv, tables, live)?;
                vec![h, v, i]
            }
        }
    };
    {
        let _r = region::enter(REGION_BANK);
        bd.forward_work::<T>().record();
    }
    {
        let _r = region::enter(REGION_SHIFT_ADD);
        works.forward.record();
    }
    let (xs, ws) = (x.save(), w.save());
    let (t, live) = (tables.clone(), live.clone());
    let mut outs = Var::from_op_multi(OP, outputs, &[x, w], move |ctx| {
        let [dh, dv, di] = match ctx.grads_out {
            [h, v, i] => [h.as_ref(), v.as_ref(), i.as_ref()],
            _ => return Err(Error::Other(format!("{OP}: expected 3 output gradients"))),
        };
        let [need_dx, need_dw] = [ctx.needs[0], ctx.needs[1]];
        let (xv, wv) = (xs.value(OP, "input")?, ws.value(OP, "weight")?);
        {
            let _r = region::enter(REGION_SHIFT_ADD);
            works.backward([dh, dv, di].map(|g| g.is_some())).record();
        }
        {
            let _r = region::enter(REGION_BANK);
            bd.backward_work::<T>(need_dx, need_dw).record();
        }
        let grads = match common_device(OP, &[&xv, &wv])? {
            Device::Cpu => {
                let dy = shift_add::cpu::backward([dh, dv, di], &t, &live, sd);
                vec![
                    need_dx.then(|| bank_conv::cpu::data_grad(&bd, &dy, &wv, &live)),
                    need_dw.then(|| bank_conv::cpu::weight_grad(&bd, &dy, &xv, &live)),
                ]
            }
            Device::OpenCl(c) => {
                let (dx, dw) = cl::backward(
                    &c,
                    &bd,
                    sd,
                    [dh, dv, di],
                    &xv,
                    &wv,
                    &t,
                    &live,
                    [need_dx, need_dw],
                )?;
                vec![dx, dw]
            }
        };
        Ok(grads)
    })
    .into_iter();
    match (outs.next(), outs.next(), outs.next()) {
        (Some(h), Some(v), Some(i)) => Ok((h, v, i)),
        _ => Err(Error::Other(format!("{OP}: expected 3 outputs"))),
    }
}

/// Whether the OpenCL path runs fused for `x` `(B, R, H, W)` and kernel size `k` with `nk`
/// kernels per rep in `f`-byte elements: a rep's `Y` planes must fit `local_mem_bytes`.
pub fn fits_local(x: &Shape, k: usize, nk: usize, elem_bytes: usize, local_mem_bytes: u64) -> bool {
    match x.dims() {
        [_, _, h, w] => ((nk * (h + k - 1) * (w + k - 1) * elem_bytes) as u64) <= local_mem_bytes,
        _ => false,
    }
}
