use super::*;
use shiftgrad_tensor::Tensor;

#[test]
fn same_data_new_shape_and_gradient_back() {
    let x = Var::param(Tensor::<f64>::from_fn([2, 3, 1, 1], |i| i as f64));
    let y = reshape(&x, &[3, 2]).unwrap();
    assert_eq!(y.op(), "reshape");
    assert_eq!(y.value().dims(), &[3, 2]);
    assert_eq!(y.value().data(), x.value().data());
    y.backward_with(Tensor::from_fn([3, 2], |i| 10.0 * i as f64))
        .unwrap();
    let g = x.grad();
    let g = g.as_ref().unwrap();
    assert_eq!(g.dims(), &[2, 3, 1, 1]);
    assert_eq!(g.data(), &[0., 10., 20., 30., 40., 50.]);
}

#[test]
fn element_count_mismatch_is_an_error() {
    let x = Var::constant(Tensor::<f32>::zeros([2, 3]));
    assert_eq!(
        reshape(&x, &[4]).unwrap_err().to_string(),
        "reshape: cannot view 6 elements of shape [2, 3] as [4]"
    );
}

#[test]
fn cost_matches_hand_formula() {
    let c = cost::<f32>(6);
    assert_eq!(c.forward, Work::new(0, 48));
    assert_eq!(c.backward, Work::new(0, 48));
}
