//! `shiftgrad train`: the flags checked against each other (a resumed run takes only a few),
//! the device, and the job handed to `shiftgrad::train`.

use super::args::*;
use super::OptimArg;
use clap::parser::ValueSource;
use clap::ArgMatches;
use shiftgrad::tensor::{Device, Result};
use std::path::PathBuf;
use std::rc::Rc;

/// The device for training and evaluation: the flag, else $SHIFTGRAD_DEVICE, else auto.
pub(crate) fn train_device(flag: Option<&str>) -> Result<Device> {
    let env = std::env::var(shiftgrad::opencl::DEVICE_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty());
    Device::open(Some(flag.or(env.as_deref()).unwrap_or("auto")))
}

/// The flags of `train` that `--resume` accepts: they do not change what the run computes.
pub(crate) const RESUME_FLAGS: [&str; 6] =
    ["resume", "epochs", "device", "data", "quiet", "distributed"];

/// Whether flag `id` was given (on the command line or through an environment variable),
/// as opposed to left at its default.
pub(crate) fn given(m: &ArgMatches, id: &str) -> bool {
    matches!(
        m.value_source(id),
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    )
}

/// Refuses the flags given with `--resume` that it cannot honour, naming them.
pub(crate) fn check_resume_flags(m: &ArgMatches, dir: &std::path::Path) -> Result<()> {
    use shiftgrad::tensor::Error;
    if given(m, "out") {
        return Err(Error::arg(
            "train",
            format!(
                "--out cannot be used with --resume: the run continues in its own directory ({}); to branch a run, copy its directory and resume the copy",
                dir.display()
            ),
        ));
    }
    let args = <TrainArgs as clap::Args>::augment_args(clap::Command::new("train"));
    let refused: Vec<String> = args
        .get_arguments()
        .map(|a| (a.get_id().as_str(), a.get_long()))
        .filter(|(id, _)| !RESUME_FLAGS.contains(id) && *id != "out" && given(m, id))
        .map(|(id, long)| format!("--{}", long.unwrap_or(id)))
        .collect();
    if refused.is_empty() {
        return Ok(());
    }
    Err(Error::arg(
        "train",
        format!(
            "{} cannot be changed on --resume (the run's configuration is in its checkpoint)",
            refused.join(", ")
        ),
    ))
}

/// The sparse settings of a fresh run: `None` at sparsity 0 (a sparse flag given without a
/// sparsity is refused rather than ignored).
pub(crate) fn sparse_run(
    a: &TrainArgs,
    m: &ArgMatches,
) -> Result<Option<shiftgrad::train::config::SparseRun>> {
    use shiftgrad::tensor::Error;
    if !(a.sparsity.is_finite() && (0.0..1.0).contains(&a.sparsity)) {
        return Err(Error::arg(
            "train",
            format!("--sparsity must be in [0, 1), got {}", a.sparsity),
        ));
    }
    let sparse_flags = ["sparse_init", "prune_rate", "prune_every", "growth"];
    if a.sparsity == 0.0 {
        if let Some(f) = sparse_flags.iter().find(|f| given(m, f)) {
            return Err(Error::arg(
                "train",
                format!("--{} needs --sparsity above 0", f.replace('_', "-")),
            ));
        }
        return Ok(None);
    }
    let run = shiftgrad::train::config::SparseRun {
        sparsity: a.sparsity,
        init: a.sparse_init.clone(),
        prune_rate: a.prune_rate,
        prune_every: a.prune_every,
        growth: a.growth.clone(),
    };
    run.config()?;
    Ok(Some(run))
}

/// `train`, in a job of one process or (with --distributed) of the MPI job this process
/// belongs to. In a job of several, a failure after the setup stops every process
/// (MPI_Abort) after this one has named itself and its error.
pub(crate) fn run_train(a: TrainArgs, m: &ArgMatches) -> Result<bool> {
    use shiftgrad::dist::Group;
    use shiftgrad::tensor::Error;
    if a.sync_bn && !a.distributed {
        return Err(Error::arg("train", "--sync-bn needs --distributed"));
    }
    if a.distributed && a.resume.is_some() && given(m, "sync_bn") {
        return Err(Error::arg(
            "train",
            "--sync-bn cannot be given with --resume: the run keeps the setting it was started with",
        ));
    }
    let group = Rc::new(match a.distributed {
        true => Group::mpi()?,
        false => Group::single(),
    });
    if group.size() == 1 {
        return run_train_in(a, m, group);
    }
    let (rank, size) = (group.rank(), group.size());
    match run_train_in(a, m, group.clone()) {
        Ok(done) => Ok(done),
        // Every process has this error (it names the failed ranks): rank 0 reports it, and
        // the others wait until it has (mpirun stops the job at the first failed exit).
        Err(e) if group.failed_together() => {
            if rank == 0 {
                eprintln!("error: {e}");
            }
            group.barrier();
            Ok(false)
        }
        Err(e) => {
            eprintln!("error: rank {rank} of {size}: {e}; stopping every process of the job");
            group.abort(1)
        }
    }
}

