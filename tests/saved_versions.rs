//! Values saved for backward are versioned: writing an input between forward and backward
//! (an optimiser step, `set_value`) makes the backward fail with a message naming the op and
//! the value, never return a silently wrong gradient (PyTorch: "one of the variables needed
//! for gradient computation has been modified by an inplace operation").

use shiftgrad::autograd::Var;
use shiftgrad::ops::{batch_norm2d_train, conv2d, cross_entropy, linear, mul, relu, sum};
use shiftgrad::ops::{Conv2dParams, Result};
use shiftgrad::tensor::{init, Tensor};

fn param(shape: &[usize], seed: u64) -> Var<f64> {
    Var::param(init::normal(shape.to_vec(), 0.0, 1.0, &mut init::rng(seed)))
}

/// Runs `forward`, writes `target` (same shape, new values), then backward: must fail naming
/// `op` and `what`; then a fresh forward after the write back-propagates fine.
fn check(op: &str, what: &str, target: &Var<f64>, forward: &dyn Fn() -> Result<Var<f64>>) {
    let y = sum(&forward().unwrap()).unwrap();
    let new = target.value().map(|v| v + 0.5);
    target.set_value(new).unwrap();
    let err = y.backward().expect_err("backward after a write must fail");
    let msg = err.to_string();
    assert!(
        msg.contains(op) && msg.contains(what) && msg.contains("modified after the forward"),
        "{op}: {msg}"
    );
    // The forward run again after the write is fine.
    sum(&forward().unwrap()).unwrap().backward().unwrap();
}

#[test]
fn conv2d_refuses_a_weight_written_after_forward() {
    let (x, w) = (param(&[1, 2, 5, 5], 1), param(&[3, 2, 3, 3], 2));
    let p = Conv2dParams::default();
    check("conv2d", "weight", &w, &|| conv2d(&x, &w, None, p));
    check("conv2d", "input", &x, &|| conv2d(&x, &w, None, p));
}

#[test]
fn linear_mul_bn_ce_refuse_written_inputs() {
    let (x, w) = (param(&[4, 3], 3), param(&[2, 3], 4));
    check("linear", "weight", &w, &|| linear(&x, &w, None));
    let (a, b) = (param(&[6], 5), param(&[6], 6));
    check("mul", "second factor", &b, &|| mul(&a, &b));
    let (xb, g, beta) = (param(&[2, 2, 3, 3], 7), param(&[2], 8), param(&[2], 11));
    let bn = || {
        let (mut rm, mut rv) = (Tensor::zeros([2]), Tensor::ones([2]));
        batch_norm2d_train(&xb, &g, &beta, &mut rm, &mut rv, 0.1, 1e-5)
    };
    check("batch_norm2d", "gamma", &g, &bn);
    let logits = param(&[2, 4], 9);
    check("cross_entropy", "logits", &logits, &|| {
        cross_entropy(&logits, &[1, 3])
    });
}

/// An op's own output (relu reads it in its backward) written after the forward.
#[test]
fn a_written_output_is_refused() {
    let x = param(&[5], 10);
    let y = relu(&x).unwrap();
    let s = sum(&y).unwrap();
    y.set_value(Tensor::ones([5])).unwrap();
    let msg = s.backward().unwrap_err().to_string();
    assert!(
        msg.contains("relu") && msg.contains("modified after the forward"),
        "{msg}"
    );
}
