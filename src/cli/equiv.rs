//! `shiftgrad equiv`: the "large kernel effect" of SPEC 1.4, shown numerically.
//!
//! Builds a random SW operator (P bank convolutions + shift-add, no batch-norm), computes its
//! three outputs directly, then again as depthwise cross-correlations of the input with the
//! dense kernels of SPEC 1.4 built from the merged bank, and compares. With `--out` it writes
//! every array needed to check the claim independently with NumPy or PyTorch.
//!
//! With `--sparsity S > 0` (SPEC 1.6) a uniform random mask keeps exactly `round((1 - S) n)`
//! of the `n = R*nk` small kernels (drawn from the command's seed, after the weights). The
//! direct outputs then come from the sparse ops, [`bank_conv`] of every bank and
//! [`shift_add_sparse`], which compute the live kernels only. The banks handed to them keep
//! their random weights in the pruned kernels, so an op that read a pruned kernel would show
//! up as a difference; the dense kernels are folded from the masked merged bank (`m[c] W[c]`).
//! A second check that can fail: a `k x k` block of a dense kernel must be exactly zero if
//! and only if every kernel that serves it (one per group) is pruned.

use super::{check_sparsity, uniform_mask};
use shiftgrad_autograd::{no_grad, Var};
use shiftgrad_ops::bank_conv::bank_conv;
use shiftgrad_ops::shift_add::{
    dense_kernels, dense_padding, shift_add, shift_add_sparse, LiveChannels, ShiftTables,
};
use shiftgrad_ops::{add_n, conv2d, Conv2dParams};
use shiftgrad_tensor::io::NpzWriter;
use shiftgrad_tensor::{compare, init, Device, Error, Real, Result, Tensor};
use std::io::Write;
use std::path::PathBuf;
use std::rc::Rc;

/// The command's arguments.
#[derive(Debug, Clone)]
pub struct EquivArgs {
    pub big: usize,
    pub small: usize,
    pub channels: usize,
    pub n_rep: usize,
    pub n_path: usize,
    pub height: usize,
    pub width: usize,
    pub batch: usize,
    pub seed: u64,
    /// Fraction of the small kernels pruned, in `[0, 1)`; 0 runs the dense ops.
    pub sparsity: f64,
    pub out: Option<PathBuf>,
    /// Where the operator runs (the arrays are generated on the host and uploaded).
    pub device: Device,
}

/// The differences found, one per path (h, v, i).
#[derive(Debug, Clone)]
pub struct EquivReport {
    pub max_abs: [f64; 3],
    pub max_rel: [f64; 3],
    pub tolerance: f64,
    /// With `--sparsity S > 0`: the mask and the zero blocks of the dense kernels.
    pub sparse: Option<SparseReport>,
}

/// The mask of a sparse run and what the dense kernels show of it.
#[derive(Debug, Clone)]
pub struct SparseReport {
    /// Live small kernels, of `total = R*nk`.
    pub live: usize,
    pub total: usize,
    /// `k x k` blocks of `dense_h` (R*nk), `dense_v` (R*nk) and `dense_i` (R) per path.
    pub blocks: [usize; 3],
    /// Blocks that are exactly zero, per path.
    pub zero_blocks: [usize; 3],
    /// Blocks whose kernels (one per group) are all pruned, per path.
    pub expected_zero: [usize; 3],
    /// Blocks where "exactly zero" and "every kernel pruned" disagree, per path.
    pub mismatched: [usize; 3],
}

impl SparseReport {
    /// Whether the zero blocks are exactly those of the pruned kernels.
    pub fn passed(&self) -> bool {
        self.mismatched.iter().all(|&m| m == 0)
    }
}

impl EquivReport {
    /// Whether every relative difference is within tolerance (and, sparse, the zero blocks
    /// are the pruned ones).
    pub fn passed(&self) -> bool {
        // `r <= tol` is false for NaN; an infinite `r` (non-finite output) fails as well.
        self.max_rel.iter().all(|&r| r <= self.tolerance)
            && self.sparse.as_ref().is_none_or(SparseReport::passed)
    }
}

