//! Finite-difference gradient checks (tier 1 of the gradient evidence).
//!
//! For a function `f` of several tensors and a fixed random cotangent `v` of `f`'s output, the
//! analytic vector-Jacobian product `v^T J` from [`Var::backward_with`] is compared, element by
//! element, with the central difference `(v.f(x + eps e_i) - v.f(x - eps e_i)) / (2 eps)`.
//! Using a random `v` rather than summing the output checks every output element's
//! contribution with its own weight (a sum would hide, say, a gradient routed to the wrong
//! output channel of the same value). Always f64: f32 cannot support steps small enough.

use crate::{no_grad, Var};
use shiftgrad_tensor::compare::nan_max;
use shiftgrad_tensor::{init, Device, Error, Result, Tensor};

/// Step and tolerances. An element passes when `|analytic - numeric| <= atol + rtol * |numeric|`.
#[derive(Debug, Clone, Copy)]
pub struct Tolerance {
    /// Finite-difference step added to and subtracted from each input element (default 1e-6).
    pub eps: f64,
    /// Absolute tolerance; also the scale below which the relative error is not reported
    /// (default 1e-6).
    pub atol: f64,
    /// Relative tolerance, times `|numeric|` (default 1e-6).
    pub rtol: f64,
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance {
            eps: 1e-6,
            atol: 1e-6,
            rtol: 1e-6,
        }
    }
}

/// The result for one input.
#[derive(Debug, Clone)]
pub struct InputReport {
    /// Position of the input in the argument list.
    pub index: usize,
    /// Largest `|analytic - numeric|`.
    pub max_abs_err: f64,
    /// Largest `|analytic - numeric| / max(|analytic|, |numeric|)`, over elements where that
    /// denominator exceeds `atol` (elsewhere the relative error means nothing).
    pub max_rel_err: f64,
    /// Whether every element was within tolerance.
    pub passed: bool,
}

/// The result of a check.
#[derive(Debug, Clone)]
pub struct GradcheckReport {
    /// One report per checked input (those with `wrt[i]` true), in argument order.
    pub inputs: Vec<InputReport>,
}

impl GradcheckReport {
    /// Whether every checked input passed.
    pub fn passed(&self) -> bool {
        self.inputs.iter().all(|r| r.passed)
    }
    /// Largest absolute error over all inputs (NaN if any error was NaN).
    pub fn max_abs_err(&self) -> f64 {
        nan_max(self.inputs.iter().map(|r| r.max_abs_err))
    }
    /// Largest relative error over all inputs (NaN if any error was NaN).
    pub fn max_rel_err(&self) -> f64 {
        nan_max(self.inputs.iter().map(|r| r.max_rel_err))
    }
}

fn dot(a: &Tensor<f64>, b: &Tensor<f64>) -> f64 {
    a.data().iter().zip(b.data()).map(|(x, y)| x * y).sum()
}

/// A function under check: inputs to one output.
pub type CheckedFn<'a> = &'a dyn Fn(&[Var<f64>]) -> Result<Var<f64>>;

/// Checks the gradients of `f` with respect to each input `i` with `wrt[i]`.
///
/// `f` must be deterministic and must not keep state between calls. `seed` fixes the
/// cotangent. Costs `2 * (elements checked)` evaluations of `f`: keep the inputs small.
pub fn gradcheck(
    f: CheckedFn<'_>,
    inputs: &[Tensor<f64>],
    wrt: &[bool],
    tol: Tolerance,
    seed: u64,
) -> Result<GradcheckReport> {
    gradcheck_on(&Device::Cpu, f, inputs, wrt, tol, seed)
}

