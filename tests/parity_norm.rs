//! OpenCL against the CPU reference for batch_norm2d (training and evaluation), linear,
//! global_avg_pool and cross_entropy: outputs and every gradient on random shapes in f32 and
//! f64, the running statistics after a training step, bitwise determinism, and the gradcheck
//! suite's cases of these ops run on the device. Skipped, with a note, where no OpenCL device
//! exists.
//!
//! Kernel timings at SW-ResNet sizes (release build, profiling events):
//! `cargo test --release --features opencl --test parity_norm -- --ignored --nocapture`

use proptest::prelude::*;
use shiftgrad::ops::device::with_gpu_shaped;
use shiftgrad::ops::parity::{compare, deterministic, fp64, opencl_device, ParityReport};
use shiftgrad::ops::suite::all_cases;
use shiftgrad::ops::{
    batch_norm2d_eval, batch_norm2d_train, cross_entropy, global_avg_pool, linear, Var,
};
use shiftgrad::tensor::compare as cmp;
use shiftgrad::tensor::{init, DType, Device, Real, Result, Tensor};

/// Measured on PoCL over the asserted quantities: batch-norm 5.2e-7 (f32) and 2.8e-13 (f64,
/// the variance's cancellation), cross-entropy 1.4e-7, pooling 1.1e-7, large shapes 2.3e-7,
/// linear 0.
const F32_TOL: f64 = 3e-6;
const F64_TOL: f64 = 1e-12;

/// Batch-norm inputs: x with a per-channel offset (so the mean matters), gamma away from 1,
/// beta away from 0, running statistics away from (0, 1).
struct BnInputs<T: Real> {
    x: Tensor<T>,
    gamma: Tensor<T>,
    beta: Tensor<T>,
    running_mean: Tensor<T>,
    running_var: Tensor<T>,
}

fn bn_inputs<T: Real>([n, c, h, w]: [usize; 4], seed: u64) -> BnInputs<T> {
    let mut rng = init::rng(seed);
    let offsets: Tensor<f64> = init::uniform([c], -2.0, 2.0, &mut rng);
    let x: Tensor<f64> = init::normal([n, c, h, w], 0.0, 1.5, &mut rng);
    let hw = h * w;
    let x = Tensor::from_fn([n, c, h, w], |i| {
        T::of_f64(x.data()[i] + offsets.data()[(i / hw) % c])
    });
    let u =
        |lo: f64, hi: f64, rng: &mut init::Rng| -> Tensor<T> { init::uniform([c], lo, hi, rng) };
    BnInputs {
        x,
        gamma: u(0.3, 1.8, &mut rng),
        beta: u(-1.0, 1.0, &mut rng),
        running_mean: u(-0.5, 0.5, &mut rng),
        running_var: u(0.5, 2.0, &mut rng),
    }
}

/// Training-mode batch-norm as a parity function: the running statistics start from the same
/// values on every call, copied to the device of x.
fn bn_train<T: Real>(
    v: &[Var<T>],
    running_mean: &Tensor<T>,
    running_var: &Tensor<T>,
    momentum: f64,
) -> Result<Var<T>> {
    let dev = v[0].value().device();
    let (mut rm, mut rv) = (running_mean.to_device(&dev)?, running_var.to_device(&dev)?);
    batch_norm2d_train(&v[0], &v[1], &v[2], &mut rm, &mut rv, momentum, 1e-5)
}

fn bn_eval<T: Real>(
    v: &[Var<T>],
    running_mean: &Tensor<T>,
    running_var: &Tensor<T>,
) -> Result<Var<T>> {
    let dev = v[0].value().device();
    let (rm, rv) = (running_mean.to_device(&dev)?, running_var.to_device(&dev)?);
    batch_norm2d_eval(&v[0], &v[1], &v[2], &rm, &rv, 1e-5)
}

