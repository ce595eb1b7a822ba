use super::*;
use shiftgrad_tensor::Tensor;

fn t(data: &[f64]) -> Tensor<f64> {
    Tensor::new([data.len()], data.to_vec()).unwrap()
}

fn close(a: &Tensor<f64>, b: &[f64]) {
    for (x, y) in a.data().iter().zip(b) {
        assert!((x - y).abs() <= 1e-14 * y.abs().max(1.0), "{a:?} vs {b:?}");
    }
}

/// FLOPs recorded on this thread by `f`, under a region of its own.
fn flops_of(f: impl FnOnce()) -> u64 {
    use shiftgrad_tensor::{counters, opencl::region};
    counters::reset_region_flops();
    let _r = region::enter("optim test");
    f();
    counters::flops_in("optim test")
}

#[test]
fn optimiser_steps_count_their_flops() {
    let g = t(&[0.5, 0.25, 1.0]);
    let mut w = t(&[1.0, -2.0, 3.0]);
    let mut buf = None;
    // Without momentum: d = g + wd*w and w -= lr*d, 4 per element.
    let plain = flops_of(|| sgd_step(&mut w, &g, &mut buf, 0.1, 0.0, false, 0.1).unwrap());
    assert_eq!(plain, 12);
    // Nesterov momentum: the first step copies d into the buffer (4 + 2), later steps also
    // update it (8).
    let first = flops_of(|| sgd_step(&mut w, &g, &mut buf, 0.1, 0.9, true, 0.1).unwrap());
    let later = flops_of(|| sgd_step(&mut w, &g, &mut buf, 0.1, 0.9, true, 0.1).unwrap());
    assert_eq!((first, later), (18, 24));
    let (mut m, mut v) = (None, None);
    let adam = flops_of(|| {
        adamw_step(&mut w, &g, &mut m, &mut v, 1, 1e-3, 0.9, 0.999, 1e-8, 0.01).unwrap()
    });
    assert_eq!(adam, 45);
}

#[test]
fn sgd_without_momentum_is_plain_gradient_descent_with_decay() {
    let mut w = t(&[1.0, -2.0]);
    let mut buf = None;
    sgd_step(&mut w, &t(&[0.5, 0.25]), &mut buf, 0.1, 0.0, false, 0.1).unwrap();
    // d = g + 0.1 w = [0.6, 0.05]; w -= 0.1 d
    close(&w, &[0.94, -2.005]);
    assert!(buf.is_none(), "momentum 0 keeps no buffer");
}

#[test]
fn sgd_momentum_buffer_starts_at_d_then_accumulates() {
    let mut w = t(&[1.0, -2.0]);
    let mut buf = None;
    sgd_step(&mut w, &t(&[0.5, 0.5]), &mut buf, 0.1, 0.9, false, 0.1).unwrap();
    // d = [0.6, 0.3] = buf; w = [0.94, -2.03]
    close(buf.as_ref().unwrap(), &[0.6, 0.3]);
    close(&w, &[0.94, -2.03]);
    sgd_step(&mut w, &t(&[0.5, 0.5]), &mut buf, 0.1, 0.9, false, 0.1).unwrap();
    // d = [0.5 + 0.094, 0.5 - 0.203] = [0.594, 0.297]; buf = 0.9 [0.6, 0.3] + d = [1.134, 0.567]
    close(buf.as_ref().unwrap(), &[1.134, 0.567]);
    close(&w, &[0.94 - 0.1134, -2.03 - 0.0567]);
}

#[test]
fn sgd_nesterov_steps_along_d_plus_momentum_buffer() {
    let mut w = t(&[1.0]);
    let mut buf = None;
    sgd_step(&mut w, &t(&[1.0]), &mut buf, 1.0, 0.5, true, 0.0).unwrap();
    // d = 1 = buf; step = d + 0.5 buf = 1.5
    close(&w, &[-0.5]);
    sgd_step(&mut w, &t(&[2.0]), &mut buf, 1.0, 0.5, true, 0.0).unwrap();
    // d = 2; buf = 0.5 + 2 = 2.5; step = 2 + 1.25 = 3.25
    close(buf.as_ref().unwrap(), &[2.5]);
    close(&w, &[-3.75]);
}

