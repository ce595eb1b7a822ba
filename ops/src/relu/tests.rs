use super::*;
use shiftgrad_tensor::Tensor;

#[test]
fn forward_and_gradient_at_zero() {
    let x = Var::param(Tensor::<f64>::new([4], vec![-1.0, 0.0, 2.0, 3.0]).unwrap());
    let y = relu(&x).unwrap();
    assert_eq!(y.value().data(), &[0.0, 0.0, 2.0, 3.0]);
    crate::sum(&y).unwrap().backward().unwrap();
    // relu'(0) = 0, as in PyTorch.
    assert_eq!(x.grad().as_ref().unwrap().data(), &[0.0, 0.0, 1.0, 1.0]);
}

#[test]
fn cost_matches_hand_formula() {
    let c = cost::<f32>(10);
    assert_eq!(c.forward.flops, 10);
    assert_eq!(c.forward.bytes, 80);
    assert_eq!(c.backward.bytes, 120);
}
