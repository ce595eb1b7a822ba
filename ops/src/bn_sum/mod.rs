//! bn_sum: the sum of up to three batch-norms, plus a residual whose channels are added to
//! the sum and appended to it, then an optional relu, as one op (op name "bn_sum").
//!
//! For terms `z_k` of shape (N, R, H, W), each with its own batch-norm `bn_k` (SPEC 3:
//! `batch_norm2d`, training or evaluation mode), and a residual `x` of shape (N, C, H, W) with
//! a channel map `cmap`, a permutation of `0..C` (C >= R):
//!
//! ```text
//! out[:, j] = act(bn_0(z_0)[:, j] + ... + bn_{K-1}(z_{K-1})[:, j] + x[:, cmap[j]])   j < R
//! out[:, j] = act(x[:, cmap[j]])                                                   R <= j < C
//! ```
//!
//! and without a residual `out = act(bn_0(z_0) + ...)`, (N, R, H, W); `act` is relu or the
//! identity. This is how SW-ResNet ends its operators: a shift-wise layer's three batch-norms
//! summed with its processed channels `X_r` and followed by its ghost channels (SPEC 1.5 steps
//! 4-5: `cmap` is the rep channels then the ghost channels), a block's `relu(h + bn(pw(.)))`
//! (`cmap` the identity) and the stem's and down-sampling layers' `relu(bn(conv(.)))` (no
//! residual).
//!
//! Composed, that is K batch-norms, a gather of `X_r`, `add_n`, a gather of the ghost
//! channels, `concat_channels` and relu: the forward writes every normalised term, the sum
//! and the concatenation before the relu reads them back, and the backward copies the
//! output's gradient once per summand. **On OpenCL** (`cl.rs`, `bn_sum.cl`) the statistics
//! are batch-norm's own kernels, then one pass reads the terms and `x` and writes the output;
//! the backward masks the output gradient once into `g` (which, in `x`'s channel order, is
//! `x`'s gradient), computes every term's channel sums in one pass (`sum g` is the same for all
//! terms: each term's `dbeta`), and every term's input gradient in one more. Each value is the
//! composed ops' expression in their order, so outputs, running statistics and gradients are
//! bitwise those of the composition (`tests/parity_bn_sum.rs`).
//!
//! **The CPU reference** (and any device while batch-norm statistics are synchronised across
//! processes, `batch_norm::set_sync`, or with `SHIFTGRAD_UNFUSED` set) is that composition,
//! written as the separate ops ([`composed`]).

pub(crate) mod cases;
mod cl;
#[cfg(test)]
mod tests;

use crate::batch_norm::{self, batch_norm2d_eval, batch_norm2d_train};
use crate::cost::{bytes, Cost, Work};
use crate::device::common_device;
use crate::{add_n, add_relu, concat_channels, gather_channels, relu};
use shiftgrad_autograd::Var;
use shiftgrad_tensor::{Device, Error, Real, Result, Tensor};

const OP: &str = "bn_sum";

/// One batch-norm term: its input (N, R, H, W) and its module's state (gamma, beta and the
/// running statistics, (R) each, on the input's device; momentum and eps).
pub struct BnTerm<'a, T: Real> {
    /// The term's input z_k, (N, R, H, W).
    pub x: &'a Var<T>,
    /// Its batch-norm's scale, (R).
    pub gamma: &'a Var<T>,
    /// Its batch-norm's shift, (R).
    pub beta: &'a Var<T>,
    /// Running mean, (R): updated in place in training mode.
    pub running_mean: &'a mut Tensor<T>,
    /// Running variance, (R): updated in place in training mode (unbiased, as batch-norm).
    pub running_var: &'a mut Tensor<T>,
    /// Weight of the batch statistic in the running update.
    pub momentum: f64,
    /// Added to the variance before the square root.
    pub eps: f64,
}

/// The residual: `x` (N, C, H, W) and the output's channel map, a permutation of `0..C`.
#[derive(Clone, Copy)]
pub struct Residual<'a, T: Real> {
    /// The residual, (N, C, H, W).
    pub x: &'a Var<T>,
    /// `channels[j]`: the channel of x that output channel j adds (j < R) or is (j >= R).
    pub channels: &'a [usize],
}

