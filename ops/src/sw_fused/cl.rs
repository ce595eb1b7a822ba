//! OpenCL fused shift-wise forward and backward: one launch of `sw_fused_forward` (a
//! work-group per image and rep channel, `Y` in local memory), and `sw_fused_backward` (the
//! same groups, `dY` in local memory) then `sw_fused_dw_sum`; or, where a rep's planes exceed
//! the device's local memory, the unfused kernels (`bank_conv_*`, `shift_add_*`).

use crate::bank_conv::{self, Dims as BankDims};
use crate::device::{
    buf, check_i32_indices, gpu_shaped, launch, output, round_up, vector_program, zeros,
};
use crate::shift_add::cl::{device_live, device_tables};
use crate::shift_add::Dims as ShiftDims;
use crate::shift_add::{self, LiveChannels, ShiftTables};
use shiftgrad_tensor::opencl::{Arg, Context, KernelParams, Program};
use shiftgrad_tensor::{Real, Result, Tensor};
use std::rc::Rc;

const SOURCE: &str = concat!(include_str!("../segments.cl"), include_str!("sw_fused.cl"));
const OP: &str = "sw_fused";

/// The most work-items per work-group (one group per image and rep channel); phase 1 shares
/// its blocks (`L_o` planes x row blocks x column blocks) among them, phase 2 its blocks of
/// output rows.
const GROUP_MAX: usize = 16;

/// The forward's phase 1 block for `Y` planes of `hp` rows of `wp` columns: `(NY, FRB)`, NY
/// segments of VW columns (a narrow row whole, a wide one in chunks of 4 segments) by FRB rows,
/// at most 16 vector accumulators and at most 8 rows, the rows evened out over the plane's
/// blocks (9 rows: two blocks of 5, where blocks of 8 computed 16 rows for 9). Each weight read
/// feeds NY multiply-adds and each segment read FRB.
fn bank_block(wp: usize, hp: usize) -> (usize, usize) {
    let ny = wp.div_ceil(VW).clamp(1, 4);
    (ny, even_rows(hp, (16 / ny).min(8)))
}

/// Rows per block for `rows` rows in blocks of at most `max`, evened out: as many blocks as
/// `max` needs, each as short as they allow.
fn even_rows(rows: usize, max: usize) -> usize {
    let rows = rows.max(1);
    rows.div_ceil(rows.div_ceil(max))
}

/// The forward's phase 2 block for `h` rows of `w` columns: `(NX, RO)`, NX segments of VW
/// columns (a narrow row whole, a wide one in chunks of 4 segments) by RO rows, NX * RO <= 8
/// (16 vector accumulators for the horizontal and vertical paths), the rows evened out as in
/// [`bank_block`]. The rows of a block share each shift's table read and address arithmetic,
/// and each `Y` row is read along its length.
fn out_block(w: usize, h: usize) -> (usize, usize) {
    let nx = w.div_ceil(VW).clamp(1, 4);
    (nx, even_rows(h, 8 / nx))
}

/// Mirrors `FusedParams` in `sw_fused.cl`, the parameters of both fused kernels: the sizes,
/// then each kernel's local layout (the other kernel's fields are zero).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct Params {
    batch: i32,
    reps: i32,
    nk: i32,
    groups: i32,
    extra: i32,
    h: i32,
    w: i32,
    hp: i32,
    wp: i32,
    live: i32,
    // sw_fused_forward
    margin: i32,
    rs: i32,
    xrs: i32,
    // sw_fused_backward
    gm: i32,
    gs_rs: i32,
    dy_rs: i32,
    paths: i32,
    need_dx: i32,
    need_dw: i32,
}

// SAFETY: #[repr(C)], nineteen i32 fields (no padding, no pointers), mirrored field for field by
// `FusedParams` in sw_fused.cl.
unsafe impl KernelParams for Params {}

