//! Per-epoch metrics (`metrics.jsonl`, one JSON object a line) and the run summary
//! (`summary.json`).

use serde::{Deserialize, Serialize};
use shiftgrad_tensor::{counters, Device, Error, Result};
use std::path::Path;

/// One epoch's numbers. The timing fields differ between runs; the others are reproducible.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub lr: f64,
    pub train_loss: f64,
    pub train_acc: f64,
    pub test_loss: f64,
    pub test_acc: f64,
    pub train_images_per_s: f64,
    pub epoch_seconds: f64,
    /// Sparse runs: the density (live fraction of small kernels) of every shift-wise layer at
    /// the end of the epoch, in network order (`stages.{s}.blocks.{b}`); absent otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub densities: Vec<f64>,
    /// The training loss through the epoch: the mean over each window of [`LOSS_WINDOW`]
    /// consecutive steps (the last window may be shorter); drawn in `curves.png`. Absent in
    /// runs written before it was recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub train_loss_steps: Vec<f64>,
}

/// Steps per point of [`EpochMetrics::train_loss_steps`].
pub const LOSS_WINDOW: usize = 10;

/// `history` (from a checkpoint, without wall-clock fields) with each epoch's images/s and
/// seconds taken from the line of `metrics.jsonl` that holds the same metrics otherwise; an
/// epoch without such a line (the file missing, edited or from another run) keeps zeros.
pub fn restore_timing(
    mut history: Vec<EpochMetrics>,
    jsonl: &std::path::Path,
) -> Vec<EpochMetrics> {
    let Ok(text) = std::fs::read_to_string(jsonl) else {
        return history;
    };
    let lines: Vec<EpochMetrics> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    for m in &mut history {
        if let Some(line) = lines
            .iter()
            .find(|l| l.without_timing() == m.without_timing())
        {
            m.train_images_per_s = line.train_images_per_s;
            m.epoch_seconds = line.epoch_seconds;
        }
    }
    history
}

impl EpochMetrics {
    /// The same metrics with the timing fields zeroed, for comparing runs.
    pub fn without_timing(&self) -> EpochMetrics {
        EpochMetrics {
            train_images_per_s: 0.0,
            epoch_seconds: 0.0,
            ..self.clone()
        }
    }

    /// True when every number is finite (JSON has no NaN: serde would write `null`).
    pub fn is_finite(&self) -> bool {
        [
            self.lr,
            self.train_loss,
            self.train_acc,
            self.test_loss,
            self.test_acc,
            self.train_images_per_s,
            self.epoch_seconds,
        ]
        .iter()
        .all(|v| v.is_finite())
    }
}

/// Writes `history` as `metrics.jsonl`, atomically.
pub fn write_jsonl(path: &Path, history: &[EpochMetrics]) -> Result<()> {
    let mut text = String::new();
    for m in history {
        text.push_str(&serde_json::to_string(m).expect("metrics serialise"));
        text.push('\n');
    }
    write_atomic(path, text.as_bytes())
}

/// Reads `metrics.jsonl`.
pub fn read_jsonl(path: &Path) -> Result<Vec<EpochMetrics>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, e))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).map_err(|e| Error::file(path, format!("bad metrics line: {e}")))
        })
        .collect()
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(|e| Error::file(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::file(path, e))
}

/// The most time-consuming kernels of a run (OpenCL profiling events).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KernelShare {
    pub kernel: String,
    pub launches: u64,
    pub seconds: f64,
    pub share: f64,
}

