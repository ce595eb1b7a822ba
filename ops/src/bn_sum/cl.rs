//! OpenCL bn_sum: batch_norm.cl's statistics kernels per term, then bn_sum.cl's one output
//! pass; the backward's mask pass, one channel-sum pass for every term, and one input-gradient
//! pass writing every wanted term's gradient (the mapping is in bn_sum.cl's header).

use crate::batch_norm::cl::{per_channel, seg, stats_with, Mode, Stats};
use crate::channels::cl::device_table;
use crate::device::{buf, dev_err, launch, output};
use shiftgrad_tensor::opencl::{Arg, Buffer, Context, KernelParams, Program};
use shiftgrad_tensor::{Error, Real, Result, Tensor};
use std::rc::Rc;

use super::OP;

const SOURCE: &str = concat!(
    include_str!("../batch_norm/batch_norm.cl"),
    include_str!("bn_sum.cl")
);

/// Mirrors `SumParams` in bn_sum.cl.
#[repr(C)]
#[derive(Clone, Copy)]
struct SumParams {
    n: u32,
    r: u32,
    cout: u32,
    hw: u32,
    count: u32,
    k: u32,
    flags: u32,
    pad: u32,
}

// SAFETY: #[repr(C)], eight u32 (no padding, no pointers); mirrored field for field by
// `SumParams` in bn_sum.cl.
unsafe impl KernelParams for SumParams {}

/// `SUM_*` in bn_sum.cl.
pub const RESIDUAL: u32 = 1;
pub const RELU: u32 = 2;
pub const TRAIN: u32 = 4;
const NEED0: u32 = 8;

/// The layout of one call: terms (N, R, H, W), output channels `cout`, `flags` of the above.
#[derive(Clone, Copy)]
pub struct Layout {
    pub dims: [usize; 4],
    pub cout: usize,
    pub k: usize,
    pub flags: u32,
}

impl Layout {
    fn params(&self) -> Result<SumParams> {
        let [n, r, h, w] = self.dims;
        let u = |v: usize| {
            u32::try_from(v)
                .map_err(|_| Error::arg(OP, format!("size {v} is too large for a 32-bit index")))
        };
        u(n * self.cout.max(r) * h * w)?;
        Ok(SumParams {
            n: u(n)?,
            r: u(r)?,
            cout: u(self.cout)?,
            hw: u(h * w)?,
            count: u(n * h * w)?,
            k: u(self.k)?,
            flags: self.flags,
            pad: 0,
        })
    }

    /// The element-wise passes' range: one work-item per segment of each of `planes` planes
    /// per image.
    fn range(&self, ctx: &Context, planes: usize) -> [usize; 2] {
        let [n, _, h, w] = self.dims;
        [(h * w).div_ceil(seg(ctx)), n * planes]
    }
}

fn prog<T: Real>(ctx: &Context) -> Result<Program> {
    let defines = [
        ("real", T::DTYPE.cl_name().to_string()),
        ("SEG", seg(ctx).to_string()),
    ];
    ctx.program("bn_sum", SOURCE, &defines).map_err(dev_err)
}

/// The device copy of the output's channel map (`[0]` without a residual: never read).
pub fn channel_table<T: Real>(
    ctx: &Context,
    channels: Option<&[usize]>,
) -> Result<Rc<Buffer<i32>>> {
    let p = prog::<T>(ctx)?;
    let table = match channels {
        Some(c) => c
            .iter()
            .map(|&i| i32::try_from(i).map_err(|_| Error::arg(OP, "channel index exceeds i32")))
            .collect::<Result<Vec<_>>>()?,
        None => vec![0],
    };
    device_table(ctx, &p, false, table)
}

/// One term of the forward: the input, gamma, beta, the running statistics, momentum, eps.
pub struct Term<'a, T: Real> {
    pub z: &'a Tensor<T>,
    pub gamma: &'a Tensor<T>,
    pub beta: &'a Tensor<T>,
    pub running: [&'a Tensor<T>; 2],
    pub momentum: f64,
    pub eps: f64,
}

/// The `k`-th entry of `v`, or its first where there are fewer (an argument the kernel does
/// not read, in bounds all the same).
fn nth<'a, T: Real>(v: &[&'a Tensor<T>], k: usize) -> Arg<'a> {
    buf(v.get(k).copied().unwrap_or(v[0]))
}

