//! Tier 2 of the gradient evidence: the OpenCL path against the CPU reference. Test support
//! (public for the integration tests), not part of the op API.
//!
//! [`compare`] runs one computation twice, on the host and on a device, with the same inputs
//! and the same random cotangent, and reports the largest relative difference of the output
//! and of every input gradient through [`shiftgrad_tensor::compare`] (NaN or Inf anywhere is
//! an infinite difference; NCHW tensors are scaled per channel, so that an error in a channel
//! of small values is not hidden by the large ones).
//!
//! Skips are loud: [`opencl_device`] opens the first OpenCL device or returns `None` after
//! writing "skipped" to the test's real stderr (past the harness's capture, so it shows in
//! `cargo test` output); with `SHIFTGRAD_REQUIRE_OPENCL=1` a missing device fails instead.
//! [`fp64`] does the same for f64 kernels on a device without `cl_khr_fp64`
//! (`SHIFTGRAD_REQUIRE_FP64=1`). [`required`] (from the opencl crate, whose own tests use it
//! too) is the one parser of these variables.

use shiftgrad_autograd::Var;
use shiftgrad_tensor::compare::{diff, Scale};
use shiftgrad_tensor::{init, Device, Real, Result, Tensor};

/// Differences found by [`compare`].
#[derive(Debug, Clone)]
pub struct ParityReport {
    /// Relative difference of the output.
    pub output: f64,
    /// Relative difference of each checked input's gradient (in input order, `wrt` only).
    pub grads: Vec<f64>,
}

impl ParityReport {
    /// The largest difference of all (NaN-propagating, although [`compare`] never reports
    /// NaN: a non-finite element is an infinite difference).
    pub fn max(&self) -> f64 {
        self.grads
            .iter()
            .copied()
            .fold(self.output, |m, g| if g.is_nan() { g } else { m.max(g) })
    }
}

/// The computation under comparison.
pub type ParityFn<'a, T> = &'a dyn Fn(&[Var<T>]) -> Result<Var<T>>;

/// The scaled difference of a device result from the CPU's, infinite when any element of
/// either is not finite. 4-D tensors are scaled per channel (axis 1), others globally.
fn rel<T: Real>(device: &Tensor<T>, cpu: &Tensor<T>) -> Result<f64> {
    let scale = if cpu.dims().len() == 4 {
        Scale::PerChannel(1)
    } else {
        Scale::Global
    };
    Ok(diff(device, cpu, scale)?.error())
}

fn run<T: Real>(
    device: &Device,
    f: ParityFn<'_, T>,
    inputs: &[Tensor<T>],
    wrt: &[bool],
    cotangent: &Tensor<T>,
) -> Result<(Tensor<T>, Vec<Tensor<T>>)> {
    let vars: Vec<Var<T>> = inputs
        .iter()
        .zip(wrt)
        .map(|(t, &g)| Ok(Var::leaf(t.to_device(device)?, g)))
        .collect::<Result<_>>()?;
    let out = f(&vars)?;
    let value = out.value().to_host()?;
    if wrt.iter().any(|&w| w) {
        out.backward_with(cotangent.clone())?;
    }
    let mut grads = Vec::new();
    for (v, &w) in vars.iter().zip(wrt) {
        if w {
            let g = match v.grad().as_ref() {
                Some(g) => g.to_host()?,
                None => Tensor::zeros(v.shape()),
            };
            grads.push(g);
        }
    }
    Ok((value, grads))
}

