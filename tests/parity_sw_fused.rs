//! The fused shift-wise forward (`ops::sw_fused`: bank convolution + shift-add in one op,
//! `Y` in local memory on OpenCL) against its readable twin, the composition
//! `shift_add_sparse(bank_conv(x, w, live), tables, live)`: on the device, the fused kernel
//! against the two unfused kernels (outputs and gradients, equal bitwise: the same terms in
//! the same order); and the device against the CPU reference, f32 and f64, with random masks,
//! every kernel live, every kernel pruned and one live kernel, at small sizes and the
//! SW-ResNet stage sizes. Skipped, with a note, where no OpenCL device exists.

use rand::Rng as _;
use shiftgrad::autograd::Var;
use shiftgrad::ops::bank_conv::bank_conv;
use shiftgrad::ops::device::with_gpu_shaped;
use shiftgrad::ops::parity::{compare, fp64, opencl_device};
use shiftgrad::ops::shift_add::{shift_add_sparse, LiveChannels, ShiftTables};
use shiftgrad::ops::sw_fused::sw_fused;
use shiftgrad::ops::{concat_channels, Real};
use shiftgrad::tensor::{init, Device, Tensor};
use std::rc::Rc;

fn masks(n: usize, seed: u64) -> Vec<Vec<bool>> {
    let mut rng = init::rng(seed);
    let mut one = vec![false; n];
    one[rng.gen_range(0..n)] = true;
    vec![
        (0..n).map(|_| rng.gen_bool(0.5)).collect(),
        vec![true; n],
        vec![false; n],
        one,
    ]
}

/// (M, k, R, G, B, H, W): odd and even widths, k = 1, 3, 5, the SW-ResNet stages, and rows
/// wider than one block of segments (W = 70: two column blocks per row in every phase, so
/// the right margins' owner is not the first block and no row end is stored whole).
const CASES: [(usize, usize, usize, usize, usize, usize, usize); 7] = [
    (7, 3, 2, 2, 2, 5, 7),
    (7, 3, 2, 2, 1, 9, 70),
    (11, 5, 3, 4, 1, 6, 17),
    (5, 1, 2, 3, 2, 4, 4),
    (13, 3, 25, 4, 2, 28, 28),
    (13, 3, 50, 4, 1, 14, 14),
    (7, 3, 99, 4, 2, 7, 7),
];

type Outputs<T> = (Var<T>, Var<T>, Var<T>);

/// The three outputs side by side, so that one comparison covers all of them.
fn joined<T: Real>(o: shiftgrad::tensor::Result<Outputs<T>>) -> shiftgrad::tensor::Result<Var<T>> {
    let (h, v, i) = o?;
    concat_channels(&[&h, &v, &i])
}

fn inputs<T: Real>(
    (big, k, reps, _, b, h, w): (usize, usize, usize, usize, usize, usize, usize),
    seed: u64,
) -> (Tensor<T>, Tensor<T>) {
    let nk = big.div_ceil(k);
    let x = init::normal::<T>([b, reps, h, w], 0.0, 1.0, &mut init::rng(seed));
    let wt = init::normal::<T>([reps * nk, 1, k, k], 0.0, 0.3, &mut init::rng(seed + 1));
    (x, wt)
}

