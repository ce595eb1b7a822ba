//! `shiftgrad train` and `shiftgrad eval`: SW-ResNets on Fashion-MNIST (SPEC sections 2, 5).
//!
//! One epoch: the training indices are shuffled by an RNG derived from the seed and the epoch
//! number (so a resumed run draws exactly what the uninterrupted run drew, with no RNG state
//! to carry beyond the seed), batches are augmented (random crop with zero padding, flips) from
//! the same RNG, and the network is trained with a linear warm-up then cosine learning rate.
//! After each epoch: evaluation on the test set, one line appended to `metrics.jsonl`,
//! `curves.png` redrawn, and `checkpoint.npz` written atomically (model, index tables,
//! optimiser state, epoch, configuration, metrics so far). A non-finite loss stops the run
//! before anything of that epoch is written, so the last checkpoint stays the last good one.

pub mod config;
pub mod metrics;
pub mod plot;

use config::RunConfig;
use indicatif::{ProgressBar, ProgressStyle};
use metrics::{EpochMetrics, KernelShare, Summary};
use shiftgrad_autograd::{no_grad, Var};
use shiftgrad_nn::data::{self, Augment, Dataset, Split};
use shiftgrad_nn::optim::{lr_at, Optimizer};
use shiftgrad_nn::resnet::SwResNet;
use shiftgrad_nn::{Mode, Module, StateDict};
use shiftgrad_ops::cross_entropy;
use shiftgrad_tensor::{counters, init, Device, Error, Result, Tensor};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// File names inside a run directory.
pub const CHECKPOINT: &str = "checkpoint.npz";
pub const METRICS: &str = "metrics.jsonl";
pub const CURVES: &str = "curves.png";
pub const SUMMARY: &str = "summary.json";
pub const CONFIG: &str = "config.json";

/// Evaluation batch size (memory only; results do not depend on it).
const EVAL_BATCH: usize = 500;

