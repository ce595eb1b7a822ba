//! OpenCL channel gather and concat (kernels and their work-item mapping in channels.cl).
//!
//! The gather's index list, and for its backward the inverse index table, are built on the
//! host and uploaded as small i32 buffers (a few hundred bytes), once per distinct table and
//! context (a cache keyed by content: the host stays out of the training step). The backward is a gather over
//! that table, not a scatter-add over `idx`: with repeated indices a scatter would need atomic
//! float adds, which OpenCL 1.2 lacks and which would make the sums' order vary from run to
//! run. Concat moves each input's block with one copy launch in each direction.

use crate::device::{buf, launch, output, program, u32_arg};
use shiftgrad_tensor::opencl::{Arg, Buffer, Context, KernelParams, Program};
use shiftgrad_tensor::{Error, Real, Result, Shape, Tensor};
use std::cell::RefCell;
use std::rc::Rc;

const SOURCE: &str = include_str!("channels.cl");

/// Mirrors `CopyRows` in channels.cl.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct CopyRows {
    len: u32,
    src_stride: u32,
    src_offset: u32,
    dst_stride: u32,
    dst_offset: u32,
}

// SAFETY: repr(C), five u32 fields (no padding, no pointers), mirrored field for field by
// `CopyRows` in channels.cl.
unsafe impl KernelParams for CopyRows {}

/// Work-items along a run of `len` elements, four each.
fn items(len: usize) -> usize {
    len.div_ceil(4)
}

/// Indices as the i32 the kernels read (every value already checked against `C`).
fn to_i32(op: &'static str, v: &[usize]) -> Result<Vec<i32>> {
    v.iter()
        .map(|&i| i32::try_from(i).map_err(|_| Error::arg(op, format!("index {i} exceeds i32"))))
        .collect()
}

/// The inverse of `idx` for `c` channels: `c + 1` offsets, then for each channel `ci` the
/// entries `j` with `idx[j] == ci`, in increasing `j` (so the device sums repeats in the CPU
/// reference's order).
pub fn inverse_index(idx: &[usize], c: usize) -> (Vec<usize>, Vec<usize>) {
    let mut offsets = vec![0usize; c + 1];
    for &ci in idx {
        offsets[ci + 1] += 1;
    }
    for ci in 0..c {
        offsets[ci + 1] += offsets[ci];
    }
    let mut fill = offsets.clone();
    let mut list = vec![0usize; idx.len()];
    for (j, &ci) in idx.iter().enumerate() {
        list[fill[ci]] = j;
        fill[ci] += 1;
    }
    (offsets, list)
}

/// Tables uploaded so far, by content: (program of the context, forward or backward, the
/// i32 table) -> its device copy. A network gathers the same few channel lists (each SW layer's
/// rep and ghost channels) at every step, so each is uploaded once instead of with a blocking
/// write per call. At most [`CACHED_TABLES`] entries are kept (oldest dropped first).
struct CachedTable {
    program: Program,
    backward: bool,
    table: Vec<i32>,
    copy: Rc<Buffer<i32>>,
}

const CACHED_TABLES: usize = 256;

thread_local! {
    static TABLES: RefCell<Vec<CachedTable>> = const { RefCell::new(Vec::new()) };
}

/// The device copy of `table` for the context of `program`, uploaded on first use.
pub(crate) fn device_table(
    ctx: &Context,
    program: &Program,
    backward: bool,
    table: Vec<i32>,
) -> Result<Rc<Buffer<i32>>> {
    TABLES.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(e) = cache
            .iter()
            .find(|e| e.backward == backward && e.program.ptr_eq(program) && e.table == table)
        {
            return Ok(e.copy.clone());
        }
        let copy = Rc::new(ctx.upload(&table).map_err(crate::device::dev_err)?);
        if cache.len() >= CACHED_TABLES {
            cache.remove(0);
        }
        cache.push(CachedTable {
            program: program.clone(),
            backward,
            table,
            copy: copy.clone(),
        });
        Ok(copy)
    })
}

/// `out[b, j] = x[b, idx[j]]`.
pub fn gather_forward<T: Real>(
    ctx: &Context,
    x: &Tensor<T>,
    idx: &[usize],
    out_shape: Shape,
) -> Result<Tensor<T>> {
    const OP: &str = "gather_channels";
    let [n, c, h, w] = [x.dims()[0], x.dims()[1], x.dims()[2], x.dims()[3]];
    let plane = h * w;
    let k = idx.len();
    let p = program::<T>(ctx, "channels", SOURCE)?;
    let y = output::<T>(ctx, out_shape)?;
    let table = device_table(ctx, &p, false, to_i32(OP, idx)?)?;
    launch(
        ctx,
        &p,
        "gather_forward",
        [items(plane), n * k],
        None,
        &[
            buf(x),
            table.arg(),
            buf(&y),
            u32_arg(OP, plane)?,
            u32_arg(OP, k)?,
            u32_arg(OP, c)?,
        ],
    )?;
    Ok(y)
}

