use super::*;
use crate::suite::input;
use proptest::prelude::*;
use shiftgrad_autograd::{gradcheck, Tolerance};
use shiftgrad_tensor::{init, Tensor};

// ---------------------------------------------------------------------------------------------
// Naive oracles, written directly from SPEC 1.1 / 1.3 / 1.4 with a bounds check per term.
// ---------------------------------------------------------------------------------------------

/// `Y[b,c,r,q]` or zero outside the map.
fn at(t: &Tensor<f64>, b: usize, c: usize, r: i64, q: i64) -> f64 {
    let [_, ch, h, w] = [t.dims()[0], t.dims()[1], t.dims()[2], t.dims()[3]];
    if r < 0 || q < 0 || r >= h as i64 || q >= w as i64 {
        return 0.0;
    }
    t.data()[((b * ch + c) * h + r as usize) * w + q as usize]
}

/// The three outputs of SPEC 1.3, term by term.
fn naive_forward(y: &Tensor<f64>, t: &ShiftTables) -> [Tensor<f64>; 3] {
    let (nk, e, g_n) = (t.nk(), t.extra() as i64, t.groups);
    let [bn, _, hp, wp] = [y.dims()[0], y.dims()[1], y.dims()[2], y.dims()[3]];
    let (h, w) = (hp - 2 * e as usize, wp - 2 * e as usize);
    let shape = [bn, t.reps, h, w];
    let pad = |c: usize, col: usize| t.pad_hv[c * 2 * g_n + col] as i64;
    let mut outs = [
        Tensor::zeros(shape),
        Tensor::zeros(shape),
        Tensor::zeros(shape),
    ];
    for b in 0..bn {
        for o in 0..t.reps {
            for yy in 0..h {
                for x in 0..w {
                    let (yi, xi) = (yy as i64, x as i64);
                    let (mut sh, mut sv, mut si) = (0.0, 0.0, 0.0);
                    for g in 0..g_n {
                        for j in 0..nk {
                            let c = o * nk + j;
                            sh += at(y, b, c, yi + e, xi - pad(c, g));
                            sv += at(y, b, c, yi - pad(c, g_n + g), xi + e);
                        }
                        let c = t.idx_identit[o * g_n + g] as usize;
                        si += at(y, b, c, yi + e, xi + e);
                    }
                    let k = ((b * t.reps + o) * h + yy) * w + x;
                    outs[0].data_mut()[k] = sh;
                    outs[1].data_mut()[k] = sv;
                    outs[2].data_mut()[k] = si;
                }
            }
        }
    }
    outs
}

/// The backward formula of SPEC 1.3, term by term.
fn naive_backward(gs: &[Tensor<f64>; 3], t: &ShiftTables, y_dims: &[usize]) -> Tensor<f64> {
    let (nk, e, g_n) = (t.nk(), t.extra() as i64, t.groups);
    let [bn, ch, hp, wp] = [y_dims[0], y_dims[1], y_dims[2], y_dims[3]];
    let pad = |c: usize, col: usize| t.pad_hv[c * 2 * g_n + col] as i64;
    let mut dy = Tensor::zeros([bn, ch, hp, wp]);
    for b in 0..bn {
        for c in 0..ch {
            let o = c / nk;
            for u in 0..hp {
                for v in 0..wp {
                    let (ui, vi) = (u as i64, v as i64);
                    let mut s = 0.0;
                    for g in 0..g_n {
                        s += at(&gs[0], b, o, ui - e, vi + pad(c, g));
                        s += at(&gs[1], b, o, ui + pad(c, g_n + g), vi - e);
                        if c == t.idx_identit[o * g_n + g] as usize {
                            s += at(&gs[2], b, o, ui - e, vi - e);
                        }
                    }
                    dy.data_mut()[((b * ch + c) * hp + u) * wp + v] = s;
                }
            }
        }
    }
    dy
}

