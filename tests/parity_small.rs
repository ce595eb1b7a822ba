//! OpenCL against the CPU reference for the small ops (add, mul, add_n, gather_channels,
//! concat_channels, reshape) and the optimiser updates (sgd_step, adamw_step): random shapes,
//! outputs and every gradient, f32 and f64; determinism; the gradcheck suite's cases of these
//! ops on the device. Skipped, with a note, where no OpenCL device exists.

use proptest::prelude::*;
use rand::Rng;
use shiftgrad::ops::parity::{compare, deterministic, fp64, opencl_device, ParityFn};
use shiftgrad::ops::{
    adamw_step, add, add_n, add_relu, concat_channels, gather_channels, mul, reshape, sgd_step, Var,
};
use shiftgrad::tensor::compare as cmp;
use shiftgrad::tensor::{init, Device, Real, Result, Tensor};

/// Copies, additions and products in the same order on both backends: bitwise equal
/// (measured 0 on PoCL for every case), so any difference fails.
const F32_TOL: f64 = 0.0;
const F64_TOL: f64 = 0.0;
/// The optimiser steps (a square root and a division for AdamW): measured 0 on PoCL, but
/// OpenCL allows a few ulp for `sqrt` and division in f32, hence about 8 ulp.
const OPTIM_F32_TOL: f64 = 1e-6;
const OPTIM_F64_TOL: f64 = 1e-15;

thread_local! {
    /// One context per test thread, so that programs compile once per test, not per case.
    static DEVICE: Option<Device> = opencl_device();
}

fn device() -> Option<Device> {
    DEVICE.with(Clone::clone)
}

fn normal<T: Real>(dims: &[usize], seed: u64) -> Tensor<T> {
    init::normal(dims, 0.0, 1.0, &mut init::rng(seed))
}

/// Compares the f32 computation on seeded normal inputs of `dims` and, where the device has
/// fp64, the f64 one on the same inputs.
fn check_both(
    dev: &Device,
    what: &str,
    f32_fn: ParityFn<'_, f32>,
    f64_fn: ParityFn<'_, f64>,
    dims: &[Vec<usize>],
    wrt: &[bool],
    seed: u64,
) -> std::result::Result<(), TestCaseError> {
    let x32: Vec<Tensor<f32>> = dims
        .iter()
        .enumerate()
        .map(|(i, d)| normal(d, seed + i as u64))
        .collect();
    let r = compare(dev, f32_fn, &x32, wrt, seed).unwrap();
    prop_assert!(r.max() <= F32_TOL, "{what} f32 {r:?}");
    if fp64(dev, "f64 parity") {
        let x64: Vec<Tensor<f64>> = dims
            .iter()
            .enumerate()
            .map(|(i, d)| normal(d, seed + i as u64))
            .collect();
        let r = compare(dev, f64_fn, &x64, wrt, seed).unwrap();
        prop_assert!(r.max() <= F64_TOL, "{what} f64 {r:?}");
    }
    Ok(())
}

/// The same closure body for f32 and f64.
macro_rules! both {
    (|$v:ident| $body:expr) => {
        (
            &|$v: &[Var<f32>]| -> Result<Var<f32>> { $body },
            &|$v: &[Var<f64>]| -> Result<Var<f64>> { $body },
        )
    };
}

