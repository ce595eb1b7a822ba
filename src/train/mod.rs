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
pub mod metrics;
mod parallel;
pub mod plot;
mod run;
pub mod sparse;

pub use checkpoint::{load_checkpoint, read_meta, Meta};

use crate::dist::{Group, GroupSync};
use checkpoint::save_checkpoint;
use config::RunConfig;
use indicatif::{ProgressBar, ProgressStyle};
use metrics::{EpochMetrics, KernelShare, Summary};
use run::{last_good, EpochCtx, Run, Schedule, Tally};
use shiftgrad_autograd::{no_grad, Var};
use shiftgrad_nn::data::{self, Dataset, Split};
use shiftgrad_nn::resnet::SwResNet;
use shiftgrad_nn::{Mode, Module, StateDict};
use shiftgrad_ops::batch_norm::{set_sync, StatsSync};
use shiftgrad_ops::cross_entropy;
use shiftgrad_tensor::{counters, init, Device, Error, Result, Tensor};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

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

fn kernel_top(device: &Device) -> Vec<KernelShare> {
    let Device::OpenCl(ctx) = device else {
        return Vec::new();
    };
    let Ok(times) = ctx.kernel_times() else {
        return Vec::new();
    };
    let total: u64 = times.iter().map(|t| t.device_ns).sum::<u64>().max(1);
    times
        .iter()
        .take(12)
        .map(|t| KernelShare {
            kernel: format!("{}::{}", t.program, t.kernel),
            launches: t.launches,
            seconds: t.device_ns as f64 * 1e-9,
            share: t.device_ns as f64 / total as f64,
        })
        .collect()
}

