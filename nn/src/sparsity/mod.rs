//! Sparse group convolution (SPEC 1.6), host side: the masks of coarse pruning and the rules
//! that set and change them. Pure functions over host data; no tensors, no device code.
//!
//! One mask per shift-wise layer, a `Vec<bool>` of length `R*nk` (one bit per k x k small
//! kernel of the bank, `true` = live), shared by all P bank paths. Every random draw comes from
//! the caller's [`Rng`], so a run is reproducible from its seed, and nothing here draws when the
//! choice is forced (all live, all dead, nothing to change): sparsity 0 is bit for bit the dense
//! run.
//!
//! # The reference
//! The reference implementation is lidc54/shift-wiseConv: `sparse_core.py` (`SNIP`,
//! `CosineDecay`, class `Masking`: `init`, `init_sum_snip`, `add_module_sum(_rep)`, `step`,
//! `apply_mask`, `truncate_weights`) and `funcs.py` (`magnitude_prune_sum`,
//! `random_growth_sum`, `gradient_growth`). Its coarse mode (`--sparse_type coarse`) appends
//! `_sum` to the prune and growth modes, so it prunes with `magnitude_prune_sum` and grows with
//! `random_growth_sum`; there is no `gradient_growth_sum`, so gradient growth does not exist in
//! its coarse mode ([`Growth::Gradient`] is ours). Each function below says where it follows the
//! reference and where it deliberately differs. The main differences:
//! * counts are exact. The reference draws masks and regrowth as independent Bernoulli bits
//!   (`torch.rand(shape) < density`), so a layer's density is only right in expectation and
//!   drifts at every regrowth; we draw exactly the intended number of positions, so densities
//!   are exact and stay fixed.
//! * ties are broken deterministically (by layer, then index), not by `torch.sort`'s order.
//! * one mask per layer shared by the paths, instead of one per path copied from path 0.

use shiftgrad_tensor::init::Rng;
use shiftgrad_tensor::{Error, Result};

use rand::Rng as _;
use std::cmp::Ordering;

mod config;
pub use config::{Growth, SparseConfig, SparseInit, PRUNE_RATE_END};

/// The prune fraction after `step` of `total_steps` optimiser steps:
/// `r(t) = r_end + (r_0 - r_end)(1 + cos(pi t / T)) / 2` with `r_0 = prune_rate` and
/// `r_end = `[`PRUNE_RATE_END`].
///
/// Follows the reference's `CosineDecay` (PyTorch's `CosineAnnealingLR` with `T_max` = total
/// steps, stepped once per optimiser step before the prune, so the prune after step `t` uses
/// `r(t)`). Differs: `t` is clamped to `T` (PyTorch's cosine turns back up after `T_max`), and
/// `T = 0` gives `r_end`. Note that `prune_rate = 0` still rises towards `r_end`; a run that
/// wants no prune/regrow should not call it.
pub fn prune_fraction(prune_rate: f64, step: usize, total_steps: usize) -> f64 {
    if total_steps == 0 {
        return PRUNE_RATE_END;
    }
    let t = step.min(total_steps) as f64 / total_steps as f64;
    PRUNE_RATE_END + (prune_rate - PRUNE_RATE_END) * (1.0 + (std::f64::consts::PI * t).cos()) / 2.0
}

/// `round((1 - sparsity) * n)` clamped to `[0, n]` (half away from zero).
fn keep_count(sparsity: f64, n: usize) -> usize {
    let keep = ((1.0 - sparsity) * n as f64).round();
    if keep.is_nan() || keep <= 0.0 {
        0
    } else {
        (keep as usize).min(n)
    }
}

/// A score for ordering: NaN counts as the lowest value (never kept first).
fn key(x: f64) -> f64 {
    if x.is_nan() {
        f64::NEG_INFINITY
    } else {
        x
    }
}

