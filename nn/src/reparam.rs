//! Reparameterisation: from the trained form to one depthwise kernel with a bias.
//!
//! Every spatial operator of SPEC 1.7 is linear in its input once its batch-norms are in eval
//! mode (`BN(y) = scale * y + shift` per channel). So, per processed channel,
//!
//! ```text
//! Z = sum_paths scale_p * dwconv(X_r, K_p, pad_p) + shift_p  (+ X_r)
//! ```
//! and, zero padding being common to all paths, the sum is one depthwise cross-correlation with
//! the kernels placed on a common grid plus a bias `sum_p shift_p`. The grid of an operator of
//! big kernel `M` anchors input offset 0 at kernel index `M/2` in both directions; a path kernel
//! whose padding is `(top, left)` reads offset `r - top` at row `r`, so it lands at row
//! `M/2 - top + r`. The residual is a 1 at `(M/2, M/2)`.
//!
//! For SW (SPEC 1.4) the paths are the dense equivalents of the three shift-add outputs, built
//! from the merged bank; the grid is `L x L` with `L = nk*k` (plus-shaped: only the centre `k`
//! rows and columns are non-zero) and padding `(M/2, L-1-M/2)` on each axis. Dense, slak and
//! small fold onto an `M x M` (or `k x k`) grid with symmetric padding.

use crate::baselines::Spatial;
use crate::layers::{BatchNorm2d, ConvBn};
use crate::module::{Mode, Module};
use crate::shiftwise::ShiftWiseConv;
use shiftgrad_autograd::Var;
use shiftgrad_ops::shift_add::{dense_kernels, dense_padding};
use shiftgrad_ops::{concat_channels, conv2d, gather_channels, Conv2dParams};
use shiftgrad_tensor::{Error, Real, Result, Tensor};

/// A folded spatial operator: gather the processed channels, one depthwise convolution with a
/// bias (residual included), concat the ghost channels.
pub struct Folded<T: Real> {
    /// Channels of the input (and of the output), C.
    pub channels: usize,
    /// Indices of the R processed channels: kernel channel `r` convolves input channel
    /// `rep_idx[r]` (`0..C` for the baselines).
    pub rep_idx: Vec<usize>,
    /// Indices of the ghost channels, concatenated unchanged after the R processed ones
    /// (empty for the baselines).
    pub ghost_idx: Vec<usize>,
    /// (R, 1, Kh, Kw)
    pub weight: Var<T>,
    /// (R)
    pub bias: Var<T>,
    /// Zero padding [top, bottom, left, right].
    pub pad: [usize; 4],
}

impl<T: Real> Folded<T> {
    fn params(&self) -> Conv2dParams {
        Conv2dParams::new()
            .pad_sides(self.pad)
            .groups(self.rep_idx.len())
    }
    fn identity_split(&self) -> bool {
        self.ghost_idx.is_empty() && self.rep_idx.iter().enumerate().all(|(i, &c)| i == c)
    }
}

impl<T: Real> Module<T> for Folded<T> {
    fn forward(&mut self, x: &Var<T>, _mode: Mode) -> Result<Var<T>> {
        let dims = x.shape().nchw("folded spatial", "input")?;
        if dims[1] != self.channels {
            return Err(Error::shape(
                "folded spatial",
                format!(
                    "input has {} channels, the layer expects {}",
                    dims[1], self.channels
                ),
            ));
        }
        if self.identity_split() {
            return conv2d(x, &self.weight, Some(&self.bias), self.params());
        }
        let x_r = gather_channels(x, &self.rep_idx)?;
        let z = conv2d(&x_r, &self.weight, Some(&self.bias), self.params())?;
        if self.ghost_idx.is_empty() {
            return Ok(z);
        }
        let x_g = gather_channels(x, &self.ghost_idx)?;
        concat_channels(&[&z, &x_g])
    }
    fn own_parameters(&self) -> Vec<(String, &Var<T>, bool)> {
        vec![
            ("weight".into(), &self.weight, true),
            ("bias".into(), &self.bias, false),
        ]
    }
}

/// A depthwise kernel being assembled on a common grid, in f64.
struct Grid {
    reps: usize,
    kh: usize,
    kw: usize,
    /// Kernel index of input offset 0, (row, column).
    anchor: (usize, usize),
    weight: Vec<f64>,
    bias: Vec<f64>,
}

impl Grid {
    fn new(reps: usize, kh: usize, kw: usize, anchor: (usize, usize)) -> Self {
        Grid {
            reps,
            kh,
            kw,
            anchor,
            weight: vec![0.0; reps * kh * kw],
            bias: vec![0.0; reps],
        }
    }