impl Params {
    /// The sizes (layout fields zero); every tensor's elements, the backward's partial weight
    /// gradients (B * L * k * k) included, must fit the kernels' 32-bit indices.
    fn new(bd: &BankDims, tables: &ShiftTables) -> Result<Params> {
        check_i32_indices(
            OP,
            &[
                bd.batch as u128 * bd.reps as u128 * bd.h as u128 * bd.w as u128,
                (bd.reps * bd.nk * bd.k * bd.k) as u128,
                bd.batch as u128 * bd.live as u128 * (bd.k * bd.k) as u128,
            ],
        )?;
        let i = |n: usize| n as i32;
        Ok(Params {
            batch: i(bd.batch),
            reps: i(bd.reps),
            nk: i(bd.nk),
            groups: i(tables.groups),
            extra: i(tables.extra()),
            h: i(bd.h),
            w: i(bd.w),
            hp: i(bd.hp()),
            wp: i(bd.wp()),
            live: i(bd.live),
            ..Params::default()
        })
    }
}

/// The program of both fused kernels for `T`, kernel size `k` and `h x w` maps.
fn fused_program<T: Real>(
    ctx: &Context,
    k: usize,
    groups: usize,
    (h, w): (usize, usize),
) -> Result<Program> {
    let (nx, ro) = out_block(w, h);
    let (ny, frb) = bank_block(w + k - 1, h + k - 1);
    let (dnx, drb) = bank_block(w, h);
    vector_program::<T>(
        ctx,
        OP,
        SOURCE,
        &[
            ("K", k.to_string()),
            ("RO", ro.to_string()),
            ("NX", nx.to_string()),
            ("NY", ny.to_string()),
            ("FRB", frb.to_string()),
            ("DNX", dnx.to_string()),
            ("DRB", drb.to_string()),
            ("NG", groups.to_string()),
        ],
    )
}

/// Work-items per group (one group per image and rep channel). The GPU-shaped form
/// ([`gpu_shaped`]) has about one work-item per pair of output rows (28 rows: 14), at most 16,
/// which share out the phases' blocks. The CPU form is one work-item per group: a
/// CPU device (PoCL) runs a group's work-items as a loop on one core, and with several the
/// private arrays that live between barriers go to memory. Measured on the bench layer
/// (`shiftgrad bench --spatial sw --kernels`, PoCL, 2 cores): the forward 21.2 ms with one
/// work-item against 35.7 ms with 14.
fn group_size(ctx: &Context, h: usize) -> usize {
    if gpu_shaped(ctx) {
        h.div_ceil(h.div_ceil(GROUP_MAX)).max(1)
    } else {
        1
    }
}