/// The terms of a stacked input list: `v[0..k]` the terms' inputs, `v[k..2k]` their gammas,
/// `v[2k..3k]` their betas, with `k = running.len()` and each term's running (mean, variance)
/// from `running`; momentum 0.1 and eps 1e-5 (the batch-norm module's defaults). This is the
/// layout of the gradcheck cases and the parity tests.
pub fn stacked_terms<'a, T: Real>(
    v: &'a [Var<T>],
    running: &'a mut [(Tensor<T>, Tensor<T>)],
) -> Vec<BnTerm<'a, T>> {
    let k = running.len();
    running
        .iter_mut()
        .enumerate()
        .map(|(i, (m, s))| BnTerm {
            x: &v[i],
            gamma: &v[k + i],
            beta: &v[2 * k + i],
            running_mean: m,
            running_var: s,
            momentum: 0.1,
            eps: 1e-5,
        })
        .collect()
}

/// Which statistics the batch-norms use: the batch's (training, updating the running ones)
/// or the running ones (evaluation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BnMode {
    /// The batch's statistics; the running ones are updated.
    Train,
    /// The running statistics, as constants.
    Eval,
}

/// Cost: what the composed ops count in FLOPs (each batch-norm's, `(K - 1 + [residual]) * E_R`
/// additions, relu's `E_out` comparisons forward and `E_out` selects backward), and the bytes
/// the fused passes move: forward each term read once (as batch-norm counts it), x read once,
/// the output written, `6R` per term of per-channel values; backward dout and out read and g
/// written (`3 E_out`), then g and the terms read twice (sums and input gradients) and each
/// term's gradient written, `5R` per term.
pub fn cost<T: Real>(
    k: usize,
    term: &[usize; 4],
    cout: usize,
    residual: bool,
    relu: bool,
    training: bool,
) -> Cost {
    let [n, r, h, w] = *term;
    let e_r = n * r * h * w;
    let e_out = n * cout * h * w;
    let bn = batch_norm::cost::<T>(&(*term).into(), training);
    let adds = (k - 1 + usize::from(residual)) * e_r;
    let act = if relu { e_out } else { 0 };
    let fwd_bytes = k * e_r + if residual { e_out } else { 0 } + e_out + 6 * r * k;
    let bwd_bytes = 3 * e_out + 2 * e_r + 3 * k * e_r + 5 * r * k;
    Cost {
        forward: Work::new(
            k as u64 * bn.forward.flops + (adds + act) as u64,
            bytes::<T>(fwd_bytes),
        ),
        backward: Work::new(
            k as u64 * bn.backward.flops + act as u64,
            bytes::<T>(bwd_bytes),
        ),
    }
}

/// Whether `channels` is `0..c` in order.
fn is_identity(channels: &[usize], c: usize) -> bool {
    channels.len() == c && channels.iter().enumerate().all(|(i, &v)| i == v)
}

