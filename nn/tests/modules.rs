//! Module-level tests: reparameterisation keeps outputs, state dicts round-trip (index tables
//! included), bad hyper-parameters are clear errors.

use shiftgrad_autograd::{no_grad, Var};
use shiftgrad_nn::baselines::{Spatial, SpatialKind};
use shiftgrad_nn::reparam::{fold_spatial, merge_paths};
use shiftgrad_nn::resnet::{ResNetConfig, SwResNet};
use shiftgrad_nn::{Mode, Module, ShiftWiseConv, SwConfig};
use shiftgrad_tensor::{compare, init, Real, Tensor};

fn cfg(
    channels: usize,
    big: usize,
    small: usize,
    ghost: f64,
    n_path: usize,
    n_rep: usize,
) -> SwConfig {
    SwConfig {
        channels,
        big_kernel: big,
        small_kernel: small,
        ghost_ratio: ghost,
        n_path,
        n_rep,
        seed: 3,
    }
}

/// Runs a few training-mode batches so that every batch-norm has non-trivial running
/// statistics, and randomises gamma/beta.
fn settle<T: Real, M: Module<T>>(m: &mut M, shape: [usize; 4], seed: u64) {
    let mut rng = init::rng(seed);
    let mut params = Vec::new();
    m.parameters("", &mut params);
    for p in params.iter().filter(|p| p.name.contains("bn")) {
        let t: Tensor<T> = init::uniform(p.var.shape(), 0.5, 1.5, &mut rng);
        p.var.set_value(t).unwrap();
    }
    no_grad(|| {
        for _ in 0..3 {
            let x = Var::constant(init::normal(shape, 0.3, 1.2, &mut rng));
            m.forward(&x, Mode::Train).unwrap();
        }
    });
}

/// Largest difference relative to the channel's largest `|b|` (NCHW); infinite when any
/// element is NaN or Inf.
fn rel_diff<T: Real>(a: &Tensor<T>, b: &Tensor<T>) -> f64 {
    let d = compare::diff(a, b, compare::Scale::PerChannel(1)).unwrap();
    eprintln!("measured: {d}");
    d.error()
}

fn eval<T: Real, M: Module<T>>(m: &mut M, x: &Tensor<T>) -> Tensor<T> {
    no_grad(|| {
        m.forward(&Var::constant(x.clone()), Mode::Eval)
            .unwrap()
            .value()
            .clone()
    })
}

#[test]
fn folded_sw_layer_equals_trained_form_f64() {
    for (c, big, small, ghost, p, g, h, w) in [
        (8, 13, 3, 0.23, 2, 4, 9, 11),
        (6, 10, 3, 0.0, 2, 2, 5, 4),
        (5, 51, 5, 0.3, 1, 3, 14, 9),
        (4, 49, 3, 0.5, 3, 1, 6, 60),
    ] {
        let mut sw = Spatial::<f64>::new(SpatialKind::Sw, cfg(c, big, small, ghost, p, g)).unwrap();
        settle(&mut sw, [2, c, h, w], 1);
        let x: Tensor<f64> = init::normal([2, c, h, w], 0.0, 1.0, &mut init::rng(2));
        let before = eval(&mut sw, &x);
        if let Spatial::Sw(s) = &mut sw {
            merge_paths(s).unwrap();
        }
        let merged = eval(&mut sw, &x);
        // Measured: 0 (merging the paths is exact here).
        assert!(rel_diff(&merged, &before) < 1e-15, "merge changed outputs");
        fold_spatial(&mut sw).unwrap();
        assert!(matches!(sw, Spatial::Folded(_)));
        let after = eval(&mut sw, &x);
        let d = rel_diff(&after, &before);
        // Measured: at most 8.3e-16 (per channel).
        assert!(d < 1e-14, "M={big} k={small}: folded differs by {d:e}");
    }
}