/// `dx[b, c] = sum_{j: idx[j] = c} dy[b, j]` in increasing `j`, zero where nothing gathered `c`.
pub fn gather_backward<T: Real>(
    ctx: &Context,
    dy: &Tensor<T>,
    idx: &[usize],
    x_dims: [usize; 4],
) -> Result<Tensor<T>> {
    const OP: &str = "gather_channels";
    let [n, c, h, w] = x_dims;
    let plane = h * w;
    let k = idx.len();
    let (offsets, list) = inverse_index(idx, c);
    let mut table = to_i32(OP, &offsets)?;
    table.extend(to_i32(OP, &list)?);
    let p = program::<T>(ctx, "channels", SOURCE)?;
    let dx = output::<T>(ctx, x_dims)?;
    let table = device_table(ctx, &p, true, table)?;
    launch(
        ctx,
        &p,
        "gather_backward",
        [items(plane), n * c],
        None,
        &[
            buf(dy),
            table.arg(),
            buf(&dx),
            u32_arg(OP, plane)?,
            u32_arg(OP, k)?,
            u32_arg(OP, c)?,
        ],
    )?;
    Ok(dx)
}

/// Copies `rows` runs of `len` elements from `src` to `dst` (strides and offsets in elements).
#[allow(clippy::too_many_arguments)]
fn copy_rows<T: Real>(
    ctx: &Context,
    src: &Tensor<T>,
    dst: &Tensor<T>,
    rows: usize,
    len: usize,
    (src_stride, src_offset): (usize, usize),
    (dst_stride, dst_offset): (usize, usize),
) -> Result<()> {
    const OP: &str = "concat_channels";
    let p = program::<T>(ctx, "channels", SOURCE)?;
    let u = |v: usize| {
        u32::try_from(v).map_err(|_| Error::arg(OP, format!("size {v} exceeds 32 bits")))
    };
    let params = CopyRows {
        len: u(len)?,
        src_stride: u(src_stride)?,
        src_offset: u(src_offset)?,
        dst_stride: u(dst_stride)?,
        dst_offset: u(dst_offset)?,
    };
    launch(
        ctx,
        &p,
        "copy_rows",
        [items(len), rows],
        None,
        &[buf(src), buf(dst), Arg::params(&params)],
    )
}

/// Stacks `xs` along channels into a new tensor of `out_shape`.
pub fn concat_forward<T: Real>(
    ctx: &Context,
    xs: &[&Tensor<T>],
    out_shape: Shape,
) -> Result<Tensor<T>> {
    let [n, c_out, h, w] = [
        out_shape.dim(0),
        out_shape.dim(1),
        out_shape.dim(2),
        out_shape.dim(3),
    ];
    let plane = h * w;
    let y = output::<T>(ctx, out_shape)?;
    let mut c0 = 0;
    for x in xs {
        let block = x.dims()[1] * plane;
        copy_rows(
            ctx,
            x,
            &y,
            n,
            block,
            (block, 0),
            (c_out * plane, c0 * plane),
        )?;
        c0 += x.dims()[1];
    }
    Ok(y)
}

/// Splits `dy` into the inputs' channel ranges; `None` for inputs that need no gradient.
pub fn concat_backward<T: Real>(
    ctx: &Context,
    dy: &Tensor<T>,
    channels: &[usize],
    needs: &[bool],
) -> Result<Vec<Option<Tensor<T>>>> {
    let [n, c_out, h, w] = [dy.dims()[0], dy.dims()[1], dy.dims()[2], dy.dims()[3]];
    let plane = h * w;
    let mut c0 = 0;
    let mut grads = Vec::with_capacity(channels.len());
    for (&ci, &need) in channels.iter().zip(needs) {
        grads.push(if need {
            let block = ci * plane;
            let dx = output::<T>(ctx, [n, ci, h, w])?;
            copy_rows(
                ctx,
                dy,
                &dx,
                n,
                block,
                (c_out * plane, c0 * plane),
                (block, 0),
            )?;
            Some(dx)
        } else {
            None
        });
        c0 += ci;
    }
    Ok(grads)
}
