//! The flag groups: one spatial layer (`compare`, `bench`), one network (`train`, `erf`), and
//! the arguments of `erf`, `experiment` and `train`.

use super::OptimArg;
use shiftgrad::nn::SwConfig;
use shiftgrad::tensor::Result;
use std::path::PathBuf;

/// One spatial layer's geometry, shared by `compare` and `bench`.
#[derive(clap::Args)]
pub(crate) struct LayerArgs {
    /// Big kernel M (compare: a list, e.g. 7,13,25,51).
    #[arg(long, value_delimiter = ',', default_value = "51")]
    pub(crate) big: Vec<usize>,
    #[arg(long, default_value_t = 5)]
    pub(crate) small: usize,
    /// Channels C.
    #[arg(long, default_value_t = 64)]
    pub(crate) channels: usize,
    #[arg(long = "ghost-ratio", default_value_t = 0.0)]
    pub(crate) ghost_ratio: f64,
    #[arg(long = "n-path", default_value_t = 2)]
    pub(crate) n_path: usize,
    #[arg(long = "n-rep", default_value_t = 4)]
    pub(crate) n_rep: usize,
    /// Map height (compare: a list).
    #[arg(long, value_delimiter = ',', default_value = "56")]
    pub(crate) height: Vec<usize>,
    /// Map width (default: the height).
    #[arg(long)]
    pub(crate) width: Option<usize>,
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Also take the sw layer with this fraction of its small kernels pruned (row sw*; uniform
    /// random mask from the seed, in [0, 1)); 0: none.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub(crate) sparsity: f64,
}

impl LayerArgs {
    /// The one size `cmd` takes (an error for a list).
    pub(crate) fn one_size(&self, cmd: &'static str) -> Result<(usize, usize, usize)> {
        match (self.big.as_slice(), self.height.as_slice()) {
            ([big], [h]) => Ok((*big, *h, self.width.unwrap_or(*h))),
            _ => Err(shiftgrad::tensor::Error::arg(
                cmd,
                "--big and --height take one value here (compare sweeps lists)",
            )),
        }
    }