#[test]
fn folded_baselines_equal_trained_form() {
    for kind in [SpatialKind::Dense, SpatialKind::Slak, SpatialKind::Small] {
        let mut s = Spatial::<f64>::new(kind, cfg(4, 7, 3, 0.0, 1, 1)).unwrap();
        settle(&mut s, [2, 4, 6, 5], 4);
        let x: Tensor<f64> = init::normal([2, 4, 6, 5], 0.0, 1.0, &mut init::rng(5));
        let before = eval(&mut s, &x);
        fold_spatial(&mut s).unwrap();
        let d = rel_diff(&eval(&mut s, &x), &before);
        // Measured: at most 5.4e-16.
        assert!(d < 1e-14, "{kind}: {d:e}");
    }
}

fn small_net(spatial: SpatialKind, seed: u64) -> ResNetConfig {
    let mut c = ResNetConfig::preset("sw-resnet-tiny").unwrap();
    c.widths = vec![8, 12];
    c.depths = vec![1, 1];
    c.big_kernels = vec![7, 5];
    c.spatial = spatial;
    c.seed = seed;
    c
}

#[test]
fn reparameterised_network_gives_the_same_outputs() {
    let x64: Tensor<f64> = init::normal([2, 1, 12, 12], 0.0, 1.0, &mut init::rng(9));
    for kind in [
        SpatialKind::Sw,
        SpatialKind::Slak,
        SpatialKind::Dense,
        SpatialKind::Small,
    ] {
        let mut net = SwResNet::<f64>::new(small_net(kind, 1)).unwrap();
        settle(&mut net, [4, 1, 12, 12], 8);
        let before = eval(&mut net, &x64);
        net.reparameterize().unwrap();
        let d = rel_diff(&eval(&mut net, &x64), &before);
        // Measured: at most 5.5e-15 (logits, per class).
        assert!(d < 5e-14, "{kind} f64: {d:e}");
    }
    let x32: Tensor<f32> = x64.cast().unwrap();
    let mut net = SwResNet::<f32>::new(small_net(SpatialKind::Sw, 1)).unwrap();
    settle(&mut net, [4, 1, 12, 12], 8);
    let before = eval(&mut net, &x32);
    net.reparameterize().unwrap();
    let d = rel_diff(&eval(&mut net, &x32), &before);
    // Measured: 5.8e-7.
    assert!(d < 3e-6, "sw f32: {d:e}");
}

#[test]
fn state_dict_round_trips_with_tables() {
    let mut a = SwResNet::<f64>::new(small_net(SpatialKind::Sw, 11)).unwrap();
    settle(&mut a, [4, 1, 10, 10], 12);
    let dir = std::env::temp_dir().join(format!("shiftgrad-nn-sd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.npz");
    a.state_dict().unwrap().save(&path).unwrap();
    let sd = shiftgrad_nn::StateDict::<f64>::load(&path).unwrap();
    assert!(sd
        .names()
        .any(|n| n == "stages.0.blocks.0.spatial.bank.0.weight"));
    assert!(sd
        .names()
        .any(|n| n == "stages.0.blocks.0.spatial.bn_h.running_mean"));
    assert!(sd.names().any(|n| n == "stages.0.blocks.0.spatial.pad_hv"));
    // A network with another seed has other tables; loading restores ours.
    let mut b = SwResNet::<f64>::new(small_net(SpatialKind::Sw, 99)).unwrap();
    b.load_state("", &sd).unwrap();
    let x: Tensor<f64> = init::normal([2, 1, 10, 10], 0.0, 1.0, &mut init::rng(13));
    assert_eq!(eval(&mut a, &x), eval(&mut b, &x));
    // An incompatible checkpoint is an error naming the entry.
    let mut c = SwResNet::<f64>::new(small_net(SpatialKind::Dense, 1)).unwrap();
    let e = c.load_state("", &sd).unwrap_err().to_string();
    assert!(e.contains("stages.0.blocks.0.spatial"), "{e}");
}

#[test]
fn bad_hyper_parameters_are_clear_errors() {
    let err = |c: SwConfig| {
        ShiftWiseConv::<f32>::new(c)
            .err()
            .expect("should fail")
            .to_string()
    };
    assert!(
        err(cfg(8, 13, 4, 0.2, 2, 4)).contains("odd"),
        "{}",
        err(cfg(8, 13, 4, 0.2, 2, 4))
    );
    let e = err(cfg(8, 2, 3, 0.2, 2, 4));
    assert!(e.contains('2') && e.contains('3'), "{e}");
    let e = err(cfg(8, 13, 3, 1.0, 2, 4));
    assert!(e.contains("ghost ratio"), "{e}");
    let e = err(cfg(8, 13, 3, -0.1, 2, 4));
    assert!(e.contains("ghost ratio"), "{e}");
    let e = Spatial::<f32>::new(SpatialKind::Dense, cfg(8, 12, 3, 0.0, 1, 1))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("odd big kernel"), "{e}");
}

