//! conv2d: 2-D cross-correlation (no kernel flip, as in PyTorch) with stride, zero padding per
//! side, groups (depthwise and channel multipliers included), non-square kernels and an
//! optional bias.
//!
//! With `x: (N, C_in, H, W)`, `w: (C_out, C_in/G, KH, KW)`, `b: (C_out)`, output channel `co`
//! belongs to group `g = co / (C_out/G)` and reads input channels `g*C_in/G ..`:
//!
//! ```text
//! y[n,co,oy,ox] = b[co] + sum_{ci<C_in/G, ky<KH, kx<KW}
//!                 w[co,ci,ky,kx] * x[n, g*C_in/G + ci, oy*sh + ky - top, ox*sw + kx - left]
//! ```
//!
//! where a read outside the input is zero. Backward (each only when asked for):
//! `dx` scatters `w * dy` back through the same index map, `dw[co,ci,ky,kx]` is the dot product
//! of `dy[:,co]` with the input window shifted by `(ky, kx)`, and `db[co]` sums `dy[:,co]`.
//!
//! Three direct kernels (forward, data gradient, weight gradient) live in `cpu.rs`, as in
//! burn. We rejected im2col + matmul: the column matrix is `KH*KW` times the input (255 times
//! for the 51x5 depthwise kernels of SW layers), which would dominate every memory measurement,
//! and depthwise convolutions gain nothing from a matmul. We also rejected composing conv from
//! pad/expand/mul/sum (tinygrad) for the same reason. (On OpenCL one case does unfold: the
//! weight gradient of a convolution with one group and a long channel sum, the 3x3 stride-2
//! down-sampling ones, whose column matrix is 2.25 times the input, transient; see `cl/`.)
//!
//! On an OpenCL device the same three computations (and the bias sum) run as the kernels of
//! `conv2d*.cl`, launched from `cl/`: every one a gather (each output element written by one
//! work-item, after a sum in a fixed order), so results are bitwise reproducible; `cl/`
//! explains the work-item mappings chosen for PoCL. The op runs where its inputs are, and
//! inputs on different devices are an error.
//!
//! The output-size formula lives only in [`output_hw`]; `Geometry` carries the validated
//! sizes to the kernels and to the cost model.

pub(crate) mod cases;
mod cl;
mod cpu;

pub use cl::{with_direct, DIRECT_ENV};
#[cfg(test)]
mod tests;

use crate::cost::{bytes, Cost, Work};
use crate::device::common_device;
use shiftgrad_autograd::Var;
use shiftgrad_tensor::{Device, Error, Real, Result, Shape, Tensor};

const OP: &str = "conv2d";

/// Stride, padding and groups of a convolution. Build with the chained setters:
/// `Conv2dParams::new().stride(2).pad(1, 1).groups(c)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dParams {
    /// `(sh, sw)`, default `(1, 1)`.
    pub stride: (usize, usize),
    /// Zero padding per side: `[top, bottom, left, right]`, default 0.
    pub pad: [usize; 4],
    /// Default 1; `C_in` for a depthwise convolution.
    pub groups: usize,
}

impl Default for Conv2dParams {
    fn default() -> Self {
        Conv2dParams {
            stride: (1, 1),
            pad: [0; 4],
            groups: 1,
        }
    }
}

impl Conv2dParams {
    /// Stride 1, no padding, one group.
    pub fn new() -> Self {
        Self::default()
    }
    /// The same stride `s` in both directions.
    pub fn stride(self, s: usize) -> Self {
        Conv2dParams {
            stride: (s, s),
            ..self
        }
    }
    /// Symmetric padding: `ph` rows above and below, `pw` columns left and right.
    pub fn pad(self, ph: usize, pw: usize) -> Self {
        Conv2dParams {
            pad: [ph, ph, pw, pw],
            ..self
        }
    }
    /// Padding per side: `[top, bottom, left, right]`.
    pub fn pad_sides(self, pad: [usize; 4]) -> Self {
        Conv2dParams { pad, ..self }
    }
    /// Number of groups.
    pub fn groups(self, g: usize) -> Self {
        Conv2dParams { groups: g, ..self }
    }
}

