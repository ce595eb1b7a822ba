use super::*;
use crate::shift_add::cases::random_mask;
use crate::suite::input;
use crate::{conv2d, Conv2dParams};
use shiftgrad_tensor::compare::{assert_close, Scale};
use shiftgrad_tensor::Tensor;

/// The channels of `t` `(B, C, ...)` listed in `keep`, in that order.
fn channels(t: &Tensor<f64>, keep: &[i32]) -> Tensor<f64> {
    let (b, c) = (t.dims()[0], t.dims()[1]);
    let plane: usize = t.dims()[2..].iter().product();
    let mut out = Vec::new();
    for n in 0..b {
        for &k in keep {
            out.extend_from_slice(&t.data()[(n * c + k as usize) * plane..][..plane]);
        }
    }
    let mut dims = t.dims().to_vec();
    dims[1] = keep.len();
    Tensor::new(dims, out).unwrap()
}

/// Forward and both gradients against `conv2d` with groups R and padding k - 1, for a mask:
/// `Y` is the dense output's live channels, `dx` the dense one with the pruned kernels' weights
/// zero, `dw` the dense one on live kernels and zero on pruned ones.
#[allow(clippy::too_many_arguments)]
fn check_against_conv2d(
    reps: usize,
    nk: usize,
    k: usize,
    b: usize,
    h: usize,
    w: usize,
    mask: Vec<bool>,
    seed: u64,
) {
    let live = Rc::new(LiveChannels::from_mask(reps, nk, &mask).unwrap());
    let x = input([b, reps, h, w], seed);
    let wt = input([reps * nk, 1, k, k], seed + 1);
    let mut wz = wt.clone();
    for (i, v) in wz.data_mut().iter_mut().enumerate() {
        if !mask[i / (k * k)] {
            *v = 0.0;
        }
    }
    let p = Conv2dParams::new().pad(k - 1, k - 1).groups(reps);
    let (xd, wd) = (Var::param(x.clone()), Var::param(wz));
    let dense = conv2d(&xd, &wd, None, p).unwrap();
    let g = input(dense.shape(), seed + 2);
    crate::sum(&crate::mul(&dense, &Var::constant(g.clone())).unwrap())
        .unwrap()
        .backward()
        .unwrap();

    let (xs, ws) = (Var::param(x), Var::param(wt));
    let y = bank_conv(&xs, &ws, &live).unwrap();
    let gs = channels(&g, &live.channels);
    crate::sum(&crate::mul(&y, &Var::constant(gs)).unwrap())
        .unwrap()
        .backward()
        .unwrap();

    let cfg = format!("R{reps} nk{nk} k{k} B{b} {h}x{w} live {}", live.len());
    // Y and dx are bitwise equal (the same terms in the same order: pruned kernels add
    // exact zeros in the dense op); dw sums in another order: measured <= 4.8e-16 of the
    // largest element.
    let tol = 2e-15;
    let d = assert_close(
        &format!("{cfg} Y"),
        &y.value(),
        &channels(&dense.value(), &live.channels),
        Scale::Global,
        tol,
    );
    println!("{cfg}: Y {:e}", d.error());
    let d = assert_close(
        &format!("{cfg} dx"),
        &xs.grad().clone().unwrap(),
        &xd.grad().clone().unwrap(),
        Scale::Global,
        tol,
    );
    println!("{cfg}: dx {:e}", d.error());
    let mut dw_dense = wd.grad().clone().unwrap();
    for (i, v) in dw_dense.data_mut().iter_mut().enumerate() {
        if !mask[i / (k * k)] {
            *v = 0.0;
        }
    }
    let dw = ws.grad().clone().unwrap();
    let d = assert_close(&format!("{cfg} dw"), &dw, &dw_dense, Scale::Global, tol);
    println!("{cfg}: dw {:e}", d.error());
    for (i, v) in dw.data().iter().enumerate() {
        assert!(
            mask[i / (k * k)] || *v == 0.0,
            "{cfg}: pruned kernel {} has gradient {v}",
            i / (k * k)
        );
    }
}

#[test]
fn matches_grouped_conv2d_on_live_kernels() {
    check_against_conv2d(3, 5, 3, 2, 6, 7, vec![true; 15], 601);
    check_against_conv2d(3, 5, 3, 2, 6, 7, random_mask(3, 5, 0.5, 602), 602);
    check_against_conv2d(2, 4, 5, 1, 3, 9, random_mask(2, 4, 0.3, 603), 603);
    check_against_conv2d(2, 3, 1, 2, 4, 4, random_mask(2, 3, 0.7, 604), 604);
    check_against_conv2d(2, 3, 3, 1, 1, 1, random_mask(2, 3, 0.5, 605), 605);
    let mut one = vec![false; 8];
    one[6] = true;
    check_against_conv2d(2, 4, 3, 2, 5, 4, one, 606);
}

