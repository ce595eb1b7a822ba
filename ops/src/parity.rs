//! Tier 2 of the gradient evidence: the OpenCL path against the CPU reference.
//!
//! [`compare`] runs one computation twice, on the host and on a device, with the same inputs
//! and the same random cotangent, and reports the largest relative difference of the output
//! and of every input gradient (`max |device - cpu| / max |cpu|`). [`opencl_device`] opens
//! the first OpenCL device, or returns `None` (printing why) so that tests skip on a machine
//! without OpenCL; with `SHIFTGRAD_REQUIRE_OPENCL` set, a missing device fails instead.

use shiftgrad_autograd::Var;
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
    /// The largest difference of all.
    pub fn max(&self) -> f64 {
        self.grads.iter().copied().fold(self.output, f64::max)
    }
}

/// The computation under comparison.
pub type ParityFn<'a, T> = &'a dyn Fn(&[Var<T>]) -> Result<Var<T>>;

fn rel<T: Real>(device: &Tensor<T>, cpu: &Tensor<T>) -> Result<f64> {
    let d = device.to_host()?;
    let diff = d.max_abs_diff(cpu)?;
    if !diff.is_finite() {
        return Ok(f64::INFINITY);
    }
    Ok(diff / cpu.max_abs().max(1e-30))
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
    Ok(ParityReport {
        output: rel(&dev_out, &cpu_out)?,
        grads,
    })
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

/// The first OpenCL device, or `None` (with a note on stderr) where this build or machine
/// has none. With `SHIFTGRAD_REQUIRE_OPENCL` set, a missing device panics.
pub fn opencl_device() -> Option<Device> {
    match Device::open(Some("opencl")) {
        Ok(d) => Some(d),
        Err(e) => {
            if std::env::var_os("SHIFTGRAD_REQUIRE_OPENCL").is_some() {
                panic!("SHIFTGRAD_REQUIRE_OPENCL is set but no OpenCL device opens: {e}");
            }
            eprintln!("skipping OpenCL test: {e}");
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
