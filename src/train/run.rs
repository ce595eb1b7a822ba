//! The state of a run between epochs (fresh, or resumed from its checkpoint), its schedule,
//! and one epoch of training with its stops on non-finite values (see the module docs of
//! [`super`]).

use super::checkpoint::{load_checkpoint, read_meta};
use super::config::RunConfig;
use super::metrics::{
    graph_outputs_by_op, live_bytes, EpochMetrics, MemorySplit, OpBytes, RegionShare, LOSS_WINDOW,
};
use super::{
    build_model, count_correct, epoch_rng, finite, parallel, progress, sparse, TrainJob, CHECKPOINT,
};
use shiftgrad_autograd::Var;
use shiftgrad_nn::data::{self, Augment, Dataset};
use shiftgrad_nn::optim::{lr_at, Optimizer, REGION_OPTIM};
use shiftgrad_nn::resnet::SwResNet;
use shiftgrad_nn::{Mode, Module, ParamRef};
use shiftgrad_ops::cross_entropy;
use shiftgrad_tensor::{counters, init, Device, Error, Result};
use std::path::Path;
use std::time::Instant;

/// The state of a run between epochs.
pub(crate) struct Run {
    pub config: RunConfig,
    pub model: SwResNet<f32>,
    pub optim: Optimizer<f32>,
    pub history: Vec<EpochMetrics>,
}

impl Run {
    pub fn fresh(config: &RunConfig, device: &Device) -> Result<Run> {
        config.validate()?;
        let model = build_model(config, device, None)?;
        let optim = Optimizer::new(config.optim_kind(), model.named_parameters());
        Ok(Run {
            config: config.clone(),
            model,
            optim,
            history: Vec::new(),
        })
    }

    /// The run in `out`, from its checkpoint; `epochs` replaces the planned epoch count.
    pub fn resume(out: &Path, epochs: Option<usize>, device: &Device, quiet: bool) -> Result<Run> {
        if !out.is_dir() {
            return Err(Error::file(out, "no such run directory to resume"));
        }
        let ckpt_path = out.join(CHECKPOINT);
        let sd = load_checkpoint(&ckpt_path)?;
        let meta = read_meta(&sd, &ckpt_path)?;
        let mut config = meta.config;
        if let Some(n) = epochs {
            if n < meta.epoch {
                return Err(Error::arg(
                    "train",
                    format!(
                        "--epochs {n} is fewer than the {} epochs the run in {} has already trained",
                        meta.epoch,
                        out.display()
                    ),
                ));
            }
            if n != config.epochs && !quiet {
                eprintln!(
                    "train: the run in {} now plans {n} epochs instead of {}; the cosine decay of the remaining epochs follows the new total",
                    out.display(),
                    config.epochs
                );
            }
            config.epochs = n;
        }
        let model = build_model(&config, device, Some(&sd)).map_err(|e| {
            Error::file(
                &ckpt_path,
                format!("incompatible with its own configuration: {e}"),
            )
        })?;
        let mut optim = Optimizer::new(config.optim_kind(), model.named_parameters());
        optim
            .load_state(&sd)
            .map_err(|e| Error::file(&ckpt_path, e))?;
        Ok(Run {
            config,
            model,
            optim,
            history: super::metrics::restore_timing(meta.history, &out.join(super::METRICS)),
        })
    }
}

/// The schedule of a run: batch size, steps per epoch, warm-up and total steps.
pub(crate) struct Schedule {
    pub batch: usize,
    pub steps: usize,
    pub warmup: u64,
    pub total: u64,
}

impl Schedule {
    pub fn new(config: &RunConfig, train_images: usize) -> Result<Schedule> {
        // A batch larger than the (limited) training set shrinks to the whole set.
        let batch = config.batch_size.min(train_images);
        let steps = train_images / batch;
        let total = steps
            .checked_mul(config.epochs)
            .ok_or_else(|| Error::arg("train", format!("{} epochs is too many", config.epochs)))?;
        Ok(Schedule {
            batch,
            steps,
            warmup: (config.warmup_epochs * steps as f64).round() as u64,
            total: total as u64,
        })
    }
}

/// Measurements accumulated over the epochs of one invocation.
#[derive(Default)]
pub(crate) struct Tally {
    pub flops_fwd: f64,
    pub flops_bwd: f64,
    /// Of `flops_bwd`: gradient accumulation, per image.
    pub flops_accumulate: f64,
    /// The optimiser step's FLOPs (the last step's).
    pub flops_optim: f64,
    pub macs_fwd: f64,
    pub flops_fwd_by_region: Vec<RegionShare>,
    pub trained_images: usize,
    pub train_seconds: f64,
    pub finite_check_seconds: f64,
    /// Seconds the training steps spent in collectives (data-parallel runs).
    pub step_comm_seconds: f64,
    pub memory: MemorySplit,
    pub graph_outputs_by_op: Vec<OpBytes>,
}

