//! `shiftgrad train` and `shiftgrad eval`: SW-ResNets on Fashion-MNIST (SPEC sections 2, 5).
//!
//! One epoch: the training indices are shuffled by an RNG derived from the seed and the epoch
//! number (so a resumed run draws exactly what the uninterrupted run drew, with no RNG state
//! to carry beyond the seed), batches are augmented (random crop with zero padding, flips) from
//! the same RNG, and the network is trained with a linear warm-up then cosine learning rate.
//! After each epoch: evaluation on the test set, one line appended to `metrics.jsonl`,
//! `curves.png` redrawn, and `checkpoint.npz` written atomically (model, index tables,
//! optimiser state, epoch, configuration, metrics so far).
//!
//! ## Stopping on non-finite values
//! The run stops with an error naming the epoch and step when the loss is not finite, or
//! when a parameter is not finite after an optimiser step (which also catches non-finite
//! gradients; see [`finite`] for how this shares the step's one read-back with the loss and the
//! logits, and
//! `summary.json`'s `finite_check_seconds` for what it cost). Nothing of a stopped epoch is
//! written, and a checkpoint whose tensors or metrics are not finite is never written, so
//! `checkpoint.npz` stays the last good one. Zero training or test images is an error, not a
//! 0/0.
//!
//! ## Resuming
//! [`Start::Resume`] continues from the run directory's checkpoint with the configuration
//! stored in it, after checking it ([`checkpoint::read_meta`]). Without a new epoch count the
//! run finishes its plan and is bit-exact with the uninterrupted run: the epoch RNG is
//! derived from (seed, epoch), and the optimiser state and step count are in the checkpoint.
//! With a new count N (at least the epochs trained; the CLI's `--epochs` with `--resume`) the
//! plan becomes N epochs. The warm-up is unchanged, but the cosine decay spans the new total,
//! so the remaining epochs follow the N-epoch schedule from where that schedule stands: the
//! result differs from a fresh N-epoch run, and extending a finished run raises the learning
//! rate again from about 0. It is reproducible: the new plan is written to the checkpoint and
//! `config.json`, so resuming an interrupted extension is exact again. A run that has trained
//! all its epochs is left alone.

pub mod checkpoint;
pub mod config;
pub mod finite;
mod job;
pub mod metrics;
mod parallel;
pub mod plot;
mod report;
mod run;
pub mod sparse;

pub use checkpoint::{load_checkpoint, read_meta, Meta};
pub use job::train;

use crate::dist::Group;
use config::RunConfig;
use indicatif::{ProgressBar, ProgressStyle};
use metrics::{EpochMetrics, Summary};
use shiftgrad_autograd::{no_grad, Var};
use shiftgrad_nn::data::{self, Dataset, Split};
use shiftgrad_nn::resnet::SwResNet;
use shiftgrad_nn::{Mode, Module, StateDict};
use shiftgrad_ops::cross_entropy;
use shiftgrad_tensor::{init, Device, Error, Result, Tensor};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// File names inside a run directory.
pub const CHECKPOINT: &str = "checkpoint.npz";
pub const METRICS: &str = "metrics.jsonl";
pub const CURVES: &str = "curves.png";
/// Sparse runs: the picture of every shift-wise layer's mask, redrawn after each epoch.
pub const MASKS: &str = "masks.png";
pub const SUMMARY: &str = "summary.json";
pub const CONFIG: &str = "config.json";

/// Evaluation batch size (memory only; results do not depend on it).
const EVAL_BATCH: usize = 500;

/// A new run with its configuration, or the continuation of the run in the output directory.
pub enum Start {
    Fresh(Box<RunConfig>),
    /// Continue from `out/checkpoint.npz` with the configuration stored there; `epochs`, when
    /// given, replaces the planned number of epochs and must be at least the epochs trained.
    Resume {
        epochs: Option<usize>,
    },
}

/// How to run a training job.
pub struct TrainJob {
    pub start: Start,
    pub device: Device,
    pub out: PathBuf,
    pub data_dir: PathBuf,
    /// No progress bars or per-epoch lines.
    pub quiet: bool,
    /// Stop (as if interrupted) after this many epochs of this invocation; for tests.
    pub stop_after: Option<usize>,
    /// The processes of a data-parallel job ([`Group::single`] for one process). Only rank 0
    /// prints and writes the run directory.
    pub group: Rc<Group>,
}

