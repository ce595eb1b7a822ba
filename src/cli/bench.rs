//! `shiftgrad bench`: times one spatial layer of each kind (SPEC 1.7) in training mode on a
//! device, forward and backward separately, and sets what it did (FLOPs and bytes from the op
//! counters) against the time and the device's measured peaks (`ops::peaks`).
//!
//! Every timed phase ends with a wait for the device, so the times are wall times of the
//! work (launches included), the median over `--steps` steps after `--warmup` untimed ones.
//! The layers take their steps in turn (one step of each, then the next round).
//! The backward starts from a fixed random output gradient and includes the input's gradient,
//! as inside a network. The bytes are what the ops' cost functions count as read and written
//! (SPEC 5), not measured traffic.

use super::{check_sparsity, uniform_mask};
use crate::train::metrics::{live_bytes, peak_bytes, reset_peak};
use shiftgrad_autograd::Var;
use shiftgrad_nn::baselines::{Spatial, SpatialKind};
use shiftgrad_nn::{Mode, Module, SwConfig};
use shiftgrad_ops::peaks::{self, Peaks};
use shiftgrad_tensor::{counters, init, Device, Error, Result, Tensor};
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Instant;

/// What to time.
#[derive(Debug, Clone)]
pub struct BenchShape {
    pub batch: usize,
    pub height: usize,
    pub width: usize,
    pub warmup: usize,
    pub steps: usize,
    /// The kinds to time, in order.
    pub kinds: Vec<SpatialKind>,
    /// With a value above 0, an `sw*` row: the sw layer with that fraction of its kernels
    /// pruned (uniform random mask from the seed).
    pub sparsity: f64,
    /// Print each row's kernels with their device time per step (OpenCL only).
    pub kernels: bool,
}

/// One timed layer.
#[derive(Debug, Clone)]
pub struct BenchRow {
    pub label: String,
    pub forward_s: f64,
    pub backward_s: f64,
    pub forward_flops: u64,
    pub backward_flops: u64,
    pub forward_bytes: u64,
    pub backward_bytes: u64,
    pub forward_macs: u64,
    pub backward_macs: u64,
    /// The fastest and slowest timed forward and backward, seconds.
    pub forward_range: (f64, f64),
    pub backward_range: (f64, f64),
    /// Bytes the forward left live on the device for the backward (saved inputs and
    /// outputs), and the most bytes live during the step above what was live before it
    /// (the input and the parameters); from the last timed step. On the CPU backend these
    /// are process-wide counters, exact when nothing else allocates meanwhile.
    pub saved_bytes: u64,
    pub peak_bytes: u64,
    /// `(program/kernel, launches, device ms)` per timed step, the most expensive first
    /// (OpenCL only; empty on the CPU).
    pub kernels: Vec<(String, f64, f64)>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// One layer being timed: its inputs, and what its timed steps have measured so far.
struct LayerTimer {
    layer: Spatial<f32>,
    x: Tensor<f32>,
    dy: Tensor<f32>,
    params: Vec<shiftgrad_nn::module::ParamRef<f32>>,
    fwd: Vec<f64>,
    bwd: Vec<f64>,
    row: BenchRow,
    /// `program/kernel` -> (launches, device ns) over the timed steps.
    kernels: BTreeMap<String, (u64, u64)>,
}

/// Cumulative `program/kernel` -> (launches, device ns) of the context (OpenCL only).
fn kernel_totals(device: &Device) -> Result<BTreeMap<String, (u64, u64)>> {
    let mut m = BTreeMap::new();
    if let Device::OpenCl(c) = device {
        for t in c.kernel_times().map_err(|e| Error::Device(e.to_string()))? {
            m.insert(
                format!("{}/{}", t.program, t.kernel),
                (t.launches, t.device_ns),
            );
        }
    }
    Ok(m)
}

impl LayerTimer {
    fn new(
        label: String,
        mut layer: Spatial<f32>,
        config: &SwConfig,
        shape: &BenchShape,
        device: &Device,
    ) -> Result<LayerTimer> {
        layer.move_to(device)?;
        let dims = [shape.batch, config.channels, shape.height, shape.width];
        let mut rng = init::rng(config.seed ^ 0xBE7C);
        let x: Tensor<f32> = init::normal(dims, 0.0, 1.0, &mut rng);
        let dy: Tensor<f32> = init::normal(dims, 0.0, 1.0, &mut rng);
        let (x, dy) = (x.to_device(device)?, dy.to_device(device)?);
        let mut params = Vec::new();
        layer.parameters("", &mut params);
        let row = BenchRow {
            label,
            forward_s: 0.0,
            backward_s: 0.0,
            forward_flops: 0,
            backward_flops: 0,
            forward_bytes: 0,
            backward_bytes: 0,
            forward_macs: 0,
            backward_macs: 0,
            forward_range: (0.0, 0.0),
            backward_range: (0.0, 0.0),
            saved_bytes: 0,
            peak_bytes: 0,
            kernels: Vec::new(),
        };
        Ok(LayerTimer {
            layer,
            x,
            dy,
            params,
            fwd: Vec::new(),
            bwd: Vec::new(),
            row,
            kernels: BTreeMap::new(),
        })
    }