/// `(Hout, Vout, Iout)`, fused where the planes fit in local memory.
pub fn forward<T: Real>(
    ctx: &Context,
    bd: &BankDims,
    sd: ShiftDims,
    x: &Tensor<T>,
    w: &Tensor<T>,
    tables: &Rc<ShiftTables>,
    live: &Rc<LiveChannels>,
) -> Result<(Tensor<T>, Tensor<T>, Tensor<T>)> {
    let shape = [bd.batch, bd.reps, bd.h, bd.w];
    // Zero margins wide enough for every horizontal shift (see sw_fused.cl). The left one is
    // rounded up so that column e of every row (where the vertical and identity paths read
    // their segments) starts a vector, and the row stride is a whole number of vectors: those
    // loads are aligned.
    let reach = horizontal_reach(tables);
    let e = tables.extra();
    let margin = (reach + e).next_multiple_of(VW) - e;
    // Phase 2 reads whole blocks of NX segments from column e: past Wp where W is not a
    // multiple of the block, as far as the shifts reach.
    let (nx, ro) = out_block(bd.w, bd.h);
    let covered = bd.w.next_multiple_of(nx * VW) + 2 * e;
    let rs = (margin + covered.max(bd.wp()) + reach + VW).next_multiple_of(VW);
    // The staged input rows: k - 1 zeros, the row, k - 1 + VW zeros, in whole vectors.
    let (ny, _) = bank_block(bd.wp(), bd.hp());
    let xrs = (bd.w + 2 * (bd.k - 1) + VW)
        .max(bd.wp().next_multiple_of(ny * VW) + bd.k - 1 + VW)
        .next_multiple_of(VW);
    let local_bytes = (bd.nk * (bd.hp() + ro) * rs + bd.h * xrs) * std::mem::size_of::<T>();
    if bd.live == 0 || bd.batch * bd.reps * bd.h * bd.w == 0 {
        return Ok((
            zeros::<T>(ctx, shape)?,
            zeros::<T>(ctx, shape)?,
            zeros::<T>(ctx, shape)?,
        ));
    }
    if local_bytes as u64 > ctx.info().local_mem_bytes || std::env::var_os(UNFUSED_ENV).is_some() {
        let y = bank_conv::cl::forward(ctx, bd, x, w, live)?;
        return shift_add::cl::forward(ctx, &y, tables, Some(live), sd);
    }
    let params = Params {
        margin: margin as i32,
        rs: rs as i32,
        xrs: xrs as i32,
        ..Params::new(bd, tables)?
    };
    let prog = fused_program::<T>(ctx, bd.k, tables.groups, (bd.h, bd.w))?;
    let group = group_size(ctx, bd.h);
    let dev = device_tables(ctx, &prog, tables)?;
    let dl = device_live(ctx, &prog, live)?;
    let (hout, vout, iout) = (
        output::<T>(ctx, shape)?,
        output::<T>(ctx, shape)?,
        output::<T>(ctx, shape)?,
    );
    launch(
        ctx,
        &prog,
        "sw_fused_forward",
        [bd.batch * bd.reps * group],
        Some([group]),
        &[
            buf(x),
            buf(w),
            dev.pad_hv.arg(),
            dev.idx_identit.arg(),
            dl.channels.arg(),
            dl.rep_start.arg(),
            dl.compact.arg(),
            buf(&hout),
            buf(&vout),
            buf(&iout),
            Arg::Local { bytes: local_bytes },
            Arg::params(&params),
        ],
    )?;
    Ok((hout, vout, iout))
}

/// Columns of the vector segments (`VW` in segments.cl).
const VW: usize = 16;

/// The largest |horizontal shift| of the tables (`pad_hv[c, g]`, g < G): how far a segment of
/// Hout reads beyond its own columns.
fn horizontal_reach(t: &ShiftTables) -> usize {
    let g = t.groups;
    t.pad_hv
        .chunks(2 * g)
        .flat_map(|row| row[..g].iter())
        .map(|s| s.unsigned_abs() as usize)
        .max()
        .unwrap_or(0)
}

/// Set (to anything) to run the unfused kernels on OpenCL even where the fused ones fit, forward
/// and backward: the twin the parity tests compare against, and a switch for measuring the two.
pub const UNFUSED_ENV: &str = "SHIFTGRAD_UNFUSED";

/// `(dx, dw)`, each where asked.
type Grads<T> = (Option<Tensor<T>>, Option<Tensor<T>>);

/// The local bytes of the fused backward for one (image, rep channel): the three staged output
/// gradients and the rep's `dY` planes, and the staged rows' margin and strides.
fn back_layout<T: Real>(bd: &BankDims, tables: &ShiftTables) -> (usize, usize, usize, usize) {
    let gm = horizontal_reach(tables).max(tables.extra());
    // Phase 2 reads whole blocks of NY segments of a dY row (the forward's phase 1 blocks).
    let (ny, _) = bank_block(bd.wp(), bd.hp());
    let gs_rs = gm + bd.wp().next_multiple_of(ny * VW) + VW + gm;
    // Phase 3a reads whole blocks of DNX segments of a dY row from column k - 1.
    let (dnx, _) = bank_block(bd.w, bd.h);
    let dy_rs = bd.w.next_multiple_of(dnx * VW) + 2 * (bd.k - 1) + VW;
    let bytes = (3 * (bd.h + 1) * gs_rs + bd.nk * bd.hp() * dy_rs) * std::mem::size_of::<T>();
    (bytes, gm, gs_rs, dy_rs)
}