/// `summary.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    pub preset: String,
    pub spatial: String,
    pub device: String,
    pub parameters: usize,
    /// Sparse runs: the parameters less the pruned kernels' (zero) weights in every bank,
    /// what the pruned network holds (the count `compare` gives its `sw*` row).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_parameters: Option<usize>,
    pub forward_flops_per_image: f64,
    /// The backward's FLOPs per image, gradient accumulation included.
    pub backward_flops_per_image: f64,
    /// Of the backward's FLOPs per image: summing the gradients of values that feed several
    /// ops (one addition per element).
    #[serde(default)]
    pub gradient_accumulation_flops_per_image: f64,
    /// The optimiser's update of every parameter, per step (not per image: it does not depend
    /// on the batch), measured on the last step.
    #[serde(default)]
    pub optimiser_flops_per_step: f64,
    pub forward_macs_per_image: f64,
    /// The forward FLOPs per image by profiling region (the shift-wise layers' bank
    /// convolution and shift-add; "" for the rest), from the first step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forward_flops_by_region: Vec<RegionShare>,
    pub peak_device_memory_bytes: u64,
    /// What the memory of a training step holds (measured on the first step of this job).
    #[serde(default)]
    pub memory: MemorySplit,
    /// The op outputs the forward of the first step recorded in the graph, by op, largest
    /// first (where `memory.graph_after_forward_bytes` goes).
    #[serde(default)]
    pub graph_outputs_by_op: Vec<OpBytes>,
    pub epochs: usize,
    pub wall_seconds: f64,
    pub train_images_per_s: f64,
    /// Seconds spent checking that every parameter is finite after each step and reading the
    /// step's values back (one reduction per parameter, then the step's one blocking read of
    /// loss, logits and the finite total; included in the training time).
    pub finite_check_seconds: f64,
    pub final_test_accuracy: f64,
    pub final_test_loss: f64,
    pub kernel_time_top: Vec<KernelShare>,
    /// Sparse runs: the final density of every shift-wise layer, in network order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub densities: Vec<f64>,
    /// Sparse runs: the final density of each stage (live kernels over kernels of its
    /// shift-wise layers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stage_densities: Vec<f64>,
    /// Data-parallel runs: the processes and the time rank 0 spent in collectives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distributed: Option<DistSummary>,
}

/// What a data-parallel run's rank 0 measured of its communication.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistSummary {
    pub ranks: usize,
    pub sync_bn: bool,
    /// Seconds in collectives (gradient sums, batch-norm statistics, step and evaluation
    /// counts, the state copies), timed around each MPI call.
    pub communication_seconds: f64,
    /// Of the training time (the epochs' training loops, evaluation excluded), the fraction
    /// spent in the training steps' collectives.
    pub communication_fraction_of_training: f64,
}

/// What the memory of one training step holds, in bytes (SPEC 4): the parameters, their
/// gradients after backward, the optimiser state, and what the graph holds for backward at the
/// end of the forward (every saved input and op output: the live bytes the forward added). The
/// step's peak is about the sum (it is reached as backward starts, before nodes are freed).
#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MemorySplit {
    pub parameters_bytes: u64,
    pub gradients_bytes: u64,
    pub optimiser_state_bytes: u64,
    pub graph_after_forward_bytes: u64,
}

/// Live bytes on `device`: the OpenCL pool's, or the host tensors' counter.
pub fn live_bytes(device: &Device) -> u64 {
    match device {
        Device::Cpu => counters::snapshot().live_bytes,
        Device::OpenCl(ctx) => ctx.pool_stats().live_bytes,
    }
}

/// Sets `device`'s peak to its live bytes, to measure the peak of what follows.
pub fn reset_peak(device: &Device) {
    match device {
        Device::Cpu => counters::reset_peak(),
        Device::OpenCl(ctx) => ctx.reset_peak(),
    }
}

/// The most bytes live on `device` since its counter was last reset.
pub fn peak_bytes(device: &Device) -> u64 {
    match device {
        Device::Cpu => counters::snapshot().peak_bytes,
        Device::OpenCl(ctx) => ctx.pool_stats().peak_bytes,
    }
}

/// Forward FLOPs per image under one profiling region.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionShare {
    pub region: String,
    pub flops_per_image: f64,
}

/// Outputs an op recorded in the graph during one forward, and their bytes.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpBytes {
    pub op: String,
    pub outputs: u64,
    pub bytes: u64,
}

/// The graph's outputs by op since the last [`shiftgrad_autograd::reset_graph_outputs`].
pub fn graph_outputs_by_op() -> Vec<OpBytes> {
    shiftgrad_autograd::graph_outputs()
        .into_iter()
        .map(|g| OpBytes {
            op: g.op.to_string(),
            outputs: g.outputs,
            bytes: g.bytes,
        })
        .collect()
}
