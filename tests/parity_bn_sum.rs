//! `ops::bn_sum` (batch-norms summed with a residual, then relu, as one op) against its
//! readable twin, the composition of batch-norm, gather, add_n, concat and relu
//! (`bn_sum::composed`): on the device the fused kernels against the composed ops' kernels,
//! bitwise (outputs, every gradient, the running statistics: the same expressions in the same
//! order), in both work-item shapes, f32 and f64; the device against the CPU reference; and
//! the gradcheck suite's bn_sum cases with every evaluation on the device. Sizes: small odd
//! ones and the SW-ResNet layers' (a shift-wise layer's three terms with its ghost channels,
//! a block's residual sum, the stem's batch-norm and relu). Skipped, with a note, where no
//! OpenCL device exists.

use shiftgrad::autograd::Var;
use shiftgrad::ops::bn_sum::{bn_sum, composed, stacked_terms, BnMode, Residual};
use shiftgrad::ops::device::with_gpu_shaped;
use shiftgrad::ops::parity::{compare, fp64, opencl_device};
use shiftgrad::ops::suite::all_cases;
use shiftgrad::ops::Real;
use shiftgrad::tensor::{init, Device, Tensor};

/// One configuration: terms k of (N, R, H, W); residual channels C (0: none); relu; mode.
#[derive(Clone, Copy, Debug)]
struct Case {
    k: usize,
    dims: [usize; 4],
    c: usize,
    relu: bool,
    mode: BnMode,
}

const fn case(k: usize, dims: [usize; 4], c: usize, relu: bool, mode: BnMode) -> Case {
    Case {
        k,
        dims,
        c,
        relu,
        mode,
    }
}

const CASES: [Case; 8] = [
    case(3, [2, 3, 5, 7], 4, true, BnMode::Train),
    case(3, [2, 3, 5, 7], 4, false, BnMode::Eval),
    case(2, [3, 2, 1, 9], 2, true, BnMode::Train),
    case(1, [2, 5, 4, 4], 0, true, BnMode::Train),
    case(1, [2, 5, 4, 4], 0, false, BnMode::Eval),
    // SW-ResNet: a stage-0 shift-wise layer (25 of 32 channels processed), a stage-2 block's
    // residual sum, the stem's batch-norm and relu.
    case(3, [8, 25, 28, 28], 32, true, BnMode::Train),
    case(1, [8, 128, 7, 7], 128, true, BnMode::Train),
    case(1, [8, 32, 28, 28], 0, true, BnMode::Train),
];

/// The identity where every channel is processed (a block's residual), else a permutation
/// (a shift-wise layer's rep channels, then its ghost channels).
fn channel_map(r: usize, c: usize) -> Vec<usize> {
    let mut map: Vec<usize> = (0..c).collect();
    if r < c {
        map.reverse();
        map.rotate_left(c / 3);
    }
    map
}

/// The inputs: terms, gammas, betas, the residual (where there is one), and the running
/// statistics.
type Inputs<T> = (Vec<Tensor<T>>, Vec<(Tensor<T>, Tensor<T>)>);

fn inputs<T: Real>(c: Case, seed: u64) -> Inputs<T> {
    let [n, r, h, w] = c.dims;
    // Apart from the seeds of the cotangents (`seed` itself in `compare`): a cotangent drawn
    // like a term would be that term's xhat, whose training-mode gradient is 0 up to rounding.
    let rng = |s: u64| init::rng(seed * 1000 + s);
    let mut v = Vec::new();
    for k in 0..c.k as u64 {
        v.push(init::normal::<T>(c.dims, 0.5, 2.0, &mut rng(k)));
    }
    for k in 0..c.k as u64 {
        v.push(init::uniform::<T>([r], 0.2, 1.8, &mut rng(10 + k)));
    }
    for k in 0..c.k as u64 {
        v.push(init::uniform::<T>([r], -1.0, 1.0, &mut rng(20 + k)));
    }
    if c.c > 0 {
        v.push(init::normal::<T>([n, c.c, h, w], 0.0, 1.0, &mut rng(30)));
    }
    let running = (0..c.k as u64)
        .map(|k| {
            (
                init::uniform::<T>([r], -0.3, 0.3, &mut rng(40 + k)),
                init::uniform::<T>([r], 0.7, 1.7, &mut rng(50 + k)),
            )
        })
        .collect();
    (v, running)
}

/// Runs the op (or its composition) on `v`, updating `running` in place.
fn apply<T: Real>(
    c: Case,
    v: &[Var<T>],
    running: &mut [(Tensor<T>, Tensor<T>)],
    fused: bool,
) -> shiftgrad::tensor::Result<Var<T>> {
    let k = c.k;
    let map = channel_map(c.dims[1], c.c);
    let mut terms = stacked_terms(v, running);
    let residual = (c.c > 0).then(|| Residual {
        x: &v[3 * k],
        channels: &map,
    });
    match fused {
        true => bn_sum(&mut terms, residual, c.mode, c.relu),
        false => composed(&mut terms, residual, c.mode, c.relu),
    }
}

