use super::*;
use approx::assert_abs_diff_eq;

fn close(a: &[f64], b: &[f64]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_abs_diff_eq!(*x, *y, epsilon = 1e-12);
    }
}

#[test]
fn values_and_gradients_by_hand() {
    // Row 0: uniform over 3 classes, label 1 -> ln 3.
    // Row 1: 7 + (0, ln 2, ln 5) -> softmax (1/8, 2/8, 5/8) (a shift changes nothing);
    // label 2 -> ln(8/5).
    let row1 = [7.0, 7.0 + 2f64.ln(), 7.0 + 5f64.ln()];
    let logits =
        Var::param(Tensor::new([2, 3], vec![0.0, 0.0, 0.0, row1[0], row1[1], row1[2]]).unwrap());
    let loss = cross_entropy(&logits, &[1, 2]).unwrap();
    let expected = (3f64.ln() + (8.0f64 / 5.0).ln()) / 2.0;
    assert_abs_diff_eq!(loss.value().item().unwrap(), expected, epsilon = 1e-14);
    loss.backward().unwrap();
    // (softmax - onehot) / N with N = 2.
    close(
        logits.grad().as_ref().unwrap().data(),
        &[
            1.0 / 6.0,
            -1.0 / 3.0,
            1.0 / 6.0,
            1.0 / 16.0,
            2.0 / 16.0,
            -3.0 / 16.0,
        ],
    );
}

#[test]
fn gradient_scales_with_the_incoming_gradient() {
    // softmax of (0, ln 2, ln 5) is (1/8, 2/8, 5/8).
    let logits = Var::param(Tensor::new([1, 3], vec![0.0, 2f64.ln(), 5f64.ln()]).unwrap());
    let loss = cross_entropy(&logits, &[2]).unwrap();
    assert_abs_diff_eq!(
        loss.value().item().unwrap(),
        (8.0f64 / 5.0).ln(),
        epsilon = 1e-14
    );
    loss.backward_with(Tensor::scalar(2.0)).unwrap();
    close(
        logits.grad().as_ref().unwrap().data(),
        &[2.0 / 8.0, 4.0 / 8.0, 2.0 * (5.0 / 8.0 - 1.0)],
    );
}

#[test]
fn large_logits_do_not_overflow() {
    let logits = Var::param(Tensor::<f32>::new([2, 2], vec![1000.0, 0.0, 500.0, 500.0]).unwrap());
    let loss = cross_entropy(&logits, &[1, 0]).unwrap();
    // Row 0: lse = 1000 (+ ln(1 + e^-1000)), loss 1000; row 1: ln 2.
    let want = (1000.0 + 2f64.ln()) / 2.0;
    assert!((loss.value().item().unwrap() as f64 - want).abs() < 1e-3);
    loss.backward().unwrap();
    let g = logits.grad().as_ref().unwrap().clone();
    assert!(g.all_finite().unwrap());
    let want_g = [0.5, -0.5, -0.25, 0.25];
    for (a, b) in g.data().iter().zip(want_g) {
        assert!((*a as f64 - b).abs() < 1e-7, "{g:?}");
    }
}

#[test]
fn cost_matches_hand_formula() {
    let c = cost::<f32>(8, 10);
    assert_eq!(c.forward.flops, 4 * 80 + 2 * 8);
    assert_eq!(c.forward.macs, 0);
    assert_eq!(c.forward.bytes, (80 + 1) * 4 + 8 * 8);
    assert_eq!(c.backward.flops, 3 * 80 + 8 + 1);
    assert_eq!(c.backward.bytes, (2 * 80 + 8 + 1) * 4 + 8 * 8);
}

#[test]
fn error_messages() {
    let err = |shape: &[usize], labels: &[usize]| {
        let x = Var::constant(Tensor::<f64>::zeros(shape));
        cross_entropy(&x, labels).unwrap_err().to_string()
    };
    assert_eq!(
        err(&[2, 3, 1], &[0, 1]),
        "cross_entropy: logits must have 2 dimensions (N, K), got [2, 3, 1]"
    );
    assert_eq!(
        err(&[4, 3], &[0, 1, 2]),
        "cross_entropy: 3 labels for a batch of 4 (logits [4, 3])"
    );
    assert_eq!(
        err(&[3, 5], &[0, 4, 5]),
        "cross_entropy: label 5 at position 2 is out of range for 5 classes"
    );
    assert_eq!(
        err(&[0, 5], &[]),
        "cross_entropy: empty batch (logits [0, 5]): the mean is undefined"
    );
}

#[test]
fn a_confident_correct_row_keeps_its_small_loss_and_gradient() {
    // loss = ln(1 + e^-30) ~ 9.4e-14; d/dx0 = -e^-30 / (1 + e^-30), d/dx1 = +the same.
    // Forming lse = 30 + ln(1 + e^-30) first would round the loss to a few digits in f64 and
    // to zero in f32 (a logit of 30 carries 2e-6 in f32), and softmax - 1 likewise.
    let tiny = (-30f64).exp();
    let want_loss = tiny.ln_1p();
    let want_grad = tiny / (1.0 + tiny);
    let logits = Var::param(Tensor::new([1, 2], vec![30.0, 0.0]).unwrap());
    let loss = cross_entropy(&logits, &[0]).unwrap();
    let got = loss.value().item().unwrap();
    assert!(
        (got - want_loss).abs() <= 1e-14 * want_loss,
        "{got} vs {want_loss}"
    );
    loss.backward().unwrap();
    let g = logits.grad().as_ref().unwrap().data().to_vec();
    assert!((g[0] + want_grad).abs() <= 1e-14 * want_grad, "{g:?}");
    assert!((g[1] - want_grad).abs() <= 1e-14 * want_grad, "{g:?}");

    let logits = Var::param(Tensor::<f32>::new([1, 2], vec![30.0, 0.0]).unwrap());
    let loss = cross_entropy(&logits, &[0]).unwrap();
    let got = loss.value().item().unwrap() as f64;
    assert!(
        (got - want_loss).abs() <= 1e-6 * want_loss,
        "{got} vs {want_loss}"
    );
    loss.backward().unwrap();
    let g = logits.grad().as_ref().unwrap().data().to_vec();
    assert!((g[0] as f64 + want_grad).abs() <= 1e-6 * want_grad, "{g:?}");
}
