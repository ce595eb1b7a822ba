//! OpenCL against the CPU reference for the sparse bank convolution (SPEC 1.1 with 1.6):
//! output, input gradient and weight gradient, f32 and f64, with random masks, every kernel
//! live, every kernel pruned and one live kernel, at small sizes and the SW-ResNet stage
//! sizes; bitwise determinism; and the bank_conv cases of the gradcheck suite on the device.
//! Skipped, with a note, where no OpenCL device exists.

use rand::Rng as _;
use shiftgrad::ops::bank_conv::bank_conv;
use shiftgrad::ops::parity::{compare, deterministic, fp64, opencl_device};
use shiftgrad::ops::shift_add::LiveChannels;
use shiftgrad::ops::Real;
use shiftgrad::tensor::{init, Device, Tensor};
use std::rc::Rc;

fn masks(n: usize, seed: u64) -> Vec<Vec<bool>> {
    let mut rng = init::rng(seed);
    let mut one = vec![false; n];
    one[rng.gen_range(0..n)] = true;
    vec![
        (0..n).map(|_| rng.gen_bool(0.5)).collect(),
        (0..n).map(|_| rng.gen_bool(0.2)).collect(),
        vec![true; n],
        vec![false; n],
        one,
    ]
}

/// Largest relative difference of output and both gradients, device against CPU.
fn parity<T: Real>(
    dev: &Device,
    x: &Tensor<T>,
    w: &Tensor<T>,
    live: &Rc<LiveChannels>,
    seed: u64,
) -> f64 {
    let f = |v: &[shiftgrad::ops::Var<T>]| bank_conv(&v[0], &v[1], live);
    compare(dev, &f, &[x.clone(), w.clone()], &[true, true], seed)
        .unwrap()
        .max()
}

#[test]
fn masks_match_cpu() {
    let Some(dev) = opencl_device() else { return };
    // (R, nk, k, B, H, W): small maps, k = 1, 3, 5, and the SW-ResNet stages (M 13 / 7, k 3).
    for (i, &(reps, nk, k, b, h, w)) in [
        (2, 3, 3, 2, 5, 7),
        (3, 4, 5, 1, 3, 2),
        (2, 2, 1, 2, 4, 4),
        (25, 5, 3, 2, 28, 28),
        (50, 5, 3, 2, 14, 14),
        (99, 3, 3, 2, 7, 7),
    ]
    .iter()
    .enumerate()
    {
        let seed = 90 + i as u64;
        for (m, mask) in masks(reps * nk, seed).iter().enumerate() {
            let live = Rc::new(LiveChannels::from_mask(reps, nk, mask).unwrap());
            let x = init::normal::<f32>([b, reps, h, w], 0.0, 1.0, &mut init::rng(seed));
            let wt = init::normal::<f32>([reps * nk, 1, k, k], 0.0, 0.3, &mut init::rng(seed + 1));
            let r = parity(&dev, &x, &wt, &live, seed);
            // Sums of up to B*H*W products (the weight gradient) in another grouping:
            // measured at most 1.3e-6 (f32) and 3.4e-15 (f64) over these cases.
            assert!(r <= 5e-6, "f32 case {i} mask {m}: {r:e}");
            if fp64(&dev, "f64 parity") {
                let x = init::normal::<f64>([b, reps, h, w], 0.0, 1.0, &mut init::rng(seed));
                let wt =
                    init::normal::<f64>([reps * nk, 1, k, k], 0.0, 0.3, &mut init::rng(seed + 1));
                let r = parity(&dev, &x, &wt, &live, seed);
                assert!(r <= 1.5e-14, "f64 case {i} mask {m}: {r:e}");
            }
        }
    }
}

#[test]
fn deterministic_on_the_device() {
    let Some(dev) = opencl_device() else { return };
    let live = Rc::new(LiveChannels::from_mask(4, 5, &masks(20, 5)[0]).unwrap());
    let x = init::normal::<f32>([2, 4, 9, 14], 0.0, 1.0, &mut init::rng(1));
    let w = init::normal::<f32>([20, 1, 3, 3], 0.0, 0.3, &mut init::rng(2));
    let f = |v: &[shiftgrad::ops::Var<f32>]| bank_conv(&v[0], &v[1], &live);
    assert!(deterministic(&dev, &f, &[x, w], &[true, true]).unwrap());
}

