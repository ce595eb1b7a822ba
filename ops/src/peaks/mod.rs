//! The measured peaks of a device, the yardstick of `shiftgrad bench`: multiply-add
//! throughput (GFLOP/s) and copy bandwidth (GB/s, bytes read plus bytes written), each the
//! best of a few runs of a kernel made for it (`peaks.cl`), or of plain loops on the CPU
//! backend (one thread, as the CPU backend runs). They are what this code reaches on this
//! machine, not the vendor's figures.

use crate::device::{buf, dev_err, launch, output, program};
use shiftgrad_tensor::opencl::{Arg, Context};
use shiftgrad_tensor::{Device, Result, Tensor};
use std::time::Instant;

const SOURCE: &str = include_str!("peaks.cl");

/// What a device reached.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Peaks {
    /// f32 multiply-add throughput, FLOP/s (a multiply-add is 2 FLOPs).
    pub flops_per_s: f64,
    /// f32 copy bandwidth, bytes read + written per second.
    pub bytes_per_s: f64,
}

/// Runs `f` `runs` times and returns the shortest wall time in seconds.
fn best_of(runs: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..runs {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(best)
}

/// Measures `device` (a fraction of a second).
pub fn measure(device: &Device) -> Result<Peaks> {
    match device {
        Device::Cpu => Ok(cpu()),
        Device::OpenCl(ctx) => opencl(ctx),
    }
}

fn cpu() -> Peaks {
    const CHAINS: usize = 8;
    const LANES: usize = 16;
    let iters = 2_000_000usize;
    let (m, c) = (0.999_999f32, 1e-7f32);
    let mut sink = 0.0f32;
    let seconds = best_of(3, || {
        let mut a = [[0.0f32; LANES]; CHAINS];
        for (j, chain) in a.iter_mut().enumerate() {
            for (l, v) in chain.iter_mut().enumerate() {
                *v = (j * LANES + l) as f32 * 1e-9;
            }
        }
        for _ in 0..iters {
            for chain in a.iter_mut() {
                for v in chain.iter_mut() {
                    *v = *v * m + c;
                }
            }
        }
        sink += std::hint::black_box(a)[0][0];
        Ok(())
    })
    .unwrap_or(f64::INFINITY);
    std::hint::black_box(sink);
    let flops = (iters * CHAINS * LANES * 2) as f64;
    let n = 16 << 20; // 64 MB of f32
    let src = vec![1.0f32; n];
    let mut dst = vec![0.0f32; n];
    let copy = best_of(5, || {
        dst.copy_from_slice(std::hint::black_box(&src));
        Ok(())
    })
    .unwrap_or(f64::INFINITY);
    std::hint::black_box(&dst);
    Peaks {
        flops_per_s: flops / seconds,
        bytes_per_s: (2 * n * 4) as f64 / copy,
    }
}

fn opencl(ctx: &Context) -> Result<Peaks> {
    let prog = program::<f32>(ctx, "peaks", SOURCE)?;
    let items = 8192usize;
    let iters = 2048i32;
    let out = output::<f32>(ctx, [items])?;
    let mut run_fma = || -> Result<()> {
        launch(
            ctx,
            &prog,
            "peak_fma",
            [items],
            Some([64]),
            &[buf(&out), Arg::I32(iters)],
        )?;
        ctx.finish().map_err(dev_err)
    };
    run_fma()?; // compile and warm up
    let fma = best_of(3, &mut run_fma)?;
    let flops = (items as f64) * iters as f64 * 8.0 * 16.0 * 2.0;
    let n = 16usize << 20;
    let src: Tensor<f32> = Tensor::full_on([n], 1.0, &Device::OpenCl(ctx.clone()))?;
    let dst = output::<f32>(ctx, [n])?;
    let mut run_copy = || -> Result<()> {
        launch(
            ctx,
            &prog,
            "peak_copy",
            [n / 16],
            Some([64]),
            &[buf(&src), buf(&dst)],
        )?;
        ctx.finish().map_err(dev_err)
    };
    run_copy()?;
    let copy = best_of(5, &mut run_copy)?;
    Ok(Peaks {
        flops_per_s: flops / fma,
        bytes_per_s: (2 * n * 4) as f64 / copy,
    })
}