/// Bank convolution of SPEC 1.1 (one branch): stride 1, zero padding `k-1`, groups `R`.
fn naive_bank_conv(x: &Tensor<f64>, wt: &Tensor<f64>, nk: usize, k: usize) -> Tensor<f64> {
    let [bn, r, h, w] = [x.dims()[0], x.dims()[1], x.dims()[2], x.dims()[3]];
    let p = k as i64 - 1;
    let (hp, wp) = (h + k - 1, w + k - 1);
    let mut y = Tensor::zeros([bn, r * nk, hp, wp]);
    for b in 0..bn {
        for c in 0..r * nk {
            let o = c / nk;
            for rr in 0..hp {
                for q in 0..wp {
                    let mut s = 0.0;
                    for a in 0..k {
                        for bb in 0..k {
                            let xv =
                                at(x, b, o, rr as i64 + a as i64 - p, q as i64 + bb as i64 - p);
                            s += xv * wt.data()[(c * k + a) * k + bb];
                        }
                    }
                    y.data_mut()[((b * r * nk + c) * hp + rr) * wp + q] = s;
                }
            }
        }
    }
    y
}

/// Depthwise cross-correlation, kernel `(C, 1, kh, kw)`, padding `[top, bottom, left, right]`.
fn naive_depthwise(x: &Tensor<f64>, kern: &Tensor<f64>, pad: [usize; 4]) -> Tensor<f64> {
    let [bn, ch, h, w] = [x.dims()[0], x.dims()[1], x.dims()[2], x.dims()[3]];
    let (kh, kw) = (kern.dims()[2], kern.dims()[3]);
    let ho = h + pad[0] + pad[1] + 1 - kh;
    let wo = w + pad[2] + pad[3] + 1 - kw;
    let mut out = Tensor::zeros([bn, ch, ho, wo]);
    for b in 0..bn {
        for c in 0..ch {
            for r in 0..ho {
                for q in 0..wo {
                    let mut s = 0.0;
                    for a in 0..kh {
                        for bb in 0..kw {
                            let xr = r as i64 + a as i64 - pad[0] as i64;
                            let xq = q as i64 + bb as i64 - pad[2] as i64;
                            s += at(x, b, c, xr, xq) * kern.data()[(c * kh + a) * kw + bb];
                        }
                    }
                    out.data_mut()[((b * ch + c) * ho + r) * wo + q] = s;
                }
            }
        }
    }
    out
}

fn tables(big: usize, small: usize, reps: usize, groups: usize, seed: u64) -> Rc<ShiftTables> {
    Rc::new(ShiftTables::random(big, small, reps, groups, &mut init::rng(seed)).unwrap())
}

fn assert_close(a: &Tensor<f64>, b: &Tensor<f64>, tol: f64, what: &str) {
    let d = a.max_abs_diff(b).unwrap();
    assert!(d <= tol, "{what}: max abs diff {d:e} > {tol:e}");
}

/// One backward through all three outputs with cotangents `gs`: the gradient of
/// `sum(h * gh) + sum(v * gv) + sum(i * gi)` (the op is one graph node, so its outputs are
/// back-propagated together, as a network does).
fn backward3(outs: [&Var<f64>; 3], gs: &[Tensor<f64>; 3]) {
    let terms: Vec<Var<f64>> = outs
        .iter()
        .zip(gs)
        .map(|(o, g)| crate::sum(&crate::mul(o, &Var::constant(g.clone())).unwrap()).unwrap())
        .collect();
    let refs: Vec<&Var<f64>> = terms.iter().collect();
    crate::add_n(&refs).unwrap().backward().unwrap();
}

/// Runs the op and its backward with cotangents `gs`; returns the outputs and `dY`.
fn run_op(
    y: &Tensor<f64>,
    t: &Rc<ShiftTables>,
    gs: &[Tensor<f64>; 3],
) -> ([Tensor<f64>; 3], Tensor<f64>) {
    let yv = Var::param(y.clone());
    let (h, v, i) = shift_add(&yv, t).unwrap();
    let outs = [h.value().clone(), v.value().clone(), i.value().clone()];
    backward3([&h, &v, &i], gs);
    let dy = yv.grad().clone().unwrap();
    (outs, dy)
}

