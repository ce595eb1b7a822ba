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
#[derive(Debug, Clone)]
pub struct Shape {
    /// Images per step.
    pub batch: usize,
    /// Untimed steps first.
    pub warmup: usize,
    /// Timed steps per round.
    pub steps: usize,
    /// Rounds: with several sparsities, each round runs `steps` steps of every network in
    /// turn, so that a slow spell of a shared machine falls on all of them.
    pub rounds: usize,
    /// One network per entry (for each spatial operator): the fraction of every shift-wise
    /// layer's small kernels pruned (uniform random masks from seed 0); 0: dense.
    pub sparsity: Vec<f64>,
}

/// One network being profiled, on its own device context (its own kernel and memory
/// counters).
struct Subject<'d> {
    config: ResNetConfig,
    sparsity: f64,
    device: &'d Device,
    model: SwResNet<f32>,
    optim: Optimizer<f32>,
    x: Tensor<f32>,
    labels: Vec<usize>,
    split: MemorySplit,
    times: Vec<f64>,
    flops: u64,
    /// The last step's FLOPs: forward, backward, of which gradient accumulation, optimiser.
    flops_split: [u64; 4],
    /// What the last step's graph recorded, by op.
    graph: Vec<shiftgrad_autograd::GraphOutputs>,
}

impl Subject<'_> {
    /// `sparsity 0.5` where only the sparsity varies between the networks; else `sw`, `slak`
    /// or `sw sparsity 0.5`.
    fn label(&self, kinds: usize) -> String {
        match (kinds, self.sparsity == 0.0) {
            (1, _) => format!("sparsity {}", self.sparsity),
            (_, true) => self.config.spatial.to_string(),
            (_, false) => format!("{} sparsity {}", self.config.spatial, self.sparsity),
        }
    }

    /// One training step.
    fn step(&mut self) -> Result<()> {
        let device = self.device;
        let before = live_bytes(device);
        shiftgrad_autograd::reset_graph_outputs();
        counters::reset_region_flops();
        let c0 = counters::snapshot().flops;
        let logits = self
            .model
            .forward(&Var::constant(self.x.clone()), Mode::Train)?;
        let loss = cross_entropy(&logits, &self.labels)?;
        drop(logits);
        // Everything the graph holds for backward: saved inputs and every op's output.
        self.split.graph_after_forward_bytes = live_bytes(device).saturating_sub(before);
        self.graph = shiftgrad_autograd::graph_outputs();
        let c1 = counters::snapshot().flops;
        loss.backward()?;
        let c2 = counters::snapshot().flops;
        let params = self.model.named_parameters();
        self.split.parameters_bytes = params.iter().map(|p| p.var.value().nbytes() as u64).sum();
        self.split.gradients_bytes = params
            .iter()
            .filter_map(|p| p.var.grad().as_ref().map(|g| g.nbytes() as u64))
            .sum();
        self.optim.step(0.01)?;
        self.flops_split = [
            c1 - c0,
            c2 - c1,
            counters::flops_in(shiftgrad_autograd::REGION_ACCUMULATE),
            counters::snapshot().flops - c2,
        ];
        self.split.optimiser_state_bytes = self.optim.state_bytes();
        loss.value().item()?; // waits for the device
        Ok(())
    }

    /// `steps` timed steps, adding their times and op-counter FLOPs.
    fn timed(&mut self, steps: usize) -> Result<()> {
        let before = counters::snapshot().flops;
        for _ in 0..steps {
            let t = Instant::now();
            self.step()?;
            self.times.push(t.elapsed().as_secs_f64());
        }
        self.flops += counters::snapshot().flops - before;
        Ok(())
    }
}

/// Profiles one network per configuration of `configs` and entry of `shape.sparsity` (the
/// configurations outer), the i-th on `devices[i]` (give each its own context so that their
/// kernel times stay apart), and prints a report per network and, for several, their median
/// steps side by side and the device time of the shift-wise layers' bank convolution and
/// shift-add. Returns the median step time of each, in seconds.
pub fn run(
    configs: &[ResNetConfig],
    devices: &[Device],
    shape: Shape,
    out: &mut dyn Write,
) -> Result<Vec<f64>> {
    let Shape {
        batch,
        warmup,
        steps,
        rounds,
        ref sparsity,
    } = shape;
    if batch == 0 || steps == 0 || rounds == 0 {
        return Err(Error::arg(
            "profile",
            "batch, steps and rounds must be at least 1",
        ));
    }
    let networks = configs.len() * sparsity.len();
    if networks == 0 || devices.len() != networks {
        return Err(Error::arg(
            "profile",
            format!(
                "one device per network: {} spatial operators x {} sparsities, {} devices",
                configs.len(),
                sparsity.len(),
                devices.len()
            ),
        ));
    }
    let io = |e: std::io::Error| Error::Other(format!("profile: {e}"));
    let mut subjects = Vec::new();
    let pairs = configs
        .iter()
        .flat_map(|c| sparsity.iter().map(move |&s| (c, s)));
    for ((config, s), device) in pairs.zip(devices) {
        subjects.push(subject(config, device, batch, s, out)?);
    }
    for subject in &mut subjects {
        for _ in 0..warmup {
            subject.step()?;
        }
        if let Device::OpenCl(ctx) = subject.device {
            ctx.finish().map_err(|e| Error::Device(e.to_string()))?;
            ctx.reset_kernel_times();
            ctx.reset_peak();
        }
    }
    for _ in 0..rounds {
        for subject in &mut subjects {
            subject.timed(steps)?;
        }
    }
    let mut medians = Vec::new();
    let mut spatial = Vec::new();
    for subject in &subjects {
        if subjects.len() > 1 {
            writeln!(out, "\n== {} ==", subject.label(configs.len())).map_err(io)?;
        }
        let (median, region_ms) = report(subject, batch, out)?;
        medians.push(median);
        spatial.push(region_ms);
    }
    if subjects.len() > 1 {
        writeln!(
            out,
            "\nmedian steps, the networks timed in alternating rounds ({rounds} x {steps} steps each):"
        )
        .map_err(io)?;
        for (subject, &m) in subjects.iter().zip(&medians) {
            writeln!(
                out,
                "  {:<17} {:>8.3} s  {:>7.1} images/s  {:.2}x the images/s of {}",
                format!("{}:", subject.label(configs.len())),
                m,
                batch as f64 / m,
                medians[0] / m,
                subjects[0].label(configs.len())
            )
            .map_err(io)?;
        }
    }
    if subjects.len() > 1 && sparsity.len() > 1 {
        if let (Some(Some(base)), true) = (spatial.first(), spatial.iter().all(Option::is_some)) {
            writeln!(
                out,
                "\nshift-wise layers' bank convolution + shift-add, device ms per step \
                 (forward and backward; the regions {:?}, {:?} and {:?}):",
                shiftgrad_nn::shiftwise::REGION_BANK,
                shiftgrad_nn::shiftwise::REGION_SHIFT_ADD,
                shiftgrad_nn::shiftwise::REGION_FUSED
            )
            .map_err(io)?;
            for (subject, ms) in subjects.iter().zip(&spatial) {
                let ms = ms.unwrap_or(0.0);
                writeln!(
                    out,
                    "  {:<16} {:>8.2} ms  ({:+.1} % against {})",
                    subject.label(configs.len()),
                    ms,
                    100.0 * (ms - base) / base.max(1e-12),
                    subjects[0].label(configs.len())
                )
                .map_err(io)?;
            }
        }
    }
    Ok(medians)
}