/// Compares the zero `k x k` blocks of the dense kernels with the mask: block `i` of
/// `dense_h[o]` (`dense_v[o]`) sums the kernels `o*nk + rh[g][o][i]` (`rv`) over the groups,
/// `dense_i[o]` the kernels `idx_identit[o, g]`; it must be exactly zero iff all are pruned.
fn zero_blocks<T: Real>(
    tables: &ShiftTables,
    mask: &[bool],
    kernels: &[Tensor<T>; 3],
) -> SparseReport {
    let (r, nk, k, groups) = (tables.reps, tables.nk(), tables.small, tables.groups);
    let l = nk * k;
    let (dh, dv, di) = (kernels[0].data(), kernels[1].data(), kernels[2].data());
    let mut rep = SparseReport {
        live: mask.iter().filter(|&&m| m).count(),
        total: mask.len(),
        blocks: [r * nk, r * nk, r],
        zero_blocks: [0; 3],
        expected_zero: [0; 3],
        mismatched: [0; 3],
    };
    let mut tally = |p: usize, zero: bool, pruned: bool| {
        rep.zero_blocks[p] += usize::from(zero);
        rep.expected_zero[p] += usize::from(pruned);
        rep.mismatched[p] += usize::from(zero != pruned);
    };
    let taps = || (0..k).flat_map(move |a| (0..k).map(move |b| (a, b)));
    for o in 0..r {
        let (rh, rv): (Vec<_>, Vec<_>) = (0..groups)
            .map(|g| (tables.rh(g, o), tables.rv(g, o)))
            .unzip();
        for i in 0..nk {
            let zero_h = taps().all(|(a, b)| dh[(o * k + a) * l + i * k + b] == T::zero());
            let zero_v = taps().all(|(a, b)| dv[(o * l + i * k + a) * k + b] == T::zero());
            tally(0, zero_h, rh.iter().all(|p| !mask[o * nk + p[i]]));
            tally(1, zero_v, rv.iter().all(|p| !mask[o * nk + p[i]]));
        }
        let zero_i = di[o * k * k..(o + 1) * k * k]
            .iter()
            .all(|&v| v == T::zero());
        let pruned_i = (0..groups).all(|g| !mask[tables.idx_identit[o * groups + g] as usize]);
        tally(2, zero_i, pruned_i);
    }
    rep
}

