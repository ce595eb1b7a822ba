//! The `shiftgrad` command-line tool.

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use shiftgrad::cli;
use shiftgrad::nn::SwConfig;
use shiftgrad::tensor::{Device, Result};
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;

#[derive(Parser)]
#[command(
    name = "shiftgrad",
    version,
    about = "Shift-wise ResNets on an auditable autodiff engine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum DTypeArg {
    F32,
    F64,
}

#[derive(Clone, Copy, ValueEnum)]
enum OptimArg {
    Sgd,
    Adamw,
}

#[derive(Subcommand)]
enum Command {
    /// Train an SW-ResNet on Fashion-MNIST (the main job).
    Train(Box<TrainArgs>),
    /// Test accuracy and loss of a training checkpoint.
    Eval {
        /// A checkpoint.npz written by `shiftgrad train`.
        #[arg(long)]
        checkpoint: PathBuf,
        /// Device: cpu, opencl, opencl:P:D or auto (default: $SHIFTGRAD_DEVICE, else auto).
        #[arg(long)]
        device: Option<String>,
        /// Fashion-MNIST directory (default: $FASHION_MNIST_DIR, else /usr/share/datasets/fashion-mnist).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Evaluate on the first N test images only (N >= 1).
        #[arg(long)]
        limit: Option<usize>,
    },
    /// The effective receptive field of trained or untrained networks (SPEC 6): erf.npy,
    /// erf.json (the squares holding 20, 30, 50 and 99 % of the contribution) and erf.png.
    Erf(Box<ErfArgs>),
    /// Train a grid of configurations and seeds with one recipe (every other `train` flag);
    /// results.md, results.json and results.png in --out. Resumable.
    Experiment(Box<ExperimentArgs>),
    /// List OpenCL platforms and devices.
    Devices,
    /// Time training steps of a network on a device; per-kernel device times on OpenCL.
    Profile {
        #[arg(long, default_value = "sw-resnet-tiny")]
        preset: String,
        #[arg(long, default_value = "sw")]
        spatial: String,
        #[arg(long = "batch-size", default_value_t = 64)]
        batch_size: usize,
        #[arg(long, default_value_t = 5)]
        steps: usize,
        #[arg(long, default_value_t = 1)]
        warmup: usize,
        /// Stage widths override, e.g. 32,64,128.
        #[arg(long, value_delimiter = ',')]
        widths: Option<Vec<usize>>,
        /// Prune this fraction of every shift-wise layer's small kernels (uniform random
        /// masks from seed 0; SPEC 1.6) before timing; 0: dense. Several, e.g. 0,0.5: one
        /// network each, on its own device context, timed in alternating rounds, and their
        /// shift-wise device time side by side.
        #[arg(long, value_delimiter = ',', default_value = "0")]
        sparsity: Vec<f64>,
        /// Rounds of --steps timed steps per network (alternating between networks).
        #[arg(long, default_value_t = 1)]
        rounds: usize,
        /// Device: cpu, opencl, opencl:P:D or auto (default: $SHIFTGRAD_DEVICE, else auto).
        #[arg(long)]
        device: Option<String>,
    },
    /// Run the f64 finite-difference gradient checks of every op and module; print a table.
    Gradcheck {
        /// Device: cpu, opencl, opencl:P:D or auto (default: $SHIFTGRAD_DEVICE, else cpu).
        #[arg(long)]
        device: Option<String>,
        /// Run only this op's cases (e.g. conv2d, shift_add, sw_module).
        #[arg(long)]
        op: Option<String>,
    },
    /// Check that the SW operator equals depthwise convolutions with its dense kernels (SPEC 1.4).
    Equiv {
        /// Big kernel M.
        #[arg(long, default_value_t = 51)]
        big: usize,
        /// Small kernel k (odd).
        #[arg(long, default_value_t = 5)]
        small: usize,
        /// Rep channels R.
        #[arg(long, default_value_t = 4)]
        channels: usize,
        /// Index groups G.
        #[arg(long = "n-rep", default_value_t = 4)]
        n_rep: usize,
        /// Bank convolutions P (merged for the dense kernels).
        #[arg(long = "n-path", default_value_t = 2)]
        n_path: usize,
        #[arg(long, default_value_t = 14)]
        height: usize,
        #[arg(long, default_value_t = 9)]
        width: usize,
        #[arg(long, default_value_t = 2)]
        batch: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Prune this fraction of the small kernels (uniform random mask from the seed, in
        /// [0, 1)) and check the sparse ops against the dense kernels of the masked bank.
        #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
        sparsity: f64,
        #[arg(long, value_enum, default_value = "f64")]
        dtype: DTypeArg,
        /// Device: cpu, opencl, opencl:P:D or auto (default: $SHIFTGRAD_DEVICE, else cpu).
        #[arg(long)]
        device: Option<String>,
        /// Write x, bank, pad_hv, idx_identit, h, v, i, dense_h, dense_v, dense_i (and mask,
        /// with --sparsity) to this .npz.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Time one spatial layer of each kind (training mode, forward and backward separately)
    /// on a device, with FLOPs, bytes, GFLOP/s and GB/s against the device's measured peaks.
    Bench {
        /// Kinds to time, e.g. sw,slak,dense,small.
        #[arg(long, value_delimiter = ',', default_value = "sw,slak,dense,small")]
        spatial: Vec<String>,
        #[command(flatten)]
        layer: LayerArgs,
        #[arg(long, default_value_t = 8)]
        batch: usize,
        #[arg(long, default_value_t = 5)]
        steps: usize,
        #[arg(long, default_value_t = 1)]
        warmup: usize,
        /// Also print each row's OpenCL kernels with their device time per step (forward and
        /// backward together, the timed steps' mean).
        #[arg(long)]
        kernels: bool,
        /// Device: cpu, opencl, opencl:P:D or auto (default: $SHIFTGRAD_DEVICE, else auto).
        #[arg(long)]
        device: Option<String>,
    },
    /// Parameters and measured FLOPs (and with --device, time and memory) of one SW layer
    /// against its slak, dense and small baselines; --big and --height take lists (a sweep).
    Compare {
        #[command(flatten)]
        layer: LayerArgs,
        /// Also time every layer on this device (training mode, forward and backward, as
        /// `bench`): cpu, opencl, opencl:P:D or auto.
        #[arg(long)]
        device: Option<String>,
        /// Images per timed step.
        #[arg(long, default_value_t = 1)]
        batch: usize,
        #[arg(long, default_value_t = 5)]
        steps: usize,
        #[arg(long, default_value_t = 1)]
        warmup: usize,
        /// Write compare.json, compare.csv and compare.png here (default for a sweep of
        /// several sizes: runs/compare; for one size: not written).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// One spatial layer's geometry, shared by `compare` and `bench`.
#[derive(clap::Args)]
struct LayerArgs {
    /// Big kernel M (compare: a list, e.g. 7,13,25,51).
    #[arg(long, value_delimiter = ',', default_value = "51")]
    big: Vec<usize>,
    #[arg(long, default_value_t = 5)]
    small: usize,
    /// Channels C.
    #[arg(long, default_value_t = 64)]
    channels: usize,
    #[arg(long = "ghost-ratio", default_value_t = 0.0)]
    ghost_ratio: f64,
    #[arg(long = "n-path", default_value_t = 2)]
    n_path: usize,
    #[arg(long = "n-rep", default_value_t = 4)]
    n_rep: usize,
    /// Map height (compare: a list).
    #[arg(long, value_delimiter = ',', default_value = "56")]
    height: Vec<usize>,
    /// Map width (default: the height).
    #[arg(long)]
    width: Option<usize>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also take the sw layer with this fraction of its small kernels pruned (row sw*; uniform
    /// random mask from the seed, in [0, 1)); 0: none.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    sparsity: f64,
}

impl LayerArgs {
    /// The one size `cmd` takes (an error for a list).
    fn one_size(&self, cmd: &'static str) -> Result<(usize, usize, usize)> {
        match (self.big.as_slice(), self.height.as_slice()) {
            ([big], [h]) => Ok((*big, *h, self.width.unwrap_or(*h))),
            _ => Err(shiftgrad::tensor::Error::arg(
                cmd,
                "--big and --height take one value here (compare sweeps lists)",
            )),
        }
    }

    fn config(&self) -> SwConfig {
        SwConfig {
            channels: self.channels,
            big_kernel: self.big.first().copied().unwrap_or(0),
            small_kernel: self.small,
            ghost_ratio: self.ghost_ratio,
            n_path: self.n_path,
            n_rep: self.n_rep,
            seed: self.seed,
        }
    }
}

/// The network flags shared by `train` and `erf`: a preset and its overrides.
#[derive(clap::Args)]
struct NetArgs {
    /// Network preset: sw-resnet-tiny or sw-resnet-20.
    #[arg(long, default_value = "sw-resnet-tiny")]
    preset: String,
    /// Spatial operator: sw, slak, dense or small.
    #[arg(long, default_value = "sw")]
    spatial: String,
    /// Stage widths, e.g. 32,64,128 (default: the preset's).
    #[arg(long, value_delimiter = ',')]
    widths: Option<Vec<usize>>,
    /// Blocks per stage, e.g. 2,2,2.
    #[arg(long, value_delimiter = ',')]
    depths: Option<Vec<usize>>,
    /// Big kernel per stage, e.g. 13,13,7.
    #[arg(long = "big-kernels", value_delimiter = ',')]
    big_kernels: Option<Vec<usize>>,
    #[arg(long = "small-kernel")]
    small_kernel: Option<usize>,
    #[arg(long = "ghost-ratio")]
    ghost_ratio: Option<f64>,
    #[arg(long = "n-path")]
    n_path: Option<usize>,
    #[arg(long = "n-rep")]
    n_rep: Option<usize>,
}

impl NetArgs {
    /// The preset with the given overrides and spatial operator (not validated).
    fn network(&self) -> Result<shiftgrad::nn::resnet::ResNetConfig> {
        let mut net = shiftgrad::nn::resnet::ResNetConfig::preset(&self.preset)?;
        net.spatial = self.spatial.parse()?;
        if let Some(v) = &self.widths {
            net.widths = v.clone();
        }
        if let Some(v) = &self.depths {
            net.depths = v.clone();
        }
        if let Some(v) = &self.big_kernels {
            net.big_kernels = v.clone();
        }
        net.small_kernel = self.small_kernel.unwrap_or(net.small_kernel);
        net.ghost_ratio = self.ghost_ratio.unwrap_or(net.ghost_ratio);
        net.n_path = self.n_path.unwrap_or(net.n_path);
        net.n_rep = self.n_rep.unwrap_or(net.n_rep);
        Ok(net)
    }
}

/// Arguments of `shiftgrad erf`.
#[derive(clap::Args)]
struct ErfArgs {
    /// A training checkpoint (checkpoint.npz, or its run directory); repeat for several
    /// models side by side. Without it: an untrained network from the network flags.
    #[arg(long)]
    checkpoint: Vec<PathBuf>,
    #[command(flatten)]
    net: NetArgs,
    /// Seed of the untrained network's initialisation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Test images averaged over (the first N of the test set).
    #[arg(long, default_value_t = 50)]
    images: usize,
    /// Side the images are upsampled to (bilinear) before they enter the network.
    #[arg(long, default_value_t = 112)]
    size: usize,
    /// Output directory for erf.npy, erf.json and erf.png.
    #[arg(long, default_value = "runs/erf")]
    out: PathBuf,
    /// Fashion-MNIST directory (default: $FASHION_MNIST_DIR, else /usr/share/datasets/fashion-mnist).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Device: cpu, opencl, opencl:P:D or auto (default: $SHIFTGRAD_DEVICE, else auto).
    #[arg(long)]
    device: Option<String>,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
}

/// Arguments of `shiftgrad experiment`: the grid; every other flag is `train`'s, the shared
/// recipe (moved behind `--` before parsing, see [`experiment_argv`]).
#[derive(clap::Args)]
struct ExperimentArgs {
    /// Spatial operators, e.g. sw,slak,dense,small.
    #[arg(long, value_delimiter = ',', default_value = "sw")]
    spatial: Vec<String>,
    /// Seeds; every configuration runs with each.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    seeds: Vec<u64>,
    /// A set of per-stage big kernels, e.g. 13,13,7; repeat the flag (or separate sets with
    /// ';') for several (default: the preset's). Not for small.
    #[arg(long = "big-kernels")]
    big_kernels: Vec<String>,
    /// sw only: fractions of the small kernels pruned (sparse training), e.g. 0,0.3,0.5.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    sparsity: Vec<f64>,
    /// sw only: index groups G, e.g. 2,4.
    #[arg(long = "n-rep", value_delimiter = ',')]
    n_rep: Vec<usize>,
    /// sw only: ghost ratios, e.g. 0,0.23.
    #[arg(long = "ghost-ratio", value_delimiter = ',')]
    ghost_ratio: Vec<f64>,
    /// The experiment's directory: one run directory per configuration and seed, and the
    /// results.
    #[arg(long, default_value = "runs/experiment")]
    out: PathBuf,
    /// The shared `train` flags (the recipe), e.g. --epochs 3 --limit 6000 --device opencl.
    #[arg(last = true, allow_hyphen_values = true)]
    recipe: Vec<String>,
}

/// The long flags of [`ExperimentArgs`] other than the recipe.
const EXPERIMENT_FLAGS: [&str; 7] = [
    "--spatial",
    "--seeds",
    "--big-kernels",
    "--sparsity",
    "--n-rep",
    "--ghost-ratio",
    "--out",
];

/// `shiftgrad experiment ...` with the recipe (every argument that is not an experiment flag
/// or its value) moved behind `--`, so that every `train` flag can be given in any order.
fn experiment_argv(args: Vec<String>) -> Vec<String> {
    if args.get(1).map(String::as_str) != Some("experiment") || args.iter().any(|a| a == "--") {
        return args;
    }
    let (mut front, mut recipe) = (args[..2].to_vec(), Vec::new());
    let mut i = 2;
    while i < args.len() {
        let a = &args[i];
        let name = a.split('=').next().unwrap_or(a);
        if EXPERIMENT_FLAGS.contains(&name) || a == "-h" || a == "--help" {
            front.push(a.clone());
            if !a.contains('=') && a.starts_with("--") && a != "--help" {
                if let Some(v) = args.get(i + 1) {
                    front.push(v.clone());
                    i += 1;
                }
            }
        } else {
            recipe.push(a.clone());
        }
        i += 1;
    }
    front.push("--".into());
    front.extend(recipe);
    front
}

/// Runs one `train` command line (without the program name) as `shiftgrad train` would.
fn train_argv(argv: Vec<String>) -> Result<()> {
    use shiftgrad::tensor::Error;
    let full: Vec<String> = std::iter::once("shiftgrad".to_string())
        .chain(argv)
        .collect();
    let matches = Cli::command()
        .try_get_matches_from(&full)
        .map_err(|e| Error::Other(format!("experiment: {}", e.render().to_string().trim())))?;
    let cli = Cli::from_arg_matches(&matches).map_err(|e| Error::Other(e.to_string()))?;
    let (Command::Train(a), Some(m)) = (cli.command, matches.subcommand_matches("train")) else {
        return Err(Error::Other("experiment: not a train command".into()));
    };
    match run_train(*a, m)? {
        true => Ok(()),
        false => Err(Error::Other(format!(
            "experiment: `{}` failed",
            full[1..].join(" ")
        ))),
    }
}

fn run_experiment(a: ExperimentArgs) -> Result<bool> {
    use shiftgrad::tensor::Error;
    for bad in [
        "--out",
        "--resume",
        "--overwrite",
        "--seed",
        "--distributed",
        "--sync-bn",
    ] {
        if a.recipe.iter().any(|r| r.split('=').next() == Some(bad)) {
            return Err(Error::arg(
                "experiment",
                format!(
                    "{bad} is not a recipe flag here (the experiment names, resumes and seeds its runs: --out DIR, --seeds LIST)"
                ),
            ));
        }
    }
    // The recipe is parsed once as `train` would, for its epochs and the flags a resumed run
    // takes (and to report a bad flag before any run starts).
    let probe: Vec<String> = ["shiftgrad", "train"]
        .iter()
        .map(|s| s.to_string())
        .chain(a.recipe.iter().cloned())
        .collect();
    let matches = Cli::command()
        .try_get_matches_from(&probe)
        .map_err(|e| Error::Other(format!("experiment: {}", e.render().to_string().trim())))?;
    let Ok(Cli {
        command: Command::Train(t),
    }) = Cli::from_arg_matches(&matches)
    else {
        return Err(Error::Other(
            "experiment: the recipe is not a train command".into(),
        ));
    };
    let mut resume_flags = Vec::new();
    if let Some(d) = &t.device {
        resume_flags.extend(["--device".to_string(), d.clone()]);
    }
    if let Some(d) = &t.data {
        resume_flags.extend(["--data".to_string(), d.display().to_string()]);
    }
    if t.quiet {
        resume_flags.push("--quiet".into());
    }
    let spatial = a
        .spatial
        .iter()
        .map(|s| s.parse())
        .collect::<Result<Vec<shiftgrad::nn::baselines::SpatialKind>>>()?;
    let big_kernels = match a.big_kernels.is_empty() {
        true => vec![None],
        false => a
            .big_kernels
            .iter()
            .flat_map(|s| s.split(';'))
            .map(|set| {
                set.split(',')
                    .map(|k| {
                        k.trim().parse::<usize>().map_err(|_| {
                            Error::arg(
                                "experiment",
                                format!("--big-kernels: {set:?} is not a list of kernel sizes"),
                            )
                        })
                    })
                    .collect::<Result<Vec<usize>>>()
                    .map(Some)
            })
            .collect::<Result<Vec<_>>>()?,
    };
    for &s in &a.sparsity {
        cli::check_sparsity("experiment", s)?;
    }
    let option_list = |v: &[usize]| match v.is_empty() {
        true => vec![None],
        false => v.iter().map(|&x| Some(x)).collect(),
    };
    let grid = cli::experiment::Grid {
        spatial,
        seeds: a.seeds.clone(),
        big_kernels,
        sparsity: a.sparsity.clone(),
        n_rep: option_list(&a.n_rep),
        ghost_ratio: match a.ghost_ratio.is_empty() {
            true => vec![None],
            false => a.ghost_ratio.iter().map(|&x| Some(x)).collect(),
        },
    };
    cli::experiment::run(
        &grid,
        &a.out,
        &a.recipe,
        t.epochs,
        &resume_flags,
        &mut train_argv,
        &mut std::io::stdout(),
    )?;
    Ok(true)
}

/// Arguments of `shiftgrad train`.
#[derive(clap::Args)]
struct TrainArgs {
    #[command(flatten)]
    net: NetArgs,
    /// Epochs to train. With --resume: the new total (at least the epochs already trained).
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    #[arg(long = "batch-size", default_value_t = 64)]
    batch_size: usize,
    /// Peak learning rate (after warm-up).
    #[arg(long, default_value_t = 0.1)]
    lr: f64,
    #[arg(long, value_enum, default_value = "sgd")]
    optimizer: OptimArg,
    /// SGD momentum (Nesterov).
    #[arg(long, default_value_t = 0.9)]
    momentum: f64,
    /// Weight decay (default 5e-4 for SGD, 0.05 for AdamW); not applied to batch-norm parameters or biases.
    #[arg(long = "weight-decay")]
    weight_decay: Option<f64>,
    /// Linear warm-up length in epochs (then cosine decay to 0).
    #[arg(long = "warmup-epochs", default_value_t = 0.2)]
    warmup_epochs: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Device: cpu, opencl, opencl:P:D or auto (default: $SHIFTGRAD_DEVICE, else auto).
    #[arg(long)]
    device: Option<String>,
    /// Output directory (default: runs/<preset>-<spatial>-seed<seed>; not with --resume).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Fashion-MNIST directory (default: $FASHION_MNIST_DIR, else /usr/share/datasets/fashion-mnist).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Train on the first N training images only.
    #[arg(long)]
    limit: Option<usize>,
    /// Evaluate on the first N test images only.
    #[arg(long = "test-limit")]
    test_limit: Option<usize>,
    /// Zero padding of the random crop (0 disables cropping).
    #[arg(long = "crop-pad", default_value_t = 2)]
    crop_pad: usize,
    /// Disable random horizontal flips.
    #[arg(long = "no-flip")]
    no_flip: bool,
    /// Sparse group convolution (SPEC 1.6): fraction of the shift-wise layers' small kernels
    /// pruned (0: dense).
    #[arg(long, default_value_t = 0.0)]
    sparsity: f64,
    /// Initial masks: snip (SNIP density per layer, random mask), snip-topk or uniform.
    #[arg(long = "sparse-init", default_value = "snip")]
    sparse_init: String,
    /// Fraction of live kernels pruned and regrown at the start (cosine down to 0.005).
    #[arg(long = "prune-rate", default_value_t = 0.3)]
    prune_rate: f64,
    /// Optimiser steps between prune/regrow steps.
    #[arg(long = "prune-every", default_value_t = 100)]
    prune_every: usize,
    /// How pruned kernels are replaced: random (the reference's choice) or gradient (the
    /// dead kernels with the largest gradient magnitude, from one extra dense backward).
    #[arg(long, default_value = "random")]
    growth: String,
    /// Continue the run in this directory from its checkpoint, with the configuration stored
    /// there. Only --epochs (a new total, at least the epochs done; the cosine decay then spans
    /// the new total), --device, --data, --quiet and --distributed (a distributed run resumes
    /// under mpirun with as many processes) may be given with it; --out is refused (a
    /// run continues in its own directory: copy the directory to branch a run), and so is every
    /// flag that would change the run.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Start a fresh run even where the output directory already holds one (its checkpoint
    /// and metrics are replaced). Without it, such a directory is an error.
    #[arg(long)]
    overwrite: bool,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
    /// Data-parallel training over the processes of an MPI job (`mpirun -np N shiftgrad
    /// train --distributed ...`; a build with the `mpi` feature): --batch-size is the global
    /// batch, split evenly over the processes; rank 0 prints and writes the run directory.
    /// With --device auto, process i takes OpenCL device (local rank mod devices).
    #[arg(long)]
    distributed: bool,
    /// With --distributed: batch-norm statistics over the global batch (synchronised), not
    /// each process's shard.
    #[arg(long = "sync-bn")]
    sync_bn: bool,
}

/// The device for training and evaluation: the flag, else $SHIFTGRAD_DEVICE, else auto.
fn train_device(flag: Option<&str>) -> Result<Device> {
    let env = std::env::var(shiftgrad::opencl::DEVICE_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty());
    Device::open(Some(flag.or(env.as_deref()).unwrap_or("auto")))
}

/// The flags of `train` that `--resume` accepts: they do not change what the run computes.
const RESUME_FLAGS: [&str; 6] = ["resume", "epochs", "device", "data", "quiet", "distributed"];

/// Whether flag `id` was given (on the command line or through an environment variable),
/// as opposed to left at its default.
fn given(m: &ArgMatches, id: &str) -> bool {
    matches!(
        m.value_source(id),
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    )
}

/// Refuses the flags given with `--resume` that it cannot honour, naming them.
fn check_resume_flags(m: &ArgMatches, dir: &std::path::Path) -> Result<()> {
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
fn sparse_run(
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
fn run_train(a: TrainArgs, m: &ArgMatches) -> Result<bool> {
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
fn process_device(flag: Option<&str>, group: &shiftgrad::dist::Group) -> Result<Device> {
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

fn run_train_in(a: TrainArgs, m: &ArgMatches, group: Rc<shiftgrad::dist::Group>) -> Result<bool> {
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

fn run(command: Command, matches: &ArgMatches) -> Result<bool> {
    let mut stdout = std::io::stdout();
    match command {
        Command::Train(a) => {
            let m = matches
                .subcommand_matches("train")
                .ok_or_else(|| shiftgrad::tensor::Error::Other("train: no arguments".into()))?;
            run_train(*a, m)
        }
        Command::Eval {
            checkpoint,
            device,
            data,
            limit,
        } => {
            if limit == Some(0) {
                return Err(shiftgrad::tensor::Error::arg(
                    "eval",
                    "--limit must be at least 1",
                ));
            }
            let device = train_device(device.as_deref())?;
            let sd = shiftgrad::train::load_checkpoint(&checkpoint)?;
            let meta = shiftgrad::train::read_meta(&sd, &checkpoint)?;
            let mut model = shiftgrad::train::build_model(&meta.config, &device, Some(&sd))
                .map_err(|e| {
                    shiftgrad::tensor::Error::file(
                        &checkpoint,
                        format!("incompatible checkpoint: {e}"),
                    )
                })?;
            let dir = shiftgrad::nn::data::data_dir(data.as_deref());
            let test = shiftgrad::train::load_split(&dir, shiftgrad::nn::data::Split::Test, limit)?;
            let (loss, acc) = shiftgrad::train::evaluate(&mut model, &test, &device)?;
            println!(
                "{}: epoch {} of {} ({} {}), {} test images on {}: accuracy {:.2}%, loss {:.4}",
                checkpoint.display(),
                meta.epoch,
                meta.config.epochs,
                meta.config.preset,
                meta.config.spatial,
                test.len(),
                device.name(),
                100.0 * acc,
                loss
            );
            Ok(true)
        }
        Command::Profile {
            preset,
            spatial,
            batch_size,
            steps,
            warmup,
            widths,
            sparsity,
            rounds,
            device,
        } => {
            let devices = sparsity
                .iter()
                .map(|_| train_device(device.as_deref()))
                .collect::<Result<Vec<_>>>()?;
            let mut config = shiftgrad::nn::resnet::ResNetConfig::preset(&preset)?;
            config.spatial = spatial.parse()?;
            if let Some(w) = widths {
                config.widths = w;
            }
            let shape = cli::profile::Shape {
                batch: batch_size,
                warmup,
                steps,
                rounds,
                sparsity,
            };
            cli::profile::run(config, &devices, shape, &mut stdout)?;
            Ok(true)
        }
        Command::Erf(a) => {
            let m = matches
                .subcommand_matches("erf")
                .ok_or_else(|| shiftgrad::tensor::Error::Other("erf: no arguments".into()))?;
            let net_flags = <NetArgs as clap::Args>::augment_args(clap::Command::new("erf"));
            let mut given_net = net_flags
                .get_arguments()
                .filter(|f| given(m, f.get_id().as_str()))
                .map(|f| format!("--{}", f.get_long().unwrap_or(f.get_id().as_str())))
                .chain(given(m, "seed").then(|| "--seed".to_string()));
            if let (false, Some(flag)) = (a.checkpoint.is_empty(), given_net.next()) {
                return Err(shiftgrad::tensor::Error::arg(
                    "erf",
                    format!(
                        "{flag} describes an untrained network; a --checkpoint carries its own"
                    ),
                ));
            }
            let device = train_device(a.device.as_deref())?;
            let mut models = if a.checkpoint.is_empty() {
                let mut net = a.net.network()?;
                net.seed = a.seed;
                vec![cli::erf::ErfModel::untrained(net, &device)?]
            } else {
                a.checkpoint
                    .iter()
                    .map(|c| cli::erf::ErfModel::from_checkpoint(c, &device))
                    .collect::<Result<Vec<_>>>()?
            };
            let args = cli::erf::ErfArgs {
                images: a.images,
                size: a.size,
                data: shiftgrad::nn::data::data_dir(a.data.as_deref()),
                out: a.out,
                quiet: a.quiet,
            };
            cli::erf::run(&mut models, &args, &device, &mut stdout)?;
            Ok(true)
        }
        Command::Experiment(a) => run_experiment(*a),
        Command::Devices => {
            let devices = shiftgrad::opencl::list_devices()
                .map_err(|e| shiftgrad::tensor::Error::Device(e.to_string()))?;
            print!("{}", shiftgrad::opencl::DeviceTable(&devices));
            Ok(true)
        }
        Command::Gradcheck { device, op } => {
            let device = Device::open(device.as_deref())?;
            let rows = cli::gradcheck::run(op.as_deref(), &device, &mut stdout)?;
            Ok(rows.iter().all(|r| r.passed))
        }
        Command::Equiv {
            big,
            small,
            channels,
            n_rep,
            n_path,
            height,
            width,
            batch,
            seed,
            sparsity,
            dtype,
            device,
            out,
        } => {
            cli::check_sparsity("equiv", sparsity)?;
            let device = Device::open(device.as_deref())?;
            let args = cli::equiv::EquivArgs {
                device,
                big,
                small,
                channels,
                n_rep,
                n_path,
                height,
                width,
                batch,
                seed,
                sparsity,
                out,
            };
            let report = match dtype {
                DTypeArg::F32 => cli::equiv::run::<f32>(&args, &mut stdout)?,
                DTypeArg::F64 => cli::equiv::run::<f64>(&args, &mut stdout)?,
            };
            Ok(report.passed())
        }
        Command::Bench {
            spatial,
            layer,
            batch,
            steps,
            warmup,
            kernels,
            device,
        } => {
            let (_, height, width) = layer.one_size("bench")?;
            let device = train_device(device.as_deref())?;
            let kinds = spatial
                .iter()
                .map(|k| k.parse())
                .collect::<Result<Vec<_>>>()?;
            let shape = cli::bench::BenchShape {
                batch,
                height,
                width,
                warmup,
                steps,
                kinds,
                sparsity: layer.sparsity,
                kernels,
            };
            cli::bench::run(layer.config(), &shape, &device, &mut stdout)?;
            Ok(true)
        }
        Command::Compare {
            layer,
            device,
            batch,
            steps,
            warmup,
            out,
        } => {
            cli::check_sparsity("compare", layer.sparsity)?;
            let timing = match device {
                Some(d) => Some(cli::compare::Timing {
                    device: Device::open(Some(&d))?,
                    batch,
                    steps,
                    warmup,
                }),
                None => None,
            };
            let several = layer.big.len() * layer.height.len() > 1;
            let sweep = cli::compare::Sweep {
                config: layer.config(),
                bigs: layer.big.clone(),
                heights: layer.height.clone(),
                width: layer.width,
                sparsity: layer.sparsity,
                timing,
                out: out.or_else(|| several.then(|| PathBuf::from("runs/compare"))),
            };
            cli::compare::sweep(&sweep, &mut stdout)?;
            Ok(true)
        }
    }
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches_from(experiment_argv(std::env::args().collect()));
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match run(cli.command, &matches) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