/// The statistics of every term (updating the running ones in training), then the output.
pub fn forward<T: Real>(
    ctx: &Context,
    terms: &[Term<'_, T>],
    residual: Option<&Tensor<T>>,
    table: &Buffer<i32>,
    layout: Layout,
) -> Result<(Tensor<T>, Vec<Stats<T>>)> {
    let p = prog::<T>(ctx)?;
    let train = layout.flags & TRAIN != 0;
    let stats = terms
        .iter()
        .map(|t| {
            let mode = match train {
                true => Mode::Train {
                    momentum: t.momentum,
                },
                false => Mode::Eval,
            };
            stats_with(ctx, &p, t.z, t.running, layout.dims, mode, t.eps)
        })
        .collect::<Result<Vec<_>>>()?;
    let [n, _, h, w] = layout.dims;
    let y = output::<T>(ctx, [n, layout.cout, h, w])?;
    let z: Vec<_> = terms.iter().map(|t| t.z).collect();
    let mean: Vec<_> = stats.iter().map(|s| &s.mean).collect();
    let inv: Vec<_> = stats.iter().map(|s| &s.inv_std).collect();
    let gamma: Vec<_> = terms.iter().map(|t| t.gamma).collect();
    let beta: Vec<_> = terms.iter().map(|t| t.beta).collect();
    let params = layout.params()?;
    let mut args = Vec::with_capacity(19);
    for v in [&z, &mean, &inv, &gamma, &beta] {
        args.extend((0..3).map(|k| nth(v, k)));
    }
    args.extend([
        buf(residual.unwrap_or(terms[0].z)),
        table.arg(),
        buf(&y),
        Arg::params(&params),
    ]);
    launch(
        ctx,
        &p,
        "bn_sum_forward",
        layout.range(ctx, layout.cout),
        None,
        &args,
    )?;
    Ok((y, stats))
}

/// What the backward computes, besides the masked output gradient.
pub struct Wanted<'a> {
    /// Which terms' input gradients.
    pub z: &'a [bool],
    /// Whether the channel sums (dgamma, dbeta; and the training-mode input gradients).
    pub sums: bool,
}

/// The backward's results: the masked output gradient `g` (x's gradient where there is a
/// residual), then per term its input gradient and `(sum g, sum g * xhat)`, where wanted.
pub struct Grads<T: Real> {
    pub g: Tensor<T>,
    pub dz: Vec<Option<Tensor<T>>>,
    pub sums: Option<Vec<(Tensor<T>, Tensor<T>)>>,
}

/// The backward from the output gradient; `z`, `gamma` and `stats` per term.
#[allow(clippy::too_many_arguments)]
pub fn backward<T: Real>(
    ctx: &Context,
    dout: &Tensor<T>,
    out: &Tensor<T>,
    table: &Buffer<i32>,
    z: &[&Tensor<T>],
    gamma: &[&Tensor<T>],
    stats: &[Stats<T>],
    layout: Layout,
    wanted: Wanted<'_>,
) -> Result<Grads<T>> {
    let p = prog::<T>(ctx)?;
    let [n, r, h, w] = layout.dims;
    let mut params = layout.params()?;
    let g = output::<T>(ctx, [n, layout.cout, h, w])?;
    let args = [
        buf(dout),
        buf(out),
        table.arg(),
        buf(&g),
        Arg::params(&params),
    ];
    launch(
        ctx,
        &p,
        "bn_sum_mask",
        layout.range(ctx, layout.cout),
        None,
        &args,
    )?;
    let train = layout.flags & TRAIN != 0;
    let need_z = wanted.z.iter().any(|&b| b);
    if !wanted.sums && !need_z {
        return Ok(Grads {
            g,
            dz: vec![None; z.len()],
            sums: None,
        });
    }
    let mean: Vec<_> = stats.iter().map(|s| &s.mean).collect();
    let inv: Vec<_> = stats.iter().map(|s| &s.inv_std).collect();
    // The sums are needed for dgamma and dbeta, and by the training-mode input gradients;
    // the evaluation-mode ones read g alone (the sums' buffers then only fill arguments).
    let sums = if wanted.sums || train {
        let sums = (0..z.len())
            .map(|_| Ok((output::<T>(ctx, [r])?, output::<T>(ctx, [r])?)))
            .collect::<Result<Vec<_>>>()?;
        let sdy: Vec<_> = sums.iter().map(|s| &s.0).collect();
        let sdx: Vec<_> = sums.iter().map(|s| &s.1).collect();
        let mut args = vec![buf(&g), table.arg()];
        for v in [z, &mean, &inv, &sdy, &sdx] {
            args.extend((0..3).map(|k| nth(v, k)));
        }
        args.push(Arg::params(&params));
        per_channel(ctx, &p, "bn_sum_grad_sums", r, &args)?;
        Some(sums)
    } else {
        None
    };
    let dz = wanted
        .z
        .iter()
        .map(|&need| need.then(|| output::<T>(ctx, [n, r, h, w])).transpose())
        .collect::<Result<Vec<_>>>()?;
    if need_z {
        for (k, &need) in wanted.z.iter().enumerate() {
            if need {
                params.flags |= NEED0 << k;
            }
        }
        let dummy: Vec<&Tensor<T>> = vec![&g];
        let (sdy, sdx): (Vec<_>, Vec<_>) = match &sums {
            Some(s) => s.iter().map(|(a, b)| (a, b)).unzip(),
            None => (dummy.clone(), dummy.clone()),
        };
        let outs: Vec<&Tensor<T>> = dz.iter().map(|d| d.as_ref().unwrap_or(&g)).collect();
        let mut args = vec![buf(&g), table.arg()];
        for v in [z, &mean, &inv, gamma] {
            args.extend((0..3).map(|k| nth(v, k)));
        }
        args.push(buf(sdy[0]));
        args.extend((0..3).map(|k| nth(&sdx, k)));
        args.extend((0..3).map(|k| nth(&outs, k)));
        args.push(Arg::params(&params));
        launch(
            ctx,
            &p,
            "bn_sum_grad_input",
            layout.range(ctx, r),
            None,
            &args,
        )?;
    }
    Ok(Grads { g, dz, sums })
}
