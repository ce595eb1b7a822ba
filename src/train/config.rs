//! The resolved configuration of a training run: everything that affects its result, stored
//! as JSON in `config.json` and inside every checkpoint (`meta.config_json`), so that a
//! checkpoint alone rebuilds its network and `--resume` continues exactly the same run.

use serde::{Deserialize, Serialize};
use shiftgrad_nn::optim::OptimKind;
use shiftgrad_nn::resnet::ResNetConfig;
use shiftgrad_nn::sparsity::SparseConfig;
use shiftgrad_nn::SpatialKind;
use shiftgrad_tensor::{Error, Result};

/// Which optimiser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimName {
    Sgd,
    Adamw,
}

/// The sparse group convolution of a run (SPEC 1.6); absent from dense runs, so their
/// configuration (and checkpoints) are exactly as before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SparseRun {
    /// Fraction of the shift-wise layers' small kernels pruned, in (0, 1).
    pub sparsity: f64,
    /// `snip`, `snip-topk` or `uniform`.
    pub init: String,
    /// r_0 of the prune schedule.
    pub prune_rate: f64,
    /// Optimiser steps between prune/regrow steps.
    pub prune_every: usize,
    /// `random` (or `gradient`, refused for now).
    pub growth: String,
}

impl SparseRun {
    /// The parsed, validated settings.
    pub fn config(&self) -> Result<SparseConfig> {
        let cfg = SparseConfig {
            sparsity: self.sparsity,
            init: self.init.parse()?,
            prune_rate: self.prune_rate,
            prune_every: self.prune_every,
            growth: self.growth.parse()?,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Data-parallel training (`--distributed` under mpirun); absent from one-process runs, so
/// their configuration (and checkpoints) are exactly as before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistRun {
    /// Processes; a resumed run must have as many.
    pub ranks: usize,
    /// Batch-norm statistics over the whole global batch (`--sync-bn`) rather than each
    /// process's shard.
    pub sync_bn: bool,
}

/// A training run, fully resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    pub preset: String,
    pub spatial: String,
    pub widths: Vec<usize>,
    pub depths: Vec<usize>,
    pub big_kernels: Vec<usize>,
    pub small_kernel: usize,
    pub ghost_ratio: f64,
    pub n_path: usize,
    pub n_rep: usize,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub optimizer: OptimName,
    pub momentum: f64,
    pub weight_decay: f64,
    pub warmup_epochs: f64,
    pub seed: u64,
    /// Training examples used (the first N), or all.
    pub limit: Option<usize>,
    /// Test examples used (the first N), or all.
    pub test_limit: Option<usize>,
    /// Random crop with this zero padding (0: none) and horizontal flips.
    pub crop_pad: usize,
    pub flip: bool,
    /// Sparse group convolution, where `--sparsity` is above 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sparse: Option<SparseRun>,
    /// Data-parallel training over this many processes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distributed: Option<DistRun>,
}

impl RunConfig {
    /// The network this run trains.
    pub fn network(&self) -> Result<ResNetConfig> {
        let mut c = ResNetConfig::preset(&self.preset)?;
        c.spatial = self.spatial.parse::<SpatialKind>()?;
        c.widths = self.widths.clone();
        c.depths = self.depths.clone();
        c.big_kernels = self.big_kernels.clone();
        c.small_kernel = self.small_kernel;
        c.ghost_ratio = self.ghost_ratio;
        c.n_path = self.n_path;
        c.n_rep = self.n_rep;
        c.seed = self.seed;
        c.validate()?;
        Ok(c)
    }

    /// The optimiser and its hyper-parameters.
    pub fn optim_kind(&self) -> OptimKind {
        match self.optimizer {
            OptimName::Sgd => OptimKind::Sgd {
                momentum: self.momentum,
                nesterov: true,
                weight_decay: self.weight_decay,
            },
            OptimName::Adamw => OptimKind::AdamW {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: self.weight_decay,
            },
        }
    }

    /// Checks the numbers that no other layer checks.
    pub fn validate(&self) -> Result<()> {
        const OP: &str = "train";
        if self.epochs == 0 || self.batch_size == 0 {
            return Err(Error::arg(OP, "epochs and batch size must be at least 1"));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::arg(
                OP,
                format!("learning rate must be positive, got {}", self.lr),
            ));
        }
        let decay_ok = self.weight_decay.is_finite() && self.weight_decay >= 0.0;
        if !decay_ok || !(0.0..1.0).contains(&self.momentum) {
            return Err(Error::arg(
                OP,
                "weight decay must be >= 0 and momentum in [0, 1)",
            ));
        }
        if !(self.warmup_epochs.is_finite() && self.warmup_epochs >= 0.0) {
            return Err(Error::arg(OP, "warm-up epochs must be >= 0"));
        }
        if self.limit == Some(0) || self.test_limit == Some(0) {
            return Err(Error::arg(
                OP,
                "--limit and --test-limit must be at least 1",
            ));
        }
        if let Some(sp) = &self.sparse {
            sp.config()?;
            if sp.sparsity <= 0.0 {
                return Err(Error::arg(OP, "a sparse run needs a sparsity above 0"));
            }
            if self.spatial != "sw" {
                return Err(Error::arg(
                    OP,
                    format!(
                        "--sparsity prunes the small kernels of the shift-wise operator: it needs --spatial sw, not {}",
                        self.spatial
                    ),
                ));
            }
        }
        if let Some(d) = &self.distributed {
            if d.ranks < 2 {
                return Err(Error::arg(
                    OP,
                    format!(
                        "a distributed run needs at least 2 processes, got {}",
                        d.ranks
                    ),
                ));
            }
            if !self.batch_size.is_multiple_of(d.ranks) {
                return Err(Error::arg(
                    OP,
                    format!(
                        "--batch-size {} (the global batch) must be a multiple of the {} processes",
                        self.batch_size, d.ranks
                    ),
                ));
            }
            if self.sparse.is_some() {
                return Err(Error::arg(
                    OP,
                    "--sparsity is not supported with --distributed yet (the masks' updates are not synchronised)",
                ));
            }
        }
        self.network().map(|_| ())
    }

    /// JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a RunConfig always serialises")
    }

    /// Parses JSON text.
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| Error::Other(format!("run configuration: {e}")))
    }
}