/// Largest difference of the running statistics after one training step on the CPU and on
/// `dev`, relative to the magnitude of what the update combines (`max |old|, |new|` over the
/// channels): `keep * old + momentum * batch_stat` can cancel to ~0 in a channel, and no `T`
/// arithmetic recovers digits that its operands did not carry.
fn running_stats_diff<T: Real>(dev: &Device, inp: &BnInputs<T>, momentum: f64) -> f64 {
    let step = |device: &Device| -> (Tensor<T>, Tensor<T>) {
        let var = |t: &Tensor<T>| Var::constant(t.to_device(device).unwrap());
        let mut rm = inp.running_mean.to_device(device).unwrap();
        let mut rv = inp.running_var.to_device(device).unwrap();
        let (x, g, b) = (var(&inp.x), var(&inp.gamma), var(&inp.beta));
        batch_norm2d_train(&x, &g, &b, &mut rm, &mut rv, momentum, 1e-5).unwrap();
        assert!(rm.device().same(device) && rv.device().same(device));
        (rm.to_host().unwrap(), rv.to_host().unwrap())
    };
    let (cpu_m, cpu_v) = step(&Device::Cpu);
    let (dev_m, dev_v) = step(dev);
    // Relative to the larger of the new and old statistics; NaN or Inf anywhere is infinite.
    let rel = |d: &Tensor<T>, c: &Tensor<T>, old: &Tensor<T>| {
        let diff = cmp::diff(d, c, cmp::Scale::Absolute).unwrap();
        let scale = c.max_abs().unwrap().max(old.max_abs().unwrap()).max(1e-30);
        if diff.non_finite > 0 || !scale.is_finite() {
            f64::INFINITY
        } else {
            diff.max_abs / scale
        }
    };
    rel(&dev_m, &cpu_m, &inp.running_mean).max(rel(&dev_v, &cpu_v, &inp.running_var))
}

/// Batch-norm, both modes, on the CPU and on `dev`, every quantity relative to its largest
/// element. dgamma holds one sum per channel of `dy * xhat`; with `c < 3` in f32 a single
/// channel's sum may cancel to ~0 by chance, and then the f32 rounding of each term (xhat from
/// the f32 mean and inv_std) cannot match the f64-accumulated reference, so dgamma is checked
/// from 3 channels on in f32 (always in f64). dbeta, a compensated sum of the exact dy, is
/// checked always.
fn check_bn<T: Real>(dev: &Device, dims: [usize; 4], momentum: f64, seed: u64, tol: f64) {
    let inp = bn_inputs::<T>(dims, seed);
    let inputs = [inp.x.clone(), inp.gamma.clone(), inp.beta.clone()];
    let (rm, rv) = (&inp.running_mean, &inp.running_var);
    let dgamma_checked = T::DTYPE == DType::F64 || dims[1] >= 3;
    let check = |what: &str, r: ParityReport| {
        let [dx, dgamma, dbeta] = r.grads[..] else {
            unreachable!()
        };
        let asserted = [
            r.output,
            dx,
            dbeta,
            if dgamma_checked { dgamma } else { 0.0 },
        ];
        eprintln!(
            "bn {}: asserted measured {:.3e}",
            T::DTYPE,
            asserted.iter().fold(0.0f64, |m, &v| m.max(v))
        );
        assert!(
            r.output <= tol && dx <= tol && dbeta <= tol,
            "bn {what} {dims:?} {r:?}"
        );
        assert!(
            !dgamma_checked || dgamma <= tol,
            "bn {what} {dims:?} dgamma {r:?}"
        );
    };
    let train = |v: &[Var<T>]| bn_train(v, rm, rv, momentum);
    check(
        "train",
        compare(dev, &train, &inputs, &[true; 3], seed).unwrap(),
    );
    check(
        "eval",
        compare(dev, &|v| bn_eval(v, rm, rv), &inputs, &[true; 3], seed).unwrap(),
    );
    // Only some gradients asked for: the backward must still be right for those.
    for wrt in [[true, false, false], [false, false, true]] {
        let r = compare(dev, &train, &inputs, &wrt, seed).unwrap();
        assert!(
            r.max() <= tol,
            "bn train, gradients {wrt:?}, {dims:?} {r:?}"
        );
    }
    let d = running_stats_diff(dev, &inp, momentum);
    eprintln!("bn {}: asserted measured {d:.3e}", T::DTYPE);
    assert!(d <= tol, "bn running statistics {dims:?}: {d}");
}

fn check_linear<T: Real>(
    dev: &Device,
    [n, fin, fout]: [usize; 3],
    bias: bool,
    seed: u64,
    tol: f64,
) {
    let mut rng = init::rng(seed);
    let x: Tensor<T> = init::normal([n, fin], 0.0, 1.0, &mut rng);
    let w: Tensor<T> = init::normal([fout, fin], 0.0, 1.0, &mut rng);
    let b: Tensor<T> = init::normal([fout], 0.0, 1.0, &mut rng);
    let r = if bias {
        compare(
            dev,
            &|v| linear(&v[0], &v[1], Some(&v[2])),
            &[x, w, b],
            &[true; 3],
            seed,
        )
    } else {
        compare(
            dev,
            &|v| linear(&v[0], &v[1], None),
            &[x, w],
            &[true; 2],
            seed,
        )
    }
    .unwrap();
    assert!(
        r.max() <= tol,
        "linear [{n}, {fin}] -> {fout} bias {bias}: {r:?}"
    );
}

