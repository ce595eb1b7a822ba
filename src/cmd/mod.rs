//! The command line of the `shiftgrad` binary (not part of the library): the subcommands and
//! their flags (clap derive), and what each runs. The library does the work (`shiftgrad::cli`
//! for the tools, `shiftgrad::train` for training); this module parses, checks the flags that
//! only make sense together, and calls it.
//!
//! * here: [`Cli`] and [`Command`], the subcommands with their own flags;
//! * `args`: the flag groups several subcommands share (one layer, one network) and the long
//!   ones (`train`, `erf`, `experiment`);
//! * `train`: `shiftgrad train` (fresh, resumed, distributed);
//! * `experiment`: `shiftgrad experiment` (the grid of `train` runs);
//! * `run`: the dispatch of every subcommand.

mod args;
mod experiment;
mod run;
mod train;

pub(crate) use experiment::experiment_argv;
pub(crate) use run::run;

use args::*;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "shiftgrad",
    version,
    about = "Shift-wise ResNets on an auditable autodiff engine"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum DTypeArg {
    F32,
    F64,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum OptimArg {
    Sgd,
    Adamw,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
        /// Spatial operator: sw, slak, dense or small. Several, e.g. sw,slak,small: one
        /// network each, on its own device context, timed in alternating rounds, and their
        /// images/s side by side.
        #[arg(long, value_delimiter = ',', default_value = "sw")]
        spatial: Vec<String>,
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
