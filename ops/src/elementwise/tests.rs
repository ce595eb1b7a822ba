use super::*;
use shiftgrad_tensor::Tensor;

fn t(dims: &[usize], data: &[f64]) -> Tensor<f64> {
    Tensor::new(dims, data.to_vec()).unwrap()
}

#[test]
fn add_values_and_gradients() {
    let a = Var::param(t(&[2, 2], &[1.0, 2.0, 3.0, 4.0]));
    let b = Var::param(t(&[2, 2], &[10.0, 20.0, 30.0, 40.0]));
    let y = add(&a, &b).unwrap();
    assert_eq!(y.op(), "add");
    assert_eq!(y.value().data(), &[11.0, 22.0, 33.0, 44.0]);
    y.backward_with(t(&[2, 2], &[1.0, -2.0, 3.0, 0.5])).unwrap();
    assert_eq!(a.grad().as_ref().unwrap().data(), &[1.0, -2.0, 3.0, 0.5]);
    assert_eq!(b.grad().as_ref().unwrap().data(), &[1.0, -2.0, 3.0, 0.5]);
}

#[test]
fn add_n_values_and_gradients_with_a_repeated_input() {
    let a = Var::param(t(&[3], &[1.0, 2.0, 3.0]));
    let b = Var::constant(t(&[3], &[0.5, 0.25, 0.125]));
    let c = Var::param(t(&[3], &[-1.0, -1.0, 4.0]));
    // `a` appears twice: its gradient is dy twice.
    let y = add_n(&[&a, &b, &c, &a]).unwrap();
    assert_eq!(y.op(), "add");
    assert_eq!(y.value().data(), &[1.5, 3.25, 10.125]);
    y.backward_with(t(&[3], &[1.0, 2.0, -3.0])).unwrap();
    assert_eq!(a.grad().as_ref().unwrap().data(), &[2.0, 4.0, -6.0]);
    assert_eq!(c.grad().as_ref().unwrap().data(), &[1.0, 2.0, -3.0]);
    assert!(b.grad().is_none());
}

#[test]
fn mul_values_and_gradients() {
    let a = Var::param(t(&[1, 4], &[1.0, -2.0, 3.0, 4.0]));
    let b = Var::param(t(&[1, 4], &[0.5, 3.0, 0.0, -1.0]));
    let y = mul(&a, &b).unwrap();
    assert_eq!(y.value().data(), &[0.5, -6.0, 0.0, -4.0]);
    y.backward_with(t(&[1, 4], &[2.0, 1.0, 1.0, 3.0])).unwrap();
    assert_eq!(a.grad().as_ref().unwrap().data(), &[1.0, 3.0, 0.0, -3.0]);
    assert_eq!(b.grad().as_ref().unwrap().data(), &[2.0, -2.0, 3.0, 12.0]);
}

#[test]
fn mul_by_constant_mask_computes_only_the_weight_gradient() {
    let w = Var::param(t(&[4], &[1.0, 2.0, 3.0, 4.0]));
    let m = Var::constant(t(&[4], &[1.0, 0.0, 1.0, 0.0]));
    let y = mul(&w, &m).unwrap();
    assert_eq!(y.value().data(), &[1.0, 0.0, 3.0, 0.0]);
    crate::sum(&y).unwrap().backward().unwrap();
    assert_eq!(w.grad().as_ref().unwrap().data(), &[1.0, 0.0, 1.0, 0.0]);
    assert!(m.grad().is_none());
}

#[test]
fn shape_mismatch_is_an_error_naming_the_op() {
    let a = Var::param(Tensor::<f32>::zeros([2, 3]));
    let b = Var::param(Tensor::<f32>::zeros([3, 2]));
    assert_eq!(
        add(&a, &b).unwrap_err().to_string(),
        "add: shapes [2, 3] and [3, 2] differ"
    );
    assert_eq!(
        mul(&a, &b).unwrap_err().to_string(),
        "mul: shapes [2, 3] and [3, 2] differ"
    );
    assert_eq!(
        add_n(&[&a, &a, &b]).unwrap_err().to_string(),
        "add: input 2 has shape [3, 2], input 0 has shape [2, 3]"
    );
    assert_eq!(
        add_n::<f32>(&[]).unwrap_err().to_string(),
        "add: needs at least one input, got none"
    );
}

#[test]
fn cost_matches_hand_formula() {
    // add of two f32 tensors of 10 elements: 10 adds; read 20 + write 10 elements.
    let c = add_cost::<f32>(2, 10);
    assert_eq!(c.forward, Work::new(10, 120));
    // backward: read dy (10), write da, db (20).
    assert_eq!(c.backward, Work::new(0, 120));
    // add_n of 4 f64 tensors of 6 elements: 3 * 6 adds; read 24 + write 6 elements.
    let c = add_cost::<f64>(4, 6);
    assert_eq!(c.forward, Work::new(18, 240));
    assert_eq!(c.backward, Work::new(0, 240));
    // mul of 10 f64: 10 mults, read 20 + write 10; backward 20 mults, read 30 + write 20.
    let c = mul_cost::<f64>(10);
    assert_eq!(c.forward, Work::new(10, 240));
    assert_eq!(c.backward, Work::new(20, 400));
    assert_eq!(c.forward.macs, 0);
}

#[test]
fn backward_work_counts_only_the_gradients_computed() {
    // mul with a constant mask: dw = dy * m, 4 mults; read dy, m; write dw.
    assert_eq!(mul_backward_work::<f32>(1, 4), Work::new(4, 48));
    assert_eq!(mul_backward_work::<f32>(2, 4), mul_cost::<f32>(4).backward);
    // add_n with 1 of 3 inputs needing a gradient: read dy, write one gradient.
    assert_eq!(add_backward_work::<f64>(1, 5), Work::new(0, 80));
}