/// Checks the op against the naive formulas, forward and backward, for one configuration.
#[allow(clippy::too_many_arguments)]
fn check_against_naive(
    big: usize,
    small: usize,
    reps: usize,
    groups: usize,
    b: usize,
    h: usize,
    w: usize,
    seed: u64,
) {
    let t = tables(big, small, reps, groups, seed);
    let e = t.extra();
    let y = input([b, reps * t.nk(), h + 2 * e, w + 2 * e], seed + 1);
    let gs = [0, 1, 2].map(|p| input([b, reps, h, w], seed + 10 + p));
    let (outs, dy) = run_op(&y, &t, &gs);
    let want = naive_forward(&y, &t);
    let cfg = format!("M{big} k{small} R{reps} G{groups} B{b} {h}x{w}");
    for p in 0..3 {
        assert_close(&outs[p], &want[p], 1e-12, &format!("{cfg} output {p}"));
    }
    assert_close(&dy, &naive_backward(&gs, &t, y.dims()), 1e-12, &cfg);
}

// ---------------------------------------------------------------------------------------------
// Tables.
// ---------------------------------------------------------------------------------------------

#[test]
fn geometry_matches_spec_examples() {
    assert_eq!(
        ShiftTables::shifts(51, 3),
        (0..17).map(|i| 23 - 3 * i).collect::<Vec<_>>()
    );
    assert_eq!(ShiftTables::shifts(51, 3).last(), Some(&-25));
    assert_eq!(
        ShiftTables::shifts(51, 5),
        (0..11).map(|i| 21 - 5 * i).collect::<Vec<_>>()
    );
    assert_eq!(ShiftTables::shifts(51, 5).last(), Some(&-29));
    assert_eq!(ShiftTables::shifts(10, 3), vec![3, 0, -3, -6]);
    let t = tables(49, 3, 2, 1, 0);
    assert_eq!((t.nk(), t.extra()), (17, 1));
    let t = tables(51, 5, 1, 1, 0);
    assert_eq!((t.nk(), t.extra()), (11, 2));
    let t = tables(7, 1, 1, 1, 0);
    assert_eq!((t.nk(), t.extra()), (7, 0));
}

#[test]
fn bad_geometry_is_an_error() {
    let msg = |r: Result<()>| r.unwrap_err().to_string();
    assert_eq!(
        msg(ShiftTables::check_geometry(13, 4, 1, 1)),
        "shift_add: small kernel must be odd, got 4"
    );
    assert_eq!(
        msg(ShiftTables::check_geometry(13, 0, 1, 1)),
        "shift_add: small kernel must be at least 1, got 0"
    );
    assert_eq!(
        msg(ShiftTables::check_geometry(3, 5, 1, 1)),
        "shift_add: big kernel must be at least the small kernel, got big 3 < small 5"
    );
    assert_eq!(
        msg(ShiftTables::check_geometry(13, 3, 0, 1)),
        "shift_add: need at least one rep channel, got 0"
    );
    assert_eq!(
        msg(ShiftTables::check_geometry(13, 3, 1, 0)),
        "shift_add: need at least one index group, got 0"
    );
    assert!(ShiftTables::random(13, 4, 1, 1, &mut init::rng(0)).is_err());
    assert!(ShiftTables::check_geometry(3, 3, 1, 1).is_ok());
}

