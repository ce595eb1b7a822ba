//! OpenCL against the CPU reference for conv2d: random strides, per-side padding, groups
//! (depthwise and channel multipliers), kernel shapes (including kernels larger than the
//! map), bias or not, and every subset of the gradients, in f32 and f64; bitwise determinism;
//! and the conv2d cases of the f64 gradcheck suite run on the device. Skipped, with a note,
//! where no OpenCL device exists.
//!
//! Every element of the output and of the gradients is a sum of products, which the device
//! adds in another order than the CPU. Its rounding error is bounded by a multiple of the sum
//! of the absolute values of the terms, not of the result (which cancellation can make
//! arbitrarily small: a bias gradient of one channel summing 24 terms of either sign). So the
//! random cases measure `|device - cpu|` elementwise against that sum, computed exactly as the
//! CPU convolution of `|x|`, `|w|`, `|b|` and `|dy|`: a relative error of 1e-5 (f32) or 1e-12
//! (f64) on that scale, while an indexing mistake shows up as an error of order one.

use proptest::prelude::*;
use shiftgrad::autograd::Var;
use shiftgrad::ops::device::with_gpu_shaped;
use shiftgrad::ops::parity::{compare, deterministic, fp64, opencl_device};
use shiftgrad::ops::suite::all_cases;
use shiftgrad::ops::{conv2d, Conv2dParams};
use shiftgrad::tensor::compare as cmp;
use shiftgrad::tensor::{init, Device, Real, Tensor};

thread_local! {
    /// One device per test thread, so that its compiled programs serve every case.
    static DEVICE: Option<Device> = opencl_device();
}

fn device() -> Option<Device> {
    DEVICE.with(|d| d.clone())
}

/// One random convolution.
#[derive(Debug, Clone)]
struct Case {
    x: [usize; 4],
    w: [usize; 4],
    p: Conv2dParams,
    bias: bool,
    /// Which of (x, w, b) take a gradient.
    wrt: [bool; 3],
}

impl Case {
    /// x, w, b (if any) and the output cotangent dy.
    fn tensors<T: Real>(&self, seed: u64) -> (Vec<Tensor<T>>, Tensor<T>) {
        let mut rng = init::rng(seed);
        let mut v = vec![
            init::normal(self.x, 0.0, 1.0, &mut rng),
            init::normal(self.w, 0.0, 1.0, &mut rng),
        ];
        if self.bias {
            v.push(init::normal([self.w[0]], 0.0, 1.0, &mut rng));
        }
        let probe = self.run(&Device::Cpu, &v, None).unwrap().remove(0);
        let dy = init::normal(probe.shape().clone(), 0.0, 1.0, &mut rng);
        (v, dy)
    }

    /// The output and the gradients asked for, on `device`, back on the host.
    fn run<T: Real>(
        &self,
        device: &Device,
        inputs: &[Tensor<T>],
        dy: Option<&Tensor<T>>,
    ) -> shiftgrad::tensor::Result<Vec<Tensor<T>>> {
        let vars = inputs
            .iter()
            .zip(self.wrt)
            .map(|(t, g)| Ok(Var::leaf(t.to_device(device)?, g && dy.is_some())))
            .collect::<shiftgrad::tensor::Result<Vec<_>>>()?;
        let y = conv2d(&vars[0], &vars[1], vars.get(2), self.p)?;
        let mut out = vec![y.value().to_host()?];
        let any = self.wrt[..inputs.len()].iter().any(|&g| g);
        if let (Some(dy), true) = (dy, any) {
            y.backward_with(dy.to_device(device)?)?;
            for (v, g) in vars.iter().zip(self.wrt) {
                if g {
                    out.push(v.grad().as_ref().expect("gradient").to_host()?);
                }
            }
        }
        Ok(out)
    }

    /// The largest `|device - cpu| / sum |terms|` over the output and the gradients.
    fn error<T: Real>(&self, dev: &Device, seed: u64) -> f64 {
        let (inputs, dy) = self.tensors::<T>(seed);
        let cpu = self.run(&Device::Cpu, &inputs, Some(&dy)).unwrap();
        let on_dev = self.run(dev, &inputs, Some(&dy)).unwrap();
        let abs = |t: &Tensor<T>| t.map(|v| v.abs());
        let abs_inputs: Vec<_> = inputs.iter().map(abs).collect();
        let scale = self
            .run(&Device::Cpu, &abs_inputs, Some(&abs(&dy)))
            .unwrap();
        let mut worst = 0.0f64;
        for ((d, c), s) in on_dev.iter().zip(&cpu).zip(&scale) {
            // NaN or Inf anywhere is an infinite error (the old fold with f64::max dropped NaN).
            worst = worst.max(cmp::diff(d, c, cmp::Scale::Terms(s)).unwrap().error());
        }
        eprintln!("parity {}: measured {worst:.3e}", T::DTYPE);
        worst
    }
}

