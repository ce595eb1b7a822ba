//! `shiftgrad profile`: times training steps of a network on a device and prints where the
//! time goes. On OpenCL every kernel's device time comes from its profiling event (the queue
//! is created with profiling enabled); on the CPU only the step time is reported.

use crate::train::metrics::{live_bytes, peak_bytes, MemorySplit};
use shiftgrad_autograd::Var;
use shiftgrad_nn::optim::Optimizer;
use shiftgrad_nn::resnet::{ResNetConfig, SwResNet};
use shiftgrad_nn::{Mode, Module};
use shiftgrad_ops::cross_entropy;
use shiftgrad_tensor::{counters, init, Device, Error, Result, Tensor};
use std::io::Write;
use std::time::Instant;

/// What `shiftgrad profile` times.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Images per step.
    pub batch: usize,
    /// Untimed steps first.
    pub warmup: usize,
    /// Timed steps.
    pub steps: usize,
    /// Fraction of every shift-wise layer's small kernels pruned (uniform random masks from
    /// seed 0); 0: dense.
    pub sparsity: f64,
}

/// Runs `warmup` untimed and `steps` timed training steps of `config` at `batch` on `device`,
/// printing a table to `out`. Returns the median step time in seconds.
pub fn run(
    config: ResNetConfig,
    device: &Device,
    shape: Shape,
    out: &mut dyn Write,
) -> Result<f64> {
    let Shape {
        batch,
        warmup,
        steps,
        sparsity,
    } = shape;
    if batch == 0 || steps == 0 {
        return Err(Error::arg("profile", "batch and steps must be at least 1"));
    }
    if !(sparsity.is_finite() && (0.0..1.0).contains(&sparsity)) {
        return Err(Error::arg(
            "profile",
            format!("--sparsity must be in [0, 1), got {sparsity}"),
        ));
    }
    let mut model = SwResNet::<f32>::new(config.clone())?;
    model.move_to(device)?;
    if sparsity > 0.0 {
        if model.sw_layers_mut().is_empty() {
            return Err(Error::arg("profile", "--sparsity needs --spatial sw"));
        }
        let cfg = shiftgrad_nn::sparsity::SparseConfig {
            sparsity,
            init: shiftgrad_nn::sparsity::SparseInit::Uniform,
            ..Default::default()
        };
        let scores: Vec<Vec<f64>> = model
            .sw_layers_mut()
            .iter()
            .map(|(_, l)| vec![1.0; l.kernels()])
            .collect();
        let masks = shiftgrad_nn::sparsity::init_masks(&scores, &cfg, &mut init::rng(0));
        for ((_, layer), m) in model.sw_layers_mut().into_iter().zip(&masks) {
            layer.set_mask(m)?;
        }
        let live: usize = masks.iter().flatten().filter(|&&b| b).count();
        let total: usize = masks.iter().map(|m| m.len()).sum();
        writeln!(
            out,
            "sparse: {live} of {total} small kernels live in {} shift-wise layers",
            masks.len()
        )
        .map_err(|e| Error::Other(format!("profile: {e}")))?;
    }
    let mut optim = Optimizer::new(
        shiftgrad_nn::optim::OptimKind::Sgd {
            momentum: 0.9,
            nesterov: true,
            weight_decay: 5e-4,
        },
        model.named_parameters(),
    );
    let mut rng = init::rng(1);
    let x: Tensor<f32> = init::normal([batch, config.in_channels, 28, 28], 0.0, 1.0, &mut rng);
    let x = x.to_device(device)?;
    let labels: Vec<usize> = (0..batch).map(|i| i % config.classes).collect();
    let mut split = MemorySplit::default();
    let mut step = |model: &mut SwResNet<f32>, split: &mut MemorySplit| -> Result<()> {
        let before = live_bytes(device);
        shiftgrad_autograd::reset_graph_outputs();
        let logits = model.forward(&Var::constant(x.clone()), Mode::Train)?;
        let loss = cross_entropy(&logits, &labels)?;
        drop(logits);
        // Everything the graph holds for backward: saved inputs and every op's output.
        split.graph_after_forward_bytes = live_bytes(device).saturating_sub(before);
        loss.backward()?;
        let params = model.named_parameters();
        split.parameters_bytes = params.iter().map(|p| p.var.value().nbytes() as u64).sum();
        split.gradients_bytes = params
            .iter()
            .filter_map(|p| p.var.grad().as_ref().map(|g| g.nbytes() as u64))
            .sum();
        optim.step(0.01)?;
        split.optimiser_state_bytes = optim.state_bytes();
        loss.value().item()?; // waits for the device
        Ok(())
    };
    for _ in 0..warmup {
        step(&mut model, &mut split)?;
    }
    if let Device::OpenCl(ctx) = device {
        ctx.finish().map_err(|e| Error::Device(e.to_string()))?;
        ctx.reset_kernel_times();
        ctx.reset_peak();
    }
    counters::reset();
    let mut times = Vec::new();
    for _ in 0..steps {
        let t = Instant::now();
        step(&mut model, &mut split)?;
        times.push(t.elapsed().as_secs_f64());
    }
    let snap = counters::snapshot();
    times.sort_by(|a, b| a.total_cmp(b));
    let median = times[times.len() / 2];
    let io = |e: std::io::Error| Error::Other(format!("profile: {e}"));
    writeln!(
        out,
        "widths {:?} ({} spatial) batch {} on {}: median step {:.3} s ({:.1} images/s) over {} steps; {:.2} GFLOP per step (op counters)",
        config.widths,
        config.spatial,
        batch,
        device.name(),
        median,
        batch as f64 / median,
        steps,
        snap.flops as f64 / steps as f64 * 1e-9
    )
    .map_err(io)?;
    let mb = |b: u64| b as f64 * 1e-6;
    writeln!(
        out,
        "memory: peak {:.1} MB during the timed steps; parameters {:.1} MB, gradients {:.1} MB, \
         optimiser state {:.1} MB, held by the graph for backward (saved inputs and op outputs) \
         {:.1} MB",
        mb(peak_bytes(device)),
        mb(split.parameters_bytes),
        mb(split.gradients_bytes),
        mb(split.optimiser_state_bytes),
        mb(split.graph_after_forward_bytes)
    )
    .map_err(io)?;
    let by_op = shiftgrad_autograd::graph_outputs();
    writeln!(
        out,
        "{:<24} {:>9} {:>12}   (op outputs recorded in the graph by the forward, held until their backward)",
        "op", "outputs", "MB"
    )
    .map_err(io)?;
    for g in &by_op {
        writeln!(out, "{:<24} {:>9} {:>12.1}", g.op, g.outputs, mb(g.bytes)).map_err(io)?;
    }
    if let Device::OpenCl(ctx) = device {
        let kt = ctx
            .kernel_times()
            .map_err(|e| Error::Device(e.to_string()))?;
        let total: u64 = kt.iter().map(|k| k.device_ns).sum::<u64>().max(1);
        writeln!(
            out,
            "{:<44} {:>9} {:>12} {:>10} {:>7}",
            "kernel", "launches", "ms/step", "us/launch", "share"
        )
        .map_err(io)?;
        for k in &kt {
            let ms = k.device_ns as f64 * 1e-6 / steps as f64;
            writeln!(
                out,
                "{:<44} {:>9} {:>12.2} {:>10.1} {:>6.1}%",
                format!("{}::{}", k.program, k.kernel),
                k.launches / steps as u64,
                ms,
                k.device_ns as f64 * 1e-3 / k.timed_launches.max(1) as f64,
                100.0 * k.device_ns as f64 / total as f64
            )
            .map_err(io)?;
        }
        let spatial_ns: u64 = kt
            .iter()
            .filter(|k| k.program == "shift_add" || k.program == "bank_conv")
            .map(|k| k.device_ns)
            .sum();
        writeln!(
            out,
            "shift-add and sparse bank convolution kernels: {:.1} ms per step (the dense bank \
             convolution runs as conv2d and is not in this sum)",
            spatial_ns as f64 * 1e-6 / steps as f64
        )
        .map_err(io)?;
        let tr = ctx.transfers();
        let per = |n: u64| n as f64 / steps as f64;
        writeln!(
            out,
            "host transfers per step (blocking): {:.1} reads ({:.1} KB), {:.1} writes ({:.1} KB)",
            per(tr.reads),
            per(tr.read_bytes) * 1e-3,
            per(tr.writes),
            per(tr.write_bytes) * 1e-3
        )
        .map_err(io)?;
        let device_ms = total as f64 * 1e-6 / steps as f64;
        let mean_ms = times.iter().sum::<f64>() * 1e3 / steps as f64;
        writeln!(
            out,
            "device time {device_ms:.1} ms per step of {mean_ms:.1} ms (mean); host time (the step \
             minus the kernels' device time: launches, host-side work, waiting) {:.1} ms, {:.0} %",
            (mean_ms - device_ms).max(0.0),
            100.0 * (mean_ms - device_ms).max(0.0) / mean_ms.max(1e-9)
        )
        .map_err(io)?;
    }
    Ok(median)
}