/// `(dx, dw)` of the shift-wise operator from the output gradients (those that exist), each
/// where asked: fused (`sw_fused_backward`, then `sw_fused_dw_sum` over the images) where the
/// planes fit in local memory, else the unfused `shift_add_backward` and the bank
/// convolution's two gradient kernels.
#[allow(clippy::too_many_arguments)]
pub fn backward<T: Real>(
    ctx: &Context,
    bd: &BankDims,
    sd: ShiftDims,
    grads: [Option<&Tensor<T>>; 3],
    x: &Tensor<T>,
    w: &Tensor<T>,
    tables: &Rc<ShiftTables>,
    live: &Rc<LiveChannels>,
    [need_dx, need_dw]: [bool; 2],
) -> Result<Grads<T>> {
    let (local_bytes, gm, gs_rs, dy_rs) = back_layout::<T>(bd, tables);
    let empty = bd.live == 0 || bd.batch * bd.reps * bd.h * bd.w == 0;
    let too_big = local_bytes as u64 > ctx.info().local_mem_bytes;
    if empty
        || too_big
        || std::env::var_os(UNFUSED_ENV).is_some()
        || grads.iter().all(Option::is_none)
    {
        let dy = shift_add::cl::backward(ctx, grads, tables, Some(live), sd)?;
        let dx = need_dx
            .then(|| bank_conv::cl::data_grad(ctx, bd, &dy, w, live))
            .transpose()?;
        let dw = need_dw
            .then(|| bank_conv::cl::weight_grad(ctx, bd, &dy, x, live))
            .transpose()?;
        return Ok((dx, dw));
    }
    let paths = grads
        .iter()
        .enumerate()
        .filter(|(_, g)| g.is_some())
        .fold(0, |m, (k, _)| m | (1 << k));
    let params = Params {
        gm: gm as i32,
        gs_rs: gs_rs as i32,
        dy_rs: dy_rs as i32,
        paths,
        need_dx: i32::from(need_dx),
        need_dw: i32::from(need_dw),
        ..Params::new(bd, tables)?
    };
    let prog = fused_program::<T>(ctx, bd.k, tables.groups, (bd.h, bd.w))?;
    let group = group_size(ctx, bd.h);
    let dev = device_tables(ctx, &prog, tables)?;
    let dl = device_live(ctx, &prog, live)?;
    let shape = [bd.batch, bd.reps, bd.h, bd.w];
    let dx = need_dx.then(|| output::<T>(ctx, shape)).transpose()?;
    let kk = bd.k * bd.k;
    let part = need_dw
        .then(|| output::<T>(ctx, [bd.batch * bd.live * kk]))
        .transpose()?;
    // An absent gradient or output is a placeholder the kernel does not touch.
    let any = grads.iter().flatten().next().copied().unwrap_or(x);
    let [dh, dv, di] = grads.map(|g| buf(g.unwrap_or(any)));
    launch(
        ctx,
        &prog,
        "sw_fused_backward",
        [bd.batch * bd.reps * group],
        Some([group]),
        &[
            dh,
            dv,
            di,
            buf(x),
            buf(w),
            dev.pad_hv.arg(),
            dev.idx_identit.arg(),
            dl.channels.arg(),
            dl.rep_start.arg(),
            buf(dx.as_ref().unwrap_or(x)),
            buf(part.as_ref().unwrap_or(x)),
            Arg::Local {
                bytes: 3 * (bd.h + 1) * gs_rs * std::mem::size_of::<T>(),
            },
            Arg::Local {
                bytes: bd.nk * bd.hp() * dy_rs * std::mem::size_of::<T>(),
            },
            Arg::params(&params),
        ],
    )?;
    let dw = match part {
        None => None,
        Some(part) => {
            let dw = zeros::<T>(ctx, [bd.reps * bd.nk, 1, bd.k, bd.k])?;
            launch(
                ctx,
                &prog,
                "sw_fused_dw_sum",
                [round_up(bd.live * kk, GROUP_MAX)],
                Some([GROUP_MAX]),
                &[
                    buf(&part),
                    dl.channels.arg(),
                    buf(&dw),
                    Arg::I32(bd.batch as i32),
                    Arg::I32(bd.live as i32),
                ],
            )?;
            Some(dw)
        }
    };
    Ok((dx, dw))
}
