use super::*;

#[test]
fn values_and_gradients() {
    let x = Var::param(Tensor::<f32>::new([2, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap());
    assert_eq!(sum(&x).unwrap().value().item().unwrap(), 10.0);
    let m = mean(&x).unwrap();
    assert_eq!(m.value().item().unwrap(), 2.5);
    m.backward().unwrap();
    assert_eq!(x.grad().as_ref().unwrap().data(), &[0.25; 4]);
}

#[test]
fn cost_matches_hand_formula() {
    let c = cost::<f64>(100, true);
    assert_eq!(c.forward.flops, 100); // 99 adds + 1 division
    assert_eq!(c.forward.bytes, 808);
    assert_eq!(c.backward.flops, 100);
}
