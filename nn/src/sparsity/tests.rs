//! Tests of the sparsity host side: densities, SNIP and uniform initial masks, the prune
//! schedule, prune/regrow and the checkpoint form of a mask.

use super::*;
use shiftgrad_tensor::init::rng;

fn count(mask: &[bool]) -> usize {
    mask.iter().filter(|&&b| b).count()
}

#[test]
fn names_round_trip_and_bad_names_are_errors() {
    for s in ["snip", "snip-topk", "uniform"] {
        assert_eq!(s.parse::<SparseInit>().unwrap().to_string(), s);
    }
    for s in ["random", "gradient"] {
        assert_eq!(s.parse::<Growth>().unwrap().to_string(), s);
    }
    let e = "topk".parse::<SparseInit>().unwrap_err().to_string();
    assert!(e.contains("snip, snip-topk or uniform"), "{e}");
    let e = "momentum".parse::<Growth>().unwrap_err().to_string();
    assert!(e.contains("random or gradient"), "{e}");
}

#[test]
fn default_and_invalid_configs() {
    let d = SparseConfig::default();
    assert_eq!(d.sparsity, 0.3);
    assert_eq!(d.init, SparseInit::Snip);
    assert_eq!(d.prune_rate, 0.3);
    assert_eq!(d.prune_every, 100);
    assert_eq!(d.growth, Growth::Random);
    d.validate().unwrap();
    SparseConfig {
        sparsity: 0.0,
        prune_rate: 1.0,
        ..d
    }
    .validate()
    .unwrap();
    for bad in [
        SparseConfig { sparsity: 1.0, ..d },
        SparseConfig {
            sparsity: -0.1,
            ..d
        },
        SparseConfig {
            sparsity: f64::NAN,
            ..d
        },
        SparseConfig {
            prune_rate: 1.5,
            ..d
        },
        SparseConfig {
            prune_rate: -0.01,
            ..d
        },
        SparseConfig {
            prune_every: 0,
            ..d
        },
    ] {
        let e = bad.validate().unwrap_err();
        assert!(matches!(e, Error::Arg { .. }), "{e}");
    }
    assert!(SparseConfig::default().validate().is_ok());
    assert!(d.prune_due(100) && d.prune_due(200));
    assert!(!d.prune_due(0) && !d.prune_due(99) && !d.prune_due(101));
}

#[test]
fn schedule_endpoints_and_monotonicity() {
    let t = 1000;
    assert!((prune_fraction(0.3, 0, t) - 0.3).abs() < 1e-15);
    assert!((prune_fraction(0.3, t, t) - PRUNE_RATE_END).abs() < 1e-15);
    assert!((prune_fraction(0.3, 5 * t, t) - PRUNE_RATE_END).abs() < 1e-15);
    let mid = (0.3 + PRUNE_RATE_END) / 2.0;
    assert!((prune_fraction(0.3, t / 2, t) - mid).abs() < 1e-12);
    assert_eq!(prune_fraction(0.3, 0, 0), PRUNE_RATE_END);
    let mut prev = f64::INFINITY;
    for s in 0..=t {
        let r = prune_fraction(0.3, s, t);
        assert!(r <= prev, "step {s}: {r} > {prev}");
        assert!((PRUNE_RATE_END..=0.3).contains(&r));
        prev = r;
    }
}

#[test]
fn live_counts_global_for_snip_per_layer_for_uniform() {
    let scores = vec![
        vec![0.9, 0.8, 0.7, 0.6, 0.5],
        vec![0.01, 0.02, 0.03],
        vec![0.4, 0.3, 0.2, 0.1, 0.95, 0.85, 0.75],
    ];
    let total = 15;
    for s in [0.0, 0.1, 0.3, 0.5, 0.77, 0.99] {
        let target = ((1.0 - s) * total as f64).round() as usize;
        for init in [SparseInit::Snip, SparseInit::SnipTopk] {
            let c = live_counts(&scores, s, init);
            assert_eq!(c.iter().sum::<usize>(), target, "s={s}");
            for (cl, sl) in c.iter().zip(&scores) {
                assert!(*cl <= sl.len());
            }
        }
        let u = live_counts(&scores, s, SparseInit::Uniform);
        let want: Vec<usize> = scores
            .iter()
            .map(|l| ((1.0 - s) * l.len() as f64).round() as usize)
            .collect();
        assert_eq!(u, want, "s={s}");
    }
    // Half of 15 rounds to 8 kept: the 8 largest are 0.95 0.9 0.85 0.8 0.75 0.7 0.6 0.5.
    assert_eq!(live_counts(&scores, 0.5, SparseInit::Snip), vec![5, 0, 3]);
    // The small layer can be left with nothing (as in the reference).
    assert_eq!(live_counts(&scores, 0.5, SparseInit::Snip)[1], 0);
    // Ties go to the earlier layer, then the lower index.
    let tied = vec![vec![1.0; 4], vec![1.0; 4]];
    assert_eq!(live_counts(&tied, 0.5, SparseInit::Snip), vec![4, 0]);
    let tied = vec![vec![1.0; 4], vec![1.0; 4]];
    assert_eq!(live_counts(&tied, 0.75, SparseInit::Snip), vec![2, 0]);
    // NaN ranks lowest.
    let nan = vec![vec![f64::NAN, 0.1], vec![0.2]];
    assert_eq!(live_counts(&nan, 0.4, SparseInit::Snip), vec![1, 1]);
}