#[test]
fn random_tables_follow_the_draw_order() {
    let (big, small, reps, groups) = (13, 3, 3, 2);
    let t = ShiftTables::random(big, small, reps, groups, &mut init::rng(42)).unwrap();
    let nk = t.nk();
    let s = ShiftTables::shifts(big, small);
    let mut rng = init::rng(42);
    for g in 0..groups {
        for o in 0..reps {
            let rh = init::permutation(nk, &mut rng);
            let rv = init::permutation(nk, &mut rng);
            let u: usize = rand::Rng::gen_range(&mut rng, 0..nk);
            assert_eq!(t.rh(g, o), rh);
            assert_eq!(t.rv(g, o), rv);
            assert_eq!(t.idx_identit[o * groups + g], (o * nk + u) as i32);
            for i in 0..nk {
                // SPEC 1.2: pad_hv[o*nk + rh[g][o][i], g] = s_i, column G + g for rv.
                assert_eq!(t.pad_hv[(o * nk + rh[i]) * 2 * groups + g], s[i]);
                assert_eq!(t.pad_hv[(o * nk + rv[i]) * 2 * groups + groups + g], s[i]);
            }
        }
    }
    // Same seed, same tables; another seed, other tables.
    assert_eq!(
        t,
        ShiftTables::random(big, small, reps, groups, &mut init::rng(42)).unwrap()
    );
    assert_ne!(
        t,
        ShiftTables::random(big, small, reps, groups, &mut init::rng(43)).unwrap()
    );
}

#[test]
fn tables_round_trip_through_from_arrays() {
    for (big, small, reps, groups) in [(13, 3, 2, 4), (51, 5, 3, 1), (10, 3, 1, 2), (4, 1, 2, 3)] {
        let t = ShiftTables::random(big, small, reps, groups, &mut init::rng(5)).unwrap();
        let back = ShiftTables::from_arrays(
            big,
            small,
            reps,
            groups,
            t.pad_hv.clone(),
            t.idx_identit.clone(),
        )
        .unwrap();
        assert_eq!(back, t);
    }
}

#[test]
fn from_arrays_rejects_corrupted_tables() {
    let t = ShiftTables::random(13, 3, 2, 2, &mut init::rng(9)).unwrap();
    let (nk, cols) = (t.nk(), 4);
    let rebuild = |pad: Vec<i32>, idx: Vec<i32>| {
        ShiftTables::from_arrays(13, 3, 2, 2, pad, idx)
            .unwrap_err()
            .to_string()
    };
    // Wrong shapes.
    let e = rebuild(t.pad_hv[1..].to_vec(), t.idx_identit.clone());
    assert!(e.starts_with("shift_add: pad_hv must have shape"), "{e}");
    let e = rebuild(t.pad_hv.clone(), vec![0; 3]);
    assert!(
        e.starts_with("shift_add: idx_identit must have shape"),
        "{e}"
    );
    // A value that is not a shift.
    let mut pad = t.pad_hv.clone();
    pad[cols + 1] += 1;
    let e = rebuild(pad, t.idx_identit.clone());
    assert!(e.contains("is not a permutation of the shifts"), "{e}");
    // A duplicated shift within a block (vertical column of group 1, rep 1).
    let mut pad = t.pad_hv.clone();
    pad[nk * cols + 3] = pad[(nk + 1) * cols + 3];
    let e = rebuild(pad, t.idx_identit.clone());
    assert!(e.contains("column 3 of rep block 1"), "{e}");
    // Column 0 of rep block 0 made to repeat a shift taken from block 1: the column is no
    // longer a permutation within block 0.
    let mut pad = t.pad_hv.clone();
    let other = (0..nk)
        .map(|j| pad[(nk + j) * cols])
        .find(|&s| s != pad[0])
        .unwrap();
    let twin = (1..nk).find(|&j| pad[j * cols] == other).unwrap();
    pad[0] = pad[twin * cols];
    let e = rebuild(pad, t.idx_identit.clone());
    assert!(e.contains("column 0 of rep block 0"), "{e}");
    // An identity index in another rep's block, and a negative one.
    let mut idx = t.idx_identit.clone();
    idx[0] = nk as i32; // rep 0, group 0 pointing into rep 1
    let e = rebuild(t.pad_hv.clone(), idx);
    assert!(
        e.contains("idx_identit[0, 0] = 5 is outside rep 0's bank channels 0..5"),
        "{e}"
    );
    let mut idx = t.idx_identit.clone();
    idx[3] = -1;
    assert!(rebuild(t.pad_hv.clone(), idx).contains("idx_identit[1, 1] = -1"));
    // Bad geometry.
    let e = ShiftTables::from_arrays(13, 2, 2, 2, t.pad_hv.clone(), t.idx_identit.clone())
        .unwrap_err()
        .to_string();
    assert_eq!(e, "shift_add: small kernel must be odd, got 2");
}

