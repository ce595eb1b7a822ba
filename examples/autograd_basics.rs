//! Reverse-mode autodiff on a small expression, checked two ways.
//!
//! `f(x, w) = sum(relu(x * w + x))` for two 2 x 3 tensors. The engine records one graph node
//! per op (`mul`, `add`, `relu`, `sum`), `backward` walks them in reverse, and each node's
//! closure turns its output's gradient into its inputs'. The result is compared with the
//! gradient written by hand (`df/dx = [z > 0] (w + 1)`, `df/dw = [z > 0] x`, with
//! `z = x w + x`) and with central finite differences (`autograd::gradcheck`, in f64).
//!
//! Run: `cargo run --release --example autograd_basics`. It exits with an error if either
//! check fails.

use shiftgrad::autograd::{gradcheck, Tolerance, Var};
use shiftgrad::ops;
use shiftgrad::tensor::compare::nan_max;
use shiftgrad::tensor::{Result, Tensor};

/// The expression, on graph values: what both the analytic and the numeric check evaluate.
fn f(x: &Var<f64>, w: &Var<f64>) -> Result<Var<f64>> {
    let xw = ops::mul(x, w)?;
    let z = ops::add(&xw, x)?;
    let y = ops::relu(&z)?;
    ops::sum(&y)
}

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    // No element of z = x (w + 1) sits at relu's kink (z = 0), where the two one-sided
    // derivatives differ and a finite difference would straddle them.
    let x0 = Tensor::new([2, 3], vec![1.0, -2.0, 0.5, 3.0, -0.25, 2.0])?;
    let w0 = Tensor::new([2, 3], vec![0.5, 1.5, -1.5, 2.0, 4.0, -0.5])?;

    // Leaves that require a gradient (parameters); every op on them records a node.
    let x = Var::param(x0.clone());
    let w = Var::param(w0.clone());
    let out = f(&x, &w)?;
    println!("f(x, w) = {}", out.value().item()?);
    out.backward()?;
    let (gx, gw) = (x.grad().clone(), w.grad().clone());
    let (gx, gw) = (
        gx.ok_or("x has no gradient")?,
        gw.ok_or("w has no gradient")?,
    );
    println!("df/dx = {:?}", gx.data());
    println!("df/dw = {:?}", gw.data());

    // 1. The gradient by hand.
    // `nan_max`, not `f64::max`: a NaN difference must not be dropped.
    let worst = nan_max((0..x0.numel()).flat_map(|i| {
        let (xi, wi) = (x0.data()[i], w0.data()[i]);
        let on = if xi * wi + xi > 0.0 { 1.0 } else { 0.0 };
        [
            (gx.data()[i] - on * (wi + 1.0)).abs(),
            (gw.data()[i] - on * xi).abs(),
        ]
    }));
    println!("largest difference from the hand-written gradient: {worst:e}");
    // Each gradient element is one product of two exact inputs: it must be exact (a NaN is
    // not equal to 0 either).
    if worst != 0.0 {
        return Err(format!("the gradient differs from the hand-written one by {worst:e}").into());
    }

    // 2. Central finite differences: for a random cotangent v, v . (f(x + eps e_i) - f(x -
    // eps e_i)) / (2 eps) against the analytic vector-Jacobian product, element by element.
    let report = gradcheck(
        &|v: &[Var<f64>]| f(&v[0], &v[1]),
        &[x0, w0],
        &[true, true],
        Tolerance::default(),
        0,
    )?;
    for r in &report.inputs {
        println!(
            "gradcheck input {}: max abs error {:.1e}, max rel error {:.1e}, {}",
            r.index,
            r.max_abs_err,
            r.max_rel_err,
            if r.passed { "passed" } else { "FAILED" }
        );
    }
    if !report.passed() {
        return Err("the analytic gradient disagrees with finite differences".into());
    }
    println!("autograd_basics: both checks passed");
    Ok(())
}