    /// One forward and backward; `timed`: recorded (a warm-up step otherwise).
    fn step(&mut self, device: &Device, timed: bool) -> Result<()> {
        for p in &self.params {
            p.var.zero_grad();
        }
        let xv = Var::param(self.x.clone());
        device.wait()?;
        let k0 = kernel_totals(device)?;
        let live0 = live_bytes(device);
        reset_peak(device);
        let c0 = counters::snapshot();
        let t0 = Instant::now();
        let y = self.layer.forward(&xv, Mode::Train)?;
        device.wait()?;
        let t1 = Instant::now();
        let c1 = counters::snapshot();
        // What the graph holds for the backward, beside the output itself.
        let saved = live_bytes(device).saturating_sub(live0 + y.value().nbytes() as u64);
        y.backward_with(self.dy.clone())?;
        device.wait()?;
        let t2 = Instant::now();
        let c2 = counters::snapshot();
        if timed {
            let row = &mut self.row;
            row.forward_macs = c1.macs - c0.macs;
            row.backward_macs = c2.macs - c1.macs;
            row.saved_bytes = saved;
            row.peak_bytes = peak_bytes(device).saturating_sub(live0);
            self.fwd.push((t1 - t0).as_secs_f64());
            self.bwd.push((t2 - t1).as_secs_f64());
            row.forward_flops = c1.flops - c0.flops;
            row.backward_flops = c2.flops - c1.flops;
            row.forward_bytes = c1.bytes - c0.bytes;
            row.backward_bytes = c2.bytes - c1.bytes;
            for (name, (launches, ns)) in kernel_totals(device)? {
                let (l0, n0) = k0.get(&name).copied().unwrap_or((0, 0));
                if launches > l0 {
                    let e = self.kernels.entry(name).or_insert((0, 0));
                    e.0 += launches - l0;
                    e.1 += ns.saturating_sub(n0);
                }
            }
        }
        Ok(())
    }