/// Per layer, the number of live kernels at `sparsity`. `scores[l]` holds layer `l`'s SNIP
/// scores, one per kernel (`sum over taps and paths of |w * dL/dw|`, computed by the caller on
/// one batch); for [`SparseInit::Uniform`] only the lengths matter.
///
/// * `Uniform`: `round((1 - sparsity) * n)` in every layer.
/// * `Snip`, `SnipTopk`: one global threshold keeps exactly `round((1 - sparsity) * total)`
///   kernels over all layers, the highest-scored first; ties (equal scores) go to the earlier
///   layer, then the lower index; NaN scores rank lowest. A layer's count is how many of its
///   kernels are kept.
///
/// A layer may end with 0 live kernels (all its scores below the threshold), as in the
/// reference, where `SNIP` can return a layer sparsity of 1 and nothing stops it: a layer with
/// no live kernel is still well defined (its bank and shift-add outputs are zero, so only the
/// batch-norms' constants remain) and keeping the global count exact matters more. Such a
/// layer stays dead: prune/regrow works within a layer and never changes its count.
///
/// Differs from the reference's `SNIP`, which keeps `int(total * density)` (floor) and then
/// marks live only the scores strictly above the last kept one, so it keeps one kernel fewer
/// than it meant (and none of a tied group at the threshold: all-zero scores give density 0
/// everywhere). Its layers at density >= 0.99 are then removed from masking (`init_sum_snip`:
/// "masks of layers with density=1 are removed"); here such layers keep their mask, and a fully
/// live mask is a fixed point of [`prune_regrow`] anyway.
pub fn live_counts(scores: &[Vec<f64>], sparsity: f64, init: SparseInit) -> Vec<usize> {
    match init {
        SparseInit::Uniform => scores
            .iter()
            .map(|s| keep_count(sparsity, s.len()))
            .collect(),
        SparseInit::Snip | SparseInit::SnipTopk => {
            let total: usize = scores.iter().map(Vec::len).sum();
            let keep = keep_count(sparsity, total);
            if keep == total {
                return scores.iter().map(Vec::len).collect();
            }
            let mut counts = vec![0; scores.len()];
            let mut all: Vec<(f64, usize, usize)> = scores
                .iter()
                .enumerate()
                .flat_map(|(l, s)| s.iter().enumerate().map(move |(i, &v)| (key(v), l, i)))
                .collect();
            all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
            for &(_, l, _) in &all[..keep] {
                counts[l] += 1;
            }
            counts
        }
    }
}

/// `count` distinct indices of `0..n`, uniformly at random (a partial Fisher-Yates shuffle with
/// one `gen_range` per chosen index, portable like [`shiftgrad_tensor::init::permutation`]),
/// sorted. A forced choice (`count` 0 or `n`) draws nothing.
fn sample(n: usize, count: usize, rng: &mut Rng) -> Vec<usize> {
    let count = count.min(n);
    if count == n {
        return (0..n).collect();
    }
    if count == 0 {
        return Vec::new();
    }
    let mut p: Vec<usize> = (0..n).collect();
    for i in 0..count {
        let j = rng.gen_range(i..n);
        p.swap(i, j);
    }
    let mut chosen = p[..count].to_vec();
    chosen.sort_unstable();
    chosen
}

/// Indices of `values` ordered by `values` descending (NaN lowest), ties by lower index.
fn order_desc(idx: &[usize], values: &[f64]) -> Vec<usize> {
    let mut v = idx.to_vec();
    v.sort_by(|&a, &b| key(values[b]).total_cmp(&key(values[a])).then(a.cmp(&b)));
    v
}

/// The initial masks, one per layer (`scores` as in [`live_counts`]; `cfg` is assumed
/// [validated](SparseConfig::validate)). Layer `l` gets exactly `live_counts(..)[l]` live
/// kernels:
/// * `Snip`: at positions drawn uniformly from `rng` (the reference's `init_sum_snip`, but with
///   the exact count instead of Bernoulli bits at that density);
/// * `SnipTopk`: its top-scored kernels (ties to the lower index), no draws;
/// * `Uniform`: at random positions, as `Snip` (the reference's `uniform` mode, exact count).
///
/// Layers are drawn in order from the one `rng`; a layer that is all live or all dead draws
/// nothing, so sparsity 0 gives all-live masks without touching `rng` (the dense run).
pub fn init_masks(scores: &[Vec<f64>], cfg: &SparseConfig, rng: &mut Rng) -> Vec<Vec<bool>> {
    let counts = live_counts(scores, cfg.sparsity, cfg.init);
    scores
        .iter()
        .zip(&counts)
        .map(|(s, &count)| {
            let n = s.len();
            let live = match cfg.init {
                SparseInit::SnipTopk => {
                    let all: Vec<usize> = (0..n).collect();
                    order_desc(&all, s)[..count].to_vec()
                }
                SparseInit::Snip | SparseInit::Uniform => sample(n, count, rng),
            };
            let mut mask = vec![false; n];
            for i in live {
                mask[i] = true;
            }
            mask
        })
        .collect()
}