/// Runs (or continues) a training job.
pub fn train(job: TrainJob) -> Result<Outcome> {
    let group = job.group.clone();
    let root = group.is_root();
    let quiet = job.quiet || !root;
    let ckpt_path = job.out.join(CHECKPOINT);
    // Every process sets up; a failure on any of them stops all of them, naming it.
    let setup = (|| -> Result<_> {
        let run = match &job.start {
            Start::Fresh(config) => {
                let run = Run::fresh(config, &job.device)?;
                if root {
                    std::fs::create_dir_all(&job.out).map_err(|e| Error::file(&job.out, e))?;
                }
                run
            }
            Start::Resume { epochs } => Run::resume(&job.out, *epochs, &job.device, quiet)?,
        };
        check_ranks(&run.config, &group)?;
        if run.history.len() == run.config.epochs {
            return Ok((run, None));
        }
        let train_set = load_split(&job.data_dir, Split::Train, run.config.limit)?;
        let test_set = load_split(&job.data_dir, Split::Test, run.config.test_limit)?;
        let schedule = Schedule::new(&run.config, train_set.len())?;
        if !schedule.batch.is_multiple_of(group.size()) {
            return Err(Error::arg(
                "train",
                format!(
                    "the global batch of {} images (the training set is that small) does not split over {} processes",
                    schedule.batch,
                    group.size()
                ),
            ));
        }
        Ok((run, Some((train_set, test_set, schedule))))
    })();
    let (mut run, sets) = group.agree(setup)?;
    let Some((train_set, test_set, schedule)) = sets else {
        if !quiet {
            eprintln!(
                "train: the run in {} has already trained all {} epochs; nothing to do (give --epochs N with --resume to extend it)",
                job.out.display(),
                run.config.epochs
            );
        }
        return Ok(Outcome {
            history: run.history,
            summary: None,
        });
    };
    if root {
        metrics::write_atomic(&job.out.join(CONFIG), run.config.to_json().as_bytes())?;
    }
    if let (Start::Fresh(_), Some(sp)) = (&job.start, run.config.sparse.clone()) {
        let (batch, seed) = (schedule.batch, run.config.seed);
        sparse::init_masks(&mut run.model, &sp, &train_set, batch, &job.device, seed)?;
        if !quiet {
            let d = sparse::densities(&mut run.model);
            let shown: Vec<String> = d.iter().map(|x| format!("{x:.2}")).collect();
            eprintln!(
                "sparse: {} init, layer densities [{}]",
                sp.init,
                shown.join(", ")
            );
        }
    }
    // Synchronised batch-norm statistics for the training forwards and backwards.
    let sync_bn = run.config.distributed.as_ref().is_some_and(|d| d.sync_bn);
    let _sync = SyncBn::install(sync_bn.then(|| group.clone()));
    let params = run.model.parameter_count();
    if !quiet {
        eprintln!(
            "{} ({} spatial), {} parameters, {} train / {} test images, batch {}, {} steps/epoch, device {}",
            run.config.preset,
            run.config.spatial,
            params,
            train_set.len(),
            test_set.len(),
            schedule.batch,
            schedule.steps,
            job.device.name()
        );
        if let Some(d) = &run.config.distributed {
            eprintln!(
                "distributed: {} processes, {} images each per step, batch-norm statistics {}",
                d.ranks,
                schedule.batch / d.ranks,
                if d.sync_bn {
                    "over the global batch (--sync-bn)"
                } else {
                    "per process"
                }
            );
        }
    }
    if let Device::OpenCl(ctx) = &job.device {
        ctx.reset_kernel_times();
        ctx.reset_peak();
    }
    counters::reset();
    let start = Instant::now();
    let mut tally = Tally::default();
    let first_epoch = run.history.len();
    let cx = EpochCtx {
        job: &job,
        train_set: &train_set,
        schedule: &schedule,
        ckpt_path: &ckpt_path,
    };
    for epoch in first_epoch..run.config.epochs {
        if job.stop_after.is_some_and(|n| epoch - first_epoch >= n) {
            return Ok(Outcome {
                history: run.history,
                summary: None,
            });
        }
        let epoch_start = Instant::now();
        let trained = run.train_epoch(&cx, epoch, &mut tally)?;
        let seen = trained.seen;
        let epoch_train_s = epoch_start.elapsed().as_secs_f64();
        tally.train_seconds += epoch_train_s;
        tally.trained_images += seen;
        parallel::share_state(&group, &mut run.model)?;
        let (test_loss, test_acc) =
            evaluate_sharded(&mut run.model, &test_set, &job.device, &group)?;
        let m = EpochMetrics {
            epoch: epoch + 1,
            lr: trained.lr,
            train_loss: trained.loss,
            train_acc: trained.acc,
            test_loss,
            test_acc,
            train_images_per_s: seen as f64 / epoch_train_s,
            epoch_seconds: epoch_start.elapsed().as_secs_f64(),
            densities: match run.config.sparse {
                Some(_) => sparse::densities(&mut run.model),
                None => Vec::new(),
            },
            train_loss_steps: trained.loss_steps,
        };
        if !quiet {
            eprintln!(
                "epoch {}/{}: train loss {:.4} acc {:.2}% | test loss {:.4} acc {:.2}% | {:.1} img/s, {:.1} s",
                m.epoch,
                run.config.epochs,
                m.train_loss,
                100.0 * m.train_acc,
                m.test_loss,
                100.0 * m.test_acc,
                m.train_images_per_s,
                m.epoch_seconds
            );
        }
        run.history.push(m);
        if !root {
            continue;
        }
        save_checkpoint(
            &ckpt_path,
            &run.model,
            &run.optim,
            &run.config,
            &run.history,
        )
        .map_err(|e| {
            Error::Other(format!(
                "train: {e}; stopping. {}",
                last_good(&run.history[..run.history.len() - 1], &ckpt_path)
            ))
        })?;
        metrics::write_jsonl(&job.out.join(METRICS), &run.history)?;
        plot::draw(&job.out.join(CURVES), &run.history)?;
        if run.config.sparse.is_some() {
            plot::draw_masks(
                &job.out.join(MASKS),
                &sparse::layer_masks(&mut run.model),
                &sparse::stage_densities(&mut run.model),
            )?;
        }
    }
    let mut summary = summarise(&run, &job, params, start, &tally);
    if let Some(d) = &run.config.distributed {
        summary.distributed = Some(metrics::DistSummary {
            ranks: d.ranks,
            sync_bn: d.sync_bn,
            communication_seconds: group.comm_seconds(),
            communication_fraction_of_training: tally.step_comm_seconds
                / tally.train_seconds.max(1e-9),
        });
    }
    if !root {
        return Ok(Outcome {
            history: run.history,
            summary: Some(summary),
        });
    }
    if run.config.sparse.is_some() {
        summary.densities = sparse::densities(&mut run.model);
        summary.stage_densities = sparse::stage_densities(&mut run.model);
        summary.live_parameters = Some(params - sparse::pruned_weights(&mut run.model));
    }
    metrics::write_atomic(
        &job.out.join(SUMMARY),
        serde_json::to_string_pretty(&summary)
            .expect("summary serialises")
            .as_bytes(),
    )?;
    if !quiet {
        if let Some(d) = &summary.distributed {
            eprintln!(
                "distributed: {} processes; rank 0 spent {:.1} s in collectives, {:.1} % of the training time",
                d.ranks,
                d.communication_seconds,
                100.0 * d.communication_fraction_of_training
            );
        }
        eprintln!(
            "done: test accuracy {:.2}%, {:.0} s wall, {:.1} train img/s ({:.1} s of it checking parameters are finite); wrote {}",
            100.0 * summary.final_test_accuracy,
            summary.wall_seconds,
            summary.train_images_per_s,
            summary.finite_check_seconds,
            job.out.display()
        );
        for k in summary.kernel_time_top.iter().take(5) {
            eprintln!(
                "  {:>5.1}% {:<40} {} launches",
                100.0 * k.share,
                k.kernel,
                k.launches
            );
        }
    }
    Ok(Outcome {
        history: run.history,
        summary: Some(summary),
    })
}

