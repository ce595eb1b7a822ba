use super::*;
use shiftgrad_tensor::Tensor;

fn t(shape: impl Into<shiftgrad_tensor::Shape>, data: &[f64]) -> Var<f64> {
    Var::param(Tensor::new(shape, data.to_vec()).unwrap())
}

#[test]
fn values_and_gradients_by_hand() {
    // x (2, 3), w (2, 3), b (2).
    let x = t([2, 3], &[1.0, 2.0, 3.0, -1.0, 0.0, 2.0]);
    let w = t([2, 3], &[0.5, -1.0, 2.0, 1.0, 1.0, 1.0]);
    let b = t([2], &[0.25, -3.0]);
    let y = linear(&x, &w, Some(&b)).unwrap();
    // row 0: 0.5 - 2 + 6 + 0.25 = 4.75, 6 - 3 = 3; row 1: -0.5 + 4 + 0.25 = 3.75, 1 - 3 = -2.
    assert_eq!(y.value().dims(), &[2, 2]);
    assert_eq!(y.value().data(), &[4.75, 3.0, 3.75, -2.0]);
    let dy = Tensor::new([2, 2], vec![1.0, 2.0, -1.0, 0.5]).unwrap();
    y.backward_with(dy).unwrap();
    // dx = dy w: row 0 = 1*w0 + 2*w1 = [2.5, 1, 4]; row 1 = -w0 + 0.5*w1 = [0, 1.5, -1.5].
    assert_eq!(
        x.grad().as_ref().unwrap().data(),
        &[2.5, 1.0, 4.0, 0.0, 1.5, -1.5]
    );
    // dw = dy^T x: row 0 = 1*x0 - x1 = [2, 2, 1]; row 1 = 2*x0 + 0.5*x1 = [1.5, 4, 7].
    assert_eq!(
        w.grad().as_ref().unwrap().data(),
        &[2.0, 2.0, 1.0, 1.5, 4.0, 7.0]
    );
    assert_eq!(b.grad().as_ref().unwrap().data(), &[0.0, 2.5]);
}

#[test]
fn without_bias() {
    let x = t([1, 2], &[3.0, -2.0]);
    let w = t([3, 2], &[1.0, 0.0, 0.0, 1.0, 2.0, 2.0]);
    let y = linear(&x, &w, None).unwrap();
    assert_eq!(y.value().data(), &[3.0, -2.0, 2.0]);
    crate::sum(&y).unwrap().backward().unwrap();
    assert_eq!(x.grad().as_ref().unwrap().data(), &[3.0, 3.0]);
    assert_eq!(
        w.grad().as_ref().unwrap().data(),
        &[3.0, -2.0, 3.0, -2.0, 3.0, -2.0]
    );
}

#[test]
fn cost_matches_hand_formula() {
    // n = 8, in = 16, out = 10.
    let c = cost::<f32>(8, 16, 10, true);
    assert_eq!(c.forward.macs, 8 * 16 * 10);
    assert_eq!(c.forward.flops, 2 * 8 * 16 * 10 + 8 * 10);
    assert_eq!(c.forward.bytes, (8 * 16 + 10 * 16 + 10 + 8 * 10) * 4);
    assert_eq!(c.backward.macs, 2 * 8 * 16 * 10);
    assert_eq!(c.backward.flops, 4 * 8 * 16 * 10 + 7 * 10);
    assert_eq!(c.backward.bytes, (8 * 10 + 2 * (8 * 16 + 10 * 16) + 10) * 4);
    let nb = cost::<f64>(8, 16, 10, false);
    assert_eq!(nb.forward.flops, 2 * 8 * 16 * 10);
    assert_eq!(nb.forward.bytes, (8 * 16 + 10 * 16 + 8 * 10) * 8);
    assert_eq!(nb.backward.flops, 4 * 8 * 16 * 10);
}

#[test]
fn error_messages() {
    let err = |x: &[usize], w: &[usize], b: Option<&[usize]>| {
        let x = Var::constant(Tensor::<f64>::zeros(x));
        let w = Var::constant(Tensor::zeros(w));
        let b = b.map(|b| Var::constant(Tensor::zeros(b)));
        linear(&x, &w, b.as_ref()).unwrap_err().to_string()
    };
    assert_eq!(
        err(&[2, 5], &[3, 4], None),
        "linear: input has 5 features, weight expects 4"
    );
    assert_eq!(
        err(&[2, 5, 1], &[3, 5], None),
        "linear: input must have 2 dimensions (N, in), got [2, 5, 1]"
    );
    assert_eq!(
        err(&[2, 5], &[15], None),
        "linear: weight must have 2 dimensions (out, in), got [15]"
    );
    assert_eq!(
        err(&[2, 5], &[3, 5], Some(&[4])),
        "linear: bias has shape [4], weight has 3 outputs (expected [3])"
    );
}