/// The number of live kernels a prune step removes: `ceil(fraction * live)`, `fraction`
/// clamped to `[0, 1]` (NaN counts as 0).
///
/// Follows the reference's `magnitude_prune_sum` (`num_remove = math.ceil(prune_rate *
/// nonzeros)`), so any positive fraction prunes at least one kernel of a live layer. Differs
/// only in guarding against rounding noise: a product within 1e-9 above an integer counts as
/// that integer (`0.3 * 10` is `3.0000000000000004` in f64; the reference's `ceil` gives 4, we
/// give 3).
pub fn prune_count(fraction: f64, live: usize) -> usize {
    let f = if fraction.is_nan() {
        0.0
    } else {
        fraction.clamp(0.0, 1.0)
    };
    let k = (f * live as f64 - 1e-9).ceil();
    if k <= 0.0 {
        0
    } else {
        (k as usize).min(live)
    }
}

/// What one [`prune_regrow`] changed. Every list is sorted ascending, and
/// `pruned.len() == regrown.len()` (the layer's density is unchanged).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneStats {
    /// Kernels that were live and are now dead: the caller zeroes their weights and optimiser
    /// state (and keeps them zero after every optimiser step).
    pub pruned: Vec<usize>,
    /// Kernels that were dead before this step and are now live: they start at zero, so the
    /// caller zeroes their weights and optimiser state (momentum, both AdamW moments).
    pub regrown: Vec<usize>,
    /// Kernels chosen for pruning and chosen again by the growth of the same step: live before
    /// and after, weights and optimiser state kept (in the reference, a kernel regrown right
    /// after its prune keeps its weights, because `apply_mask` only runs after growth).
    pub revived: Vec<usize>,
}

impl PruneStats {
    /// How many kernels the prune selected (`prune_count(fraction, live)`).
    pub fn selected(&self) -> usize {
        self.pruned.len() + self.revived.len()
    }
}