fn summarise(run: &Run, job: &TrainJob, params: usize, start: Instant, tally: &Tally) -> Summary {
    let last = run.history.last();
    Summary {
        preset: run.config.preset.clone(),
        spatial: run.config.spatial.clone(),
        device: job.device.name(),
        parameters: params,
        live_parameters: None,
        forward_flops_per_image: tally.flops_fwd,
        backward_flops_per_image: tally.flops_bwd,
        gradient_accumulation_flops_per_image: tally.flops_accumulate,
        optimiser_flops_per_step: tally.flops_optim,
        forward_macs_per_image: tally.macs_fwd,
        forward_flops_by_region: tally.flops_fwd_by_region.clone(),
        peak_device_memory_bytes: metrics::peak_bytes(&job.device),
        memory: tally.memory,
        graph_outputs_by_op: tally.graph_outputs_by_op.clone(),
        epochs: run.history.len(),
        wall_seconds: start.elapsed().as_secs_f64(),
        train_images_per_s: if tally.train_seconds > 0.0 {
            tally.trained_images as f64 / tally.train_seconds
        } else {
            0.0
        },
        finite_check_seconds: tally.finite_check_seconds,
        final_test_accuracy: last.map_or(0.0, |m| m.test_acc),
        final_test_loss: last.map_or(0.0, |m| m.test_loss),
        kernel_time_top: kernel_top(&job.device),
        densities: Vec::new(),
        stage_densities: Vec::new(),
        distributed: None,
    }
}

/// Refuses a run whose configuration plans another number of processes than the job has.
fn check_ranks(config: &RunConfig, group: &Group) -> Result<()> {
    let planned = config.distributed.as_ref().map_or(1, |d| d.ranks);
    if planned != group.size() {
        return Err(Error::arg(
            "train",
            format!(
                "the run plans {planned} process(es) and this job has {}: resume a run with as many processes as it was started with (mpirun -np {planned} ... --distributed)",
                group.size()
            ),
        ));
    }
    Ok(())
}

/// Synchronised batch-norm installed for as long as it lives (then the previous state is
/// restored); with no group, nothing is installed.
struct SyncBn(Option<Option<Rc<dyn StatsSync>>>);

impl SyncBn {
    fn install(group: Option<Rc<Group>>) -> SyncBn {
        SyncBn(group.map(|g| set_sync(Some(Rc::new(GroupSync(g))))))
    }
}

impl Drop for SyncBn {
    fn drop(&mut self) {
        if let Some(previous) = self.0.take() {
            set_sync(previous);
        }
    }
}