fn check_pool<T: Real>(dev: &Device, dims: [usize; 4], seed: u64, tol: f64) {
    let x: Tensor<T> = init::normal(dims, 0.5, 1.0, &mut init::rng(seed));
    let r = compare(dev, &|v| global_avg_pool(&v[0]), &[x], &[true], seed).unwrap();
    assert!(r.max() <= tol, "global_avg_pool {dims:?}: {r:?}");
}

/// Uneven logits: a wide spread, and one row shifted far up, so the max subtraction matters.
fn ce_inputs<T: Real>(n: usize, k: usize, seed: u64) -> (Tensor<T>, Vec<usize>) {
    let mut rng = init::rng(seed);
    let raw: Tensor<f64> = init::normal([n, k], 0.0, 4.0, &mut rng);
    let shift = rng_index(seed, n);
    let logits = Tensor::from_fn([n, k], |i| {
        T::of_f64(raw.data()[i] + if i / k == shift { 30.0 } else { 0.0 })
    });
    let labels = (0..n).map(|i| (i * 7 + seed as usize) % k).collect();
    (logits, labels)
}

fn rng_index(seed: u64, n: usize) -> usize {
    (seed as usize * 2654435761) % n
}

fn check_ce<T: Real>(dev: &Device, n: usize, k: usize, seed: u64, tol: f64) {
    let (logits, labels) = ce_inputs::<T>(n, k, seed);
    let r = compare(
        dev,
        &|v| cross_entropy(&v[0], &labels),
        &[logits],
        &[true],
        seed,
    )
    .unwrap();
    assert!(r.max() <= tol, "cross_entropy [{n}, {k}]: {r:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn batch_norm_matches_cpu(
        n in 1usize..5, c in 1usize..6, h in 1usize..13, w in 1usize..13,
        momentum in 0.0f64..1.0, seed in 0u64..1000, gpu in any::<bool>(),
    ) {
        // With 2 values per channel the training dx is zero up to eps (xhat = +-1 and the
        // projection removes both directions), so both sides are rounding noise; with 3 it is
        // often nearly so. From 4 values on the comparison measures the kernels.
        prop_assume!(n * h * w >= 4);
        let Some(dev) = opencl_device() else { return Ok(()) };
        // Either form of the kernels: segments of 64 elements per work-item, or GPU-shaped.
        with_gpu_shaped(gpu, || {
            check_bn::<f32>(&dev, [n, c, h, w], momentum, seed, F32_TOL);
            if fp64(&dev, "f64 parity") {
                check_bn::<f64>(&dev, [n, c, h, w], momentum, seed, F64_TOL);
            }
        });
    }

    #[test]
    fn linear_matches_cpu(
        n in 1usize..45, fin in 1usize..70, fout in 1usize..40, bias: bool, seed in 0u64..1000,
    ) {
        let Some(dev) = opencl_device() else { return Ok(()) };
        check_linear::<f32>(&dev, [n, fin, fout], bias, seed, F32_TOL);
        if fp64(&dev, "f64 parity") {
            check_linear::<f64>(&dev, [n, fin, fout], bias, seed, F64_TOL);
        }
    }

    #[test]
    fn global_avg_pool_matches_cpu(
        n in 1usize..5, c in 1usize..6, h in 1usize..12, w in 1usize..12, seed in 0u64..1000,
    ) {
        let Some(dev) = opencl_device() else { return Ok(()) };
        check_pool::<f32>(&dev, [n, c, h, w], seed, F32_TOL);
        if fp64(&dev, "f64 parity") {
            check_pool::<f64>(&dev, [n, c, h, w], seed, F64_TOL);
        }
    }

    #[test]
    fn cross_entropy_matches_cpu(n in 1usize..150, k in 1usize..20, seed in 0u64..1000) {
        let Some(dev) = opencl_device() else { return Ok(()) };
        check_ce::<f32>(&dev, n, k, seed, F32_TOL);
        if fp64(&dev, "f64 parity") {
            check_ce::<f64>(&dev, n, k, seed, F64_TOL);
        }
    }
}

