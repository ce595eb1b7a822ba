//! The per-step check that every parameter is still finite after an optimiser step.
//!
//! Checking the parameters after the update covers the gradients too: SGD and AdamW carry a
//! non-finite gradient element into its parameter (`w -= lr * (g + ...)`, and AdamW's
//! `m / sqrt(v)` is NaN for an infinite `g`), even at a learning rate of 0, while a step that
//! overflows with finite gradients (a learning rate far too large) is caught as well.
//!
//! Cost: one `sum` per parameter tensor and one `add_n` over those scalars, queued on the
//! parameters' device, then **one** blocking read of a single scalar per step. NaN and
//! infinity propagate through the sums, so a finite total means every parameter is finite.
//! Only when the total is not finite are the parameters read back one by one (exactly, element
//! by element) to name the culprits; a total that merely overflowed the f32 range without any
//! non-finite element reads as "all finite" there and training goes on. We rejected reading
//! back each parameter (or a flag per parameter) every step: a blocking transfer per tensor
//! per step, which on a device costs far more than the small reduction kernels.

use shiftgrad_autograd::{no_grad, Var};
use shiftgrad_nn::ParamRef;
use shiftgrad_ops::{add_n, sum};
use shiftgrad_tensor::Result;

/// The names of the parameters holding a non-finite value (empty when all are finite).
pub fn non_finite_parameters(params: &[ParamRef<f32>]) -> Result<Vec<String>> {
    if params.is_empty() {
        return Ok(Vec::new());
    }
    let total = no_grad(|| -> Result<f32> {
        let sums = params
            .iter()
            .map(|p| sum(&p.var))
            .collect::<Result<Vec<Var<f32>>>>()?;
        let refs: Vec<&Var<f32>> = sums.iter().collect();
        let total = add_n(&refs)?;
        let value = total.value().item()?;
        Ok(value)
    })?;
    if total.is_finite() {
        return Ok(Vec::new());
    }
    let mut bad = Vec::new();
    for p in params {
        let values = p.var.value().to_vec()?;
        if values.iter().any(|v| !v.is_finite()) {
            bad.push(p.name.clone());
        }
    }
    Ok(bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shiftgrad_tensor::Tensor;

    fn param(name: &str, v: Vec<f32>) -> ParamRef<f32> {
        ParamRef {
            name: name.into(),
            var: Var::param(Tensor::new([v.len()], v).unwrap()),
            decay: true,
        }
    }

    #[test]
    fn names_exactly_the_non_finite_parameters() {
        let ok = param("a", vec![1.0, -2.0]);
        assert!(non_finite_parameters(std::slice::from_ref(&ok))
            .unwrap()
            .is_empty());
        let nan = param("b", vec![0.0, f32::NAN]);
        let inf = param("c", vec![f32::INFINITY, 1.0]);
        assert_eq!(
            non_finite_parameters(&[ok.clone(), nan, ok.clone(), inf]).unwrap(),
            ["b", "c"]
        );
        // Finite but huge: the sum overflows f32, the exact check clears it.
        let huge = param("d", vec![3e38, 3e38]);
        assert!(non_finite_parameters(&[huge, ok]).unwrap().is_empty());
        assert!(non_finite_parameters(&[]).unwrap().is_empty());
    }
}