    pub(crate) fn config(&self) -> SwConfig {
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
pub(crate) struct NetArgs {
    /// Network preset: sw-resnet-tiny or sw-resnet-20.
    #[arg(long, default_value = "sw-resnet-tiny")]
    pub(crate) preset: String,
    /// Spatial operator: sw, slak, dense or small.
    #[arg(long, default_value = "sw")]
    pub(crate) spatial: String,
    /// Stage widths, e.g. 32,64,128 (default: the preset's).
    #[arg(long, value_delimiter = ',')]
    pub(crate) widths: Option<Vec<usize>>,
    /// Blocks per stage, e.g. 2,2,2.
    #[arg(long, value_delimiter = ',')]
    pub(crate) depths: Option<Vec<usize>>,
    /// Big kernel per stage, e.g. 13,13,7.
    #[arg(long = "big-kernels", value_delimiter = ',')]
    pub(crate) big_kernels: Option<Vec<usize>>,
    #[arg(long = "small-kernel")]
    pub(crate) small_kernel: Option<usize>,
    #[arg(long = "ghost-ratio")]
    pub(crate) ghost_ratio: Option<f64>,
    #[arg(long = "n-path")]
    pub(crate) n_path: Option<usize>,
    #[arg(long = "n-rep")]
    pub(crate) n_rep: Option<usize>,
}

impl NetArgs {
    /// The preset with the given overrides and spatial operator (not validated).
    pub(crate) fn network(&self) -> Result<shiftgrad::nn::resnet::ResNetConfig> {
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
pub(crate) struct ErfArgs {
    /// A training checkpoint (checkpoint.npz, or its run directory); repeat for several
    /// models side by side. Without it: an untrained network from the network flags.
    #[arg(long)]
    pub(crate) checkpoint: Vec<PathBuf>,
    #[command(flatten)]
    pub(crate) net: NetArgs,
    /// Seed of the untrained network's initialisation.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Test images averaged over (the first N of the test set).
    #[arg(long, default_value_t = 50)]
    pub(crate) images: usize,
    /// Side the images are upsampled to (bilinear) before they enter the network.
    #[arg(long, default_value_t = 112)]
    pub(crate) size: usize,
    /// Output directory for erf.npy, erf.json and erf.png.
    #[arg(long, default_value = "runs/erf")]
    pub(crate) out: PathBuf,
    /// Fashion-MNIST directory (default: $FASHION_MNIST_DIR, else /usr/share/datasets/fashion-mnist).
    #[arg(long)]
    pub(crate) data: Option<PathBuf>,
    /// Device: cpu, opencl, opencl:P:D or auto (default: $SHIFTGRAD_DEVICE, else auto).
    #[arg(long)]
    pub(crate) device: Option<String>,
    /// No progress bars.
    #[arg(long)]
    pub(crate) quiet: bool,
}

/// Arguments of `shiftgrad experiment`: the grid; every other flag is `train`'s, the shared
/// recipe (moved behind `--` before parsing, see [`experiment_argv`]).
#[derive(clap::Args)]
pub(crate) struct ExperimentArgs {
    /// Spatial operators, e.g. sw,slak,dense,small.
    #[arg(long, value_delimiter = ',', default_value = "sw")]
    pub(crate) spatial: Vec<String>,
    /// Seeds; every configuration runs with each.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    pub(crate) seeds: Vec<u64>,
    /// A set of per-stage big kernels, e.g. 13,13,7; repeat the flag (or separate sets with
    /// ';') for several (default: the preset's). Not for small.
    #[arg(long = "big-kernels")]
    pub(crate) big_kernels: Vec<String>,
    /// sw only: fractions of the small kernels pruned (sparse training), e.g. 0,0.3,0.5.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    pub(crate) sparsity: Vec<f64>,
    /// sw only: index groups G, e.g. 2,4.
    #[arg(long = "n-rep", value_delimiter = ',')]
    pub(crate) n_rep: Vec<usize>,
    /// sw only: ghost ratios, e.g. 0,0.23.
    #[arg(long = "ghost-ratio", value_delimiter = ',')]
    pub(crate) ghost_ratio: Vec<f64>,
    /// The experiment's directory: one run directory per configuration and seed, and the
    /// results.
    #[arg(long, default_value = "runs/experiment")]
    pub(crate) out: PathBuf,
    /// The shared `train` flags (the recipe), e.g. --epochs 3 --limit 6000 --device opencl.
    #[arg(last = true, allow_hyphen_values = true)]
    pub(crate) recipe: Vec<String>,
}

/// Arguments of `shiftgrad train`.
#[derive(clap::Args)]
pub(crate) struct TrainArgs {
    #[command(flatten)]
    pub(crate) net: NetArgs,
    /// Epochs to train. With --resume: the new total (at least the epochs already trained).
    #[arg(long, default_value_t = 3)]
    pub(crate) epochs: usize,
    #[arg(long = "batch-size", default_value_t = 64)]
    pub(crate) batch_size: usize,
    /// Peak learning rate (after warm-up).
    #[arg(long, default_value_t = 0.1)]
    pub(crate) lr: f64,
    #[arg(long, value_enum, default_value = "sgd")]
    pub(crate) optimizer: OptimArg,
    /// SGD momentum (Nesterov).
    #[arg(long, default_value_t = 0.9)]
    pub(crate) momentum: f64,
    /// Weight decay (default 5e-4 for SGD, 0.05 for AdamW); not applied to batch-norm parameters or biases.
    #[arg(long = "weight-decay")]
    pub(crate) weight_decay: Option<f64>,
    /// Linear warm-up length in epochs (then cosine decay to 0).
    #[arg(long = "warmup-epochs", default_value_t = 0.2)]
    pub(crate) warmup_epochs: f64,
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Device: cpu, opencl, opencl:P:D or auto (default: $SHIFTGRAD_DEVICE, else auto).
    #[arg(long)]
    pub(crate) device: Option<String>,
    /// Output directory (default: runs/<preset>-<spatial>-seed<seed>; not with --resume).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Fashion-MNIST directory (default: $FASHION_MNIST_DIR, else /usr/share/datasets/fashion-mnist).
    #[arg(long)]
    pub(crate) data: Option<PathBuf>,
    /// Train on the first N training images only.
    #[arg(long)]
    pub(crate) limit: Option<usize>,
    /// Evaluate on the first N test images only.
    #[arg(long = "test-limit")]
    pub(crate) test_limit: Option<usize>,
    /// Zero padding of the random crop (0 disables cropping).
    #[arg(long = "crop-pad", default_value_t = 2)]
    pub(crate) crop_pad: usize,
    /// Disable random horizontal flips.
    #[arg(long = "no-flip")]
    pub(crate) no_flip: bool,
    /// Sparse group convolution (SPEC 1.6): fraction of the shift-wise layers' small kernels
    /// pruned (0: dense).
    #[arg(long, default_value_t = 0.0)]
    pub(crate) sparsity: f64,
    /// Initial masks: snip (SNIP density per layer, random mask), snip-topk or uniform.
    #[arg(long = "sparse-init", default_value = "snip")]
    pub(crate) sparse_init: String,
    /// Fraction of live kernels pruned and regrown at the start (cosine down to 0.005).
    #[arg(long = "prune-rate", default_value_t = 0.3)]
    pub(crate) prune_rate: f64,
    /// Optimiser steps between prune/regrow steps.
    #[arg(long = "prune-every", default_value_t = 100)]
    pub(crate) prune_every: usize,
    /// How pruned kernels are replaced: random (the reference's choice) or gradient (the
    /// dead kernels with the largest gradient magnitude, from one extra dense backward).
    #[arg(long, default_value = "random")]
    pub(crate) growth: String,
    /// Continue the run in this directory from its checkpoint, with the configuration stored
    /// there. Only --epochs (a new total, at least the epochs done; the cosine decay then spans
    /// the new total), --device, --data, --quiet and --distributed (a distributed run resumes
    /// under mpirun with as many processes) may be given with it; --out is refused (a
    /// run continues in its own directory: copy the directory to branch a run), and so is every
    /// flag that would change the run.
    #[arg(long)]
    pub(crate) resume: Option<PathBuf>,
    /// Start a fresh run even where the output directory already holds one (its checkpoint
    /// and metrics are replaced). Without it, such a directory is an error.
    #[arg(long)]
    pub(crate) overwrite: bool,
    /// No progress bars.
    #[arg(long)]
    pub(crate) quiet: bool,
    /// Data-parallel training over the processes of an MPI job (`mpirun -np N shiftgrad
    /// train --distributed ...`; a build with the `mpi` feature): --batch-size is the global
    /// batch, split evenly over the processes; rank 0 prints and writes the run directory.
    /// With --device auto, process i takes OpenCL device (local rank mod devices).
    #[arg(long)]
    pub(crate) distributed: bool,
    /// With --distributed: batch-norm statistics over the global batch (synchronised), not
    /// each process's shard.
    #[arg(long = "sync-bn")]
    pub(crate) sync_bn: bool,
}