/// Shapes that fit: the padded map is at least as large as the kernel (padding is grown on
/// the bottom and right where it is not).
fn case() -> impl Strategy<Value = Case> {
    (
        (1usize..3, 1usize..4, 1usize..4, 1usize..6),
        (1usize..12, 1usize..20, 1usize..8, 1usize..8),
        (
            1usize..4,
            1usize..4,
            [0usize..4, 0usize..4, 0usize..4, 0usize..4],
        ),
        (any::<bool>(), 0usize..8),
    )
        .prop_map(
            |((n, groups, cig, cog), (h, w, kh, kw), (sh, sw, mut pad), (bias, mask))| {
                pad[1] = pad[1].max(kh.saturating_sub(h + pad[0]));
                pad[3] = pad[3].max(kw.saturating_sub(w + pad[2]));
                Case {
                    x: [n, groups * cig, h, w],
                    w: [groups * cog, cig, kh, kw],
                    p: Conv2dParams {
                        stride: (sh, sw),
                        pad,
                        groups,
                    },
                    bias,
                    wrt: [mask & 1 != 0, mask & 2 != 0, mask & 4 != 0],
                }
            },
        )
}

// Each new combination of blocking constants compiles a program (about half a second on
// PoCL), which bounds the number of cases; f64 takes fewer, in a test of its own that runs in
// parallel with the f32 one.
proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn conv2d_matches_cpu_f32(c in case(), seed in 0u64..1000, gpu in any::<bool>()) {
        let Some(dev) = device() else { return Ok(()) };
        // Either form of the kernels: the row-blocked ones or the GPU-shaped ones.
        let e = with_gpu_shaped(gpu, || c.error::<f32>(&dev, seed));
        // Measured: at most 2.3e-7 over 32 random cases.
        prop_assert!(e <= 2e-6, "f32 {c:?}: {e:e}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    #[test]
    fn conv2d_matches_cpu_f64(c in case(), seed in 0u64..1000, gpu in any::<bool>()) {
        let Some(dev) = device() else { return Ok(()) };
        if fp64(&dev, "f64 parity") {
            let e = with_gpu_shaped(gpu, || c.error::<f64>(&dev, seed));
            // Measured: at most 3.4e-16.
            prop_assert!(e <= 5e-15, "f64 {c:?}: {e:e}");
        }
    }
}

/// The SW-ResNet shapes at a small batch, in f32 as the network trains: full 8-column
/// segments, the pointwise (1x1) path, stride-2 downsampling, the channel-multiplier bank with
/// padding k-1 and big depthwise kernels. Here every tensor has many elements, and the plain
/// relative difference of [`compare`] (against the largest CPU value) applies.
#[test]
fn network_shapes_match_cpu() {
    let Some(dev) = device() else { return };
    let p = Conv2dParams::new;
    let cases = [
        ([2, 1, 28, 28], [8, 1, 3, 3], p().pad(1, 1), true),
        (
            [2, 8, 28, 28],
            [16, 8, 3, 3],
            p().stride(2).pad(1, 1),
            false,
        ),
        ([2, 16, 14, 14], [16, 16, 1, 1], p(), false),
        ([2, 8, 28, 28], [8, 1, 3, 3], p().pad(1, 1).groups(8), true),
        ([2, 4, 7, 7], [4, 1, 5, 5], p().pad(2, 2).groups(4), false),
        ([2, 8, 28, 28], [12, 8, 1, 1], p(), true),
        (
            [3, 12, 14, 14],
            [20, 12, 3, 3],
            p().stride(2).pad(1, 1),
            true,
        ),
        // 16 channels a block in the forward and the data gradient (the network's two
        // down-sampling convolutions take that block).
        (
            [2, 16, 14, 14],
            [32, 16, 3, 3],
            p().stride(2).pad(1, 1),
            false,
        ),
        ([2, 16, 7, 7], [24, 16, 1, 1], p(), true),
        (
            [2, 6, 14, 14],
            [30, 1, 3, 3],
            p().pad(2, 2).groups(6),
            false,
        ),
        (
            [2, 4, 28, 28],
            [4, 1, 13, 13],
            p().pad(6, 6).groups(4),
            false,
        ),
        ([2, 4, 7, 7], [4, 1, 13, 3], p().pad(6, 1).groups(4), true),
        (
            [2, 4, 14, 14],
            [4, 1, 3, 13],
            p().pad(1, 6).groups(4),
            false,
        ),
    ];
    for (i, (x, w, p, bias)) in cases.into_iter().enumerate() {
        let mut rng = init::rng(i as u64);
        let mut inputs: Vec<Tensor<f32>> = vec![
            init::normal(x, 0., 1., &mut rng),
            init::normal(w, 0., 1., &mut rng),
        ];
        if bias {
            inputs.push(init::normal([w[0]], 0., 1., &mut rng));
        }
        let f = |v: &[Var<f32>]| conv2d(&v[0], &v[1], v.get(2), p);
        let wrt = vec![true; inputs.len()];
        // The row-blocked kernels, then the GPU-shaped ones (`device::gpu_shaped`).
        for gpu in [false, true] {
            let r = with_gpu_shaped(gpu, || compare(&dev, &f, &inputs, &wrt, i as u64)).unwrap();
            eprintln!(
                "network shape {x:?} {w:?} gpu-shaped {gpu}: {:.3e}",
                r.max()
            );
            // Measured: at most 6.8e-7 (per channel).
            assert!(r.max() <= 5e-6, "{x:?} {w:?} {p:?} gpu-shaped {gpu}: {r:?}");
        }
    }
}

/// The specialised paths against the row-blocked direct kernels they replace
/// (`ops::conv2d::with_direct`), both on the device, output and both gradients: the weight
/// gradients that run as pointwise products (1x1 convolutions, per sample and on
/// channel-major copies; the 3x3 stride-2 convolutions through the unfolded input) and the
/// plane-per-work-item depthwise kernels (stride 1, kernels up to 5x5, any padding).
#[test]
fn specialised_paths_match_the_direct_kernels() {
    use shiftgrad::ops::conv2d::with_direct;
    let Some(dev) = device() else { return };
    let p = Conv2dParams::new;
    let cases = [
        ([4, 16, 28, 28], [12, 16, 1, 1], p()),
        ([4, 16, 7, 7], [24, 16, 1, 1], p()),
        ([4, 8, 28, 28], [16, 8, 3, 3], p().stride(2).pad(1, 1)),
        ([3, 12, 14, 14], [20, 12, 3, 3], p().stride(2).pad(1, 1)),
        ([2, 5, 9, 11], [6, 5, 3, 5], p().stride(1).pad(2, 1)),
        ([4, 8, 28, 28], [8, 1, 3, 3], p().pad(1, 1).groups(8)),
        ([3, 6, 7, 7], [6, 1, 3, 3], p().pad(1, 1).groups(6)),
        ([2, 4, 14, 14], [4, 1, 5, 5], p().pad(2, 2).groups(4)),
        (
            [2, 3, 9, 21],
            [3, 1, 3, 5],
            p().pad_sides([0, 2, 1, 3]).groups(3),
        ),
        (
            [70, 2, 5, 3],
            [2, 1, 2, 4],
            p().pad_sides([1, 0, 3, 0]).groups(2),
        ),
    ];
    for (i, (x, w, p)) in cases.into_iter().enumerate() {
        let mut rng = init::rng(40 + i as u64);
        let xt = init::normal::<f32>(x, 0., 1., &mut rng);
        let wt = init::normal::<f32>(w, 0., 1., &mut rng);
        let run = |direct: bool| {
            with_direct(direct, || {
                let xv = Var::param(xt.to_device(&dev).unwrap());
                let wv = Var::param(wt.to_device(&dev).unwrap());
                let y = conv2d(&xv, &wv, None, p).unwrap();
                let dy = init::normal::<f32>(y.shape(), 0., 1., &mut init::rng(7));
                y.backward_with(dy.to_device(&dev).unwrap()).unwrap();
                let grad = |v: &Var<f32>| v.grad().as_ref().unwrap().to_host().unwrap();
                let out = y.value().to_host().unwrap();
                [out, grad(&xv), grad(&wv)]
            })
        };
        let (fast, direct) = (run(false), run(true));
        for (what, (f, d)) in ["y", "dx", "dw"].iter().zip(fast.iter().zip(&direct)) {
            let axis = if *what == "dw" { 0 } else { 1 };
            let e = cmp::diff(f, d, cmp::Scale::PerChannel(axis))
                .unwrap()
                .error();
            eprintln!("{x:?} {w:?} {what}: {e:.3e} from the direct kernels");
            // Measured: at most 6.0e-7 (per channel; 0 where the sums run in the same order).
            assert!(e <= 2e-6, "{x:?} {w:?} {p:?} {what}: {e:e}");
        }
    }
}

/// Empty batches, inputs without channels, weights without output channels and a 1x1 map
/// under a 3x3 kernel: the device agrees with the CPU (zeros, the bias, or nothing).
#[test]
fn degenerate_shapes_match_cpu() {
    let Some(dev) = device() else { return };
    let p = Conv2dParams::new().pad(1, 1);
    for (x, w) in [
        ([0, 2, 5, 5], [3, 2, 3, 3]),
        ([2, 0, 5, 5], [3, 0, 3, 3]),
        ([2, 2, 5, 5], [0, 2, 3, 3]),
        ([1, 1, 1, 1], [1, 1, 3, 3]),
    ] {
        let mut rng = init::rng(3);
        let inputs: Vec<Tensor<f32>> = vec![
            init::normal(x, 0., 1., &mut rng),
            init::normal(w, 0., 1., &mut rng),
            init::normal([w[0]], 0., 1., &mut rng),
        ];
        let f = |v: &[Var<f32>]| conv2d(&v[0], &v[1], v.get(2), p);
        let r = compare(&dev, &f, &inputs, &[true; 3], 3).unwrap();
        // Measured: at most 9.6e-8.
        assert!(r.max() <= 1e-6, "{x:?} {w:?}: {r:?}");
    }
}

/// Two runs give bitwise the same output and gradients, with either form of the kernels,
/// including the chunked (two-pass) weight and bias gradients of a layer with few output
/// channels.
#[test]
fn conv2d_is_deterministic() {
    let Some(dev) = device() else { return };
    let mut rng = init::rng(7);
    let p = Conv2dParams::new().pad(1, 1);
    for (x, w) in [
        ([16, 1, 12, 12], [2, 1, 3, 3]),
        ([4, 6, 9, 9], [12, 3, 3, 3]),
    ] {
        let p = p.groups(x[1] / w[1]);
        let inputs: Vec<Tensor<f32>> = vec![
            init::normal(x, 0.0, 1.0, &mut rng),
            init::normal(w, 0.0, 1.0, &mut rng),
            init::normal([w[0]], 0.0, 1.0, &mut rng),
        ];
        let f = |v: &[Var<f32>]| conv2d(&v[0], &v[1], v.get(2), p);
        for gpu in [false, true] {
            let same = with_gpu_shaped(gpu, || deterministic(&dev, &f, &inputs, &[true; 3]));
            assert!(same.unwrap(), "gpu-shaped {gpu}");
        }
    }
}

/// The conv2d cases of the f64 finite-difference suite, every evaluation on the device.
#[test]
fn gradcheck_suite_passes_on_device() {
    let Some(dev) = device() else { return };
    if !fp64(&dev, "f64 gradcheck suite on the device") {
        return;
    }
    let cases: Vec<_> = all_cases()
        .into_iter()
        .filter(|c| c.op == "conv2d")
        .collect();
    assert!(!cases.is_empty());
    for case in &cases {
        let report = case.run_on(&dev).unwrap();
        assert!(report.passed(), "{} {}: {report:?}", case.op, case.config);
    }
}

/// Device time of the conv2d kernels at the SW-ResNet sizes (batch 64, f32), the kernels the
/// op chooses beside the row-blocked direct kernels (`with_direct`, "dir" columns): the best of
/// a few runs of the forward, the data gradient alone and the weight gradient alone (each with
/// its weight permutation, copies or second pass). Not a check: run with
/// `cargo test --release --features opencl --test parity_conv2d -- --ignored --nocapture`
/// (`POCL_MAX_PTHREAD_COUNT=1` for one core).
#[test]
#[ignore]
fn conv2d_kernel_times() {
    use std::time::Instant;
    let Some(dev) = device() else { return };
    let p = Conv2dParams::new;
    let layers = [
        (
            "stem 3x3 1->32 @28",
            [64, 1, 28, 28],
            [32, 1, 3, 3],
            p().pad(1, 1),
        ),
        (
            "down 3x3 s2 32->64 @28",
            [64, 32, 28, 28],
            [64, 32, 3, 3],
            p().stride(2).pad(1, 1),
        ),
        (
            "down 3x3 s2 64->128 @14",
            [64, 64, 14, 14],
            [128, 64, 3, 3],
            p().stride(2).pad(1, 1),
        ),
        ("pw 1x1 32->32 @28", [64, 32, 28, 28], [32, 32, 1, 1], p()),
        (
            "dw 3x3 32 @28",
            [64, 32, 28, 28],
            [32, 1, 3, 3],
            p().pad(1, 1).groups(32),
        ),
        (
            "dw 3x3 64 @14",
            [64, 64, 14, 14],
            [64, 1, 3, 3],
            p().pad(1, 1).groups(64),
        ),
        (
            "dw 3x3 128 @7",
            [64, 128, 7, 7],
            [128, 1, 3, 3],
            p().pad(1, 1).groups(128),
        ),
        ("pw 1x1 64->64 @14", [64, 64, 14, 14], [64, 64, 1, 1], p()),
        ("pw 1x1 128->128 @7", [64, 128, 7, 7], [128, 128, 1, 1], p()),
        (
            "bank 3x3 g32 32->160 p2 @28",
            [64, 32, 28, 28],
            [160, 1, 3, 3],
            p().pad(2, 2).groups(32),
        ),
        (
            "bank 3x3 g64 64->320 p2 @14",
            [64, 64, 14, 14],
            [320, 1, 3, 3],
            p().pad(2, 2).groups(64),
        ),
        (
            "bank 3x3 g128 128->640 p2 @7",
            [64, 128, 7, 7],
            [640, 1, 3, 3],
            p().pad(2, 2).groups(128),
        ),
        (
            "dw 13x13 32 @28",
            [64, 32, 28, 28],
            [32, 1, 13, 13],
            p().pad(6, 6).groups(32),
        ),
        (
            "dw 13x3 64 @14",
            [64, 64, 14, 14],
            [64, 1, 13, 3],
            p().pad(6, 1).groups(64),
        ),
        (
            "dw 3x13 128 @7",
            [64, 128, 7, 7],
            [128, 1, 3, 13],
            p().pad(1, 6).groups(128),
        ),
    ];
    // (x needs a gradient, w needs one): forward only, data gradient, weight gradient.
    let phases = [(false, false), (true, false), (false, true)];
    println!(
        "{:<30} {:>7} | {:>7} {:>7} {:>7} | {:>7} {:>7} {:>7}",
        "layer (ms)", "GMAC", "fwd", "dx", "dw", "dir fwd", "dir dx", "dir dw"
    );
    for (name, xs, ws, p) in layers {
        let mut rng = init::rng(1);
        let x: Tensor<f32> = init::normal(xs, 0.0, 1.0, &mut rng);
        let w: Tensor<f32> = init::normal(ws, 0.0, 0.1, &mut rng);
        let macs = {
            let g = shiftgrad::ops::conv2d::cost::<f32>(
                &x.shape().clone(),
                &w.shape().clone(),
                &p,
                false,
            )
            .unwrap();
            g.forward.macs as f64 * 1e-9
        };
        // Runs one phase on `device` and returns its time: device time of the kernels on
        // OpenCL (the forward is done before the clock starts for the gradients), wall time
        // on the CPU.
        let run = |device: &Device, (gx, gw): (bool, bool)| -> f64 {
            let xv = Var::leaf(x.to_device(device).unwrap(), gx);
            let wv = Var::leaf(w.to_device(device).unwrap(), gw);
            let y = conv2d(&xv, &wv, None, p).unwrap();
            let dy = Tensor::full_on(y.shape().clone(), 1.0f32, device).unwrap();
            if let Device::OpenCl(c) = device {
                c.finish().unwrap();
                c.reset_kernel_times();
            }
            let t = Instant::now();
            if gx || gw {
                y.backward_with(dy).unwrap();
            } else {
                drop(conv2d(&xv, &wv, None, p).unwrap());
            }
            match device {
                Device::OpenCl(c) => {
                    let ns: u64 = c.kernel_times().unwrap().iter().map(|k| k.device_ns).sum();
                    ns as f64 * 1e-6
                }
                Device::Cpu => t.elapsed().as_secs_f64() * 1e3,
            }
        };
        let best = |device: &Device, phase, reps| {
            run(device, phase); // warm-up: compiles programs, fills the pool
            (0..reps)
                .map(|_| run(device, phase))
                .fold(f64::MAX, f64::min)
        };
        let d: Vec<f64> = phases.iter().map(|&ph| best(&dev, ph, 5)).collect();
        let c: Vec<f64> = shiftgrad::ops::conv2d::with_direct(true, || {
            phases.iter().map(|&ph| best(&dev, ph, 5)).collect()
        });
        println!(
            "{name:<30} {macs:>7.3} | {:>7.2} {:>7.2} {:>7.2} | {:>7.2} {:>7.2} {:>7.2}",
            d[0], d[1], d[2], c[0], c[1], c[2]
        );
    }
}