/// One prune/regrow of a layer's `mask`, in place; the layer's density stays fixed.
///
/// 1. `k = `[`prune_count`]`(fraction, live)`; the `k` live kernels with the smallest
///    `magnitude` (`sum |w|` over taps and paths, computed by the caller) are pruned, ties to
///    the lower index, NaN first (the reference's `magnitude_prune_sum`, which sorts all
///    kernels by `sum |w|` and zeroes the `zeros + k` smallest, relying on dead kernels being
///    exactly zero; we select among the live ones directly).
/// 2. `k` kernels are regrown among all kernels dead after the prune, *including the ones just
///    pruned*: this is the reference's rule (`truncate_weights` grows `floor(removed)` kernels
///    into the pruned mask, and `random_growth_sum` / `gradient_growth` pick from every zero of
///    that mask). `Random` picks `k` of them uniformly from `rng` (the reference sets each
///    candidate with probability `k / candidates`, so its count is only right in expectation);
///    `Gradient` picks the `k` with the largest `grad_magnitude`, ties to the lower index, no
///    draws. `grad_magnitude` (`sum |dL/dw|` over taps and paths) must be the gradient the
///    kernel would have if it were live (the reference's dense `weight.grad`): a compute that
///    skips dead kernels gives them no gradient, so the caller computes it densely for this
///    step; it is ignored with `Random`.
///
/// A kernel picked in both steps is reported in [`PruneStats::revived`] and keeps its weights.
/// `fraction` 0 (or a layer with no live kernel) changes nothing, and a forced choice (no
/// kernel was dead before, so every candidate is regrown) draws nothing: an all-live mask is a
/// fixed point and never touches `rng`.
///
/// # Panics
/// If `magnitude` or (with `Gradient`) `grad_magnitude` is not as long as `mask`.
pub fn prune_regrow(
    mask: &mut [bool],
    magnitude: &[f64],
    grad_magnitude: &[f64],
    fraction: f64,
    growth: Growth,
    rng: &mut Rng,
) -> PruneStats {
    let n = mask.len();
    assert_eq!(
        magnitude.len(),
        n,
        "prune_regrow: {} magnitudes for a mask of {n} kernels",
        magnitude.len()
    );
    if growth == Growth::Gradient {
        assert_eq!(
            grad_magnitude.len(),
            n,
            "prune_regrow: {} gradient magnitudes for a mask of {n} kernels",
            grad_magnitude.len()
        );
    }
    let live: Vec<usize> = (0..n).filter(|&i| mask[i]).collect();
    let k = prune_count(fraction, live.len());
    if k == 0 {
        return PruneStats::default();
    }
    // Smallest magnitude first, NaN first, ties to the lower index.
    let mut by_small = live.clone();
    by_small.sort_by(|&a, &b| {
        let (x, y) = (magnitude[a], magnitude[b]);
        match (x.is_nan(), y.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            (false, false) => x.total_cmp(&y),
        }
        .then(a.cmp(&b))
    });
    let mut selected = by_small[..k].to_vec();
    selected.sort_unstable();
    for &i in &selected {
        mask[i] = false;
    }
    // Candidates: every kernel dead now (dead before, and just pruned), ascending.
    let candidates: Vec<usize> = (0..n).filter(|&i| !mask[i]).collect();
    let mut grown: Vec<usize> = match growth {
        Growth::Random => sample(candidates.len(), k, rng)
            .into_iter()
            .map(|j| candidates[j])
            .collect(),
        Growth::Gradient => order_desc(&candidates, grad_magnitude)[..k].to_vec(),
    };
    grown.sort_unstable();
    for &i in &grown {
        mask[i] = true;
    }
    let mut stats = PruneStats::default();
    for &i in &selected {
        if mask[i] {
            stats.revived.push(i);
        } else {
            stats.pruned.push(i);
        }
    }
    stats.regrown = grown
        .into_iter()
        .filter(|i| selected.binary_search(i).is_err())
        .collect();
    stats
}

/// Fraction of live kernels in `mask`; an empty mask counts as fully live (1).
pub fn density(mask: &[bool]) -> f64 {
    if mask.is_empty() {
        return 1.0;
    }
    mask.iter().filter(|&&b| b).count() as f64 / mask.len() as f64
}

/// Fraction of live kernels over several masks together (a stage, or the whole network),
/// weighted by their lengths; 1 when there are no kernels.
pub fn overall_density(masks: &[Vec<bool>]) -> f64 {
    let total: usize = masks.iter().map(Vec::len).sum();
    if total == 0 {
        return 1.0;
    }
    let live: usize = masks.iter().flatten().filter(|&&b| b).count();
    live as f64 / total as f64
}

/// A mask as the checkpoint stores it (`<layer>.spatial.mask`, int32, 1 = live).
pub fn mask_to_i32(mask: &[bool]) -> Vec<i32> {
    mask.iter().map(|&b| i32::from(b)).collect()
}

/// A mask read back from a checkpoint entry `name`: exactly `expected_len` values, each 0 or
/// 1; anything else is an error naming the entry.
pub fn mask_from_i32(name: &str, values: &[i32], expected_len: usize) -> Result<Vec<bool>> {
    if values.len() != expected_len {
        return Err(Error::arg(
            "sparsity",
            format!(
                "{name}: mask has {} entries, the layer has {expected_len} kernels",
                values.len()
            ),
        ));
    }
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| match v {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(Error::arg(
                "sparsity",
                format!("{name}: mask entry {i} is {v}; a mask holds only 0 and 1"),
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests;