#[test]
fn topk_keeps_the_top() {
    let scores = vec![vec![0.5, 0.1, 0.9, 0.3, 0.7, 0.2], vec![0.05, 0.6]];
    let cfg = SparseConfig {
        sparsity: 0.5,
        init: SparseInit::SnipTopk,
        ..SparseConfig::default()
    };
    let mut r = rng(1);
    let masks = init_masks(&scores, &cfg, &mut r);
    // 4 kept of 8: 0.9, 0.7, 0.6, 0.5.
    assert_eq!(
        masks,
        vec![
            vec![true, false, true, false, true, false],
            vec![false, true]
        ]
    );
    // Top-k draws nothing.
    assert_eq!(r.gen::<u64>(), rng(1).gen::<u64>());
}

#[test]
fn random_init_draws_the_count_and_repeats_from_the_seed() {
    let scores: Vec<Vec<f64>> = (0..4)
        .map(|l| {
            (0..50)
                .map(|i| ((l * 50 + i) as f64 * 0.37).sin().abs())
                .collect()
        })
        .collect();
    for init in [SparseInit::Snip, SparseInit::Uniform] {
        let cfg = SparseConfig {
            sparsity: 0.4,
            init,
            ..SparseConfig::default()
        };
        let counts = live_counts(&scores, cfg.sparsity, init);
        let a = init_masks(&scores, &cfg, &mut rng(11));
        let b = init_masks(&scores, &cfg, &mut rng(11));
        let c = init_masks(&scores, &cfg, &mut rng(12));
        assert_eq!(a, b);
        assert_ne!(a, c);
        for (m, &n) in a.iter().zip(&counts) {
            assert_eq!(count(m), n);
            assert_eq!(m.len(), 50);
        }
        for (m, &n) in c.iter().zip(&counts) {
            assert_eq!(count(m), n);
        }
        assert_eq!(
            a.iter().map(|m| count(m)).sum::<usize>(),
            120,
            "{init}: 60 % of 200"
        );
    }
}

#[test]
fn sparsity_zero_is_all_live_and_draws_nothing() {
    let scores = vec![vec![0.3; 7], vec![0.0, 1.0, f64::NAN], vec![]];
    for init in [SparseInit::Snip, SparseInit::SnipTopk, SparseInit::Uniform] {
        let cfg = SparseConfig {
            sparsity: 0.0,
            init,
            ..SparseConfig::default()
        };
        let mut r = rng(5);
        let masks = init_masks(&scores, &cfg, &mut r);
        assert!(masks.iter().flatten().all(|&b| b), "{init}");
        assert_eq!(
            masks.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![7, 3, 0]
        );
        assert_eq!(
            r.gen::<u64>(),
            rng(5).gen::<u64>(),
            "{init} drew from the RNG"
        );
        assert_eq!(overall_density(&masks), 1.0);
    }
}

#[test]
fn prune_count_rounds_up() {
    assert_eq!(prune_count(0.3, 10), 3);
    assert_eq!(prune_count(0.31, 10), 4);
    assert_eq!(prune_count(0.005, 10), 1);
    assert_eq!(prune_count(0.0, 10), 0);
    assert_eq!(prune_count(f64::NAN, 10), 0);
    assert_eq!(prune_count(1.0, 10), 10);
    assert_eq!(prune_count(2.0, 10), 10);
    assert_eq!(prune_count(0.3, 0), 0);
}

/// A 20-kernel layer, 14 live (dead: 0 5 7 10 13 15); live magnitudes grow with the index.
fn layer() -> (Vec<bool>, Vec<f64>) {
    let mask: Vec<bool> = (0..20).map(|i| i % 5 != 0 && i != 7 && i != 13).collect();
    let mag: Vec<f64> = (0..20)
        .map(|i| if i % 5 != 0 { 1.0 + i as f64 } else { 0.0 })
        .collect();
    (mask, mag)
}

