//! OpenCL shift-add: one forward kernel producing `Hout`, `Vout` and `Iout` together, and one
//! backward kernel producing `dY` from the output gradients that exist (the op is one graph
//! node with three outputs). Both are gathers: each work-item owns one output row (forward) or plane (backward), walked in
//! vector segments (see the comment block of `shift_add.cl` for the mapping and its
//! measurement), so results are deterministic, bitwise, from run to run; they add the same
//! terms in the same order as the CPU reference (on PoCL the two agree bit for bit). The
//! forward reads the bank channels of one rep once for all three outputs; the alternative,
//! one launch per output, would read `Y` three times.
//!
//! **The index tables on the device.** `pad_hv` and `idx_identit` live on the host in
//! [`ShiftTables`] (shared through an `Rc` by the layer and by every node it records). They
//! are uploaded once per tables object, as int32 buffers in the same layout, and kept in a
//! per-thread cache keyed by the address of the `Rc`'s allocation and by the compiled program
//! (a program belongs to one context, so the pair names one tables object on one device; f32
//! and f64 programs get a copy each, a few hundred bytes). The cache holds a `Weak` to the
//! tables, not a strong reference: the weak count keeps the allocation, and so the address,
//! from being reused while the entry exists, and a table whose last `Rc` has gone (or whose
//! value was moved out with `Rc::try_unwrap` to be edited) can no longer be upgraded; such
//! entries are dropped on the next lookup, returning their buffers to the pool. Tables cannot
//! be mutated in place while the entry exists (`Rc::get_mut` refuses when a `Weak` exists, and
//! `Rc::make_mut` moves the value to a new allocation), so a cached copy is never stale.
//! The cached buffers count as live device memory for as long as their tables live: they are
//! part of the model, like its weights. Rejected: a device copy stored inside `ShiftTables`
//! (a `RefCell` field) — it would make the tables type `!Send`/`!Sync` and give `Clone` and
//! `PartialEq` surprising meanings; and uploading on every call, a blocking host-to-device copy
//! per op and per backward node.

use super::{Dims, LiveChannels, ShiftTables};
use crate::device::{
    buf, check_i32_indices, dev_err, launch_shaped, output, vector_program, zeros,
};
use shiftgrad_tensor::opencl::{Arg, Buffer, Context, KernelParams, Program};
use shiftgrad_tensor::{Error, Real, Result, Tensor};
use std::cell::RefCell;
use std::rc::{Rc, Weak};

const SOURCE: &str = concat!(include_str!("../segments.cl"), include_str!("shift_add.cl"));
const OP: &str = "shift_add";

/// Work-items (rows in the forward, planes in the backward) per work-group. Fixed rather than
/// left to the driver: PoCL compiles a kernel once per work-group size, and a driver-chosen
/// size follows the shapes, so every new shape would pay a compilation (seconds over a
/// proptest run). 16 was as fast as any size tried on PoCL (4 and 64: 5-25 % slower).
const ROWS_PER_GROUP: usize = 16;

/// Work-items per work-group of the GPU-shaped (element per work-item) kernels.
const ITEMS_PER_GROUP: usize = 64;

/// Sizes of one application, mirrored by `ShiftParams` in `shift_add.cl`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
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
    sparse: i32,
}

// SAFETY: #[repr(C)], eleven i32 fields (no padding, no pointers), mirrored field for field by
// `ShiftParams` in shift_add.cl.
unsafe impl KernelParams for Params {}

impl Params {
    /// The sizes as kernel ints. The kernels index `Y` and the outputs with `int` arithmetic,
    /// so every element count must fit in an `i32` (`Y` is the largest tensor involved).
    fn new(d: Dims, sparse: bool) -> Result<Params> {
        // With the batch counted as at least 1, every size below is at most one of these.
        let b = d.batch.max(1) as u128;
        let y_len = b * d.channels() as u128 * d.hp() as u128 * d.wp() as u128;
        let out_len = b * d.reps as u128 * d.h as u128 * d.w as u128;
        let bank = d.reps as u128 * d.nk as u128 * 2 * d.groups as u128;
        check_i32_indices(OP, &[y_len, out_len, bank])?;
        let i = |n: usize| n as i32;
        Ok(Params {
            batch: i(d.batch),
            reps: i(d.reps),
            nk: i(d.nk),
            groups: i(d.groups),
            extra: i(d.extra),
            h: i(d.h),
            w: i(d.w),
            hp: i(d.hp()),
            wp: i(d.wp()),
            live: i(d.channels()),
            sparse: sparse as i32,
        })
    }
}