impl Tally {
    /// The first step's memory split: parameters and their gradients after the backward,
    /// `graph_bytes` (what the forward left for the backward) and the graph's op outputs.
    fn first_step_memory(&mut self, params: &[ParamRef<f32>], graph_bytes: u64) {
        self.memory.parameters_bytes = params.iter().map(|p| p.var.value().nbytes() as u64).sum();
        self.memory.gradients_bytes = params
            .iter()
            .filter_map(|p| p.var.grad().as_ref().map(|g| g.nbytes() as u64))
            .sum();
        self.memory.graph_after_forward_bytes = graph_bytes;
        self.graph_outputs_by_op = graph_outputs_by_op();
    }

    /// The first step's FLOPs per image of `images`, from this thread's (FLOPs, MACs) totals
    /// counted from the step's start: the forward (`forward`, and by profiling region), the
    /// backward (to `backward`) and, of it, the gradient accumulation.
    fn first_step_flops(
        &mut self,
        [forward, backward]: [(u64, u64); 2],
        by_region: &[counters::RegionFlops],
        images: usize,
    ) {
        let per_image = |v: u64| v as f64 / images as f64;
        self.flops_fwd = per_image(forward.0);
        self.macs_fwd = per_image(forward.1);
        self.flops_fwd_by_region = by_region
            .iter()
            .map(|r| RegionShare {
                region: r.region.to_string(),
                flops_per_image: per_image(r.flops),
            })
            .collect();
        self.flops_bwd = per_image(backward.0 - forward.0);
        self.flops_accumulate =
            per_image(counters::flops_in(shiftgrad_autograd::REGION_ACCUMULATE));
    }
}

/// Where the last good checkpoint is, for the message of a stopped run.
pub(crate) fn last_good(history: &[EpochMetrics], ckpt_path: &Path) -> String {
    if history.is_empty() {
        "no checkpoint was written yet".to_string()
    } else {
        format!(
            "the last good checkpoint (epoch {}) is {}, unchanged",
            history.len(),
            ckpt_path.display()
        )
    }
}

/// Everything one epoch needs besides the run.
pub(crate) struct EpochCtx<'a> {
    pub job: &'a TrainJob,
    pub train_set: &'a Dataset,
    pub schedule: &'a Schedule,
    pub ckpt_path: &'a Path,
}