    /// The row: medians and ranges of the timed steps, each kernel's launches and device time
    /// per step, the most expensive first.
    fn finish(mut self) -> BenchRow {
        let range = |v: &[f64]| {
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            (lo, v.iter().copied().fold(0.0, f64::max))
        };
        let per_step = 1.0 / self.fwd.len().max(1) as f64;
        self.row.forward_range = range(&self.fwd);
        self.row.backward_range = range(&self.bwd);
        self.row.forward_s = median(self.fwd);
        self.row.backward_s = median(self.bwd);
        let mut kernels: Vec<(String, f64, f64)> = self
            .kernels
            .into_iter()
            .map(|(name, (launches, ns))| {
                (
                    name,
                    launches as f64 * per_step,
                    ns as f64 * 1e-6 * per_step,
                )
            })
            .collect();
        kernels.sort_by(|a, b| b.2.total_cmp(&a.2));
        self.row.kernels = kernels;
        self.row
    }
}

/// Times `layer` on `device`: `shape.warmup` untimed steps, then `shape.steps` timed ones.
pub fn time_layer(
    label: String,
    layer: Spatial<f32>,
    config: &SwConfig,
    shape: &BenchShape,
    device: &Device,
) -> Result<BenchRow> {
    let mut t = LayerTimer::new(label, layer, config, shape, device)?;
    for step in 0..shape.warmup + shape.steps {
        t.step(device, step >= shape.warmup)?;
    }
    Ok(t.finish())
}

/// Times every kind of `shape.kinds` (and `sw*` with a sparsity) and prints the table.
pub fn run(
    config: SwConfig,
    shape: &BenchShape,
    device: &Device,
    out: &mut dyn Write,
) -> Result<Vec<BenchRow>> {
    check_sparsity("bench", shape.sparsity)?;
    if shape.steps == 0 || shape.batch == 0 || shape.height == 0 || shape.width == 0 {
        return Err(Error::arg(
            "bench",
            "--steps, --batch, --height and --width must be at least 1",
        ));
    }
    if shape.kinds.is_empty() {
        return Err(Error::arg("bench", "--spatial lists no kind"));
    }
    let io = |e: std::io::Error| Error::Other(format!("bench: {e}"));
    let peak = peaks::measure(device)?;
    writeln!(
        out,
        "one spatial layer, training mode: C={} M={} k={} ghost={} P={} G={} on {}x{}x{}x{} (f32) on {}; median of {} steps after {} warm-up",
        config.channels, config.big_kernel, config.small_kernel, config.ghost_ratio, config.n_path, config.n_rep,
        shape.batch, config.channels, shape.height, shape.width, device.name(), shape.steps, shape.warmup
    )
    .map_err(io)?;
    writeln!(
        out,
        "measured peaks of this device: {:.1} GFLOP/s (f32 multiply-add), {:.1} GB/s (copy)",
        peak.flops_per_s * 1e-9,
        peak.bytes_per_s * 1e-9
    )
    .map_err(io)?;
    // Every layer is built first and the layers take their steps in turn, so that a change
    // in the machine's load while the bench runs falls on all of them alike and the ratios
    // between rows stay comparable.
    let mut timers = Vec::new();
    for &kind in &shape.kinds {
        let layer = match Spatial::<f32>::new(kind, config) {
            Ok(l) => l,
            Err(e) => {
                writeln!(out, "{kind}: skipped ({e})").map_err(io)?;
                continue;
            }
        };
        timers.push(LayerTimer::new(
            kind.to_string(),
            layer,
            &config,
            shape,
            device,
        )?);
        if kind == SpatialKind::Sw && shape.sparsity > 0.0 {
            let mut layer = Spatial::<f32>::new(kind, config)?;
            if let Spatial::Sw(sw) = &mut layer {
                let mask = uniform_mask(sw.kernels(), shape.sparsity, &mut init::rng(config.seed));
                sw.set_mask(&mask)?;
            }
            timers.push(LayerTimer::new(
                "sw*".into(),
                layer,
                &config,
                shape,
                device,
            )?);
        }
    }
    for step in 0..shape.warmup + shape.steps {
        for t in &mut timers {
            t.step(device, step >= shape.warmup)?;
        }
    }
    let rows: Vec<BenchRow> = timers.into_iter().map(LayerTimer::finish).collect();
    print_table(&rows, &peak, out).map_err(io)?;
    if shape.kernels {
        print_kernels(&rows, out).map_err(io)?;
    }
    if shape.sparsity > 0.0 {
        writeln!(
            out,
            "sw*: sw with {} of its small kernels pruned (uniform random mask from the seed)",
            shape.sparsity
        )
        .map_err(io)?;
    }
    Ok(rows)
}

fn print_table(rows: &[BenchRow], peak: &Peaks, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<6} {:>9} {:>9} {:>9} {:>8} {:>8} {:>9} {:>9} {:>8} {:>8} {:>9} {:>9}",
        "kind",
        "fwd ms",
        "bwd ms",
        "total ms",
        "fwd/slak",
        "tot/slak",
        "fwd MFLOP",
        "bwd MFLOP",
        "fwd GF/s",
        "bwd GF/s",
        "fwd GB/s",
        "bwd GB/s"
    )?;
    let slak = rows.iter().find(|r| r.label == "slak");
    let ratio = |a: f64, b: Option<f64>| b.map_or("-".to_string(), |b| format!("{:.2}x", a / b));
    for r in rows {
        let total = r.forward_s + r.backward_s;
        writeln!(
            out,
            "{:<6} {:>9.2} {:>9.2} {:>9.2} {:>8} {:>8} {:>9.2} {:>9.2} {:>8.1} {:>8.1} {:>9.1} {:>9.1}",
            r.label,
            r.forward_s * 1e3,
            r.backward_s * 1e3,
            total * 1e3,
            ratio(r.forward_s, slak.map(|s| s.forward_s)),
            ratio(total, slak.map(|s| s.forward_s + s.backward_s)),
            r.forward_flops as f64 * 1e-6,
            r.backward_flops as f64 * 1e-6,
            r.forward_flops as f64 / r.forward_s * 1e-9,
            r.backward_flops as f64 / r.backward_s * 1e-9,
            r.forward_bytes as f64 / r.forward_s * 1e-9,
            r.backward_bytes as f64 / r.backward_s * 1e-9,
        )?;
    }
    let best = rows
        .iter()
        .map(|r| (r.forward_flops + r.backward_flops) as f64 / (r.forward_s + r.backward_s))
        .fold(0.0, f64::max);
    writeln!(
        out,
        "the fastest row reaches {:.1} % of the measured multiply-add peak; GB/s are the cost \
         functions' bytes read and written over the time (SPEC 5), against {:.1} GB/s copy",
        100.0 * best / peak.flops_per_s,
        peak.bytes_per_s * 1e-9
    )
}

/// Each row's kernels, device ms per step (forward and backward).
fn print_kernels(rows: &[BenchRow], out: &mut dyn Write) -> std::io::Result<()> {
    for r in rows {
        if r.kernels.is_empty() {
            writeln!(out, "{}: no OpenCL kernels (CPU backend)", r.label)?;
            continue;
        }
        let total: f64 = r.kernels.iter().map(|k| k.2).sum();
        writeln!(
            out,
            "{}: kernels, device ms per step (forward + backward), {:.2} ms in all",
            r.label, total
        )?;
        for (name, launches, ms) in &r.kernels {
            writeln!(out, "  {name:<44} {launches:>5.1} launches {ms:>9.2} ms")?;
        }
    }
    Ok(())
}