/// The shift-add program for `T` (the row segments of `segments.cl` first).
fn shift_program<T: Real>(ctx: &Context) -> Result<Program> {
    vector_program::<T>(ctx, OP, SOURCE, &[])
}

/// `pad_hv` and `idx_identit` on one device.
pub(crate) struct DeviceTables {
    pub pad_hv: Buffer<i32>,
    pub idx_identit: Buffer<i32>,
}

/// The live-channel arrays of a [`LiveChannels`] on one device (shared with the bank
/// convolution's kernels).
pub(crate) struct DeviceLive {
    pub channels: Buffer<i32>,
    pub rep_start: Buffer<i32>,
    pub compact: Buffer<i32>,
}

/// One uploaded object: the host value it copies (weakly), the program (so the context) it
/// was uploaded for, and the device copies.
struct CacheEntry<K, V> {
    key: Weak<K>,
    program: Program,
    copies: Rc<V>,
}

type Cache<K, V> = RefCell<Vec<CacheEntry<K, V>>>;

thread_local! {
    /// Uploaded tables and live channels (see the module doc). A context is single-threaded,
    /// so a per-thread cache is all the sharing there can be.
    static TABLES: Cache<ShiftTables, DeviceTables> = const { RefCell::new(Vec::new()) };
    static LIVE: Cache<LiveChannels, DeviceLive> = const { RefCell::new(Vec::new()) };
}

/// The device copy of `key` for the context of `program`: from `cache`, or made by `upload`
/// on first use (and kept while `key` lives).
fn cached<K: 'static, V: 'static>(
    cache: &'static std::thread::LocalKey<Cache<K, V>>,
    program: &Program,
    key: &Rc<K>,
    upload: impl FnOnce() -> Result<V>,
) -> Result<Rc<V>> {
    cache.with(|cache| {
        let mut cache = cache.borrow_mut();
        cache.retain(|e| e.key.strong_count() > 0);
        let hit = cache
            .iter()
            .find(|e| std::ptr::eq(e.key.as_ptr(), Rc::as_ptr(key)) && e.program.ptr_eq(program));
        if let Some(e) = hit {
            return Ok(e.copies.clone());
        }
        let copies = Rc::new(upload()?);
        cache.push(CacheEntry {
            key: Rc::downgrade(key),
            program: program.clone(),
            copies: copies.clone(),
        });
        Ok(copies)
    })
}

/// The device copy of `tables` for the context of `program`, uploaded on first use.
pub(crate) fn device_tables(
    ctx: &Context,
    program: &Program,
    tables: &Rc<ShiftTables>,
) -> Result<Rc<DeviceTables>> {
    cached(&TABLES, program, tables, || {
        Ok(DeviceTables {
            pad_hv: ctx.upload(&tables.pad_hv).map_err(dev_err)?,
            idx_identit: ctx.upload(&tables.idx_identit).map_err(dev_err)?,
        })
    })
}

/// The device copy of `live` (which must have at least one live channel: an empty buffer
/// cannot be a kernel argument), uploaded on first use.
pub(crate) fn device_live(
    ctx: &Context,
    program: &Program,
    live: &Rc<LiveChannels>,
) -> Result<Rc<DeviceLive>> {
    cached(&LIVE, program, live, || {
        Ok(DeviceLive {
            channels: ctx.upload(&live.channels).map_err(dev_err)?,
            rep_start: ctx.upload(&live.rep_start).map_err(dev_err)?,
            compact: ctx.upload(&live.compact).map_err(dev_err)?,
        })
    })
}

