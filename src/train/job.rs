//! The training driver, [`train`]: a run's state (fresh, or resumed from its checkpoint), then
//! one epoch after another (train, evaluate, write the run directory), then the report.

use super::checkpoint::save_checkpoint;
use super::config::RunConfig;
use super::metrics::{self, EpochMetrics, Summary};
use super::run::{last_good, EpochCtx, EpochTrain, Run, Schedule, Tally};
use super::{
    evaluate_sharded, load_split, parallel, plot, report, sparse, Outcome, Start, TrainJob,
    CHECKPOINT, CONFIG, CURVES, MASKS, METRICS, SUMMARY,
};
use crate::dist::{Group, GroupSync};
use shiftgrad_nn::data::{Dataset, Split};
use shiftgrad_ops::batch_norm::{set_sync, StatsSync};
use shiftgrad_tensor::{counters, Device, Error, Result};
use std::rc::Rc;
use std::time::Instant;

/// What the epochs of a run that still has some to train need: its data and its schedule.
struct Sets {
    train: Dataset,
    test: Dataset,
    schedule: Schedule,
}

/// Runs (or continues) a training job.
pub fn train(job: TrainJob) -> Result<Outcome> {
    let group = job.group.clone();
    let root = group.is_root();
    let quiet = job.quiet || !root;
    let ckpt_path = job.out.join(CHECKPOINT);
    let (mut run, sets) = set_up(&job, &group, quiet)?;
    let Some(sets) = sets else {
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
    begin(&job, &mut run, &sets, root, quiet)?;
    // Synchronised batch-norm statistics for the training forwards and backwards.
    let sync_bn = run.config.distributed.as_ref().is_some_and(|d| d.sync_bn);
    let _sync = SyncBn::install(sync_bn.then(|| group.clone()));
    let params = run.model.parameter_count();
    if !quiet {
        announce(&job, &run, &sets, params);
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
        train_set: &sets.train,
        schedule: &sets.schedule,
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
        let epoch_train_s = epoch_start.elapsed().as_secs_f64();
        tally.train_seconds += epoch_train_s;
        tally.trained_images += trained.seen;
        parallel::share_state(&group, &mut run.model)?;
        let m = end_epoch(
            &job,
            &mut run,
            &sets.test,
            trained,
            epoch,
            epoch_start,
            epoch_train_s,
        )?;
        if !quiet {
            print_epoch(&m, run.config.epochs);
        }
        run.history.push(m);
        if root {
            write_epoch(&job, &mut run)?;
        }
    }
    let mut summary = report::summarise(&run, &job, params, start, &tally);
    if let Some(d) = &run.config.distributed {
        summary.distributed = Some(metrics::DistSummary {
            ranks: d.ranks,
            sync_bn: d.sync_bn,
            communication_seconds: group.comm_seconds(),
            communication_fraction_of_training: tally.step_comm_seconds
                / tally.train_seconds.max(1e-9),
        });
    }
    if root {
        finish(&job, &mut run, &mut summary, params, quiet)?;
    }
    Ok(Outcome {
        history: run.history,
        summary: Some(summary),
    })
}

/// The run's state on every process: fresh from its configuration, or resumed from the
/// checkpoint in the run directory; with its data and schedule unless it has trained all its
/// epochs. A failure on any process stops all of them, naming it.
fn set_up(job: &TrainJob, group: &Group, quiet: bool) -> Result<(Run, Option<Sets>)> {
    let setup = (|| -> Result<_> {
        let run = match &job.start {
            Start::Fresh(config) => {
                let run = Run::fresh(config, &job.device)?;
                if group.is_root() {
                    std::fs::create_dir_all(&job.out).map_err(|e| Error::file(&job.out, e))?;
                }
                run
            }
            Start::Resume { epochs } => Run::resume(&job.out, *epochs, &job.device, quiet)?,
        };
        check_ranks(&run.config, group)?;
        if run.history.len() == run.config.epochs {
            return Ok((run, None));
        }
        let train = load_split(&job.data_dir, Split::Train, run.config.limit)?;
        let test = load_split(&job.data_dir, Split::Test, run.config.test_limit)?;
        let schedule = Schedule::new(&run.config, train.len())?;
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
        Ok((
            run,
            Some(Sets {
                train,
                test,
                schedule,
            }),
        ))
    })();
    group.agree(setup)
}

/// Before the first epoch of this invocation: `config.json` (rank 0), and a fresh sparse run's
/// initial masks.
fn begin(job: &TrainJob, run: &mut Run, sets: &Sets, root: bool, quiet: bool) -> Result<()> {
    if root {
        metrics::write_atomic(&job.out.join(CONFIG), run.config.to_json().as_bytes())?;
    }
    if let (Start::Fresh(_), Some(sp)) = (&job.start, run.config.sparse.clone()) {
        let (batch, seed) = (sets.schedule.batch, run.config.seed);
        sparse::init_masks(&mut run.model, &sp, &sets.train, batch, &job.device, seed)?;
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
    Ok(())
}

/// The job's first lines: network, data, schedule, device (and processes).
fn announce(job: &TrainJob, run: &Run, sets: &Sets, params: usize) {
    eprintln!(
        "{} ({} spatial), {} parameters, {} train / {} test images, batch {}, {} steps/epoch, device {}",
        run.config.preset,
        run.config.spatial,
        params,
        sets.train.len(),
        sets.test.len(),
        sets.schedule.batch,
        sets.schedule.steps,
        job.device.name()
    );
    if let Some(d) = &run.config.distributed {
        eprintln!(
            "distributed: {} processes, {} images each per step, batch-norm statistics {}",
            d.ranks,
            sets.schedule.batch / d.ranks,
            if d.sync_bn {
                "over the global batch (--sync-bn)"
            } else {
                "per process"
            }
        );
    }
}

/// The metrics of a trained epoch (`train_s` seconds of training since `epoch_start`): its
/// training numbers and the test set's loss and accuracy (evaluated over the processes).
fn end_epoch(
    job: &TrainJob,
    run: &mut Run,
    test: &Dataset,
    trained: EpochTrain,
    epoch: usize,
    epoch_start: Instant,
    train_s: f64,
) -> Result<EpochMetrics> {
    let (test_loss, test_acc) = evaluate_sharded(&mut run.model, test, &job.device, &job.group)?;
    Ok(EpochMetrics {
        epoch: epoch + 1,
        lr: trained.lr,
        train_loss: trained.loss,
        train_acc: trained.acc,
        test_loss,
        test_acc,
        train_images_per_s: trained.seen as f64 / train_s,
        epoch_seconds: epoch_start.elapsed().as_secs_f64(),
        densities: match run.config.sparse {
            Some(_) => sparse::densities(&mut run.model),
            None => Vec::new(),
        },
        train_loss_steps: trained.loss_steps,
    })
}

/// One line per epoch.
fn print_epoch(m: &EpochMetrics, epochs: usize) {
    eprintln!(
        "epoch {}/{}: train loss {:.4} acc {:.2}% | test loss {:.4} acc {:.2}% | {:.1} img/s, {:.1} s",
        m.epoch,
        epochs,
        m.train_loss,
        100.0 * m.train_acc,
        m.test_loss,
        100.0 * m.test_acc,
        m.train_images_per_s,
        m.epoch_seconds
    );
}

/// After an epoch (rank 0): the checkpoint (atomically; on failure the error names the last
/// good one), `metrics.jsonl`, `curves.png` and, for a sparse run, `masks.png`.
fn write_epoch(job: &TrainJob, run: &mut Run) -> Result<()> {
    let ckpt_path = job.out.join(CHECKPOINT);
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
    Ok(())
}

/// The end of the job (rank 0): a sparse run's densities into the summary, `summary.json`,
/// and the closing lines.
fn finish(
    job: &TrainJob,
    run: &mut Run,
    summary: &mut Summary,
    params: usize,
    quiet: bool,
) -> Result<()> {
    if run.config.sparse.is_some() {
        summary.densities = sparse::densities(&mut run.model);
        summary.stage_densities = sparse::stage_densities(&mut run.model);
        summary.live_parameters = Some(params - sparse::pruned_weights(&mut run.model));
    }
    metrics::write_atomic(
        &job.out.join(SUMMARY),
        serde_json::to_string_pretty(&*summary)
            .expect("summary serialises")
            .as_bytes(),
    )?;
    if quiet {
        return Ok(());
    }
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
    Ok(())
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
