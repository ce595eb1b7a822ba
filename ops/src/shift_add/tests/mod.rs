use super::*;
use crate::suite::input;
use proptest::prelude::*;
use shiftgrad_autograd::{gradcheck, Tolerance};
use shiftgrad_tensor::{init, Tensor};

// Naive oracles, written directly from SPEC 1.1 / 1.3 / 1.4 with a bounds check per term;
// the cases are in the submodules.

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

mod cost;
mod dense;
mod op;
mod random;
mod sparse;
mod tables;