/// [`gradcheck`] with every evaluation of `f` on `device`: the inputs are uploaded, the
/// analytic gradients computed there, and outputs and gradients read back for comparison.
pub fn gradcheck_on(
    device: &Device,
    f: CheckedFn<'_>,
    inputs: &[Tensor<f64>],
    wrt: &[bool],
    tol: Tolerance,
    seed: u64,
) -> Result<GradcheckReport> {
    if wrt.len() != inputs.len() {
        return Err(Error::arg(
            "gradcheck",
            format!("{} inputs but {} wrt flags", inputs.len(), wrt.len()),
        ));
    }
    let vars: Vec<Var<f64>> = inputs
        .iter()
        .zip(wrt)
        .map(|(t, &g)| Ok(Var::leaf(t.to_device(device)?, g)))
        .collect::<Result<_>>()?;
    let out = f(&vars)?;
    let cotangent: Tensor<f64> = init::normal(out.shape(), 0.0, 1.0, &mut init::rng(seed));
    let value_of = |xs: &[Tensor<f64>]| -> Result<f64> {
        no_grad(|| {
            let vs: Vec<Var<f64>> = xs
                .iter()
                .map(|t| Ok(Var::constant(t.to_device(device)?)))
                .collect::<Result<_>>()?;
            let y = f(&vs)?;
            let y = y.value().to_host()?;
            y.check_same_shape(&cotangent, "gradcheck")?;
            Ok(dot(&y, &cotangent))
        })
    };
    out.backward_with(cotangent.clone())?;

    let mut reports = Vec::new();
    let mut xs: Vec<Tensor<f64>> = inputs.to_vec();
    for (i, var) in vars.iter().enumerate() {
        if !wrt[i] {
            continue;
        }
        let analytic = match var.grad().as_ref() {
            Some(g) => g.to_host()?,
            None => Tensor::zeros(var.shape()),
        };
        let (mut max_abs_err, mut max_rel_err, mut passed) = (0.0f64, 0.0f64, true);
        for j in 0..xs[i].numel() {
            let x0 = xs[i].data()[j];
            xs[i].data_mut()[j] = x0 + tol.eps;
            let plus = value_of(&xs)?;
            xs[i].data_mut()[j] = x0 - tol.eps;
            let minus = value_of(&xs)?;
            xs[i].data_mut()[j] = x0;
            let numeric = (plus - minus) / (2.0 * tol.eps);
            let a = analytic.data()[j];
            let err = (a - numeric).abs();
            max_abs_err = nan_max([max_abs_err, err].into_iter());
            let scale = a.abs().max(numeric.abs());
            if scale > tol.atol || scale.is_nan() {
                max_rel_err = nan_max([max_rel_err, err / scale].into_iter());
            }
            if err > tol.atol + tol.rtol * numeric.abs() || !err.is_finite() {
                passed = false;
            }
        }
        reports.push(InputReport {
            index: i,
            max_abs_err,
            max_rel_err,
            passed,
        });
    }
    Ok(GradcheckReport { inputs: reports })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// y = x^3 element-wise, with a correct or a deliberately wrong backward.
    fn cube(x: &Var<f64>, wrong: bool) -> Var<f64> {
        let out = x.value().map(|v| v * v * v);
        let xc = x.clone();
        Var::from_op("cube", out, &[x], move |ctx| {
            let k = if wrong { 2.9 } else { 3.0 };
            Ok(vec![Some(ctx.grad_out.zip_map(
                &xc.value(),
                "cube",
                |g, v| g * k * v * v,
            )?)])
        })
    }

    #[test]
    fn accepts_a_correct_gradient() {
        let x = Tensor::new([4], vec![0.3, -1.2, 2.0, 0.7]).unwrap();
        let r = gradcheck(
            &|v| Ok(cube(&v[0], false)),
            &[x],
            &[true],
            Tolerance::default(),
            1,
        )
        .unwrap();
        assert!(r.passed(), "{r:?}");
        assert!(r.max_abs_err() < 1e-8);
    }

    #[test]
    fn rejects_a_wrong_gradient() {
        let x = Tensor::new([4], vec![0.3, -1.2, 2.0, 0.7]).unwrap();
        let r = gradcheck(
            &|v| Ok(cube(&v[0], true)),
            &[x],
            &[true],
            Tolerance::default(),
            1,
        )
        .unwrap();
        assert!(!r.passed());
        assert!(r.max_rel_err() > 0.03 && r.max_rel_err() < 0.04, "{r:?}");
    }
}