impl Run {
    /// Trains epoch `epoch` (0-based). Stops with an error at the first non-finite loss or
    /// parameter.
    pub fn train_epoch(
        &mut self,
        cx: &EpochCtx,
        epoch: usize,
        tally: &mut Tally,
    ) -> Result<EpochTrain> {
        let (config, sched, device) = (&self.config, cx.schedule, &cx.job.device);
        let group = &cx.job.group;
        let quiet = cx.job.quiet || !group.is_root();
        let augment = Augment {
            pad: config.crop_pad,
            flip: config.flip,
        };
        let mut rng = epoch_rng(config.seed, epoch);
        let order = init::permutation(cx.train_set.len(), &mut rng);
        let pb = progress(quiet, sched.steps, epoch, config.epochs);
        let epoch_start = Instant::now();
        let (mut loss_sum, mut correct, mut seen, mut lr) = (0.0f64, 0usize, 0usize, 0.0);
        let mut loss_steps = Vec::new();
        let mut window = (0.0f64, 0usize);
        let bs = sched.batch;
        for step in 0..sched.steps {
            let global = (epoch * sched.steps + step) as u64;
            lr = lr_at(global, config.lr, sched.warmup, sched.total);
            let idx = &order[step * bs..(step + 1) * bs];
            let (x, labels) = data::batch::<f32>(cx.train_set, idx, Some(augment), &mut rng)?;
            // This process's rows of the global batch (all of it in a one-process run).
            let comm0 = group.comm_seconds();
            let (x, labels) = parallel::shard(group, x, labels)?;
            let local = labels.len();
            // This thread's counts (the process-wide counters also take other threads' ops,
            // e.g. parallel tests): zero here, then read after the forward and the backward.
            counters::reset_region_flops();
            let live0 = live_bytes(device);
            shiftgrad_autograd::reset_graph_outputs();
            let logits = self
                .model
                .forward(&Var::constant(x.to_device(device)?), Mode::Train)?;
            let loss = cross_entropy(&logits, &labels)?;
            let after_forward = counters::thread_totals();
            let by_region = counters::region_flops();
            let graph_bytes = live_bytes(device).saturating_sub(live0);
            loss.backward()?;
            let after_backward = counters::thread_totals();
            let first_step = tally.flops_fwd == 0.0;
            if first_step {
                tally.first_step_memory(self.optim.params(), graph_bytes);
            }
            parallel::average_gradients(group, &self.optim)?;
            let optim0 = counters::flops_in(REGION_OPTIM);
            self.optim.step(lr)?;
            tally.flops_optim = (counters::flops_in(REGION_OPTIM) - optim0) as f64;
            if first_step {
                tally.memory.optimiser_state_bytes = self.optim.state_bytes();
            }
            // The step's one blocking read: loss, logits and the parameters' finite total.
            // Waiting for the step's kernels first keeps them out of the check's time.
            device.wait()?;
            let check_start = Instant::now();
            let read = finite::read_step(&loss, &logits, self.optim.params())?;
            drop(logits);
            // The global batch's mean loss and correct count: this shard's, summed over the
            // processes (a one-process run takes its own as they are).
            let here = count_correct(&read.logits, read.logits.len() / local.max(1), &labels);
            let (loss_value, step_correct) = match group.size() {
                1 => (read.loss as f64, here),
                _ => parallel::step_totals(
                    group,
                    [read.loss as f64 * local as f64, here as f64],
                    read.params_total,
                    bs,
                    (epoch, step),
                )?,
            };
            tally.step_comm_seconds += group.comm_seconds() - comm0;
            // Every process meets these stops at the same step (the global batch's loss, the
            // parameters they all hold): rank 0 reports them.
            let stop = |what: String| {
                pb.abandon();
                group.fail_together(Error::Other(format!(
                    "train: {what} at epoch {} step {} of {}; stopping. {}",
                    epoch + 1,
                    step + 1,
                    sched.steps,
                    last_good(&self.history, cx.ckpt_path)
                )))
            };
            if !loss_value.is_finite() {
                return Err(stop(format!("non-finite loss ({loss_value})")));
            }
            correct += step_correct;
            // Only a non-finite total reads the parameters one by one, to name them.
            let bad = match read.params_total.is_finite() {
                true => Vec::new(),
                false => finite::non_finite_parameters(self.optim.params())?,
            };
            tally.finite_check_seconds += check_start.elapsed().as_secs_f64();
            if let Some(first) = bad.first() {
                let more = match bad.len() {
                    1 => String::new(),
                    n => format!(" (and {} more parameters)", n - 1),
                };
                return Err(stop(format!(
                    "parameter {first}{more} became non-finite in the update (learning rate {lr:e}, loss before it {loss_value:.4}; its gradient or the step was not finite)"
                )));
            }
            if tally.flops_fwd == 0.0 {
                tally.first_step_flops([after_forward, after_backward], &by_region, local);
            }
            if let Some(sp) = &config.sparse {
                let step = self.optim.steps;
                sparse::maybe_prune(
                    &mut self.model,
                    &mut self.optim,
                    sp,
                    (step, sched.total),
                    config.seed,
                    (&x, &labels),
                    device,
                )?;
            }
            loss_sum += loss_value * bs as f64;
            seen += bs;
            window = (window.0 + loss_value, window.1 + 1);
            if window.1 == LOSS_WINDOW || step + 1 == sched.steps {
                loss_steps.push(window.0 / window.1 as f64);
                window = (0.0, 0);
            }
            let ips = seen as f64 / epoch_start.elapsed().as_secs_f64().max(1e-9);
            pb.set_message(format!(
                "loss {:.4} acc {:.2}% {:.0} img/s",
                loss_sum / seen as f64,
                100.0 * correct as f64 / seen as f64,
                ips
            ));
            pb.inc(1);
        }
        pb.finish_and_clear();
        Ok(EpochTrain {
            loss: loss_sum / seen as f64,
            acc: correct as f64 / seen as f64,
            seen,
            lr,
            loss_steps,
        })
    }
}

/// What one epoch of training gives: the mean loss and accuracy over its images, how many,
/// the last learning rate, and the loss curve ([`EpochMetrics::train_loss_steps`]).
pub struct EpochTrain {
    pub loss: f64,
    pub acc: f64,
    pub seen: usize,
    pub lr: f64,
    pub loss_steps: Vec<f64>,
}