/// Output, every input's gradient and the updated running statistics, as host vectors.
type Run<T> = (Vec<T>, Vec<Vec<T>>, Vec<Vec<T>>);

fn run<T: Real>(dev: &Device, c: Case, seed: u64, fused: bool) -> Run<T> {
    let (v, running) = inputs::<T>(c, seed);
    let vars: Vec<Var<T>> = v
        .iter()
        .map(|t| Var::param(t.to_device(dev).unwrap()))
        .collect();
    let mut running: Vec<_> = running
        .iter()
        .map(|(m, s)| (m.to_device(dev).unwrap(), s.to_device(dev).unwrap()))
        .collect();
    let out = apply(c, &vars, &mut running, fused).unwrap();
    let cot = init::normal::<T>(out.shape(), 0.0, 1.0, &mut init::rng(seed + 99));
    out.backward_with(cot.to_device(dev).unwrap()).unwrap();
    let host = |t: &Tensor<T>| t.to_vec().unwrap();
    let grads = vars
        .iter()
        .map(|v| host(v.grad().as_ref().expect("every input has a gradient")))
        .collect();
    let stats = running
        .iter()
        .flat_map(|(m, s)| [host(m), host(s)])
        .collect();
    let y = host(&out.value());
    (y, grads, stats)
}

fn bitwise<T: Real>(dev: &Device) {
    let both = CASES.iter().flat_map(|&c| [c, Case { relu: !c.relu, ..c }]);
    for (i, c) in both.enumerate() {
        let seed = 100 + 7 * i as u64;
        for gpu in [false, true] {
            // Both in the same work-item shape: the GPU-shaped batch-norm sums are grouped
            // differently from the CPU-shaped ones.
            let composed = with_gpu_shaped(gpu, || run::<T>(dev, c, seed, false));
            assert!(composed.0.iter().all(|v| v.is_finite()), "case {i}");
            let fused = with_gpu_shaped(gpu, || run::<T>(dev, c, seed, true));
            let what = format!("{} case {i} {c:?}, gpu-shaped {gpu}", T::DTYPE);
            assert_eq!(fused.0, composed.0, "output, {what}");
            for (g, (a, b)) in fused.1.iter().zip(&composed.1).enumerate() {
                assert_eq!(a, b, "gradient of input {g}, {what}");
            }
            assert_eq!(fused.2, composed.2, "running statistics, {what}");
        }
    }
}

/// The fused kernels give bitwise the composed ops' results on the same device.
#[test]
fn fused_equals_the_composed_ops_on_the_device() {
    let Some(dev) = opencl_device() else { return };
    bitwise::<f32>(&dev);
    if fp64(&dev, "bn_sum bitwise f64") {
        bitwise::<f64>(&dev);
    }
}

/// The device against the CPU reference (the composition on the host, f64 channel sums).
#[test]
fn device_matches_the_cpu_reference() {
    let Some(dev) = opencl_device() else { return };
    for (i, &c) in CASES.iter().enumerate() {
        // Without relu: at these sizes some outputs fall within rounding of 0, where the CPU
        // and the device can take different sides of the kink (case 7 with relu: 4.5e-2 from
        // such elements). The mask is checked bitwise against the composed ops above and by
        // the gradcheck below.
        let c = Case { relu: false, ..c };
        let seed = 300 + i as u64;
        let (v, running) = inputs::<f32>(c, seed);
        let f = |vars: &[Var<f32>]| {
            let d = vars[0].value().device();
            let mut r: Vec<_> = running
                .iter()
                .map(|(m, s)| Ok((m.to_device(&d)?, s.to_device(&d)?)))
                .collect::<shiftgrad::tensor::Result<Vec<_>>>()?;
            apply(c, vars, &mut r, true)
        };
        let wrt = vec![true; v.len()];
        let r = compare(&dev, &f, &v, &wrt, seed).unwrap().max();
        // Batch-norm's f32 statistics and sums against the CPU's f64 ones: measured at most
        // 2.5e-7. (Masking with `out < 0` in bn_sum_mask, on purpose once, failed the bitwise
        // test and the device gradcheck; with relu off here this test cannot see the mask.)
        eprintln!("case {i}: f32 {r:e}");
        assert!(r.is_finite() && r <= 1e-6, "case {i} {c:?}: {r:e}");
    }
}

/// The suite's bn_sum cases, every evaluation on the device (f64).
#[test]
fn gradcheck_suite_on_device() {
    let Some(dev) = opencl_device() else { return };
    if !fp64(&dev, "f64 bn_sum gradcheck on the device") {
        return;
    }
    let cases: Vec<_> = all_cases()
        .into_iter()
        .filter(|c| c.op == "bn_sum")
        .collect();
    assert_eq!(cases.len(), 3, "expected the suite's 3 bn_sum cases");
    for case in &cases {
        let report = case.run_on(&dev).unwrap();
        assert!(report.passed(), "{}: {report:?}", case.config);
    }
}