// ---------------------------------------------------------------------------------------------
// The op.
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Cost.
// ---------------------------------------------------------------------------------------------

/// In-bounds terms of each path, counted from the naive definition.
fn naive_terms(t: &ShiftTables, b: usize, h: usize, w: usize) -> [u64; 3] {
    let (e, g_n, nk) = (t.extra() as i64, t.groups, t.nk());
    let (hp, wp) = ((h + 2 * e as usize) as i64, (w + 2 * e as usize) as i64);
    let inside = |r: i64, q: i64| (0..hp).contains(&r) && (0..wp).contains(&q);
    let mut n = [0u64; 3];
    for o in 0..t.reps {
        for y in 0..h as i64 {
            for x in 0..w as i64 {
                for g in 0..g_n {
                    for j in 0..nk {
                        let c = o * nk + j;
                        n[0] += inside(y + e, x - t.pad_hv[c * 2 * g_n + g] as i64) as u64;
                        n[1] += inside(y - t.pad_hv[c * 2 * g_n + g_n + g] as i64, x + e) as u64;
                    }
                    n[2] += 1;
                }
            }
        }
    }
    n.map(|v| v * b as u64)
}

#[test]
fn cost_matches_hand_formula() {
    // k = 1, M = 3, one rep, one group, 1x3 map (the hand example): Hout has 2 + 3 + 2 terms,
    // Vout 3 (only the zero shift stays in a one-row map), Iout 3.
    let t = ShiftTables::from_arrays(3, 1, 1, 1, vec![1, 1, 0, 0, -1, -1], vec![2]).unwrap();
    let c = cost::<f64>(&t, 1, 1, 3);
    assert_eq!(c.forward.flops, 7 + 3 + 3);
    assert_eq!(c.forward.macs, 0);
    // Y 9 + outputs 9, f64; tables 6 + 1 int32.
    assert_eq!(c.forward.bytes, 8 * 18 + 4 * 7);
    assert_eq!(c.backward.flops, 13);
    // One node: read the three output gradients (3 each), write dY (9) once; tables 3 + 3 + 1.
    assert_eq!(c.backward.bytes, 8 * (3 * 3 + 9) + 4 * 7);

    // Against the naive count, and within SPEC 4's bound of (2nk + 1) G per pixel and channel.
    for (big, small, reps, groups, b, h, w) in [
        (13, 3, 2, 3, 2, 5, 7),
        (51, 5, 1, 4, 1, 14, 9),
        (10, 3, 3, 1, 1, 30, 2),
    ] {
        let t = tables(big, small, reps, groups, 7);
        let n = naive_terms(&t, b, h, w);
        let c = cost::<f32>(&t, b, h, w);
        assert_eq!(c.forward.flops, n.iter().sum::<u64>());
        assert_eq!(c.backward.flops, c.forward.flops);
        let bound = (b * reps * h * w * (2 * t.nk() + 1) * groups) as u64;
        assert!(c.forward.flops <= bound);
        let (e, nk) = (t.extra(), t.nk());
        let y = b * reps * nk * (h + 2 * e) * (w + 2 * e);
        let out = b * reps * h * w;
        let tb = 4 * (reps * nk * 2 * groups + reps * groups) as u64;
        assert_eq!(c.forward.bytes, (4 * (y + 3 * out)) as u64 + tb);
        // dY written once, the three output gradients read once each.
        assert_eq!(c.backward.bytes, (4 * (y + 3 * out)) as u64 + tb);
    }
}