#[test]
fn gradcheck_suite_cases_pass_on_the_device() {
    let Some(dev) = opencl_device() else { return };
    if !fp64(&dev, "f64 gradcheck suite on the device") {
        return;
    }
    let cases: Vec<_> = shiftgrad::ops::suite::all_cases()
        .into_iter()
        .filter(|c| c.op == "bank_conv")
        .collect();
    assert!(!cases.is_empty());
    for case in &cases {
        let r = case.run_on(&dev).unwrap();
        assert!(r.passed(), "{} on the device: {r:?}", case.config);
    }
}

/// The GPU-shaped kernels (`ops::device::gpu_shaped`, forced with `with_gpu_shaped`) against
/// the row-blocked ones on the device: `Y` and `dx` bit for bit; the weight gradient, summed
/// by a work-group tree rather than one vector sum, to rounding (relative to its largest
/// value; measured 2.9e-7, tolerance 1e-6). Made to fail by reading the forward's input one
/// column off (`v + kx - pad + 1`).
#[test]
fn gpu_shaped_variants_match_the_row_kernels() {
    use shiftgrad::ops::device::with_gpu_shaped;
    use shiftgrad::ops::Var;
    let Some(dev) = opencl_device() else { return };
    let mut worst: f64 = 0.0;
    for (i, &(reps, nk, k, b, h, w)) in [
        (2, 3, 3, 2, 5, 7),
        (3, 4, 5, 1, 3, 2),
        (2, 2, 1, 2, 4, 4),
        (25, 5, 3, 2, 28, 28),
        (6, 11, 5, 2, 19, 23),
    ]
    .iter()
    .enumerate()
    {
        let seed = 120 + i as u64;
        for (m, mask) in masks(reps * nk, seed).iter().enumerate() {
            let live = Rc::new(LiveChannels::from_mask(reps, nk, mask).unwrap());
            let x = init::normal::<f32>([b, reps, h, w], 0.0, 1.0, &mut init::rng(seed));
            let wt = init::normal::<f32>([reps * nk, 1, k, k], 0.0, 0.3, &mut init::rng(seed + 1));
            let run = |gpu: bool| {
                with_gpu_shaped(gpu, || {
                    let xv = Var::param(x.to_device(&dev).unwrap());
                    let wv = Var::param(wt.to_device(&dev).unwrap());
                    let y = bank_conv(&xv, &wv, &live).unwrap();
                    let g = init::normal::<f32>(y.shape(), 0.0, 1.0, &mut init::rng(seed + 2));
                    y.backward_with(g.to_device(&dev).unwrap()).unwrap();
                    let host = |t: &Tensor<f32>| t.to_vec().unwrap();
                    let out = (
                        host(&y.value()),
                        host(xv.grad().as_ref().unwrap()),
                        host(wv.grad().as_ref().unwrap()),
                    );
                    out
                })
            };
            let (rows, items) = (run(false), run(true));
            let what = format!("case {i} mask {m}");
            assert!(rows.0.iter().all(|v| v.is_finite()), "{what}");
            assert_eq!(rows.0, items.0, "Y, {what}");
            assert_eq!(rows.1, items.1, "dx, {what}");
            let scale = rows.2.iter().fold(0f32, |a, v| a.max(v.abs())).max(1e-30);
            for (a, r) in items.2.iter().zip(&rows.2) {
                let d = ((a - r).abs() / scale) as f64;
                let d = if d.is_finite() { d } else { f64::INFINITY };
                worst = worst.max(d);
                assert!(
                    *r != 0.0 || *a == 0.0,
                    "{what}: a pruned kernel's gradient {a}"
                );
            }
        }
    }
    eprintln!("weight gradient, GPU-shaped against row kernels: {worst:e}");
    assert!(worst <= 1e-6, "weight gradient differs by {worst:e}");
}