/// Channels larger than a work-group several times over, planes smaller than one, and a
/// linear layer spanning several tiles in every dimension.
#[test]
fn large_shapes_match_cpu() {
    let Some(dev) = opencl_device() else { return };
    check_bn::<f32>(&dev, [8, 3, 17, 19], 0.1, 1, F32_TOL);
    check_bn::<f32>(&dev, [64, 2, 7, 7], 0.1, 2, F32_TOL);
    check_linear::<f32>(&dev, [70, 130, 65], true, 3, F32_TOL);
    check_pool::<f32>(&dev, [3, 4, 28, 28], 4, F32_TOL);
    check_ce::<f32>(&dev, 300, 10, 5, F32_TOL);
    if fp64(&dev, "f64 parity") {
        check_bn::<f64>(&dev, [8, 3, 17, 19], 0.1, 1, F64_TOL);
        check_linear::<f64>(&dev, [70, 130, 65], false, 3, F64_TOL);
    }
}

/// Every row confident and correct: the loss and gradient are ~1e-11 to 1e-13 and must still
/// agree to f32 precision (the device keeps `m` and `log1p` of the tail apart, as the CPU does).
#[test]
fn confident_rows_match_cpu() {
    let Some(dev) = opencl_device() else { return };
    let logits = Tensor::<f32>::new(
        [3, 3],
        vec![30.0, 0.0, 1.0, 0.0, -25.0, -28.0, -3.0, 26.0, 2.0],
    )
    .unwrap();
    let labels = [0, 0, 1];
    let r = compare(
        &dev,
        &|v| cross_entropy(&v[0], &labels),
        &[logits],
        &[true],
        3,
    )
    .unwrap();
    assert!(r.max() <= F32_TOL, "{r:?}");
}

#[test]
fn mixed_devices_are_an_error() {
    let Some(dev) = opencl_device() else { return };
    let inp = bn_inputs::<f32>([2, 3, 4, 4], 9);
    let on = |t: &Tensor<f32>| Var::constant(t.to_device(&dev).unwrap());
    let (x, g, b) = (on(&inp.x), on(&inp.gamma), on(&inp.beta));
    // Running statistics on the host, x on the device.
    let (mut rm, mut rv) = (inp.running_mean.clone(), inp.running_var.clone());
    let err = batch_norm2d_train(&x, &g, &b, &mut rm, &mut rv, 0.1, 1e-5).unwrap_err();
    assert!(err.to_string().contains("different devices"), "{err}");
    let err = batch_norm2d_eval(&x, &g, &b, &rm, &rv, 1e-5).unwrap_err();
    assert!(err.to_string().contains("different devices"), "{err}");
    let host_w = Var::constant(Tensor::<f32>::ones([5, 16]));
    let x2 = Var::constant(Tensor::<f32>::ones([3, 16]).to_device(&dev).unwrap());
    let err = linear(&x2, &host_w, None).unwrap_err();
    assert!(err.to_string().contains("different devices"), "{err}");
}

/// The GPU-shaped batch-norm (`device::gpu_shaped`: the same kernels with an element per
/// work-item) at the network's sizes, against the CPU, in both modes.
#[test]
fn gpu_shaped_batch_norm_matches_cpu() {
    let Some(dev) = opencl_device() else { return };
    with_gpu_shaped(true, || {
        for (i, dims) in [[16, 32, 28, 28], [64, 8, 7, 7], [3, 5, 13, 11]]
            .into_iter()
            .enumerate()
        {
            check_bn::<f32>(&dev, dims, 0.1, 60 + i as u64, F32_TOL);
        }
    });
}

#[test]
fn kernels_are_deterministic() {
    let Some(dev) = opencl_device() else { return };
    let inp = bn_inputs::<f32>([8, 4, 15, 13], 11);
    let (rm, rv) = (&inp.running_mean, &inp.running_var);
    let bn_in = [inp.x.clone(), inp.gamma.clone(), inp.beta.clone()];
    assert!(deterministic(&dev, &|v| bn_train(v, rm, rv, 0.1), &bn_in, &[true; 3]).unwrap());
    assert!(deterministic(&dev, &|v| bn_eval(v, rm, rv), &bn_in, &[true; 3]).unwrap());
    let mut rng = init::rng(12);
    let x: Tensor<f32> = init::normal([50, 70], 0.0, 1.0, &mut rng);
    let w: Tensor<f32> = init::normal([33, 70], 0.0, 1.0, &mut rng);
    let b: Tensor<f32> = init::normal([33], 0.0, 1.0, &mut rng);
    let f = |v: &[Var<f32>]| linear(&v[0], &v[1], Some(&v[2]));
    assert!(deterministic(&dev, &f, &[x, w, b], &[true; 3]).unwrap());
    let x: Tensor<f32> = init::normal([4, 6, 9, 9], 0.0, 1.0, &mut rng);
    assert!(deterministic(&dev, &|v| global_avg_pool(&v[0]), &[x], &[true]).unwrap());
    let (logits, labels) = ce_inputs::<f32>(200, 10, 13);
    let f = |v: &[Var<f32>]| cross_entropy(&v[0], &labels);
    assert!(deterministic(&dev, &f, &[logits], &[true]).unwrap());
}