/// Builds the network of `config` on `device` with a fraction `sparsity` of every shift-wise
/// layer's kernels pruned, its optimiser and a fixed batch.
fn subject<'d>(
    config: &ResNetConfig,
    device: &'d Device,
    batch: usize,
    sparsity: f64,
    out: &mut dyn Write,
) -> Result<Subject<'d>> {
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
            "sparsity {sparsity}: {live} of {total} small kernels live in {} shift-wise layers",
            masks.len()
        )
        .map_err(|e| Error::Other(format!("profile: {e}")))?;
    }
    let optim = Optimizer::new(
        shiftgrad_nn::optim::OptimKind::Sgd {
            momentum: 0.9,
            nesterov: true,
            weight_decay: 5e-4,
        },
        model.named_parameters(),
    );
    let mut rng = init::rng(1);
    let x: Tensor<f32> = init::normal([batch, config.in_channels, 28, 28], 0.0, 1.0, &mut rng);
    Ok(Subject {
        config: config.clone(),
        sparsity,
        device,
        model,
        optim,
        x: x.to_device(device)?,
        labels: (0..batch).map(|i| i % config.classes).collect(),
        split: MemorySplit::default(),
        times: Vec::new(),
        flops: 0,
        flops_split: [0; 4],
        graph: Vec::new(),
    })
}

/// Prints the report of one subject; returns its median step time and, on OpenCL, the
/// device ms per step of the shift-wise regions (bank convolution + shift-add).
fn report(subject: &Subject<'_>, batch: usize, out: &mut dyn Write) -> Result<(f64, Option<f64>)> {
    let device = subject.device;
    let config = &subject.config;
    let split = &subject.split;
    let steps = subject.times.len();
    let mut times = subject.times.clone();
    times.sort_by(|a, b| a.total_cmp(b));
    let median = times[times.len() / 2];
    let io = |e: std::io::Error| Error::Other(format!("profile: {e}"));
    let mut region_ms = None;
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
        subject.flops as f64 / steps as f64 * 1e-9
    )
    .map_err(io)?;
    let [fwd, bwd, acc, opt] = subject.flops_split.map(|f| f as f64 * 1e-6);
    writeln!(
        out,
        "MFLOP per step: forward {fwd:.1}, backward {bwd:.1} (of which gradient accumulation {acc:.1}), optimiser step {opt:.2}"
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
    let by_op = &subject.graph;
    writeln!(
        out,
        "{:<24} {:>9} {:>12}   (op outputs recorded in the graph by the forward, held until their backward)",
        "op", "outputs", "MB"
    )
    .map_err(io)?;
    for g in by_op {
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
        let regions = ctx
            .region_times()
            .map_err(|e| Error::Device(e.to_string()))?;
        writeln!(
            out,
            "{:<44} {:>9} {:>12} {:>7}   (profiling regions: forward and backward)",
            "region", "launches", "ms/step", "share"
        )
        .map_err(io)?;
        for r in &regions {
            writeln!(
                out,
                "{:<44} {:>9} {:>12.2} {:>6.1}%",
                if r.region.is_empty() {
                    "(the rest)"
                } else {
                    r.region
                },
                r.launches / steps as u64,
                r.device_ns as f64 * 1e-6 / steps as f64,
                100.0 * r.device_ns as f64 / total as f64
            )
            .map_err(io)?;
        }
        let spatial_ns: u64 = regions
            .iter()
            .filter(|r| {
                r.region == shiftgrad_nn::shiftwise::REGION_BANK
                    || r.region == shiftgrad_nn::shiftwise::REGION_SHIFT_ADD
                    || r.region == shiftgrad_nn::shiftwise::REGION_FUSED
            })
            .map(|r| r.device_ns)
            .sum();
        if spatial_ns > 0 {
            region_ms = Some(spatial_ns as f64 * 1e-6 / steps as f64);
        }
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
    Ok((median, region_ms))
}