/// Runs the comparison in `T`, printing a table to `out`.
pub fn run<T: Real>(a: &EquivArgs, out: &mut dyn Write) -> Result<EquivReport> {
    if a.n_path == 0 || a.batch == 0 || a.height == 0 || a.width == 0 {
        return Err(Error::arg(
            "equiv",
            "n-path, batch, height and width must be at least 1",
        ));
    }
    check_sparsity("equiv", a.sparsity)?;
    ShiftTables::check_geometry(a.big, a.small, a.channels, a.n_rep)?;
    let mut rng = init::rng(a.seed);
    let x: Tensor<T> = init::normal([a.batch, a.channels, a.height, a.width], 0.0, 1.0, &mut rng);
    let tables = Rc::new(ShiftTables::random(
        a.big, a.small, a.channels, a.n_rep, &mut rng,
    )?);
    let (k, nk) = (a.small, tables.nk());
    let banks: Vec<Tensor<T>> = (0..a.n_path)
        .map(|_| init::normal([a.channels * nk, 1, k, k], 0.0, 1.0, &mut rng))
        .collect();
    let mut bank = banks[0].clone();
    for b in &banks[1..] {
        bank.add_assign(b)?;
    }
    // Sparse: the mask (drawn after everything else, so sparsity 0 draws nothing) and the
    // merged bank with the pruned kernels zeroed, the `m[c] W[c]` the dense kernels fold.
    let mask = (a.sparsity > 0.0).then(|| uniform_mask(a.channels * nk, a.sparsity, &mut rng));
    let live = match &mask {
        Some(m) => {
            for (v, i) in bank.data_mut().iter_mut().zip(0..) {
                if !m[i / (k * k)] {
                    *v = T::zero();
                }
            }
            Some(Rc::new(LiveChannels::from_mask(a.channels, nk, m)?))
        }
        None => None,
    };

    let (direct, dense, kernels) = no_grad(|| -> Result<_> {
        let dev = &a.device;
        let xv = Var::constant(x.to_device(dev)?);
        let bank_params = Conv2dParams::new().pad(k - 1, k - 1).groups(a.channels);
        let paths = banks
            .iter()
            .map(|w| {
                let w = Var::constant(w.to_device(dev)?);
                match &live {
                    Some(live) => bank_conv(&xv, &w, live),
                    None => conv2d(&xv, &w, None, bank_params),
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let y = add_n(&paths.iter().collect::<Vec<_>>())?;
        let (h, v, i) = match &live {
            Some(live) => shift_add_sparse(&y, &tables, live)?,
            None => shift_add(&y, &tables)?,
        };
        let direct = [
            h.value().to_host()?,
            v.value().to_host()?,
            i.value().to_host()?,
        ];

        let (dh, dv, di) = dense_kernels(&tables, &bank)?;
        let (ph, pv, pi) = dense_padding(&tables);
        let dw = |kernel: &Tensor<T>, pad: [usize; 4]| -> Result<Tensor<T>> {
            let p = Conv2dParams::new().pad_sides(pad).groups(a.channels);
            let y = conv2d(&xv, &Var::constant(kernel.to_device(dev)?), None, p)?;
            let host = y.value().to_host()?;
            Ok(host)
        };
        let dense = [dw(&dh, ph)?, dw(&dv, pv)?, dw(&di, pi)?];
        Ok((direct, dense, [dh, dv, di]))
    })?;

    let tolerance = match T::DTYPE {
        shiftgrad_tensor::DType::F64 => 1e-12,
        shiftgrad_tensor::DType::F32 => 1e-5,
    };
    let mut report = EquivReport {
        max_abs: [0.0; 3],
        max_rel: [0.0; 3],
        tolerance,
        sparse: mask.as_ref().map(|m| zero_blocks(&tables, m, &kernels)),
    };
    let io = |e: std::io::Error| Error::Other(format!("equiv: {e}"));
    writeln!(
        out,
        "SW operator M={} k={} nk={} L={} R={} G={} P={} on {}x{}x{}x{} ({}, {})",
        a.big,
        k,
        nk,
        nk * k,
        a.channels,
        a.n_rep,
        a.n_path,
        a.batch,
        a.channels,
        a.height,
        a.width,
        T::DTYPE,
        a.device.name()
    )
    .map_err(io)?;
    if let Some(sp) = &report.sparse {
        writeln!(
            out,
            "sparse bank: {} of {} small kernels live (sparsity {}, uniform mask from seed {}); \
             bank_conv and shift_add_sparse compute only those",
            sp.live, sp.total, a.sparsity, a.seed
        )
        .map_err(io)?;
        if sp.live == 0 {
            writeln!(
                out,
                "note: no kernel is live, so both sides are zero and the comparison is trivial"
            )
            .map_err(io)?;
        }
    }
    writeln!(
        out,
        "{:<10} {:>12} {:>12} {:>12}",
        "path", "max |out|", "max abs", "max rel"
    )
    .map_err(io)?;
    for (p, name) in ["horizontal", "vertical", "identity"].iter().enumerate() {
        // NaN or Inf anywhere is an infinite difference: it can never read as "equal".
        let d = compare::diff(&direct[p], &dense[p], compare::Scale::PerChannel(1))?;
        let (abs, rel) = if d.non_finite > 0 {
            (f64::INFINITY, f64::INFINITY)
        } else {
            (d.max_abs, d.max_rel)
        };
        report.max_abs[p] = abs;
        report.max_rel[p] = rel;
        writeln!(
            out,
            "{:<10} {:>12.4e} {:>12.3e} {:>12.3e}",
            name,
            dense[p].max_abs()?,
            abs,
            rel
        )
        .map_err(io)?;
        if d.non_finite > 0 {
            writeln!(out, "{name}: {d}").map_err(io)?;
        }
    }
    writeln!(
        out,
        "relative difference = max |direct - dense| / max |dense| of the channel; tolerance {tolerance:e}: {}",
        if report.max_rel.iter().all(|&r| r <= tolerance) {
            "equal"
        } else {
            "DIFFERENT"
        }
    )
    .map_err(io)?;
    if let Some(sp) = &report.sparse {
        let [h, v, i] = [0, 1, 2].map(|p| format!("{}/{}", sp.zero_blocks[p], sp.blocks[p]));
        let verdict = if sp.passed() {
            "exactly the blocks whose kernels are all pruned".to_string()
        } else {
            format!(
                "MISMATCH: {} blocks disagree with the mask (expected zero: {}, {}, {})",
                sp.mismatched.iter().sum::<usize>(),
                sp.expected_zero[0],
                sp.expected_zero[1],
                sp.expected_zero[2]
            )
        };
        writeln!(
            out,
            "zero k x k blocks of the dense kernels: horizontal {h}, vertical {v}, identity {i}; {verdict}"
        )
        .map_err(io)?;
    }

    if let Some(path) = &a.out {
        let mut w = NpzWriter::create(path)?;
        w.tensor("x", &x)?;
        w.tensor("bank", &bank)?;
        w.int32("pad_hv", &[a.channels * nk, 2 * a.n_rep], &tables.pad_hv)?;
        w.int32("idx_identit", &[a.channels, a.n_rep], &tables.idx_identit)?;
        w.tensor("h", &direct[0])?;
        w.tensor("v", &direct[1])?;
        w.tensor("i", &direct[2])?;
        w.tensor("dense_h", &kernels[0])?;
        w.tensor("dense_v", &kernels[1])?;
        w.tensor("dense_i", &kernels[2])?;
        if let Some(m) = &mask {
            let m: Vec<i32> = m.iter().map(|&b| i32::from(b)).collect();
            w.int32("mask", &[m.len()], &m)?;
        }
        w.finish()?;
        writeln!(out, "wrote {}", path.display()).map_err(io)?;
    }
    Ok(report)
}