/// A new run with its configuration, or the continuation of the run in the output directory.
pub enum Start {
    Fresh(Box<RunConfig>),
    Resume,
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

fn bytes_entry(text: &str) -> Vec<i32> {
    text.bytes().map(i32::from).collect()
}

fn text_entry(sd: &StateDict<f32>, name: &str) -> Result<String> {
    let (_, d) = sd.int(name)?;
    let bytes: Vec<u8> = d.iter().map(|&b| b as u8).collect();
    String::from_utf8(bytes)
        .map_err(|_| Error::Other(format!("checkpoint: {name} is not UTF-8 text")))
}

/// Everything a checkpoint holds besides the model and optimiser.
pub struct Meta {
    pub config: RunConfig,
    pub epoch: usize,
    pub history: Vec<EpochMetrics>,
}

/// Reads the metadata of a checkpoint's state dict.
pub fn read_meta(sd: &StateDict<f32>, path: &Path) -> Result<Meta> {
    let bad = |what: &dyn std::fmt::Display| {
        Error::file(path, format!("not a shiftgrad training checkpoint: {what}"))
    };
    let config = RunConfig::from_json(&text_entry(sd, "meta.config_json").map_err(|e| bad(&e))?)
        .map_err(|e| bad(&e))?;
    let (_, epoch) = sd.int("meta.epoch").map_err(|e| bad(&e))?;
    let history: Vec<EpochMetrics> =
        serde_json::from_str(&text_entry(sd, "meta.metrics_json").map_err(|e| bad(&e))?)
            .map_err(|e| bad(&e))?;
    let epoch = *epoch.first().ok_or_else(|| bad(&"empty meta.epoch"))? as usize;
    if history.len() != epoch {
        return Err(bad(&format!(
            "{} metric lines for {epoch} epochs",
            history.len()
        )));
    }
    Ok(Meta {
        config,
        epoch,
        history,
    })
}

/// Loads a checkpoint file into a state dict, with the file named in any error.
pub fn load_checkpoint(path: &Path) -> Result<StateDict<f32>> {
    if !path.is_file() {
        return Err(Error::file(path, "checkpoint not found"));
    }
    StateDict::load(path)
}

fn save_checkpoint(
    path: &Path,
    model: &SwResNet<f32>,
    optim: &Optimizer<f32>,
    config: &RunConfig,
    history: &[EpochMetrics],
) -> Result<()> {
    let mut sd = model.state_dict()?;
    optim.save_state(&mut sd)?;
    sd.insert_int("meta.epoch".into(), &[1], vec![history.len() as i32]);
    let cfg = bytes_entry(&config.to_json());
    sd.insert_int("meta.config_json".into(), &[cfg.len()], cfg);
    let m = bytes_entry(&serde_json::to_string(history).expect("metrics serialise"));
    sd.insert_int("meta.metrics_json".into(), &[m.len()], m);
    sd.save(path)
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
    let k = logits.dims()[1];
    Ok(labels
        .iter()
        .enumerate()
        .filter(|(i, &l)| {
            let row = &v[i * k..(i + 1) * k];
            let best = (0..k).fold(0, |b, j| if row[j] > row[b] { j } else { b });
            best == l
        })
        .count())
}

/// Test loss and accuracy of `model` on `data` (eval mode, no graph).
pub fn evaluate(model: &mut SwResNet<f32>, data: &Dataset, device: &Device) -> Result<(f64, f64)> {
    let n = data.len();
    let (mut loss_sum, mut correct) = (0.0f64, 0usize);
    let mut rng = init::rng(0); // unused without augmentation
    for start in (0..n).step_by(EVAL_BATCH) {
        let idx: Vec<usize> = (start..(start + EVAL_BATCH).min(n)).collect();
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
    Ok((loss_sum / n as f64, correct as f64 / n as f64))
}

fn load_split(dir: &Path, split: Split, limit: Option<usize>) -> Result<Dataset> {
    let mut d = data::load(dir, split)?;
    if let Some(n) = limit {
        d.truncate(n);
    }
    Ok(d)
}

fn progress(quiet: bool, steps: usize, epoch: usize, epochs: usize) -> ProgressBar {
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

fn peak_memory(device: &Device) -> u64 {
    match device {
        Device::Cpu => counters::snapshot().peak_bytes,
        Device::OpenCl(ctx) => ctx.pool_stats().peak_bytes,
    }
}

/// Runs (or continues) a training job.
pub fn train(job: TrainJob) -> Result<Outcome> {
    if matches!(job.start, Start::Resume) && !job.out.is_dir() {
        return Err(Error::file(&job.out, "no such run directory to resume"));
    }
    std::fs::create_dir_all(&job.out).map_err(|e| Error::file(&job.out, e))?;
    let ckpt_path = job.out.join(CHECKPOINT);
    let (config, mut model, mut optim, mut history) = if let Start::Fresh(config) = &job.start {
        config.validate()?;
        let model = build_model(config, &job.device, None)?;
        let optim = Optimizer::new(config.optim_kind(), model.named_parameters());
        (config.as_ref().clone(), model, optim, Vec::new())
    } else {
        let sd = load_checkpoint(&ckpt_path)?;
        let meta = read_meta(&sd, &ckpt_path)?;
        let model = build_model(&meta.config, &job.device, Some(&sd)).map_err(|e| {
            Error::file(
                &ckpt_path,
                format!("incompatible with its own configuration: {e}"),
            )
        })?;
        let mut optim = Optimizer::new(meta.config.optim_kind(), model.named_parameters());
        optim
            .load_state(&sd)
            .map_err(|e| Error::file(&ckpt_path, e))?;
        (meta.config, model, optim, meta.history)
    };
    metrics::write_atomic(&job.out.join(CONFIG), config.to_json().as_bytes())?;
    let train_set = load_split(&job.data_dir, Split::Train, config.limit)?;
    let test_set = load_split(&job.data_dir, Split::Test, config.test_limit)?;
    let bs = config.batch_size.min(train_set.len());
    let steps = train_set.len() / bs;
    let total_steps = (steps * config.epochs) as u64;
    let warmup = (config.warmup_epochs * steps as f64).round() as u64;
    let augment = Augment {
        pad: config.crop_pad,
        flip: config.flip,
    };
    let params = model.parameter_count();
    if !job.quiet {
        eprintln!(
            "{} ({} spatial), {} parameters, {} train / {} test images, batch {}, {} steps/epoch, device {}",
            config.preset,
            config.spatial,
            params,
            train_set.len(),
            test_set.len(),
            bs,
            steps,
            job.device.name()
        );
    }
    if let Device::OpenCl(ctx) = &job.device {
        ctx.reset_kernel_times();
        ctx.reset_peak();
    }
    counters::reset();
    let start = Instant::now();
    let (mut flops_fwd, mut flops_bwd, mut macs_fwd) = (0.0, 0.0, 0.0);
    let mut trained_images = 0usize;
    let mut train_seconds = 0.0;
    let first_epoch = history.len();
    for epoch in first_epoch..config.epochs {
        if job.stop_after.is_some_and(|n| epoch - first_epoch >= n) {
            return Ok(Outcome {
                history,
                summary: None,
            });
        }
        let mut rng = epoch_rng(config.seed, epoch);
        let order = init::permutation(train_set.len(), &mut rng);
        let pb = progress(job.quiet, steps, epoch, config.epochs);
        let epoch_start = Instant::now();
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
        let mut lr = 0.0;
        for step in 0..steps {
            let global = (epoch * steps + step) as u64;
            lr = lr_at(global, config.lr, warmup, total_steps);
            let idx = &order[step * bs..(step + 1) * bs];
            let (x, labels) = data::batch::<f32>(&train_set, idx, Some(augment), &mut rng)?;
            let c0 = counters::snapshot();
            let logits = model.forward(&Var::constant(x.to_device(&job.device)?), Mode::Train)?;
            let loss = cross_entropy(&logits, &labels)?;
            let c1 = counters::snapshot();
            let loss_value = loss.value().item()? as f64;
            if !loss_value.is_finite() {
                pb.abandon();
                let kept = if history.is_empty() {
                    "no checkpoint was written yet".to_string()
                } else {
                    format!(
                        "the last good checkpoint (epoch {}) is {}",
                        history.len(),
                        ckpt_path.display()
                    )
                };
                return Err(Error::Other(format!(
                    "train: non-finite loss ({loss_value}) at epoch {} step {}; stopping. {kept}",
                    epoch + 1,
                    step + 1
                )));
            }
            correct += argmax_correct(&logits.value(), &labels)?;
            drop(logits);
            loss.backward()?;
            let c2 = counters::snapshot();
            optim.step(lr)?;
            if flops_fwd == 0.0 {
                flops_fwd = (c1.flops - c0.flops) as f64 / bs as f64;
                macs_fwd = (c1.macs - c0.macs) as f64 / bs as f64;
                flops_bwd = (c2.flops - c1.flops) as f64 / bs as f64;
            }
            loss_sum += loss_value * bs as f64;
            seen += bs;
            let ips = seen as f64 / epoch_start.elapsed().as_secs_f64().max(1e-9);
            pb.set_message(format!(
                "loss {:.4} acc {:.2}% {:.0} img/s",
                loss_sum / seen as f64,
                100.0 * correct as f64 / seen as f64,
                ips
            ));
            pb.inc(1);
        }
        let epoch_train_s = epoch_start.elapsed().as_secs_f64();
        train_seconds += epoch_train_s;
        trained_images += seen;
        pb.finish_and_clear();
        let (test_loss, test_acc) = evaluate(&mut model, &test_set, &job.device)?;
        let m = EpochMetrics {
            epoch: epoch + 1,
            lr,
            train_loss: loss_sum / seen as f64,
            train_acc: correct as f64 / seen as f64,
            test_loss,
            test_acc,
            train_images_per_s: seen as f64 / epoch_train_s,
            epoch_seconds: epoch_start.elapsed().as_secs_f64(),
        };
        if !job.quiet {
            eprintln!(
                "epoch {}/{}: train loss {:.4} acc {:.2}% | test loss {:.4} acc {:.2}% | {:.1} img/s, {:.1} s",
                m.epoch,
                config.epochs,
                m.train_loss,
                100.0 * m.train_acc,
                m.test_loss,
                100.0 * m.test_acc,
                m.train_images_per_s,
                m.epoch_seconds
            );
        }
        history.push(m);
        save_checkpoint(&ckpt_path, &model, &optim, &config, &history)?;
        metrics::write_jsonl(&job.out.join(METRICS), &history)?;
        plot::draw(&job.out.join(CURVES), &history)?;
    }
    let last = history.last().cloned();
    let summary = Summary {
        preset: config.preset.clone(),
        spatial: config.spatial.clone(),
        device: job.device.name(),
        parameters: params,
        forward_flops_per_image: flops_fwd,
        backward_flops_per_image: flops_bwd,
        forward_macs_per_image: macs_fwd,
        peak_device_memory_bytes: peak_memory(&job.device),
        epochs: history.len(),
        wall_seconds: start.elapsed().as_secs_f64(),
        train_images_per_s: if train_seconds > 0.0 {
            trained_images as f64 / train_seconds
        } else {
            0.0
        },
        final_test_accuracy: last.as_ref().map_or(0.0, |m| m.test_acc),
        final_test_loss: last.as_ref().map_or(0.0, |m| m.test_loss),
        kernel_time_top: kernel_top(&job.device),
    };
    metrics::write_atomic(
        &job.out.join(SUMMARY),
        serde_json::to_string_pretty(&summary)
            .expect("summary serialises")
            .as_bytes(),
    )?;
    if !job.quiet {
        eprintln!(
            "done: test accuracy {:.2}%, {:.0} s wall, {:.1} train img/s; wrote {}",
            100.0 * summary.final_test_accuracy,
            summary.wall_seconds,
            summary.train_images_per_s,
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
        history,
        summary: Some(summary),
    })
}