    /// Adds `scale[o] * kernel[o]` (kernel (R, 1, h, w) read with padding (top, left)) and
    /// `shift[o]` to the bias.
    fn add_path<T: Real>(
        &mut self,
        kernel: &Tensor<T>,
        top: usize,
        left: usize,
        affine: &(Vec<f64>, Vec<f64>),
    ) -> Result<()> {
        let kernel = kernel.to_host()?;
        let d = kernel.dims();
        let (h, w) = (d[2], d[3]);
        let (scale, shift) = affine;
        for o in 0..self.reps {
            for r in 0..h {
                for t in 0..w {
                    let row = (self.anchor.0 + r)
                        .checked_sub(top)
                        .filter(|&v| v < self.kh);
                    let col = (self.anchor.1 + t)
                        .checked_sub(left)
                        .filter(|&v| v < self.kw);
                    let (Some(row), Some(col)) = (row, col) else {
                        return Err(Error::Other(format!(
                            "reparam: a {h}x{w} kernel with padding ({top}, {left}) does not fit a {}x{} grid",
                            self.kh, self.kw
                        )));
                    };
                    self.weight[(o * self.kh + row) * self.kw + col] +=
                        scale[o] * kernel.data()[(o * h + r) * w + t].as_f64();
                }
            }
            self.bias[o] += shift[o];
        }
        Ok(())
    }

    fn add_residual(&mut self) {
        for o in 0..self.reps {
            self.weight[(o * self.kh + self.anchor.0) * self.kw + self.anchor.1] += 1.0;
        }
    }

    fn finish<T: Real>(
        self,
        channels: usize,
        rep_idx: Vec<usize>,
        ghost_idx: Vec<usize>,
    ) -> Result<Folded<T>> {
        let pad = [
            self.anchor.0,
            self.kh - 1 - self.anchor.0,
            self.anchor.1,
            self.kw - 1 - self.anchor.1,
        ];
        let weight = Tensor::new(
            [self.reps, 1, self.kh, self.kw],
            self.weight.iter().map(|&v| T::of_f64(v)).collect(),
        )?;
        let bias = Tensor::new(
            [self.reps],
            self.bias.iter().map(|&v| T::of_f64(v)).collect(),
        )?;
        Ok(Folded {
            channels,
            rep_idx,
            ghost_idx,
            weight: Var::param(weight),
            bias: Var::param(bias),
            pad,
        })
    }
}

/// Folds a shift-wise layer (eval-mode batch-norms, merged banks) into one plus-shaped
/// `L x L` depthwise kernel with a bias.
pub fn fold_sw<T: Real>(sw: &ShiftWiseConv<T>) -> Result<Folded<T>> {
    let t = &sw.tables;
    let bank = sw.merged_bank()?.to_host()?;
    let (dh, dv, di) = dense_kernels(t, &bank)?;
    let (ph, pv, pi) = dense_padding(t);
    let l = t.nk() * t.small;
    let a = t.big / 2;
    let mut grid = Grid::new(sw.reps(), l, l, (a, a));
    grid.add_path(&dh, ph[0], ph[2], &sw.bn_h.eval_affine()?)?;
    grid.add_path(&dv, pv[0], pv[2], &sw.bn_v.eval_affine()?)?;
    grid.add_path(&di, pi[0], pi[2], &sw.bn_i.eval_affine()?)?;
    grid.add_residual();
    grid.finish(sw.config.channels, sw.rep_idx.clone(), sw.ghost_idx.clone())
}

fn bn_path<T: Real>(grid: &mut Grid, d: &ConvBn<T>) -> Result<()> {
    let w = d.conv.weight.value();
    let p = d.conv.params.pad;
    grid.add_path(&w, p[0], p[2], &BatchNorm2d::eval_affine(&d.bn)?)
}

/// Folds any spatial operator in place (a no-op for an already folded one).
pub fn fold_spatial<T: Real>(s: &mut Spatial<T>) -> Result<()> {
    let folded = match s {
        Spatial::Folded(_) => return Ok(()),
        Spatial::Sw(sw) => fold_sw(sw)?,
        Spatial::Dense(d) | Spatial::Small(d) => {
            let dims = d.conv.weight.shape();
            let (c, kh, kw) = (dims.dim(0), dims.dim(2), dims.dim(3));
            let mut grid = Grid::new(c, kh, kw, (kh / 2, kw / 2));
            bn_path(&mut grid, d)?;
            grid.add_residual();
            grid.finish(c, (0..c).collect(), Vec::new())?
        }
        Spatial::Slak { tall, wide, small } => {
            let dims = tall.conv.weight.shape();
            let (c, m) = (dims.dim(0), dims.dim(2));
            let mut grid = Grid::new(c, m, m, (m / 2, m / 2));
            bn_path(&mut grid, tall)?;
            bn_path(&mut grid, wide)?;
            bn_path(&mut grid, small)?;
            grid.add_residual();
            grid.finish(c, (0..c).collect(), Vec::new())?
        }
    };
    *s = Spatial::Folded(folded);
    Ok(())
}

/// Merges the P banks of a shift-wise layer into one (their sum); outputs are unchanged.
pub fn merge_paths<T: Real>(sw: &mut ShiftWiseConv<T>) -> Result<()> {
    let merged = sw.merged_bank()?;
    sw.banks = vec![Var::param(merged)];
    sw.config.n_path = 1;
    Ok(())
}