// ---------------------------------------------------------------------------------------------
// Dense equivalent (SPEC 1.4).
// ---------------------------------------------------------------------------------------------

#[test]
fn dense_padding_is_asymmetric_when_needed() {
    let t = tables(49, 3, 1, 1, 0); // nk 17, L 51: offsets -24..+26
    assert_eq!(
        dense_padding(&t),
        ([1, 1, 24, 26], [24, 26, 1, 1], [1, 1, 1, 1])
    );
    let t = tables(51, 3, 1, 1, 0); // L = M = 51, symmetric
    assert_eq!(dense_padding(&t).0, [1, 1, 25, 25]);
    let t = tables(51, 5, 1, 1, 0); // nk 11, L 55: -25..+29
    assert_eq!(dense_padding(&t).1, [25, 29, 2, 2]);
    let t = tables(12, 3, 1, 1, 0); // L = M = 12, even: -6..+5
    assert_eq!(dense_padding(&t).0, [1, 1, 6, 5]);
}

/// Bank conv + shift-add equals three depthwise cross-correlations with the dense kernels.
fn check_dense(
    big: usize,
    small: usize,
    reps: usize,
    groups: usize,
    hw: (usize, usize),
    seed: u64,
) {
    let (h, w) = hw;
    let t = tables(big, small, reps, groups, seed);
    let nk = t.nk();
    let x = input([2, reps, h, w], seed + 1);
    let bank = input([reps * nk, 1, small, small], seed + 2);
    let y = naive_bank_conv(&x, &bank, nk, small);
    let (hout, vout, iout) = shift_add(&Var::constant(y), &t).unwrap();
    let (dh, dv, di) = dense_kernels(&t, &bank).unwrap();
    let l = nk * small;
    assert_eq!(dh.dims(), &[reps, 1, small, l]);
    assert_eq!(dv.dims(), &[reps, 1, l, small]);
    assert_eq!(di.dims(), &[reps, 1, small, small]);
    let (ph, pv, pi) = dense_padding(&t);
    let cfg = format!("M{big} k{small} R{reps} G{groups} {h}x{w}");
    assert_close(&hout.value(), &naive_depthwise(&x, &dh, ph), 1e-12, &cfg);
    assert_close(&vout.value(), &naive_depthwise(&x, &dv, pv), 1e-12, &cfg);
    assert_close(&iout.value(), &naive_depthwise(&x, &di, pi), 1e-12, &cfg);
}

#[test]
fn dense_equivalent_is_exact() {
    let mut seed = 100;
    // 12: M even and divisible by k (k = 3), also an asymmetric kernel.
    for big in [13, 51, 10, 49, 12] {
        for small in [3, 5] {
            for groups in 1..=4 {
                // Maps smaller and larger than M, non-square.
                for hw in [(5, 3), (big + 4, 6), (7, big + 2)] {
                    check_dense(big, small, 2, groups, hw, seed);
                    seed += 3;
                }
            }
        }
    }
}

#[test]
fn dense_kernels_check_the_bank_shape() {
    let t = tables(13, 3, 2, 1, 0);
    let e = dense_kernels(&t, &Tensor::<f64>::zeros([10, 1, 5, 5]))
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "shift_add: bank weight must have shape [10, 1, 3, 3] (R*nk = 2*5), got [10, 1, 5, 5]"
    );
}

// ---------------------------------------------------------------------------------------------
// The gradcheck suite and random configurations.
// ---------------------------------------------------------------------------------------------

#[test]
fn gradcheck_cases_pass() {
    let cases = cases::cases();
    assert!(cases.len() >= 7);
    for case in &cases {
        let r = case.run().unwrap();
        assert!(r.passed(), "{}: {r:?}", case.config);
    }
}