/// Merged-bank training (one convolution with the summed bank weights) against the P
/// convolutions it replaces: the same output, input gradient and parameter gradients (every
/// path's weight receives the shared gradient), in f64, training mode.
#[test]
fn merged_bank_training_equals_the_p_convolution_form_f64() {
    use shiftgrad_ops::{mul, sum};
    for (big, small, n_path) in [(13, 3, 2), (10, 3, 3), (51, 5, 2)] {
        let config = SwConfig {
            channels: 6,
            big_kernel: big,
            small_kernel: small,
            ghost_ratio: 0.23,
            n_path,
            n_rep: 2,
            seed: 9,
        };
        let x: Tensor<f64> = init::normal([2, 6, 9, 11], 0.0, 1.0, &mut init::rng(4));
        let run = |unmerged: bool| {
            let mut layer = ShiftWiseConv::<f64>::new(config).unwrap();
            layer.unmerged_banks = unmerged;
            let xv = Var::param(x.clone());
            let y = layer.forward(&xv, Mode::Train).unwrap();
            let g: Tensor<f64> = init::normal(y.shape(), 0.0, 1.0, &mut init::rng(5));
            sum(&mul(&y, &Var::constant(g)).unwrap())
                .unwrap()
                .backward()
                .unwrap();
            let mut out = vec![y.value().clone(), xv.grad().clone().unwrap()];
            let mut params = Vec::new();
            layer.parameters("", &mut params);
            out.extend(params.iter().map(|p| p.var.grad().clone().unwrap()));
            out
        };
        let (merged, reference) = (run(false), run(true));
        assert_eq!(merged.len(), reference.len());
        for (k, (m, r)) in merged.iter().zip(&reference).enumerate() {
            // Measured: at most 7.6e-15 (per channel; the sums of weights round differently).
            let scale = compare::Scale::PerChannel(if k < 2 { 1 } else { 0 });
            let d = compare::assert_close(
                &format!("M={big} P={n_path} tensor {k}"),
                m,
                r,
                scale,
                5e-14,
            );
            eprintln!("measured: M={big} P={n_path} tensor {k}: {d}");
        }
    }
}