/// The output height and width: `Ho = (H + top + bottom - KH) / sh + 1`, and likewise for `Wo`.
/// An error if a stride is 0 or the kernel does not fit the padded input.
pub fn output_hw(
    h: usize,
    w: usize,
    kh: usize,
    kw: usize,
    p: &Conv2dParams,
) -> Result<(usize, usize)> {
    let (sh, sw) = p.stride;
    if sh == 0 || sw == 0 {
        return Err(Error::arg(
            OP,
            format!("stride must be at least 1, got ({sh}, {sw})"),
        ));
    }
    let [top, bottom, left, right] = p.pad;
    let (hp, wp) = (h + top + bottom, w + left + right);
    if hp < kh || wp < kw {
        return Err(Error::shape(
            OP,
            format!(
                "kernel {kh}x{kw} is larger than the padded input {hp}x{wp} \
                 (input {h}x{w}, pad [top, bottom, left, right] = {:?})",
                p.pad
            ),
        ));
    }
    Ok(((hp - kh) / sh + 1, (wp - kw) / sw + 1))
}

/// The validated sizes of one convolution, shared by the kernels and the cost model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub n: usize,
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub kh: usize,
    pub kw: usize,
    pub ho: usize,
    pub wo: usize,
    pub p: Conv2dParams,
}

impl Geometry {
    /// Checks the shapes of `x`, `w` and (if given) `b` against each other and `p`.
    pub fn new(x: &Shape, w: &Shape, b: Option<&Shape>, p: &Conv2dParams) -> Result<Self> {
        let [n, c_in, h, wd] = x.nchw(OP, "input")?;
        let &[c_out, c_per_group, kh, kw] = w.dims() else {
            return Err(Error::shape(
                OP,
                format!("weight must have 4 dimensions (C_out, C_in/groups, KH, KW), got {w}"),
            ));
        };
        let g = p.groups;
        if g == 0 {
            return Err(Error::arg(OP, "groups must be at least 1, got 0"));
        }
        if c_in % g != 0 {
            return Err(Error::shape(
                OP,
                format!("input has {c_in} channels, not divisible by groups {g} (input {x})"),
            ));
        }
        if c_out % g != 0 {
            return Err(Error::shape(
                OP,
                format!(
                    "weight has {c_out} output channels, not divisible by groups {g} (weight {w})"
                ),
            ));
        }
        if c_in / g != c_per_group {
            let msg = if g == 1 {
                format!("input has {c_in} channels, weight expects {c_per_group}")
            } else {
                format!(
                    "input has {c_in} channels, weight expects {} ({c_per_group} per group x {g} groups)",
                    c_per_group * g
                )
            };
            return Err(Error::shape(OP, msg));
        }
        if let Some(b) = b {
            if b.dims() != [c_out] {
                return Err(Error::shape(
                    OP,
                    format!("bias must have shape [{c_out}] (C_out of weight {w}), got {b}"),
                ));
            }
        }
        let (ho, wo) = output_hw(h, wd, kh, kw, p)?;
        Ok(Geometry {
            n,
            c_in,
            h,
            w: wd,
            c_out,
            kh,
            kw,
            ho,
            wo,
            p: *p,
        })
    }

    /// Input channels per group (`C_in / G`).
    pub fn cig(&self) -> usize {
        self.c_in / self.p.groups
    }
    /// Output channels per group (`C_out / G`).
    pub fn cog(&self) -> usize {
        self.c_out / self.p.groups
    }
    pub fn x_numel(&self) -> usize {
        self.n * self.c_in * self.h * self.w
    }
    pub fn w_numel(&self) -> usize {
        self.c_out * self.cig() * self.kh * self.kw
    }
    pub fn y_numel(&self) -> usize {
        self.n * self.c_out * self.ho * self.wo
    }
    pub fn y_shape(&self) -> Shape {
        Shape::new(&[self.n, self.c_out, self.ho, self.wo])
    }
    /// Multiply-accumulates of the forward: `N*C_out*Ho*Wo * (C_in/G)*KH*KW`. The data and
    /// the weight gradients each take as many.
    pub fn macs(&self) -> u64 {
        (self.y_numel() * self.cig() * self.kh * self.kw) as u64
    }

    /// Forward work: the MACs, plus one add per output element for the bias.
    fn forward_work<T: Real>(&self, has_bias: bool) -> Work {
        let bias_adds = if has_bias { self.y_numel() } else { 0 };
        let read = self.x_numel() + self.w_numel() + if has_bias { self.c_out } else { 0 };
        Work::with_macs(
            self.macs(),
            bias_adds as u64,
            bytes::<T>(read + self.y_numel()),
        )
    }