/// What a finished (or stopped) job reports.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub history: Vec<EpochMetrics>,
    pub summary: Option<Summary>,
}

/// The RNG of epoch `epoch` (shuffling and augmentation).
fn epoch_rng(seed: u64, epoch: usize) -> init::Rng {
    init::rng(
        seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .wrapping_add(epoch as u64 + 1),
    )
}

/// Builds the network of `config` on `device`, loading `sd` if given.
pub fn build_model(
    config: &RunConfig,
    device: &Device,
    sd: Option<&StateDict<f32>>,
) -> Result<SwResNet<f32>> {
    let mut model = SwResNet::<f32>::new(config.network()?)?;
    model.move_to(device)?;
    if let Some(sd) = sd {
        model.load_state("", sd)?;
    }
    Ok(model)
}

fn argmax_correct(logits: &Tensor<f32>, labels: &[usize]) -> Result<usize> {
    let v = logits.to_vec()?;
    Ok(count_correct(&v, logits.dims()[1], labels))
}

/// How many rows of the row-major `(labels.len(), k)` logits `v` have their first maximum at
/// the label.
fn count_correct(v: &[f32], k: usize, labels: &[usize]) -> usize {
    labels
        .iter()
        .enumerate()
        .filter(|(i, &l)| {
            let row = &v[i * k..(i + 1) * k];
            let best = (0..k).fold(0, |b, j| if row[j] > row[b] { j } else { b });
            best == l
        })
        .count()
}

/// Test loss and accuracy of `model` on `data` (eval mode, no graph). An empty data set is
/// an error (its mean loss would be 0/0).
pub fn evaluate(model: &mut SwResNet<f32>, data: &Dataset, device: &Device) -> Result<(f64, f64)> {
    evaluate_sharded(model, data, device, &Group::single())
}

/// [`evaluate`] over the processes of `group`: process r takes the r-th of N contiguous parts
/// of the test set, and the loss sums and counts are added over the processes.
pub fn evaluate_sharded(
    model: &mut SwResNet<f32>,
    data: &Dataset,
    device: &Device,
    group: &Group,
) -> Result<(f64, f64)> {
    let n = data.len();
    if n == 0 {
        return Err(Error::arg("evaluate", "the test set has no images"));
    }
    let (r, parts) = (group.rank(), group.size());
    let (from, to) = (r * n / parts, (r + 1) * n / parts);
    let (mut loss_sum, mut correct) = (0.0f64, 0usize);
    let mut rng = init::rng(0); // unused without augmentation
    for start in (from..to).step_by(EVAL_BATCH) {
        let idx: Vec<usize> = (start..(start + EVAL_BATCH).min(to)).collect();
        let (x, labels) = data::batch::<f32>(data, &idx, None, &mut rng)?;
        let (loss, logits) = no_grad(|| -> Result<_> {
            let logits = model.forward(&Var::constant(x.to_device(device)?), Mode::Eval)?;
            let loss = cross_entropy(&logits, &labels)?;
            let l = loss.value().item()? as f64;
            let host = logits.value().to_host()?;
            Ok((l, host))
        })?;
        loss_sum += loss * idx.len() as f64;
        correct += argmax_correct(&logits, &labels)?;
    }
    let mut sums = [loss_sum, correct as f64];
    group.sum(&mut sums)?;
    Ok((sums[0] / n as f64, sums[1] / n as f64))
}

/// Loads one split, keeps its first `limit` examples (a limit beyond the set keeps all), and
/// refuses an empty result: no training step or mean can be computed from zero images.
pub fn load_split(dir: &Path, split: Split, limit: Option<usize>) -> Result<Dataset> {
    let mut d = data::load(dir, split)?;
    if let Some(n) = limit {
        d.truncate(n);
    }
    if d.is_empty() {
        let (what, file) = match split {
            Split::Train => ("training", "train-images-idx3-ubyte"),
            Split::Test => ("test", "t10k-images-idx3-ubyte"),
        };
        return Err(Error::file(
            dir.join(file),
            format!("the {what} set has no images"),
        ));
    }
    Ok(d)
}

pub(crate) fn progress(quiet: bool, steps: usize, epoch: usize, epochs: usize) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(steps as u64);
    pb.set_style(
        ProgressStyle::with_template(
            "epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed}<{eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    pb.set_prefix(format!("{}/{}", epoch + 1, epochs));
    pb
}