/// Checks the terms against each other and the residual; returns the terms' (N, R, H, W) and
/// the output's channels.
fn check<T: Real>(
    terms: &[BnTerm<'_, T>],
    residual: Option<Residual<'_, T>>,
) -> Result<([usize; 4], usize)> {
    if terms.is_empty() || terms.len() > 3 {
        return Err(Error::arg(
            OP,
            format!("takes 1 to 3 batch-norm terms, got {}", terms.len()),
        ));
    }
    let dims = terms[0].x.shape().nchw(OP, "term 0")?;
    for (k, t) in terms.iter().enumerate().skip(1) {
        if t.x.shape().nchw(OP, "term")? != dims {
            return Err(Error::shape(
                OP,
                format!(
                    "term {k} has shape {}, term 0 {}",
                    t.x.shape(),
                    terms[0].x.shape()
                ),
            ));
        }
    }
    let Some(res) = residual else {
        return Ok((dims, dims[1]));
    };
    let [n, c, h, w] = res.x.shape().nchw(OP, "residual")?;
    if [n, h, w] != [dims[0], dims[2], dims[3]] || c < dims[1] {
        return Err(Error::shape(
            OP,
            format!(
                "the residual has shape {}; it needs the terms' batch and plane {} and at least their {} channels",
                res.x.shape(),
                terms[0].x.shape(),
                dims[1]
            ),
        ));
    }
    let mut seen = vec![false; c];
    for &ch in res.channels {
        if ch >= c || std::mem::replace(&mut seen[ch], true) {
            return Err(Error::arg(
                OP,
                format!(
                    "the residual's channel map must be a permutation of 0..{c}, got {:?}",
                    res.channels
                ),
            ));
        }
    }
    if res.channels.len() != c {
        return Err(Error::arg(
            OP,
            format!(
                "the residual's channel map has {} entries, the residual {c} channels",
                res.channels.len()
            ),
        ));
    }
    Ok((dims, c))
}

/// The op: see the module documentation. Training mode updates every term's running
/// statistics (as [`batch_norm2d_train`] does). Errors on bad shapes, a channel map that is
/// not a permutation, mixed devices, and whatever batch-norm rejects (momentum, eps, a single
/// value per channel).
pub fn bn_sum<T: Real>(
    terms: &mut [BnTerm<'_, T>],
    residual: Option<Residual<'_, T>>,
    mode: BnMode,
    relu: bool,
) -> Result<Var<T>> {
    let (dims, cout) = check(terms, residual)?;
    let device = {
        let mut values = Vec::new();
        for t in terms.iter() {
            values.extend([t.x.value(), t.gamma.value(), t.beta.value()]);
        }
        if let Some(res) = residual {
            values.push(res.x.value());
        }
        let refs: Vec<&Tensor<T>> = values.iter().map(|v| &**v).collect();
        common_device(OP, &refs)?
    };
    let ctx = match device {
        Device::OpenCl(ctx)
            if !(mode == BnMode::Train && batch_norm::sync::active())
                && std::env::var_os(crate::sw_fused::cl::UNFUSED_ENV).is_none() =>
        {
            ctx
        }
        _ => return composed(terms, residual, mode, relu),
    };
    // Batch-norm's own checks (shapes of gamma, beta and the statistics; momentum; eps; the
    // count) on every term, without computing anything.
    for t in terms.iter() {
        batch_norm::check_term(t.x, t.gamma, t.beta, [t.running_mean, t.running_var], t.eps)?;
        if mode == BnMode::Train {
            batch_norm::check_train(t.x, t.momentum)?;
        }
    }
    let training = mode == BnMode::Train;
    let mut flags = 0;
    if residual.is_some() {
        flags |= cl::RESIDUAL;
    }
    if relu {
        flags |= cl::RELU;
    }
    if training {
        flags |= cl::TRAIN;
    }
    let layout = cl::Layout {
        dims,
        cout,
        k: terms.len(),
        flags,
    };
    let c = cost::<T>(terms.len(), &dims, cout, residual.is_some(), relu, training);
    let table = cl::channel_table::<T>(&ctx, residual.map(|r| r.channels))?;
    let (y, stats) = {
        let values: Vec<_> = terms
            .iter()
            .map(|t| (t.x.value(), t.gamma.value(), t.beta.value()))
            .collect();
        let cl_terms: Vec<cl::Term<'_, T>> = terms
            .iter()
            .zip(&values)
            .map(|(t, (z, g, b))| cl::Term {
                z,
                gamma: g,
                beta: b,
                running: [&*t.running_mean, &*t.running_var],
                momentum: t.momentum,
                eps: t.eps,
            })
            .collect();
        let res = residual.map(|r| r.x.value());
        cl::forward(&ctx, &cl_terms, res.as_deref(), &table, layout)?
    };
    c.forward.record();
    let k = terms.len();
    let mut inputs: Vec<&Var<T>> = terms.iter().map(|t| t.x).collect();
    inputs.extend(terms.iter().map(|t| t.gamma));
    inputs.extend(terms.iter().map(|t| t.beta));
    if let Some(res) = residual {
        inputs.push(res.x);
    }
    let z_saved: Vec<_> = terms.iter().map(|t| t.x.save()).collect();
    let gamma_saved: Vec<_> = terms.iter().map(|t| t.gamma.save()).collect();
    Ok(Var::from_op(OP, y, &inputs, move |bctx| {
        c.backward.record();
        let z = z_saved
            .iter()
            .map(|s| s.value(OP, "term"))
            .collect::<Result<Vec<_>>>()?;
        let gamma = gamma_saved
            .iter()
            .map(|s| s.value(OP, "gamma"))
            .collect::<Result<Vec<_>>>()?;
        let needs = bctx.needs;
        let wanted = cl::Wanted {
            z: &needs[..k],
            sums: needs[k..3 * k].iter().any(|&b| b),
        };
        let z_refs: Vec<&Tensor<T>> = z.iter().map(|v| &**v).collect();
        let g_refs: Vec<&Tensor<T>> = gamma.iter().map(|v| &**v).collect();
        let grads = cl::backward(
            &ctx,
            bctx.grad_out,
            bctx.output,
            &table,
            &z_refs,
            &g_refs,
            &stats,
            layout,
            wanted,
        )?;
        let mut out: Vec<Option<Tensor<T>>> = grads.dz;
        let (sdy, sdx): (Vec<_>, Vec<_>) = match grads.sums {
            Some(s) => s.into_iter().map(|(a, b)| (Some(a), Some(b))).unzip(),
            None => (vec![None; k], vec![None; k]),
        };
        out.extend(
            sdx.into_iter()
                .zip(&needs[k..2 * k])
                .map(|(s, &n)| s.filter(|_| n)),
        );
        out.extend(
            sdy.into_iter()
                .zip(&needs[2 * k..3 * k])
                .map(|(s, &n)| s.filter(|_| n)),
        );
        if needs.len() > 3 * k {
            out.push(needs[3 * k].then_some(grads.g));
        }
        Ok(out)
    }))
}

/// The composition bn_sum stands for, op by op: the CPU reference, and the fallback on a
/// device while batch-norm statistics are synchronised (or `SHIFTGRAD_UNFUSED` is set).
pub fn composed<T: Real>(
    terms: &mut [BnTerm<'_, T>],
    residual: Option<Residual<'_, T>>,
    mode: BnMode,
    relu_out: bool,
) -> Result<Var<T>> {
    let (dims, _) = check(terms, residual)?;
    let mut normalised = Vec::with_capacity(terms.len() + 1);
    for t in terms.iter_mut() {
        normalised.push(match mode {
            BnMode::Train => batch_norm2d_train(
                t.x,
                t.gamma,
                t.beta,
                t.running_mean,
                t.running_var,
                t.momentum,
                t.eps,
            )?,
            BnMode::Eval => {
                batch_norm2d_eval(t.x, t.gamma, t.beta, t.running_mean, t.running_var, t.eps)?
            }
        });
    }
    let act = |y: Var<T>| if relu_out { relu(&y) } else { Ok(y) };
    let sum = |xs: &[Var<T>]| -> Result<Var<T>> {
        let refs: Vec<&Var<T>> = xs.iter().collect();
        match refs.len() {
            1 => Ok(xs[0].clone()),
            _ => add_n(&refs),
        }
    };
    let Some(res) = residual else {
        return act(sum(&normalised)?);
    };
    let r = dims[1];
    let c = res.x.shape().dim(1);
    // X_r: x itself where the map is the identity (no ghost channels), else gathered.
    let x_r = match r == c && is_identity(res.channels, c) {
        true => res.x.clone(),
        false => gather_channels(res.x, &res.channels[..r])?,
    };
    normalised.push(x_r);
    if r == c {
        return match relu_out {
            true => add_relu(&normalised.iter().collect::<Vec<_>>()),
            false => sum(&normalised),
        };
    }
    let ghost = gather_channels(res.x, &res.channels[r..])?;
    act(concat_channels(&[&sum(&normalised)?, &ghost])?)
}