/// Runs `f` on the host and on `device` and compares outputs and gradients.
pub fn compare<T: Real>(
    device: &Device,
    f: ParityFn<'_, T>,
    inputs: &[Tensor<T>],
    wrt: &[bool],
    seed: u64,
) -> Result<ParityReport> {
    let probe = f(&inputs
        .iter()
        .map(|t| Var::constant(t.clone()))
        .collect::<Vec<_>>())?;
    let cotangent: Tensor<T> = init::normal(probe.shape(), 0.0, 1.0, &mut init::rng(seed));
    drop(probe);
    let (cpu_out, cpu_grads) = run(&Device::Cpu, f, inputs, wrt, &cotangent)?;
    let (dev_out, dev_grads) = run(device, f, inputs, wrt, &cotangent)?;
    let mut grads = Vec::new();
    for (d, c) in dev_grads.iter().zip(&cpu_grads) {
        grads.push(rel(d, c)?);
    }
    let report = ParityReport {
        output: rel(&dev_out, &cpu_out)?,
        grads,
    };
    // Captured by the test harness; shown with `--nocapture` (how the tolerances were set).
    eprintln!("parity {}: measured {:.3e}", T::DTYPE, report.max());
    Ok(report)
}

/// Runs `f` on `device` twice with the same inputs; true when outputs and gradients are
/// bitwise identical.
pub fn deterministic<T: Real>(
    device: &Device,
    f: ParityFn<'_, T>,
    inputs: &[Tensor<T>],
    wrt: &[bool],
) -> Result<bool> {
    let probe = f(&inputs
        .iter()
        .map(|t| Var::constant(t.clone()))
        .collect::<Vec<_>>())?;
    let cotangent: Tensor<T> = init::normal(probe.shape(), 0.0, 1.0, &mut init::rng(1));
    drop(probe);
    let a = run(device, f, inputs, wrt, &cotangent)?;
    let b = run(device, f, inputs, wrt, &cotangent)?;
    Ok(a.0 == b.0 && a.1 == b.1)
}

pub use shiftgrad_tensor::opencl::{required, skip};

/// The first OpenCL device, or `None` after reporting the skip (this build or machine has
/// none). With `SHIFTGRAD_REQUIRE_OPENCL=1`, a missing device panics instead.
#[track_caller]
pub fn opencl_device() -> Option<Device> {
    match Device::open(Some("opencl")) {
        Ok(d) => Some(d),
        Err(e) => {
            if required("SHIFTGRAD_REQUIRE_OPENCL") {
                panic!("SHIFTGRAD_REQUIRE_OPENCL=1 but no OpenCL device opens: {e}");
            }
            let here = std::panic::Location::caller();
            skip(
                &format!("OpenCL test at {}:{}", here.file(), here.line()),
                &e.to_string(),
            );
            None
        }
    }
}

/// Whether `device` can run f64 kernels.
pub fn has_fp64(device: &Device) -> bool {
    match device {
        Device::Cpu => true,
        Device::OpenCl(ctx) => ctx.has_fp64(),
    }
}

/// Whether the f64 part `what` of a test can run on `device`; if not, reports the skip (or
/// panics with `SHIFTGRAD_REQUIRE_FP64=1`). Use as `if fp64(&dev, "conv2d f64") { ... }`.
#[track_caller]
pub fn fp64(device: &Device, what: &str) -> bool {
    if has_fp64(device) {
        return true;
    }
    if required("SHIFTGRAD_REQUIRE_FP64") {
        panic!(
            "SHIFTGRAD_REQUIRE_FP64=1 but {} has no cl_khr_fp64 ({what})",
            device.name()
        );
    }
    let here = std::panic::Location::caller();
    skip(
        &format!("{what} at {}:{}", here.file(), here.line()),
        &format!("{} has no cl_khr_fp64", device.name()),
    );
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use shiftgrad_tensor::Tensor;

    #[test]
    fn report_max_keeps_infinity() {
        let r = ParityReport {
            output: 0.0,
            grads: vec![1e-7, f64::INFINITY, 0.0],
        };
        assert!(r.max().is_infinite());
    }

    #[test]
    fn rel_of_nan_is_infinite() {
        let cpu = Tensor::<f64>::ones([1, 2, 1, 1]);
        let dev = Tensor::new([1, 2, 1, 1], vec![1.0, f64::NAN]).unwrap();
        assert!(rel(&dev, &cpu).unwrap().is_infinite());
        assert!(rel(&cpu, &dev).unwrap().is_infinite());
        assert_eq!(rel(&cpu, &cpu).unwrap(), 0.0);
    }
}