/// A sparse layer (SPEC 1.6) equals the dense layer whose pruned kernels have zero weights:
/// forward, input gradient and every parameter gradient, with the pruned kernels' bank
/// gradients exactly zero, in f64.
#[test]
fn sparse_layer_equals_dense_layer_with_pruned_kernels_zero_f64() {
    use shiftgrad_ops::{mul, sum};
    let config = cfg(8, 13, 3, 0.25, 2, 2);
    let x: Tensor<f64> = init::normal([2, 8, 7, 9], 0.0, 1.0, &mut init::rng(11));
    let mut rng = init::rng(12);
    let kernels = ShiftWiseConv::<f64>::new(config).unwrap().kernels();
    let mask: Vec<bool> = (0..kernels)
        .map(|_| rand::Rng::gen_bool(&mut rng, 0.4))
        .collect();
    let run = |sparse: bool| {
        let mut layer = ShiftWiseConv::<f64>::new(config).unwrap();
        layer.set_mask(&mask).unwrap();
        if !sparse {
            layer.live = None; // the dense path over the zeroed weights
        }
        let xv = Var::param(x.clone());
        let y = layer.forward(&xv, Mode::Train).unwrap();
        let g: Tensor<f64> = init::normal(y.shape(), 0.0, 1.0, &mut init::rng(13));
        sum(&mul(&y, &Var::constant(g)).unwrap())
            .unwrap()
            .backward()
            .unwrap();
        let mut out = vec![y.value().clone(), xv.grad().clone().unwrap()];
        let mut params = Vec::new();
        layer.parameters("", &mut params);
        out.extend(params.iter().map(|p| p.var.grad().clone().unwrap()));
        out
    };
    let (sparse, dense) = (run(true), run(false));
    let k2 = 9;
    for (k, (s, d)) in sparse.iter().zip(&dense).enumerate() {
        let mut want = d.clone();
        if (2..4).contains(&k) {
            // The bank gradients: the dense op computes the pruned kernels' gradients, the
            // sparse one gives them zero.
            for (i, v) in want.data_mut().iter_mut().enumerate() {
                if !mask[i / k2] {
                    *v = 0.0;
                }
            }
            for (i, v) in s.data().iter().enumerate() {
                assert!(
                    mask[i / k2] || *v == 0.0,
                    "pruned kernel {} has gradient {v}",
                    i / k2
                );
            }
        }
        // Measured: 0 except the bank gradients, at most 1.1e-15 (their sums run in another
        // order: over samples and rows per kernel, against conv2d's blocking).
        let scale = compare::Scale::PerChannel(if k < 2 { 1 } else { 0 });
        let dd = compare::assert_close(&format!("tensor {k}"), s, &want, scale, 5e-15);
        eprintln!("measured: sparse tensor {k}: {dd}");
    }
}

#[test]
fn masks_round_trip_through_the_state_dict_and_bad_masks_are_errors() {
    let config = cfg(8, 13, 3, 0.25, 2, 2);
    let mut layer = ShiftWiseConv::<f64>::new(config).unwrap();
    let n = layer.kernels();
    let mask: Vec<bool> = (0..n).map(|i| i % 3 != 0).collect();
    layer.set_mask(&mask).unwrap();
    for b in &layer.banks {
        for (i, v) in b.value().data().iter().enumerate() {
            assert!(mask[i / 9] || *v == 0.0);
        }
    }
    let mut sd = shiftgrad_nn::StateDict::new();
    layer.save_state("s", &mut sd).unwrap();
    let (shape, values) = sd.int("s.mask").unwrap();
    assert_eq!(shape.dims(), &[n]);
    assert_eq!(
        values.iter().filter(|&&v| v == 1).count(),
        mask.iter().filter(|&&b| b).count()
    );
    let mut other = ShiftWiseConv::<f64>::new(cfg(8, 13, 3, 0.25, 2, 2)).unwrap();
    other.load_state("s", &sd).unwrap();
    assert_eq!(other.mask(), mask);
    // A dense checkpoint has no mask and loads as dense.
    let mut dense_sd = shiftgrad_nn::StateDict::new();
    ShiftWiseConv::<f64>::new(config)
        .unwrap()
        .save_state("s", &mut dense_sd)
        .unwrap();
    assert!(dense_sd.int("s.mask").is_err());
    other.load_state("s", &dense_sd).unwrap();
    assert!(other.live.is_none());
    // Wrong length, values other than 0/1.
    for (bad, want) in [
        (vec![1; n - 1], "entries"),
        (
            {
                let mut v = vec![1; n];
                v[2] = 2;
                v
            },
            "is 2",
        ),
    ] {
        let mut sd2 = shiftgrad_nn::StateDict::new();
        layer.save_state("s", &mut sd2).unwrap();
        sd2.insert_int("s.mask".into(), &[bad.len()], bad);
        let err = other.load_state("s", &sd2).unwrap_err().to_string();
        assert!(err.contains("s.mask") && err.contains(want), "{err}");
    }
    assert!(layer.set_mask(&mask[1..]).is_err());
}
