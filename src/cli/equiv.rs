//! `shiftgrad equiv`: the "large kernel effect" of SPEC 1.4, shown numerically.
//!
//! Builds a random SW operator (P bank convolutions + shift-add, no batch-norm), computes its
//! three outputs directly, then again as depthwise cross-correlations of the input with the
//! dense kernels of SPEC 1.4 built from the merged bank, and compares. With `--out` it writes
//! every array needed to check the claim independently with NumPy or PyTorch.

use shiftgrad_autograd::{no_grad, Var};
use shiftgrad_ops::shift_add::{dense_kernels, dense_padding, shift_add, ShiftTables};
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
}

impl EquivReport {
    /// Whether every relative difference is within tolerance.
    pub fn passed(&self) -> bool {
        // `r <= tol` is false for NaN; an infinite `r` (non-finite output) fails as well.
        self.max_rel.iter().all(|&r| r <= self.tolerance)
    }
}

/// Runs the comparison in `T`, printing a table to `out`.
pub fn run<T: Real>(a: &EquivArgs, out: &mut dyn Write) -> Result<EquivReport> {
    if a.n_path == 0 || a.batch == 0 || a.height == 0 || a.width == 0 {
        return Err(Error::arg(
            "equiv",
            "n-path, batch, height and width must be at least 1",
        ));
    }
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

    let (direct, dense, kernels) = no_grad(|| -> Result<_> {
        let dev = &a.device;
        let xv = Var::constant(x.to_device(dev)?);
        let bank_params = Conv2dParams::new().pad(k - 1, k - 1).groups(a.channels);
        let paths = banks
            .iter()
            .map(|w| conv2d(&xv, &Var::constant(w.to_device(dev)?), None, bank_params))
            .collect::<Result<Vec<_>>>()?;
        let y = add_n(&paths.iter().collect::<Vec<_>>())?;
        let (h, v, i) = shift_add(&y, &tables)?;
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
        if report.passed() {
            "equal"
        } else {
            "DIFFERENT"
        }
    )
    .map_err(io)?;

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
        w.finish()?;
        writeln!(out, "wrote {}", path.display()).map_err(io)?;
    }
    Ok(report)
}