#[test]
fn every_kernel_pruned_gives_an_empty_y_and_zero_gradients() {
    let live = Rc::new(LiveChannels::from_mask(2, 3, &[false; 6]).unwrap());
    let x = Var::param(input([2, 2, 4, 4], 1));
    let w = Var::param(input([6, 1, 3, 3], 2));
    let y = bank_conv(&x, &w, &live).unwrap();
    assert_eq!(y.shape().dims(), &[2, 0, 6, 6]);
    let (h, v, i) = crate::shift_add::shift_add_sparse(
        &y,
        &Rc::new(
            crate::ShiftTables::random(7, 3, 2, 2, &mut shiftgrad_tensor::init::rng(3)).unwrap(),
        ),
        &live,
    )
    .unwrap();
    let total = crate::add_n(&[
        &crate::sum(&h).unwrap(),
        &crate::sum(&v).unwrap(),
        &crate::sum(&i).unwrap(),
    ])
    .unwrap();
    assert_eq!(total.value().item().unwrap(), 0.0);
    total.backward().unwrap();
    assert!(x.grad().clone().unwrap().data().iter().all(|&g| g == 0.0));
    assert!(w.grad().clone().unwrap().data().iter().all(|&g| g == 0.0));
}

#[test]
fn gradcheck_cases_pass() {
    for case in cases::cases() {
        let r = case.run().unwrap();
        assert!(r.passed(), "{}: {r:?}", case.config);
    }
}

#[test]
fn cost_counts_live_kernels() {
    let live = LiveChannels::from_mask(2, 3, &[true, false, true, false, false, true]).unwrap();
    let c = cost::<f32>(&Shape::from(vec![4, 2, 5, 6]), 3, &live).unwrap();
    // B*L*Hp*Wp*k^2 = 4*3*7*8*9 MACs forward, twice that backward (conv2d's convention).
    assert_eq!(c.forward.macs, 4 * 3 * 7 * 8 * 9);
    assert_eq!(c.forward.flops, 2 * c.forward.macs);
    assert_eq!(c.backward.macs, 2 * 4 * 3 * 7 * 8 * 9);
    // Every kernel live: exactly what conv2d counts for the bank (groups R, padding k - 1).
    let all = LiveChannels::all(2, 3);
    let dense = cost::<f32>(&Shape::from(vec![4, 2, 5, 6]), 3, &all).unwrap();
    let conv = crate::conv2d::cost::<f32>(
        &Shape::from(vec![4, 2, 5, 6]),
        &Shape::from(vec![6, 1, 3, 3]),
        &Conv2dParams::new().pad(2, 2).groups(2),
        false,
    )
    .unwrap();
    assert_eq!(
        (dense.forward.macs, dense.backward.macs),
        (conv.forward.macs, conv.backward.macs)
    );
    let x = 4 * 2 * 5 * 6;
    assert_eq!(c.forward.bytes, 4 * (x + 3 * 9 + 4 * 3 * 7 * 8) as u64);
    let dense = cost::<f32>(&Shape::from(vec![4, 2, 5, 6]), 3, &LiveChannels::all(2, 3)).unwrap();
    assert_eq!(dense.forward.macs * 3, c.forward.macs * 6);
}

#[test]
fn bad_shapes_are_errors() {
    let live = Rc::new(LiveChannels::all(2, 3));
    for (x, w, want) in [
        (
            input([1, 3, 4, 4], 2),
            input([6, 1, 3, 3], 1),
            "input has 3 channels",
        ),
        (input([1, 2, 4, 4], 2), input([6, 1, 3, 2], 1), "k odd"),
        (input([1, 2, 4, 4], 2), input([6, 1, 2, 2], 1), "k odd"),
        (
            input([1, 2, 4, 4], 2),
            input([6, 2, 3, 3], 1),
            "(R*nk, 1, k, k)",
        ),
        (input([1, 2, 4, 4], 2), input([5, 1, 3, 3], 1), "5 kernels"),
        (input([2, 4, 4], 2), input([6, 1, 3, 3], 1), "input"),
    ] {
        let err = bank_conv(&Var::param(x), &Var::param(w), &live)
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{err} (wanted {want:?})");
    }
}
