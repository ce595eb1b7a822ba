//! OpenCL linear: the forward and both weight-side products are one tiled, strided matrix
//! multiply (`matmul` in linear.cl, 4 x 4 outputs per work-item, 32 x 32 per work-group);
//! db is a column sum. See linear.cl for the mapping of work-items to outputs.

use crate::device::{buf, launch, output, program, round_up, u32_arg};
use shiftgrad_tensor::opencl::{Arg, Context, KernelParams};
use shiftgrad_tensor::{Error, Real, Result, Tensor};

use super::OP;

const SOURCE: &str = include_str!("linear.cl");
/// Output tile of one work-group (TM = TN in linear.cl) and its items per side (LX = LY).
const TILE: usize = 32;
const ITEMS: usize = 8;

/// Mirrors `MatmulParams` in linear.cl: `C (m x n) = A (m x k) * B (k x n)` with
/// `A(i, p) = a[i*a_sm + p*a_sk]`, `B(p, j) = b[p*b_sk + j*b_sn]`.
#[repr(C)]
#[derive(Clone, Copy)]
struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    a_sm: u32,
    a_sk: u32,
    b_sk: u32,
    b_sn: u32,
    has_bias: u32,
}

// SAFETY: #[repr(C)], eight u32, no padding, no pointers; mirrored by `MatmulParams` in
// linear.cl.
unsafe impl KernelParams for MatmulParams {}

fn to_u32(v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| {
        Error::arg(
            OP,
            format!("size {v} is too large for a 32-bit kernel index"),
        )
    })
}

/// `out (m x n) = A * B (+ bias)`, strides `[a_sm, a_sk, b_sk, b_sn]`.
fn matmul<T: Real>(
    ctx: &Context,
    a: &Tensor<T>,
    b: &Tensor<T>,
    bias: Option<&Tensor<T>>,
    [m, n, k]: [usize; 3],
    [a_sm, a_sk, b_sk, b_sn]: [usize; 4],
) -> Result<Tensor<T>> {
    let p = program::<T>(ctx, "linear", SOURCE)?;
    // Every element index of the three matrices must fit the kernels' 32-bit arithmetic.
    for size in [m * k, k * n, m * n] {
        to_u32(size)?;
    }
    let params = MatmulParams {
        m: to_u32(m)?,
        n: to_u32(n)?,
        k: to_u32(k)?,
        a_sm: to_u32(a_sm)?,
        a_sk: to_u32(a_sk)?,
        b_sk: to_u32(b_sk)?,
        b_sn: to_u32(b_sn)?,
        has_bias: bias.is_some() as u32,
    };
    let out = output::<T>(ctx, [m, n])?;
    // Without a bias the kernel never reads its bias argument; `a` stands in for it.
    let bias_arg = buf(bias.unwrap_or(a));
    let groups = [n.div_ceil(TILE), m.div_ceil(TILE)];
    launch(
        ctx,
        &p,
        "matmul",
        [groups[0] * ITEMS, groups[1] * ITEMS],
        Some([ITEMS, ITEMS]),
        &[buf(a), buf(b), bias_arg, buf(&out), Arg::params(&params)],
    )?;
    Ok(out)
}

/// `y = x w^T + b`: x (n, fin), w (fout, fin).
pub fn forward<T: Real>(
    ctx: &Context,
    x: &Tensor<T>,
    w: &Tensor<T>,
    b: Option<&Tensor<T>>,
    n: usize,
    fin: usize,
    fout: usize,
) -> Result<Tensor<T>> {
    // A = x: (i, p) at i*fin + p; B = w^T: (p, j) at j*fin + p.
    matmul(ctx, x, w, b, [n, fout, fin], [fin, 1, 1, fin])
}

/// `dx = dy w`: dy (n, fout), w (fout, fin).
pub fn grad_input<T: Real>(
    ctx: &Context,
    dy: &Tensor<T>,
    w: &Tensor<T>,
    n: usize,
    fin: usize,
    fout: usize,
) -> Result<Tensor<T>> {
    matmul(ctx, dy, w, None, [n, fin, fout], [fout, 1, fin, 1])
}

/// `dw = dy^T x`: dy (n, fout), x (n, fin).
pub fn grad_weight<T: Real>(
    ctx: &Context,
    dy: &Tensor<T>,
    x: &Tensor<T>,
    n: usize,
    fin: usize,
    fout: usize,
) -> Result<Tensor<T>> {
    // A = dy^T: (i, p) = dy[p, i] at p*fout + i.
    matmul(ctx, dy, x, None, [fout, fin, n], [1, fout, fin, 1])
}

/// `db = sum over rows of dy`, one work-item per output.
pub fn grad_bias<T: Real>(
    ctx: &Context,
    dy: &Tensor<T>,
    n: usize,
    fout: usize,
) -> Result<Tensor<T>> {
    let p = program::<T>(ctx, "linear", SOURCE)?;
    let db = output::<T>(ctx, [fout])?;
    launch(
        ctx,
        &p,
        "col_sums",
        [round_up(fout, 64)],
        Some([64]),
        &[buf(dy), buf(&db), u32_arg(OP, n)?, u32_arg(OP, fout)?],
    )?;
    Ok(db)
}