/// The device of a process: with --distributed and the device `auto` (the default), device
/// `local rank mod devices` of the OpenCL platform that `auto` picks (the first with a
/// device: every process then runs the same kind of device), else the CPU.
pub(crate) fn process_device(flag: Option<&str>, group: &shiftgrad::dist::Group) -> Result<Device> {
    let env = std::env::var(shiftgrad::opencl::DEVICE_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty());
    let spec = flag.or(env.as_deref()).unwrap_or("auto");
    if group.size() > 1 && spec == "auto" {
        if let Ok(list) = shiftgrad::opencl::list_devices() {
            if let Some(first) = list.first() {
                let same: Vec<_> = list
                    .iter()
                    .filter(|d| d.platform == first.platform)
                    .collect();
                let d = same[group.local_rank() % same.len()];
                return Device::open(Some(&format!("opencl:{}:{}", d.platform, d.device)));
            }
        }
    }
    Device::open(Some(spec))
}

pub(crate) fn run_train_in(
    a: TrainArgs,
    m: &ArgMatches,
    group: Rc<shiftgrad::dist::Group>,
) -> Result<bool> {
    use shiftgrad::train::{config::OptimName, config::RunConfig, train, Start, TrainJob};
    if let Some(dir) = a.resume {
        check_resume_flags(m, &dir)?;
        let device = group.agree(process_device(a.device.as_deref(), &group))?;
        train(TrainJob {
            start: Start::Resume {
                epochs: given(m, "epochs").then_some(a.epochs),
            },
            device,
            out: dir,
            data_dir: shiftgrad::nn::data::data_dir(a.data.as_deref()),
            quiet: a.quiet,
            stop_after: None,
            group,
        })?;
        return Ok(true);
    }
    let device = group.agree(process_device(a.device.as_deref(), &group))?;
    let data_dir = shiftgrad::nn::data::data_dir(a.data.as_deref());
    let net = a.net.network()?;
    let optimizer = match a.optimizer {
        OptimArg::Sgd => OptimName::Sgd,
        OptimArg::Adamw => OptimName::Adamw,
    };
    let sparse = sparse_run(&a, m)?;
    let config = RunConfig {
        preset: a.net.preset.clone(),
        spatial: a.net.spatial.clone(),
        widths: net.widths,
        depths: net.depths,
        big_kernels: net.big_kernels,
        small_kernel: net.small_kernel,
        ghost_ratio: net.ghost_ratio,
        n_path: net.n_path,
        n_rep: net.n_rep,
        epochs: a.epochs,
        batch_size: a.batch_size,
        lr: a.lr,
        optimizer,
        momentum: a.momentum,
        weight_decay: a.weight_decay.unwrap_or(match optimizer {
            OptimName::Sgd => 5e-4,
            OptimName::Adamw => 0.05,
        }),
        warmup_epochs: a.warmup_epochs,
        seed: a.seed,
        limit: a.limit,
        test_limit: a.test_limit,
        crop_pad: a.crop_pad,
        flip: !a.no_flip,
        sparse,
        distributed: a.distributed.then_some(shiftgrad::train::config::DistRun {
            ranks: group.size(),
            sync_bn: a.sync_bn,
        }),
    };
    let out = a.out.unwrap_or_else(|| {
        PathBuf::from(format!(
            "runs/{}-{}-seed{}",
            a.net.preset, a.net.spatial, a.seed
        ))
    });
    let existing = out.join(shiftgrad::train::CHECKPOINT);
    if existing.exists() && !a.overwrite {
        return Err(shiftgrad::tensor::Error::arg(
            "train",
            format!(
                "{} already holds a run ({}); continue it with --resume {}, choose another --out, or pass --overwrite to start it again",
                out.display(),
                existing.display(),
                out.display()
            ),
        ));
    }
    let start = Start::Fresh(Box::new(config));
    train(TrainJob {
        start,
        device,
        out,
        data_dir,
        quiet: a.quiet,
        stop_after: None,
        group,
    })?;
    Ok(true)
}