/// `(Hout, Vout, Iout)` of `y` (already checked against the tables and `live`: `d` came from
/// them). `live` is `None` for the dense layout.
pub fn forward<T: Real>(
    ctx: &Context,
    y: &Tensor<T>,
    tables: &Rc<ShiftTables>,
    live: Option<&Rc<LiveChannels>>,
    d: Dims,
) -> Result<(Tensor<T>, Tensor<T>, Tensor<T>)> {
    let shape = [d.batch, d.reps, d.h, d.w];
    if d.channels() == 0 {
        // Every kernel pruned: nothing to add, and no Y buffer to pass.
        return Ok((
            zeros::<T>(ctx, shape)?,
            zeros::<T>(ctx, shape)?,
            zeros::<T>(ctx, shape)?,
        ));
    }
    let params = Params::new(d, live.is_some())?;
    let prog = shift_program::<T>(ctx)?;
    let dev = device_tables(ctx, &prog, tables)?;
    let dl = live.map(|l| device_live(ctx, &prog, l)).transpose()?;
    let (hout, vout, iout) = (
        output::<T>(ctx, shape)?,
        output::<T>(ctx, shape)?,
        output::<T>(ctx, shape)?,
    );
    // Without live channels the kernel reads none of the three arrays: placeholders.
    let placeholder = || dev.pad_hv.arg();
    // A row per work-item (CPU devices), or an element per work-item (GPU-shaped).
    let rows = d.batch * d.reps * d.h;
    launch_shaped(
        ctx,
        &prog,
        "shift_add_forward",
        (rows, ROWS_PER_GROUP),
        (rows * d.w, ITEMS_PER_GROUP),
        &[
            buf(y),
            dev.pad_hv.arg(),
            dev.idx_identit.arg(),
            dl.as_ref().map_or_else(placeholder, |l| l.channels.arg()),
            dl.as_ref().map_or_else(placeholder, |l| l.rep_start.arg()),
            dl.as_ref().map_or_else(placeholder, |l| l.compact.arg()),
            buf(&hout),
            buf(&vout),
            buf(&iout),
            Arg::params(&params),
        ],
    )?;
    Ok((hout, vout, iout))
}

/// The whole backward: `dY` (a full `(B, L, Hp, Wp)` tensor, positions that receive no term
/// are zero) from the output gradients `[dH, dV, dI]` that exist, in one launch.
pub fn backward<T: Real>(
    ctx: &Context,
    grads: [Option<&Tensor<T>>; 3],
    tables: &Rc<ShiftTables>,
    live: Option<&Rc<LiveChannels>>,
    d: Dims,
) -> Result<Tensor<T>> {
    let Some(any) = grads.iter().flatten().next() else {
        return Err(Error::arg(OP, "backward without any output gradient"));
    };
    let dy = output::<T>(ctx, [d.batch, d.channels(), d.hp(), d.wp()])?;
    if d.channels() == 0 {
        return Ok(dy);
    }
    let params = Params::new(d, live.is_some())?;
    let prog = shift_program::<T>(ctx)?;
    let dev = device_tables(ctx, &prog, tables)?;
    let dl = live.map(|l| device_live(ctx, &prog, l)).transpose()?;
    let paths = grads
        .iter()
        .enumerate()
        .filter(|(_, g)| g.is_some())
        .fold(0u32, |m, (i, _)| m | (1 << i));
    // An absent path's argument is a placeholder the kernel does not read.
    let [dh, dv, di] = grads.map(|g| buf(g.unwrap_or(any)));
    // A plane per work-item (CPU devices), or an element per work-item (GPU-shaped).
    let planes = d.batch * d.channels();
    launch_shaped(
        ctx,
        &prog,
        "shift_add_backward",
        (planes, ROWS_PER_GROUP),
        (planes * d.hp() * d.wp(), ITEMS_PER_GROUP),
        &[
            dh,
            dv,
            di,
            dev.pad_hv.arg(),
            dev.idx_identit.arg(),
            dl.as_ref()
                .map_or_else(|| dev.pad_hv.arg(), |l| l.channels.arg()),
            buf(&dy),
            Arg::params(&params),
            Arg::U32(paths),
        ],
    )?;
    Ok(dy)
}