#[test]
fn fused_equals_the_unfused_kernels_on_the_device() {
    let Some(dev) = opencl_device() else { return };
    for (i, &case) in CASES.iter().enumerate() {
        let (big, k, reps, groups, ..) = case;
        let seed = 40 + i as u64;
        let t = Rc::new(ShiftTables::random(big, k, reps, groups, &mut init::rng(seed)).unwrap());
        for (m, mask) in masks(reps * t.nk(), seed).iter().enumerate() {
            let live = Rc::new(LiveChannels::from_mask(reps, t.nk(), mask).unwrap());
            let (x, w) = inputs::<f32>(case, seed);
            let run_once = |fused: bool| {
                let xv = Var::param(x.to_device(&dev).unwrap());
                let wv = Var::param(w.to_device(&dev).unwrap());
                let out = if fused {
                    joined(sw_fused(&xv, &wv, &t, &live)).unwrap()
                } else {
                    let y = bank_conv(&xv, &wv, &live).unwrap();
                    joined(shift_add_sparse(&y, &t, &live)).unwrap()
                };
                let seed_grad =
                    init::normal::<f32>(out.shape(), 0.0, 1.0, &mut init::rng(seed + 7));
                out.backward_with(seed_grad.to_device(&dev).unwrap())
                    .unwrap();
                let host = |t: &Tensor<f32>| t.to_vec().unwrap();
                let y = host(&out.value());
                let dx = host(xv.grad().as_ref().unwrap());
                let dw = host(wv.grad().as_ref().unwrap());
                (y, dx, dw)
            };
            let run = |fused: bool, gpu: bool| with_gpu_shaped(gpu, || run_once(fused));
            // The fused kernels in both work-group shapes (`device::gpu_shaped`: one
            // work-item per image and rep channel on a CPU device, several on a GPU).
            let unfused = run(false, false);
            for (gpu, fused) in [(false, run(true, false)), (true, run(true, true))] {
                let m = format!("{m} (gpu-shaped {gpu})");
                assert!(fused.0.iter().all(|v| v.is_finite()), "case {i} mask {m}");
                assert_eq!(fused.0, unfused.0, "outputs, case {i} mask {m}");
                assert_eq!(fused.1, unfused.1, "input gradient, case {i} mask {m}");
                // The fused backward sums the weight gradient image by image (each image's lanes,
                // then the images in order); the unfused kernel carries one vector sum across
                // the images. Relative to the largest |dw|: measured at most 2.9e-7 (made to fail
                // by leaving the last image out of the sum: 0.64).
                let scale = unfused
                    .2
                    .iter()
                    .fold(0f32, |a, v| a.max(v.abs()))
                    .max(1e-30);
                let worst = fused
                    .2
                    .iter()
                    .zip(&unfused.2)
                    .map(|(a, b)| ((a - b).abs() / scale) as f64)
                    .map(|r| if r.is_finite() { r } else { f64::INFINITY })
                    .fold(0.0, f64::max);
                eprintln!("case {i} mask {m}: weight gradient fused vs unfused {worst:e}");
                assert!(
                    worst <= 1e-6,
                    "weight gradient, case {i} mask {m}: {worst:e}"
                );
                // Pruned kernels get exactly zero, as from the unfused kernels.
                for (a, b) in fused.2.iter().zip(&unfused.2) {
                    assert!(
                        *b != 0.0 || *a == 0.0,
                        "case {i} mask {m}: {a} where unfused gives 0"
                    );
                }
            }
        }
    }
}

fn parity<T: Real>(
    dev: &Device,
    case: (usize, usize, usize, usize, usize, usize, usize),
    seed: u64,
) -> f64 {
    let (big, k, reps, groups, ..) = case;
    let t = Rc::new(ShiftTables::random(big, k, reps, groups, &mut init::rng(seed)).unwrap());
    let mut worst: f64 = 0.0;
    for mask in masks(reps * t.nk(), seed) {
        let live = Rc::new(LiveChannels::from_mask(reps, t.nk(), &mask).unwrap());
        let (x, w) = inputs::<T>(case, seed);
        let f = |v: &[Var<T>]| joined(sw_fused(&v[0], &v[1], &t, &live));
        let r = compare(dev, &f, &[x, w], &[true, true], seed)
            .unwrap()
            .max();
        assert!(r.is_finite(), "{r}");
        worst = worst.max(r);
    }
    worst
}

#[test]
fn device_matches_the_cpu_reference() {
    let Some(dev) = opencl_device() else { return };
    for (i, &case) in CASES.iter().enumerate() {
        let seed = 60 + i as u64;
        // The bank convolution's sums in another grouping than the CPU's (the shift-add's
        // are the same): measured at most 2.3e-6 (f32) and 1.5e-15 (f64).
        let r = parity::<f32>(&dev, case, seed);
        eprintln!("case {i}: f32 {r:e}");
        assert!(r <= 5e-6, "f32 case {i}: {r:e}");
        if fp64(&dev, "f64 parity") {
            let r = parity::<f64>(&dev, case, seed);
            eprintln!("case {i}: f64 {r:e}");
            assert!(r <= 5e-15, "f64 case {i}: {r:e}");
        }
    }
}