#[test]
fn prune_regrow_keeps_density_and_prunes_the_smallest() {
    let (mask0, mag) = layer();
    let live0 = count(&mask0);
    assert_eq!(live0, 14);
    for seed in 0..20 {
        let mut mask = mask0.clone();
        let st = prune_regrow(&mut mask, &mag, &[], 0.3, Growth::Random, &mut rng(seed));
        assert_eq!(count(&mask), live0, "seed {seed}");
        assert_eq!(density(&mask), density(&mask0));
        assert_eq!(st.pruned.len(), st.regrown.len());
        // ceil(0.3 * 14) = 5 selected: the live kernels 1 2 3 4 6 (smallest magnitudes).
        assert_eq!(st.selected(), 5);
        let mut sel = [st.pruned.clone(), st.revived.clone()].concat();
        sel.sort_unstable();
        assert_eq!(sel, vec![1, 2, 3, 4, 6]);
        for &i in &st.pruned {
            assert!(mask0[i] && !mask[i]);
        }
        for &i in &st.revived {
            assert!(mask0[i] && mask[i]);
        }
        // Regrown only among the kernels that were dead before.
        for &i in &st.regrown {
            assert!(!mask0[i] && mask[i], "seed {seed}: {i}");
        }
        // Nothing else moved.
        for i in 0..20 {
            let touched = sel.contains(&i) || st.regrown.contains(&i);
            if !touched {
                assert_eq!(mask[i], mask0[i]);
            }
        }
    }
    // Random growth is reproducible from the seed.
    let (mut a, mut b) = (mask0.clone(), mask0.clone());
    let sa = prune_regrow(&mut a, &mag, &[], 0.3, Growth::Random, &mut rng(3));
    let sb = prune_regrow(&mut b, &mag, &[], 0.3, Growth::Random, &mut rng(3));
    assert_eq!((a, sa), (b, sb));
}

#[test]
fn random_growth_can_revive_the_just_pruned_as_the_reference_does() {
    let (mask0, mag) = layer();
    let mut revived = 0;
    let mut regrown = 0;
    for seed in 0..200 {
        let mut mask = mask0.clone();
        let st = prune_regrow(&mut mask, &mag, &[], 0.3, Growth::Random, &mut rng(seed));
        revived += st.revived.len();
        regrown += st.regrown.len();
    }
    // 5 picks among 6 old dead + 5 just pruned: both kinds occur.
    assert!(revived > 0 && regrown > 0, "{revived} {regrown}");
}

#[test]
fn gradient_growth_picks_the_largest() {
    let (mask0, mag) = layer();
    let mut grad = vec![0.0; 20];
    // Dead before: 0 5 7 10 13 15; just pruned: 1 2 3 4 6.
    grad[10] = 5.0;
    grad[7] = 4.0;
    grad[2] = 3.0; // a just-pruned kernel with a large gradient is revived
    grad[15] = 3.0; // ties with 2; both fit in the 5
    grad[0] = 1.0;
    grad[5] = 1.0;
    grad[12] = 100.0; // live and not pruned: not a candidate
    let mut mask = mask0.clone();
    let mut r = rng(9);
    let st = prune_regrow(&mut mask, &mag, &grad, 0.3, Growth::Gradient, &mut r);
    // 5 largest candidates: 10 (5), 7 (4), 2 (3), 15 (3), 0 (1; beats 5 on index).
    assert_eq!(st.revived, vec![2]);
    assert_eq!(st.pruned, vec![1, 3, 4, 6]);
    assert_eq!(st.regrown, vec![0, 7, 10, 15]);
    assert!(mask[12] && mask[2] && !mask[5]);
    assert_eq!(count(&mask), count(&mask0));
    assert_eq!(r.gen::<u64>(), rng(9).gen::<u64>(), "gradient growth drew");
}

#[test]
fn fraction_zero_and_forced_choices_change_nothing() {
    let (mask0, mag) = layer();
    let mut mask = mask0.clone();
    let mut r = rng(4);
    let st = prune_regrow(&mut mask, &mag, &[], 0.0, Growth::Random, &mut r);
    assert_eq!(st, PruneStats::default());
    assert_eq!(mask, mask0);
    assert_eq!(r.clone().gen::<u64>(), rng(4).gen::<u64>());
    // All live: every candidate is regrown, nothing changes, no draws.
    let mut all = vec![true; 9];
    let m: Vec<f64> = (0..9).map(f64::from).collect();
    let st = prune_regrow(&mut all, &m, &[], 0.3, Growth::Random, &mut r);
    assert!(all.iter().all(|&b| b));
    assert!(st.pruned.is_empty() && st.regrown.is_empty());
    assert_eq!(st.revived, vec![0, 1, 2]);
    assert_eq!(r.clone().gen::<u64>(), rng(4).gen::<u64>());
    // All dead: nothing to prune.
    let mut none = vec![false; 9];
    let st = prune_regrow(&mut none, &m, &m, 0.3, Growth::Gradient, &mut r);
    assert_eq!(st, PruneStats::default());
    assert!(none.iter().all(|&b| !b));
}

#[test]
fn density_and_checkpoint_masks() {
    assert_eq!(density(&[true, false, true, true]), 0.75);
    assert_eq!(density(&[]), 1.0);
    assert_eq!(
        overall_density(&[vec![true, false], vec![false, false, true, true]]),
        0.5
    );
    let m = vec![true, false, true];
    let v = mask_to_i32(&m);
    assert_eq!(v, vec![1, 0, 1]);
    assert_eq!(mask_from_i32("x.spatial.mask", &v, 3).unwrap(), m);
    let e = mask_from_i32("x.spatial.mask", &v, 4)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("x.spatial.mask") && e.contains("3 entries"),
        "{e}"
    );
    let e = mask_from_i32("x.spatial.mask", &[1, 2, 0], 3)
        .unwrap_err()
        .to_string();
    assert!(e.contains("entry 1 is 2"), "{e}");
}
