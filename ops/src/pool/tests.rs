use super::*;

#[test]
fn values_and_gradients_by_hand() {
    // (N, C, H, W) = (2, 2, 1, 2).
    let x = Var::param(
        Tensor::<f64>::new([2, 2, 1, 2], vec![1.0, 3.0, -2.0, 0.0, 5.0, 5.0, 0.5, 1.5]).unwrap(),
    );
    let y = global_avg_pool(&x).unwrap();
    assert_eq!(y.value().dims(), &[2, 2]);
    assert_eq!(y.value().data(), &[2.0, -1.0, 5.0, 1.0]);
    y.backward_with(Tensor::new([2, 2], vec![1.0, -2.0, 4.0, 0.5]).unwrap())
        .unwrap();
    assert_eq!(
        x.grad().as_ref().unwrap().data(),
        &[0.5, 0.5, -1.0, -1.0, 2.0, 2.0, 0.25, 0.25]
    );
}

#[test]
fn f32_plane_of_many_elements() {
    // 1e6 copies of 0.1 sum without drift in f64.
    let x = Var::constant(Tensor::<f32>::full([1, 1, 1000, 1000], 0.1));
    let y = global_avg_pool(&x).unwrap();
    assert!((y.value().data()[0] - 0.1).abs() < 1e-8);
}

#[test]
fn cost_matches_hand_formula() {
    let c = cost::<f32>(&Shape::new(&[2, 3, 4, 5]));
    assert_eq!(c.forward.flops, 120); // 6 planes * (19 adds + 1 division)
    assert_eq!(c.forward.bytes, (120 + 6) * 4);
    assert_eq!(c.backward.flops, 6);
    assert_eq!(c.backward.bytes, (6 + 120) * 4);
}

#[test]
fn error_messages() {
    let e = global_avg_pool(&Var::constant(Tensor::<f64>::zeros([2, 3, 4])))
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "global_avg_pool: input must have 4 dimensions (N, C, H, W), got [2, 3, 4]"
    );
    let e = global_avg_pool(&Var::constant(Tensor::<f64>::zeros([2, 3, 0, 4])))
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "global_avg_pool: input [2, 3, 0, 4] has an empty spatial map"
    );
}