/// The gradcheck suite's cases of these ops, every evaluation on the device (f64).
#[test]
fn gradcheck_suite_on_device() {
    let Some(dev) = opencl_device() else { return };
    if !fp64(&dev, "f64 gradcheck suite on the device") {
        return;
    }
    let ops = ["batch_norm2d", "linear", "global_avg_pool", "cross_entropy"];
    let cases: Vec<_> = all_cases()
        .into_iter()
        .filter(|c| ops.contains(&c.op))
        .collect();
    assert!(cases.len() >= 7, "expected the suite's cases of {ops:?}");
    for case in &cases {
        let report = case.run_on(&dev).unwrap();
        assert!(report.passed(), "{} {}: {report:?}", case.op, case.config);
    }
}

/// Device time per kernel of one training step's forward + backward at SW-ResNet sizes (f32,
/// batch 64), from the profiling events: batch-norm at the three stage shapes, and the head
/// (global average pool of (64, 128, 7, 7), linear 128 -> 10, cross-entropy over 10 classes).
/// Prints a table; not a pass/fail test.
#[test]
#[ignore]
fn kernel_times() {
    let Some(Device::OpenCl(ctx)) = opencl_device() else {
        return;
    };
    let dev = Device::OpenCl(ctx.clone());
    let on = |t: &Tensor<f32>| t.to_device(&dev).unwrap();
    let reps = 10;
    let report = |title: String, programs: &[&str]| {
        let times = ctx.kernel_times().unwrap();
        let mut total = 0.0;
        println!("{title}, mean of {reps}:");
        for t in times
            .iter()
            .filter(|t| programs.contains(&t.program.as_str()))
        {
            let ms = t.device_ns as f64 / 1e6 / reps as f64;
            total += ms;
            println!("  {:<22} {ms:8.3} ms", t.kernel);
        }
        println!("  {:<22} {total:8.3} ms", "total");
    };
    for dims in [[64, 32, 28, 28], [64, 64, 14, 14], [64, 128, 7, 7]] {
        let inp = bn_inputs::<f32>(dims, 1);
        let x = Var::leaf(on(&inp.x), true);
        let g = Var::leaf(on(&inp.gamma), true);
        let b = Var::leaf(on(&inp.beta), true);
        let (mut rm, mut rv) = (on(&inp.running_mean), on(&inp.running_var));
        let dy = on(&init::normal(dims, 0.0, 1.0, &mut init::rng(2)));
        let mut step = || {
            let y = batch_norm2d_train(&x, &g, &b, &mut rm, &mut rv, 0.1, 1e-5).unwrap();
            y.backward_with(dy.try_clone().unwrap()).unwrap();
            for v in [&x, &g, &b] {
                v.zero_grad();
            }
        };
        step(); // compile and warm up
        ctx.finish().unwrap();
        ctx.reset_kernel_times();
        for _ in 0..reps {
            step();
        }
        report(
            format!("batch_norm2d train fwd+bwd {dims:?} f32"),
            &["batch_norm"],
        );
    }
    let mut rng = init::rng(3);
    let x = Var::leaf(on(&init::normal([64, 128, 7, 7], 0.0, 1.0, &mut rng)), true);
    let w = Var::leaf(on(&init::normal([10, 128], 0.0, 0.1, &mut rng)), true);
    let b = Var::leaf(on(&init::normal([10], 0.0, 0.1, &mut rng)), true);
    let labels: Vec<usize> = (0..64).map(|i| i % 10).collect();
    let step = || {
        let pooled = global_avg_pool(&x).unwrap();
        let logits = linear(&pooled, &w, Some(&b)).unwrap();
        cross_entropy(&logits, &labels).unwrap().backward().unwrap();
        for v in [&x, &w, &b] {
            v.zero_grad();
        }
    };
    step();
    ctx.finish().unwrap();
    ctx.reset_kernel_times();
    for _ in 0..reps {
        step();
    }
    report(
        "head: pool (64, 128, 7, 7) -> linear 128 -> 10 -> cross-entropy, fwd+bwd f32".into(),
        &["pool", "linear", "cross_entropy"],
    );
}