/// `count` entries in `0..range`, drawn from `seed` (repeats allowed).
fn draw(count: usize, range: usize, seed: u64) -> Vec<usize> {
    let mut rng = init::rng(seed);
    (0..count).map(|_| rng.gen_range(0..range)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn add_and_mul_match_cpu(n in 1usize..3, c in 1usize..5, h in 1usize..9, w in 1usize..9,
                             wrt_a in any::<bool>(), wrt_b in any::<bool>(), seed in 0u64..1000) {
        let Some(dev) = device() else { return Ok(()) };
        let dims = vec![vec![n, c, h, w]; 2];
        let (f32_fn, f64_fn) = both!(|v| add(&v[0], &v[1]));
        check_both(&dev, "add", f32_fn, f64_fn, &dims, &[wrt_a, wrt_b], seed)?;
        let (f32_fn, f64_fn) = both!(|v| mul(&v[0], &v[1]));
        check_both(&dev, "mul", f32_fn, f64_fn, &dims, &[wrt_a, wrt_b], seed)?;
    }

    /// 2 to 10 terms (more than 8 chains a second pass), drawn with repeats from a pool of
    /// distinct inputs, so that repeated inputs accumulate several gradients.
    #[test]
    fn add_n_with_repeats_matches_cpu(len in 1usize..200, terms in 2usize..=10, pool in 1usize..=6,
                                      seed in 0u64..1000) {
        let Some(dev) = device() else { return Ok(()) };
        let mut pick = draw(terms, pool, seed);
        pick[0] = 0; // input 0 takes a gradient, so the sum always has one to check
        let dims = vec![vec![len]; pool];
        let wrt: Vec<bool> = (0..pool).map(|i| i % 3 != 2).collect();
        let (f32_fn, f64_fn) = both!(|v| {
            let xs: Vec<&Var<_>> = pick.iter().map(|&i| &v[i]).collect();
            add_n(&xs)
        });
        check_both(&dev, "add_n", f32_fn, f64_fn, &dims, &wrt, seed)?;
        // The same sums activated in one op (more than 8 terms: add_n's passes, then relu).
        let (f32_fn, f64_fn) = both!(|v| {
            let xs: Vec<&Var<_>> = pick.iter().map(|&i| &v[i]).collect();
            add_relu(&xs)
        });
        check_both(&dev, "add_relu", f32_fn, f64_fn, &dims, &wrt, seed)?;
    }

    #[test]
    fn gather_with_repeats_matches_cpu(n in 1usize..3, c in 1usize..7, k in 1usize..10,
                                       h in 1usize..8, w in 1usize..8, seed in 0u64..1000) {
        let Some(dev) = device() else { return Ok(()) };
        let idx = draw(k, c, seed);
        let (f32_fn, f64_fn) = both!(|v| gather_channels(&v[0], &idx));
        check_both(&dev, "gather_channels", f32_fn, f64_fn, &[vec![n, c, h, w]], &[true], seed)?;
    }

    #[test]
    fn concat_matches_cpu(n in 1usize..3, chans in prop::collection::vec(1usize..5, 2..=4),
                          h in 1usize..8, w in 1usize..8, skip in 0usize..5, seed in 0u64..1000) {
        let Some(dev) = device() else { return Ok(()) };
        let dims: Vec<Vec<usize>> = chans.iter().map(|&c| vec![n, c, h, w]).collect();
        // One input (if skip < count) takes no gradient.
        let wrt: Vec<bool> = (0..dims.len()).map(|i| i != skip).collect();
        let (f32_fn, f64_fn) = both!(|v| concat_channels(&v.iter().collect::<Vec<_>>()));
        check_both(&dev, "concat_channels", f32_fn, f64_fn, &dims, &wrt, seed)?;
    }

    #[test]
    fn reshape_matches_cpu(a in 1usize..6, b in 1usize..6, c in 1usize..6, seed in 0u64..1000) {
        let Some(dev) = device() else { return Ok(()) };
        let (f32_fn, f64_fn) = both!(|v| reshape(&v[0], &[c, a * b]));
        check_both(&dev, "reshape", f32_fn, f64_fn, &[vec![a, b, c]], &[true], seed)?;
    }
}

/// Hyper-parameters of one optimiser under test.
#[derive(Clone, Copy, Debug)]
enum Optim {
    Sgd {
        momentum: f64,
        nesterov: bool,
        wd: f64,
    },
    AdamW {
        b1: f64,
        b2: f64,
        eps: f64,
        wd: f64,
    },
}

/// Runs `steps` updates of `opt` from the same start on `device`; returns the parameter and
/// the state tensors (on the host).
fn run_optim<T: Real>(
    device: &Device,
    opt: Optim,
    len: usize,
    steps: usize,
    seed: u64,
) -> Vec<Tensor<T>> {
    let mut w = normal::<T>(&[len], seed).to_device(device).unwrap();
    let (mut s1, mut s2) = (None, None);
    for step in 1..=steps {
        let g = normal::<T>(&[len], seed + 1000 * step as u64)
            .to_device(device)
            .unwrap();
        let lr = 0.05 * step as f64;
        match opt {
            Optim::Sgd {
                momentum,
                nesterov,
                wd,
            } => sgd_step(&mut w, &g, &mut s1, lr, momentum, nesterov, wd).unwrap(),
            Optim::AdamW { b1, b2, eps, wd } => adamw_step(
                &mut w,
                &g,
                &mut s1,
                &mut s2,
                step as u64,
                lr,
                b1,
                b2,
                eps,
                wd,
            )
            .unwrap(),
        }
    }
    for s in [&s1, &s2].into_iter().flatten() {
        assert!(
            s.device().same(device),
            "optimiser state stays on the device"
        );
    }
    [Some(w), s1, s2]
        .into_iter()
        .flatten()
        .map(|t| t.to_host().unwrap())
        .collect()
}

fn optim_diff<T: Real>(dev: &Device, opt: Optim, len: usize, steps: usize, seed: u64) -> f64 {
    let cpu = run_optim::<T>(&Device::Cpu, opt, len, steps, seed);
    let gpu = run_optim::<T>(dev, opt, len, steps, seed);
    assert_eq!(cpu.len(), gpu.len());
    cmp::nan_max(
        cpu.iter()
            .zip(&gpu)
            .map(|(c, d)| cmp::diff(d, c, cmp::Scale::Global).unwrap().error()),
    )
}

fn check_optim(
    dev: &Device,
    opt: Optim,
    len: usize,
    steps: usize,
    seed: u64,
) -> std::result::Result<(), TestCaseError> {
    let d = optim_diff::<f32>(dev, opt, len, steps, seed);
    eprintln!("optim f32: measured {d:.3e}");
    prop_assert!(d <= OPTIM_F32_TOL, "{opt:?} f32 {d}");
    if fp64(dev, "f64 parity") {
        let d = optim_diff::<f64>(dev, opt, len, steps, seed);
        eprintln!("optim f64: measured {d:.3e}");
        prop_assert!(d <= OPTIM_F64_TOL, "{opt:?} f64 {d}");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Two or three steps, so that the momentum buffer is both created and accumulated.
    #[test]
    fn sgd_steps_match_cpu(momentum in prop_oneof![1 => Just(0.0), 3 => 0.5f64..0.99],
                           nesterov in any::<bool>(), wd in prop_oneof![Just(0.0), 1e-4f64..1e-1],
                           len in 1usize..300, steps in 2usize..4, seed in 0u64..1000) {
        let Some(dev) = device() else { return Ok(()) };
        check_optim(&dev, Optim::Sgd { momentum, nesterov, wd }, len, steps, seed)?;
    }

    #[test]
    fn adamw_steps_match_cpu(b1 in 0.5f64..0.95, b2 in 0.9f64..0.9999, eps in 1e-10f64..1e-6,
                             wd in prop_oneof![Just(0.0), 1e-4f64..1e-1],
                             len in 1usize..300, steps in 1usize..4, seed in 0u64..1000) {
        let Some(dev) = device() else { return Ok(()) };
        check_optim(&dev, Optim::AdamW { b1, b2, eps, wd }, len, steps, seed)?;
    }
}

#[test]
fn gather_of_no_channels_and_zero_size_maps() {
    let Some(dev) = device() else { return };
    let x: Tensor<f32> = normal(&[2, 3, 4, 4], 1);
    let r = compare(&dev, &|v| gather_channels(&v[0], &[]), &[x], &[true], 1).unwrap();
    assert_eq!(r.max(), 0.0, "{r:?}");
    let e: Tensor<f32> = Tensor::zeros([2, 3, 0, 4]);
    let r = compare(&dev, &|v| gather_channels(&v[0], &[2, 2]), &[e], &[true], 1).unwrap();
    assert_eq!(r.max(), 0.0, "{r:?}");
}

#[test]
fn mixed_devices_are_an_error() {
    let Some(dev) = device() else { return };
    let a = Var::constant(Tensor::<f32>::ones([4]));
    let b = Var::constant(Tensor::<f32>::ones([4]).to_device(&dev).unwrap());
    for e in [
        add(&a, &b).err(),
        mul(&a, &b).err(),
        concat_channels(&[
            &Var::constant(Tensor::<f32>::ones([1, 1, 2, 2])),
            &Var::constant(Tensor::ones([1, 1, 2, 2]).to_device(&dev).unwrap()),
        ])
        .err(),
    ] {
        let e = e.expect("mixed devices must fail").to_string();
        assert!(e.contains("different devices"), "{e}");
    }
    let mut w = Tensor::<f32>::ones([4]);
    let g = Tensor::<f32>::ones([4]).to_device(&dev).unwrap();
    let e = sgd_step(&mut w, &g, &mut None, 0.1, 0.9, false, 0.0).unwrap_err();
    assert!(e.to_string().starts_with("sgd_step: "), "{e}");
}

#[test]
fn small_ops_and_optimiser_steps_are_deterministic() {
    let Some(dev) = device() else { return };
    let x: Vec<Tensor<f32>> = (0..3).map(|i| normal(&[2, 5, 7, 9], i)).collect();
    let f = |v: &[Var<f32>]| {
        let g = gather_channels(&v[0], &[4, 1, 4, 0, 4, 2])?;
        let s = add_n(&[
            &v[0], &v[1], &v[2], &v[0], &v[1], &v[2], &v[0], &v[1], &v[2],
        ])?;
        let s = mul(&s, &v[1])?;
        let c = concat_channels(&[&g, &s])?;
        reshape(&c, &[2, 11 * 63])
    };
    assert!(deterministic(&dev, &f, &x, &[true, true, true]).unwrap());
    for opt in [
        Optim::Sgd {
            momentum: 0.9,
            nesterov: true,
            wd: 1e-3,
        },
        Optim::AdamW {
            b1: 0.9,
            b2: 0.999,
            eps: 1e-8,
            wd: 1e-2,
        },
    ] {
        let a = run_optim::<f32>(&dev, opt, 1001, 3, 7);
        let b = run_optim::<f32>(&dev, opt, 1001, 3, 7);
        assert_eq!(a, b, "{opt:?}");
    }
}

#[test]
fn gradcheck_suite_cases_pass_on_the_device() {
    let Some(dev) = device() else { return };
    let mine = [
        "add",
        "add_relu",
        "mul",
        "gather_channels",
        "concat_channels",
        "reshape",
    ];
    let cases: Vec<_> = shiftgrad::ops::suite::all_cases()
        .into_iter()
        .filter(|c| mine.contains(&c.op))
        .collect();
    assert!(cases.len() >= 10, "expected every case of {mine:?}");
    for case in &cases {
        let report = case.run_on(&dev).unwrap();
        assert!(report.passed(), "{} {}: {report:?}", case.op, case.config);
    }
}

/// The gather's index tables are uploaded once per distinct table: a second gather (and its
/// backward) with the same channel list allocates only its output, with no blocking write.
#[test]
fn gather_tables_are_uploaded_once() {
    let Some(dev) = device() else { return };
    let Device::OpenCl(ctx) = &dev else {
        unreachable!()
    };
    let allocations = || {
        let s = ctx.pool_stats();
        s.fresh_allocations + s.reuses
    };
    let x = normal::<f32>(&[2, 5, 3, 4], 1).to_device(&dev).unwrap();
    let run = |idx: &[usize]| {
        let xv = Var::leaf(x.clone(), true);
        let y = gather_channels(&xv, idx).unwrap();
        y.backward_with(Tensor::ones(y.shape()).to_device(&dev).unwrap())
            .unwrap();
    };
    run(&[4, 0, 2]);
    // Again: the input copy, the output, its seed gradient and dx; no table.
    let before = allocations();
    run(&[4, 0, 2]);
    let again = allocations() - before;
    // Another list: the same four plus its two tables (forward and backward).
    let before = allocations();
    run(&[1, 3]);
    assert_eq!(allocations() - before, again + 2);
    assert_eq!(again, 4);
}
