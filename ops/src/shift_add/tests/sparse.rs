//! Sparse (SPEC 1.6).

use super::*;

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