#[test]
fn stack3_gradient_is_split() {
    let vars: Vec<Var<f64>> = (0..3).map(|s| Var::param(input([2, 3], s))).collect();
    let s = cases::stack3(&vars[0], &vars[1], &vars[2]).unwrap();
    assert_eq!(s.value().dims(), &[3, 2, 3]);
    assert_eq!(&s.value().data()[6..12], vars[1].value().data());
    let g = Tensor::from_fn([3, 2, 3], |i| i as f64);
    s.backward_with(g).unwrap();
    let want: Vec<f64> = (12..18).map(|i| i as f64).collect();
    assert_eq!(vars[2].grad().as_ref().unwrap().data(), &want[..]);
}

/// (M, k, G, R, B, H, W, seed) with nk <= 5, so that each gradcheck stays small.
fn config() -> impl Strategy<Value = (usize, usize, usize, usize, usize, usize, usize, u64)> {
    prop_oneof![Just(1usize), Just(3), Just(5)].prop_flat_map(|k| {
        (
            k..=5 * k,
            Just(k),
            1usize..=4,
            1usize..=2,
            1usize..=2,
            1usize..=6,
            1usize..=6,
            0u64..1_000_000,
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn random_configurations_gradcheck_and_dense(
        (big, small, groups, reps, b, h, w, seed) in config()
    ) {
        let t = tables(big, small, reps, groups, seed);
        let e = t.extra();
        let y = input([b, reps * t.nk(), h + 2 * e, w + 2 * e], seed ^ 1);
        let tc = t.clone();
        let f = move |v: &[Var<f64>]| {
            let (ho, vo, io) = shift_add(&v[0], &tc)?;
            cases::stack3(&ho, &vo, &io)
        };
        let r = gradcheck(&f, &[y], &[true], Tolerance::default(), seed).unwrap();
        prop_assert!(r.passed(), "{r:?}");
        check_dense(big, small, reps, groups, (h, w), seed);
    }
}

// ---------------------------------------------------------------------------------------------
// Sparse (SPEC 1.6).
// ---------------------------------------------------------------------------------------------

/// `y` compacted to the live channels of `live` (channel `l` = bank channel `channels[l]`).
fn compact(y: &Tensor<f64>, live: &LiveChannels) -> Tensor<f64> {
    let [b, _, hp, wp] = [y.dims()[0], y.dims()[1], y.dims()[2], y.dims()[3]];
    let plane = hp * wp;
    let mut out = Vec::with_capacity(b * live.len() * plane);
    for n in 0..b {
        for &c in &live.channels {
            let at = (n * y.dims()[1] + c as usize) * plane;
            out.extend_from_slice(&y.data()[at..at + plane]);
        }
    }
    Tensor::new([b, live.len(), hp, wp], out).unwrap()
}

/// `y` with the pruned channels set to zero.
fn zero_pruned(y: &Tensor<f64>, live: &LiveChannels) -> Tensor<f64> {
    let plane = y.dims()[2] * y.dims()[3];
    let ch = y.dims()[1];
    let mut data = y.data().to_vec();
    for (i, v) in data.iter_mut().enumerate() {
        if live.compact_of(i / plane % ch).is_none() {
            *v = 0.0;
        }
    }
    Tensor::new(y.dims().to_vec(), data).unwrap()
}

#[test]
fn sparse_equals_dense_with_pruned_channels_zero_bit_for_bit() {
    for (seed, density) in [
        (401u64, 0.5),
        (402, 0.0),
        (403, 1.0),
        (404, 0.2),
        (405, 0.8),
    ] {
        let (big, small, reps, groups, b, h, w) = (13, 3, 3, 3, 2, 5, 4);
        let t = tables(big, small, reps, groups, seed);
        // Density 0: every kernel pruned (random_mask keeps at least one).
        let mask = match density {
            0.0 => vec![false; reps * t.nk()],
            _ => super::cases::random_mask(reps, t.nk(), density, seed),
        };
        let live = Rc::new(LiveChannels::from_mask(reps, t.nk(), &mask).unwrap());
        let e = t.extra();
        let y = input([b, reps * t.nk(), h + 2 * e, w + 2 * e], seed + 1);
        let gs = [0, 1, 2].map(|p| input([b, reps, h, w], seed + 10 + p));
        let (dense_out, dense_dy) = run_op(&zero_pruned(&y, &live), &t, &gs);
        let ys = Var::param(compact(&y, &live));
        let (hs, vs, is) = shift_add_sparse(&ys, &t, &live).unwrap();
        for (p, o) in [&hs, &vs, &is].into_iter().enumerate() {
            assert_eq!(
                o.value().data(),
                dense_out[p].data(),
                "seed {seed}: output {p} differs from the dense op on zeroed channels"
            );
        }
        backward3([&hs, &vs, &is], &gs);
        let dys = ys.grad().clone().unwrap();
        // The sparse dY is the dense one's live channels; the dense one's pruned channels are
        // the gradient the pruned kernels would have received, which the sparse op never forms.
        assert_eq!(
            dys.data(),
            compact(&dense_dy, &live).data(),
            "seed {seed}: dY"
        );
        // Cost: terms of live kernels only; all live costs what the dense op costs.
        let sparse_cost = super::cost_sparse::<f64>(&t, &live, b, h, w);
        let dense_cost = super::cost::<f64>(&t, b, h, w);
        if live.is_dense() {
            assert_eq!(sparse_cost, dense_cost);
        } else {
            assert!(sparse_cost.forward.flops < dense_cost.forward.flops || live.is_empty());
        }
    }
}

#[test]
fn sparse_cost_counts_live_terms() {
    let (reps, h, w) = (2, 6, 7);
    let t = tables(13, 3, reps, 2, 410);
    let mut mask = vec![false; reps * t.nk()];
    mask[3] = true;
    let live = LiveChannels::from_mask(reps, t.nk(), &mask).unwrap();
    // Every term of the one live kernel, counted by brute force over the naive formulas.
    let e = t.extra() as i64;
    let (hp, wp) = (h as i64 + 2 * e, w as i64 + 2 * e);
    let mut terms = 0u64;
    for g in 0..t.groups {
        let sh = t.pad_hv[3 * 2 * t.groups + g] as i64;
        let sv = t.pad_hv[3 * 2 * t.groups + t.groups + g] as i64;
        for y in 0..h as i64 {
            for x in 0..w as i64 {
                terms += (0..wp).contains(&(x - sh)) as u64;
                terms += (0..hp).contains(&(y - sv)) as u64;
            }
        }
    }
    let identity = t.idx_identit.iter().filter(|&&c| c == 3).count() as u64;
    terms += identity * (h * w) as u64;
    assert_eq!(
        super::cost_sparse::<f64>(&t, &live, 1, h, w).forward.flops,
        terms
    );
}

#[test]
fn sparse_bad_inputs_are_errors() {
    let t = tables(13, 3, 2, 2, 420);
    let live = Rc::new(
        LiveChannels::from_mask(
            2,
            5,
            &[
                true, false, true, true, false, true, false, false, false, true,
            ],
        )
        .unwrap(),
    );
    // Y must hold one channel per live kernel.
    let y = Var::param(input([1, 10, 6, 6], 1));
    let err = shift_add_sparse(&y, &t, &live).unwrap_err().to_string();
    assert!(err.contains("one per live kernel: 5 of R*nk = 10"), "{err}");
    // Live channels of another geometry.
    let other = Rc::new(LiveChannels::all(3, 5));
    let y = Var::param(input([1, 15, 6, 6], 1));
    assert!(shift_add_sparse(&y, &t, &other).is_err());
}
