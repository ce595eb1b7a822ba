//! Sparse group convolution in training (SPEC 1.6): the initial masks (SNIP or uniform) and
//! the periodic prune and regrow, on the run's shift-wise layers.
//!
//! Every draw comes from an RNG derived from the run's seed and the step (like the epoch
//! RNG), so a resumed run draws what the uninterrupted run drew with no RNG state to carry:
//! the masks are in the checkpoint (`<layer>.mask`), and the schedule's position is the
//! optimiser's step count, also in the checkpoint.

use super::config::SparseRun;
use shiftgrad_autograd::Var;
use shiftgrad_nn::data::{self, Dataset};
use shiftgrad_nn::optim::Optimizer;
use shiftgrad_nn::resnet::SwResNet;
use shiftgrad_nn::sparsity::{self, Growth, SparseInit};
use shiftgrad_nn::{Mode, Module, StateDict};
use shiftgrad_ops::cross_entropy;
use shiftgrad_tensor::{init, Device, Error, Result};

/// The RNG of the sparse draws at optimiser step `step` (0: the initial masks).
fn rng(seed: u64, step: u64) -> init::Rng {
    init::rng(seed ^ 0x5350_4152_5345_0000 ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Per kernel of one layer: `sum over banks q and taps of f(w_q, g_q)` (g may be absent).
fn per_kernel(
    banks: &[(Vec<f32>, Option<Vec<f32>>)],
    k2: usize,
    f: impl Fn(f32, f32) -> f64,
) -> Vec<f64> {
    let n = banks.first().map_or(0, |(w, _)| w.len() / k2);
    let mut out = vec![0.0; n];
    for (w, g) in banks {
        for (i, &wi) in w.iter().enumerate() {
            let gi = g.as_ref().map_or(0.0, |g| g[i]);
            out[i / k2] += f(wi, gi);
        }
    }
    out
}

/// The host values (and gradients, where `grads`) of every bank of every shift-wise layer.
type Banks = Vec<(String, usize, Vec<(Vec<f32>, Option<Vec<f32>>)>)>;

fn banks(model: &mut SwResNet<f32>, grads: bool) -> Result<Banks> {
    let mut out = Vec::new();
    for (name, layer) in model.sw_layers_mut() {
        let k2 = layer.config.small_kernel * layer.config.small_kernel;
        let mut b = Vec::new();
        for w in &layer.banks {
            let g = match grads {
                true => w.grad().as_ref().map(|g| g.to_vec()).transpose()?,
                false => None,
            };
            b.push((w.value().to_vec()?, g));
        }
        out.push((name, k2, b));
    }
    Ok(out)
}

/// Sets the initial masks of a fresh run. SNIP scores (`|w * dL/dw|` over taps and paths)
/// come from one forward and backward of the first `batch_size` training images (in order,
/// no augmentation); the model's state (weights and batch-norm running statistics) is
/// restored afterwards, so the scoring batch leaves no trace but the masks.
pub fn init_masks(
    model: &mut SwResNet<f32>,
    sparse: &SparseRun,
    train_set: &Dataset,
    batch_size: usize,
    device: &Device,
    seed: u64,
) -> Result<()> {
    let cfg = sparse.config()?;
    if model.sw_layers_mut().is_empty() {
        return Err(Error::arg(
            "train",
            "--sparsity prunes the small kernels of shift-wise layers: it needs --spatial sw",
        ));
    }
    let scores: Vec<Vec<f64>> = match cfg.init {
        SparseInit::Uniform => model
            .sw_layers_mut()
            .iter()
            .map(|(_, l)| vec![1.0; l.kernels()])
            .collect(),
        SparseInit::Snip | SparseInit::SnipTopk => {
            let mut saved = StateDict::new();
            model.save_state("", &mut saved)?;
            let n = batch_size.min(train_set.len()).max(1);
            let idx: Vec<usize> = (0..n).collect();
            let (x, labels) = data::batch::<f32>(train_set, &idx, None, &mut init::rng(0))?;
            let logits = model.forward(&Var::constant(x.to_device(device)?), Mode::Train)?;
            cross_entropy(&logits, &labels)?.backward()?;
            let scores = banks(model, true)?
                .into_iter()
                .map(|(_, k2, b)| per_kernel(&b, k2, |w, g| (w as f64 * g as f64).abs()))
                .collect();
            for p in model.named_parameters() {
                p.var.zero_grad();
            }
            model.load_state("", &saved)?;
            scores
        }
    };
    let masks = sparsity::init_masks(&scores, &cfg, &mut rng(seed, 0));
    for ((_, layer), mask) in model.sw_layers_mut().into_iter().zip(&masks) {
        layer.set_mask(mask)?;
    }
    Ok(())
}

/// After optimiser step `step` (counted from 1) of `total`: every `prune_every` steps, prunes
/// the fraction r(t) of each layer's live kernels with the smallest `sum |w|` and regrows as
/// many dead ones at random (SPEC 1.6); the pruned kernels' weights and optimiser state become
/// zero. Returns whether it pruned.
pub fn maybe_prune(
    model: &mut SwResNet<f32>,
    optim: &mut Optimizer<f32>,
    sparse: &SparseRun,
    step: u64,
    total: u64,
    seed: u64,
) -> Result<bool> {
    let cfg = sparse.config()?;
    if step == 0 || !step.is_multiple_of(cfg.prune_every as u64) || step >= total {
        return Ok(false);
    }
    let fraction = sparsity::prune_fraction(cfg.prune_rate, step as usize, total as usize);
    let mut rng = rng(seed, step);
    let values = banks(model, false)?;
    let mut changes = Vec::new();
    for ((name, layer), (_, k2, b)) in model.sw_layers_mut().into_iter().zip(&values) {
        let magnitude = per_kernel(b, *k2, |w, _| w.abs() as f64);
        let mut mask = layer.mask();
        let stats =
            sparsity::prune_regrow(&mut mask, &magnitude, &[], fraction, cfg.growth, &mut rng);
        layer.set_mask(&mask)?;
        let mut reset = vec![false; mask.len()];
        for &c in stats.pruned.iter().chain(&stats.regrown) {
            reset[c] = true;
        }
        changes.push((name, layer.banks.len(), *k2, reset));
    }
    for (name, paths, k2, reset) in changes {
        for q in 0..paths {
            optim.zero_state_where(&format!("{name}.bank.{q}.weight"), |i| reset[i / k2])?;
        }
    }
    Ok(true)
}

/// The density (live fraction) of every shift-wise layer, in network order.
pub fn densities(model: &mut SwResNet<f32>) -> Vec<f64> {
    model
        .sw_layers_mut()
        .iter()
        .map(|(_, l)| sparsity::density(&l.mask()))
        .collect()
}

/// Refuses what this version cannot do yet, naming it.
pub fn check_supported(sparse: &SparseRun) -> Result<()> {
    let cfg = sparse.config()?;
    if cfg.growth == Growth::Gradient {
        return Err(Error::arg(
            "train",
            "--growth gradient is not available yet: the gradient of a pruned kernel is never \
             computed by the sparse kernels, and the dense pass it needs is not written; use \
             --growth random (the reference's choice)",
        ));
    }
    Ok(())
}

/// The masks of every shift-wise layer, for the picture (`masks.png`).
pub fn layer_masks(model: &mut SwResNet<f32>) -> Vec<super::plot::LayerMask> {
    model
        .sw_layers_mut()
        .into_iter()
        .map(|(name, l)| super::plot::LayerMask {
            name: name
                .replace(".spatial", "")
                .replace("stages.", "s")
                .replace("blocks.", "b"),
            reps: l.reps(),
            nk: l.tables.nk(),
            live: l.mask(),
        })
        .collect()
}

/// The density of each stage: live kernels over all kernels of the stage's shift-wise layers
/// (`stages.{s}` of the layer names), in stage order.
pub fn stage_densities(model: &mut SwResNet<f32>) -> Vec<f64> {
    let mut stages: Vec<(usize, usize)> = Vec::new();
    for (name, layer) in model.sw_layers_mut() {
        let s: usize = name
            .strip_prefix("stages.")
            .and_then(|r| r.split('.').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if stages.len() <= s {
            stages.resize(s + 1, (0, 0));
        }
        let mask = layer.mask();
        stages[s].0 += mask.iter().filter(|&&b| b).count();
        stages[s].1 += mask.len();
    }
    stages
        .into_iter()
        .map(|(live, n)| live as f64 / n.max(1) as f64)
        .collect()
}