    /// Backward work for the gradients computed: `dx` (MACs, reads `w`, writes `dx`), `dw`
    /// (MACs, reads `x`, writes `dw`), `db` (one add per element of `dy`, writes `db`); `dy` is
    /// read once if anything is computed.
    pub fn backward_work<T: Real>(&self, dx: bool, dw: bool, db: bool) -> Work {
        let mut macs = 0;
        let mut adds = 0;
        let mut traffic = 0;
        if dx {
            macs += self.macs();
            traffic += self.w_numel() + self.x_numel();
        }
        if dw {
            macs += self.macs();
            traffic += self.x_numel() + self.w_numel();
        }
        if db {
            adds += self.y_numel() as u64;
            traffic += self.c_out;
        }
        if dx || dw || db {
            traffic += self.y_numel();
        }
        Work::with_macs(macs, adds, bytes::<T>(traffic))
    }
}

/// Forward and backward cost of a convolution of an input of shape `x` with a weight of shape
/// `w` (SPEC section 4). Backward is data gradient + weight gradient (+ bias gradient), each
/// `N*C_out*Ho*Wo*(C_in/G)*KH*KW` MACs; bytes are the minimum traffic (each input read once,
/// each output written once). Errors as [`conv2d`] for shapes that do not fit.
pub fn cost<T: Real>(x: &Shape, w: &Shape, p: &Conv2dParams, has_bias: bool) -> Result<Cost> {
    let g = Geometry::new(x, w, None, p)?;
    Ok(Cost {
        forward: g.forward_work::<T>(has_bias),
        backward: g.backward_work::<T>(true, true, has_bias),
    })
}

/// 2-D cross-correlation.
/// x: (N, C_in, H, W); w: (C_out, C_in/groups, KH, KW); b: (C_out); -> (N, C_out, Ho, Wo)
///
/// Runs on the device of its inputs (all on the same one): the CPU reference in `cpu.rs` or
/// the OpenCL kernels of `conv2d*.cl` (launched from `cl/`), forward and backward.
pub fn conv2d<T: Real>(
    x: &Var<T>,
    w: &Var<T>,
    b: Option<&Var<T>>,
    p: Conv2dParams,
) -> Result<Var<T>> {
    let bias_shape = b.map(|b| b.shape());
    let g = Geometry::new(&x.shape(), &w.shape(), bias_shape.as_ref(), &p)?;
    let threads = cpu::threads_for(g.macs());
    let y = {
        let (xv, wv) = (x.value(), w.value());
        let bias = b.map(|b| b.value());
        let mut all = vec![&*xv, &*wv];
        all.extend(bias.as_deref());
        match common_device(OP, &all)? {
            Device::Cpu => cpu::forward(&g, &xv, &wv, bias.as_deref(), threads),
            Device::OpenCl(c) => cl::forward(&c, &g, &xv, &wv, bias.as_deref())?,
        }
    };
    g.forward_work::<T>(b.is_some()).record();

    // The closure keeps handles to x and w (no copy), versioned: a write to either between
    // forward and backward is an error at backward, not a silently wrong gradient.
    let (xs, ws) = (x.save(), w.save());
    let has_bias = b.is_some();
    let mut inputs = vec![x, w];
    inputs.extend(b);
    Ok(Var::from_op(OP, y, &inputs, move |ctx| {
        let needs = [ctx.needs[0], ctx.needs[1], has_bias && ctx.needs[2]];
        let (xv, wv) = (xs.value(OP, "input")?, ws.value(OP, "weight")?);
        let (mut grads, work) = backward(&g, ctx.grad_out, &xv, &wv, needs, threads)?;
        work.record();
        grads.truncate(ctx.needs.len());
        Ok(grads)
    }))
}

/// The gradients of `(x, w, b)` for output gradient `dy`, each computed only where `needs`
/// says so (`None` elsewhere), on the device of `dy`, `x` and `w`, and the work done.
fn backward<T: Real>(
    g: &Geometry,
    dy: &Tensor<T>,
    x: &Tensor<T>,
    w: &Tensor<T>,
    [need_dx, need_dw, need_db]: [bool; 3],
    threads: usize,
) -> Result<(Vec<Option<Tensor<T>>>, Work)> {
    let grads = match common_device(OP, &[dy, x, w])? {
        Device::Cpu => vec![
            need_dx.then(|| cpu::data_grad(g, dy, w, threads)),
            need_dw.then(|| cpu::weight_grad(g, dy, x, threads)),
            need_db.then(|| cpu::bias_grad(g, dy)),
        ],
        Device::OpenCl(c) => vec![
            need_dx.then(|| cl::data_grad(&c, g, dy, w)).transpose()?,
            need_dw.then(|| cl::weight_grad(&c, g, dy, x)).transpose()?,
            need_db.then(|| cl::bias_grad(&c, g, dy)).transpose()?,
        ],
    };
    Ok((grads, g.backward_work::<T>(need_dx, need_dw, need_db)))
}
