//! The sparse run's settings: how the masks start, how kernels regrow, and the recipe
//! (`SparseConfig`).

use super::*;

/// How the initial masks are chosen (`--sparse-init`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SparseInit {
    /// `snip`: each layer's density from SNIP (one global threshold over all layers' scores),
    /// then a random mask at that density; the reference's `init_sum_snip`.
    Snip,
    /// `snip-topk`: each layer keeps exactly its kernels above the global SNIP threshold (its
    /// top-scored kernels). Not in the reference.
    SnipTopk,
    /// `uniform`: the same density in every layer, random mask; the reference's `uniform`.
    Uniform,
}

impl std::str::FromStr for SparseInit {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "snip" => Ok(SparseInit::Snip),
            "snip-topk" => Ok(SparseInit::SnipTopk),
            "uniform" => Ok(SparseInit::Uniform),
            _ => Err(Error::arg(
                "sparse-init",
                format!("unknown sparse init {s:?}; expected snip, snip-topk or uniform"),
            )),
        }
    }
}

impl std::fmt::Display for SparseInit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SparseInit::Snip => "snip",
            SparseInit::SnipTopk => "snip-topk",
            SparseInit::Uniform => "uniform",
        })
    }
}

/// How pruned kernels are replaced (`--growth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Growth {
    /// `random`: uniformly among the candidates; the reference's choice (`random_growth_sum`).
    Random,
    /// `gradient`: the candidates with the largest gradient magnitude (after RigL and the
    /// reference's element-wise `gradient_growth`, which its coarse mode cannot use).
    Gradient,
}

impl std::str::FromStr for Growth {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "random" => Ok(Growth::Random),
            "gradient" => Ok(Growth::Gradient),
            _ => Err(Error::arg(
                "growth",
                format!("unknown growth {s:?}; expected random or gradient"),
            )),
        }
    }
}

impl std::fmt::Display for Growth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Growth::Random => "random",
            Growth::Gradient => "gradient",
        })
    }
}

/// The prune fraction the cosine schedule ends at, `r_end` (the reference's `CosineDecay`
/// default `eta_min=0.005`).
pub const PRUNE_RATE_END: f64 = 0.005;

/// The sparsity hyper-parameters of a run (`--sparsity`, `--sparse-init`, `--prune-rate`,
/// `--prune-every`, `--growth`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SparseConfig {
    /// Target fraction of pruned kernels over all shift-wise layers, in `[0, 1)`; 0 is dense.
    pub sparsity: f64,
    /// How the initial masks are chosen.
    pub init: SparseInit,
    /// `r_0`, the fraction of live kernels pruned (and regrown) at step 0 of the cosine
    /// schedule, in `[0, 1]`.
    pub prune_rate: f64,
    /// Prune and regrow every this many optimiser steps (the reference's `--update-frequency`),
    /// at least 1.
    pub prune_every: usize,
    /// How pruned kernels are replaced.
    pub growth: Growth,
}

impl Default for SparseConfig {
    /// The reference's recipe: sparsity 0.3 (its best ImageNet run; its parser's default is
    /// 0.4), `snip`, prune rate 0.3, every 100 steps, random growth.
    fn default() -> Self {
        SparseConfig {
            sparsity: 0.3,
            init: SparseInit::Snip,
            prune_rate: 0.3,
            prune_every: 100,
            growth: Growth::Random,
        }
    }
}

impl SparseConfig {
    /// Checks every field; the error names the option and the value.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..1.0).contains(&self.sparsity) {
            return Err(Error::arg(
                "sparsity",
                format!("sparsity must be in [0, 1), got {}", self.sparsity),
            ));
        }
        if !(0.0..=1.0).contains(&self.prune_rate) {
            return Err(Error::arg(
                "sparsity",
                format!("prune rate must be in [0, 1], got {}", self.prune_rate),
            ));
        }
        if self.prune_every == 0 {
            return Err(Error::arg("sparsity", "prune-every must be at least 1"));
        }
        Ok(())
    }

    /// Whether masks are in use at all (sparsity above 0).
    pub fn is_sparse(&self) -> bool {
        self.sparsity > 0.0
    }

    /// Whether prune/regrow runs after optimiser step number `step` (1-based: the count of
    /// steps done so far): every `prune_every` steps, as the reference's `Masking.step` does
    /// (`self.steps += 1; if self.steps % update_frequency == 0: truncate_weights()`).
    pub fn prune_due(&self, step: usize) -> bool {
        step > 0 && self.prune_every > 0 && step.is_multiple_of(self.prune_every)
    }
}
