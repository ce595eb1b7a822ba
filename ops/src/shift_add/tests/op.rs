//! The op.

use super::*;

/// k = 1 (e = 0), M = 3: shifts (1, 0, -1), identity permutations, u = 2, by hand.
#[test]
fn hand_computed_example() {
    let t =
        Rc::new(ShiftTables::from_arrays(3, 1, 1, 1, vec![1, 1, 0, 0, -1, -1], vec![2]).unwrap());
    let y = Var::param(
        Tensor::new(
            [1, 3, 1, 3],
            vec![1.0, 2.0, 3.0, 10.0, 20.0, 30.0, 100.0, 200.0, 300.0],
        )
        .unwrap(),
    );
    let (h, v, i) = shift_add(&y, &t).unwrap();
    // Hout[x] = Y0[x-1] + Y1[x] + Y2[x+1].
    assert_eq!(h.value().data(), &[210.0, 321.0, 32.0]);
    // Vout[y] = Y0[y-1] + Y1[y] + Y2[y+1] with a single row: only Y1 is in range.
    assert_eq!(v.value().data(), &[10.0, 20.0, 30.0]);
    assert_eq!(i.value().data(), &[100.0, 200.0, 300.0]);
    // dY of sum(Hout): channel j column q counts the outputs reading it.
    h.backward_with(Tensor::ones([1, 1, 1, 3])).unwrap();
    assert_eq!(
        y.grad().as_ref().unwrap().data(),
        &[1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0]
    );
    // A second application (its own graph node): its gradient adds to y's.
    let (_, _, i) = shift_add(&y, &t).unwrap();
    i.backward_with(Tensor::new([1, 1, 1, 3], vec![1.0, 2.0, 3.0]).unwrap())
        .unwrap();
    assert_eq!(
        y.grad().as_ref().unwrap().data(),
        &[1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 3.0, 4.0]
    );
}

#[test]
fn values_and_gradients_match_the_naive_formulas() {
    check_against_naive(13, 3, 2, 1, 2, 5, 4, 1);
    check_against_naive(10, 3, 1, 2, 1, 3, 7, 2);
    check_against_naive(51, 5, 2, 4, 1, 14, 9, 3);
    check_against_naive(49, 3, 1, 3, 2, 6, 30, 4);
    check_against_naive(13, 3, 3, 4, 1, 20, 17, 5); // map larger than M
    check_against_naive(5, 5, 2, 2, 1, 1, 1, 6); // nk = 1, a 1x1 map
    check_against_naive(6, 1, 2, 3, 2, 4, 2, 7); // k = 1, e = 0
}

#[test]
fn backward_is_the_adjoint_of_forward() {
    // <F(y), g> = <y, F^T(g)>: an identity independent of both formulas.
    let t = tables(17, 5, 2, 3, 11);
    let y = input([2, 2 * t.nk(), 9, 8], 12);
    let gs = [0, 1, 2].map(|p| input([2, 2, 5, 4], 13 + p));
    let (outs, dy) = run_op(&y, &t, &gs);
    let dot = |a: &Tensor<f64>, b: &Tensor<f64>| -> f64 {
        a.data().iter().zip(b.data()).map(|(x, y)| x * y).sum()
    };
    let lhs: f64 = (0..3).map(|p| dot(&outs[p], &gs[p])).sum();
    assert!(
        (lhs - dot(&y, &dy)).abs() < 1e-10,
        "{lhs} vs {}",
        dot(&y, &dy)
    );
}

#[test]
fn f32_agrees_with_f64() {
    let t = tables(13, 3, 2, 2, 21);
    let y = input([1, 2 * t.nk(), 6, 7], 22);
    let y32 = Var::constant(y.cast::<f32>().unwrap());
    let (h, v, i) = shift_add(&y32, &t).unwrap();
    let want = naive_forward(&y, &t);
    for (got, want) in [h, v, i].iter().zip(&want) {
        assert!(
            got.value()
                .cast::<f64>()
                .unwrap()
                .max_abs_diff(want)
                .unwrap()
                < 1e-5
        );
    }
}

#[test]
fn bad_inputs_are_errors() {
    let t = tables(13, 3, 2, 2, 31); // nk = 5
    let err = |dims: &[usize]| {
        shift_add(&Var::constant(Tensor::<f64>::zeros(dims)), &t)
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        err(&[1, 9, 6, 6]),
        "shift_add: y has 9 channels, expected R*nk = 2*5 = 10 (M = 13, k = 3)"
    );
    assert!(err(&[10, 6, 6]).contains("y must have 4 dimensions"));
    assert!(err(&[1, 10, 2, 6]).contains("too small"));
    assert!(err(&[1, 10, 6, 2]).contains("too small"));
    // Hand-edited tables are re-validated before use.
    let mut bad = (*t).clone();
    bad.idx_identit[0] = 99;
    let e = shift_add(
        &Var::constant(Tensor::<f64>::zeros([1, 10, 4, 4])),
        &Rc::new(bad),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("idx_identit[0, 0] = 99"), "{e}");
}

#[test]
fn only_the_used_paths_are_back_propagated() {
    let t = tables(13, 3, 1, 2, 41);
    let y = input([1, t.nk(), 5, 5], 42);
    let yv = Var::param(y.clone());
    let (h, _v, _i) = shift_add(&yv, &t).unwrap();
    assert_eq!(h.op(), "shift_add");
    let g = input([1, 1, 3, 3], 43);
    h.backward_with(g.clone()).unwrap();
    let zero = Tensor::zeros([1, 1, 3, 3]);
    let want = naive_backward(&[g, zero.clone(), zero], &t, y.dims());
    assert_close(yv.grad().as_ref().unwrap(), &want, 1e-12, "h only");
}
