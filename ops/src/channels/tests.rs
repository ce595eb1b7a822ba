use super::*;
use shiftgrad_tensor::Tensor;

/// (N, C, H, W) tensor whose element is `1000 n + 100 c + 10 h + w`.
fn labelled(dims: [usize; 4]) -> Tensor<f64> {
    let [_, c, h, w] = dims;
    Tensor::from_fn(dims, |i| {
        let (wi, hi, ci, ni) = (i % w, (i / w) % h, (i / (w * h)) % c, i / (w * h * c));
        (1000 * ni + 100 * ci + 10 * hi + wi) as f64
    })
}

#[test]
fn gather_forward_picks_the_channels_in_order() {
    let x = Var::constant(labelled([2, 3, 1, 2]));
    let y = gather_channels(&x, &[2, 0, 2]).unwrap();
    assert_eq!(y.op(), "gather_channels");
    assert_eq!(y.value().dims(), &[2, 3, 1, 2]);
    assert_eq!(
        y.value().data(),
        &[200., 201., 0., 1., 200., 201., 1200., 1201., 1000., 1001., 1200., 1201.]
    );
}

#[test]
fn gather_backward_accumulates_repeats_and_zeroes_unused_channels() {
    let x = Var::param(labelled([1, 3, 1, 2]));
    let y = gather_channels(&x, &[2, 0, 2]).unwrap();
    y.backward_with(Tensor::new([1, 3, 1, 2], vec![1., 2., 3., 4., 5., 6.]).unwrap())
        .unwrap();
    // dx[0] = dy[1]; dx[1] = 0; dx[2] = dy[0] + dy[2].
    assert_eq!(x.grad().as_ref().unwrap().data(), &[3., 4., 0., 0., 6., 8.]);
}

#[test]
fn gather_with_no_index_gives_zero_channels() {
    let x = Var::param(labelled([2, 3, 2, 2]));
    let y = gather_channels(&x, &[]).unwrap();
    assert_eq!(y.value().dims(), &[2, 0, 2, 2]);
    y.backward_with(Tensor::zeros([2, 0, 2, 2])).unwrap();
    assert_eq!(x.grad().as_ref().unwrap(), &Tensor::zeros([2, 3, 2, 2]));
}

#[test]
fn gather_errors_name_the_op_and_shapes() {
    let x = Var::constant(Tensor::<f32>::zeros([2, 3, 4, 4]));
    assert_eq!(
        gather_channels(&x, &[0, 3]).unwrap_err().to_string(),
        "gather_channels: index 3 (entry 1) is out of range for input of shape [2, 3, 4, 4] with 3 channels"
    );
    let flat = Var::constant(Tensor::<f32>::zeros([3, 4]));
    assert_eq!(
        gather_channels(&flat, &[0]).unwrap_err().to_string(),
        "gather_channels: input must have 4 dimensions (N, C, H, W), got [3, 4]"
    );
}

#[test]
fn concat_forward_and_backward() {
    let a = Var::param(labelled([2, 1, 1, 2]));
    let b = Var::param(labelled([2, 2, 1, 2]).map(|v| -v));
    let y = concat_channels(&[&a, &b]).unwrap();
    assert_eq!(y.op(), "concat_channels");
    assert_eq!(y.value().dims(), &[2, 3, 1, 2]);
    assert_eq!(
        y.value().data(),
        &[0., 1., -0., -1., -100., -101., 1000., 1001., -1000., -1001., -1100., -1101.]
    );
    let dy = Tensor::from_fn([2, 3, 1, 2], |i| i as f64);
    y.backward_with(dy).unwrap();
    assert_eq!(a.grad().as_ref().unwrap().data(), &[0., 1., 6., 7.]);
    assert_eq!(
        b.grad().as_ref().unwrap().data(),
        &[2., 3., 4., 5., 8., 9., 10., 11.]
    );
}

#[test]
fn concat_then_gather_is_the_ghost_split_round_trip() {
    let x = Var::param(labelled([2, 5, 2, 3]));
    let rep = gather_channels(&x, &[0, 2, 3]).unwrap();
    let ghost = gather_channels(&x, &[1, 4]).unwrap();
    let y = concat_channels(&[&rep, &ghost]).unwrap();
    let back = gather_channels(&y, &[0, 3, 1, 2, 4]).unwrap();
    assert_eq!(&*back.value(), &*x.value());
    crate::sum(&back).unwrap().backward().unwrap();
    assert_eq!(x.grad().as_ref().unwrap(), &Tensor::ones([2, 5, 2, 3]));
}

#[test]
fn concat_errors_name_the_op_and_shapes() {
    let a = Var::constant(Tensor::<f64>::zeros([2, 3, 4, 4]));
    let b = Var::constant(Tensor::<f64>::zeros([2, 1, 4, 5]));
    assert_eq!(
        concat_channels(&[&a, &b]).unwrap_err().to_string(),
        "concat_channels: input 1 has shape [2, 1, 4, 5], input 0 has shape [2, 3, 4, 4]; N, H and W must agree"
    );
    let c = Var::constant(Tensor::<f64>::zeros([2, 3, 16]));
    assert_eq!(
        concat_channels(&[&a, &c]).unwrap_err().to_string(),
        "concat_channels: input 1 must have 4 dimensions (N, C, H, W), got [2, 3, 16]"
    );
    assert_eq!(
        concat_channels::<f64>(&[]).unwrap_err().to_string(),
        "concat_channels: needs at least one input, got none"
    );
}

#[test]
fn cost_matches_hand_formula() {
    // x (2, 5, 3, 4): plane = N*H*W = 24 elements per channel index; idx has 4 entries, 2 distinct.
    let c = gather_cost::<f32>([2, 5, 3, 4], &[1, 1, 3, 1]);
    assert_eq!(c.forward, Work::new(0, 4 * 2 * 4 * 24));
    // backward: 2 repeated entries * 24 additions; read dy (4 * 24), write dx (5 * 24).
    assert_eq!(c.backward, Work::new(48, 4 * (4 + 5) * 24));
    // concat of (2, 1, 3, 4) and (2, 3, 3, 4): 24 + 72 elements, read and written once.
    let c = concat_cost::<f64>(&[[2, 1, 3, 4], [2, 3, 3, 4]]);
    assert_eq!(c.forward, Work::new(0, 8 * 2 * 96));
    assert_eq!(c.backward, Work::new(0, 8 * 2 * 96));
}