#[test]
fn adamw_two_steps_match_the_formula() {
    let mut w = t(&[1.0, -0.5]);
    let (mut m, mut v) = (None, None);
    let (lr, b1, b2, eps, wd) = (0.1, 0.9, 0.999, 1e-8, 0.01);
    adamw_step(
        &mut w,
        &t(&[3.0, 0.0]),
        &mut m,
        &mut v,
        1,
        lr,
        b1,
        b2,
        eps,
        wd,
    )
    .unwrap();
    // m = 0.1 g = [0.3, 0]; v = 0.001 g^2 = [0.009, 0]; m^ = g, v^ = g^2.
    close(m.as_ref().unwrap(), &[0.3, 0.0]);
    close(v.as_ref().unwrap(), &[0.009, 0.0]);
    let w1 = [0.999 - 0.1 * 3.0 / (3.0 + 1e-8), -0.5 * 0.999];
    close(&w, &w1);
    adamw_step(
        &mut w,
        &t(&[-1.0, 2.0]),
        &mut m,
        &mut v,
        2,
        lr,
        b1,
        b2,
        eps,
        wd,
    )
    .unwrap();
    // m = 0.9 m + 0.1 g = [0.17, 0.2]; v = 0.999 v + 0.001 g^2 = [0.009991, 0.004]
    close(m.as_ref().unwrap(), &[0.17, 0.2]);
    close(v.as_ref().unwrap(), &[0.009991, 0.004]);
    let (c1, c2) = (1.0 - 0.81, 1.0 - 0.998001);
    let expect = [
        w1[0] * 0.999 - 0.1 * (0.17 / c1) / ((0.009991f64 / c2).sqrt() + 1e-8),
        w1[1] * 0.999 - 0.1 * (0.2 / c1) / ((0.004f64 / c2).sqrt() + 1e-8),
    ];
    close(&w, &expect);
}

#[test]
fn f32_updates_compute_in_f32() {
    let mut w = Tensor::<f32>::new([2], vec![1.0, 2.0]).unwrap();
    let g = Tensor::<f32>::new([2], vec![0.5, -0.5]).unwrap();
    let mut buf = None;
    sgd_step(&mut w, &g, &mut buf, 0.5, 0.9, false, 0.0).unwrap();
    assert_eq!(w.data(), &[0.75, 2.25]);
    let (mut m, mut v) = (None, None);
    adamw_step(&mut w, &g, &mut m, &mut v, 1, 0.5, 0.9, 0.999, 0.0, 0.0).unwrap();
    // With eps = 0 the first AdamW step is lr * sign(g).
    assert_eq!(w.data(), &[0.25, 2.75]);
}

#[test]
fn bad_shapes_and_step_zero_are_errors() {
    let mut w = t(&[1.0, 2.0]);
    let mut buf = None;
    assert_eq!(
        sgd_step(&mut w, &t(&[1.0]), &mut buf, 0.1, 0.9, false, 0.0)
            .unwrap_err()
            .to_string(),
        "sgd_step: gradient has shape [1], the parameter has shape [2]"
    );
    let mut wrong = Some(t(&[0.0, 0.0, 0.0]));
    assert_eq!(
        sgd_step(&mut w, &t(&[1.0, 1.0]), &mut wrong, 0.1, 0.9, false, 0.0)
            .unwrap_err()
            .to_string(),
        "sgd_step: momentum buffer has shape [3], the parameter has shape [2]"
    );
    let (mut m, mut v) = (None, Some(t(&[0.0])));
    let g = t(&[1.0, 1.0]);
    assert_eq!(
        adamw_step(&mut w, &g, &mut m, &mut v, 1, 0.1, 0.9, 0.999, 1e-8, 0.0)
            .unwrap_err()
            .to_string(),
        "adamw_step: second moment has shape [1], the parameter has shape [2]"
    );
    let mut v = None;
    assert_eq!(
        adamw_step(&mut w, &g, &mut m, &mut v, 0, 0.1, 0.9, 0.999, 1e-8, 0.0)
            .unwrap_err()
            .to_string(),
        "adamw_step: step counts from 1 (the bias corrections divide by 1 - beta^step)"
    );
    assert_eq!(
        w.data(),
        &[1.0, 2.0],
        "a failed step leaves the parameter alone"
    );
}
