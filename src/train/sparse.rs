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
use shiftgrad_tensor::{init, Device, Error, Result, Tensor};

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

/// The batch of the optimiser step just taken, on the host: the images and their labels.
pub type StepBatch<'a> = (&'a Tensor<f32>, &'a [usize]);

/// After optimiser step `step` (counted from 1) of `total`: every `prune_every` steps, prunes
/// the fraction r(t) of each layer's live kernels with the smallest `sum |w|` and regrows as
/// many dead ones, at random or by the largest gradient magnitude of `batch` (SPEC 1.6); the
/// pruned kernels' weights and optimiser state become zero. Returns whether it pruned.
pub fn maybe_prune(
    model: &mut SwResNet<f32>,
    optim: &mut Optimizer<f32>,
    sparse: &SparseRun,
    (step, total): (u64, u64),
    seed: u64,
    batch: StepBatch<'_>,
    device: &Device,
) -> Result<bool> {
    let cfg = sparse.config()?;
    if step == 0 || !step.is_multiple_of(cfg.prune_every as u64) || step >= total {
        return Ok(false);
    }
    let fraction = sparsity::prune_fraction(cfg.prune_rate, step as usize, total as usize);
    let mut rng = rng(seed, step);
    let grad_magnitudes = match cfg.growth {
        Growth::Random => Vec::new(),
        Growth::Gradient => dense_grad_magnitudes(model, batch, device)?,
    };
    let values = banks(model, false)?;
    let mut changes = Vec::new();
    for (i, ((name, layer), (_, k2, b))) in
        model.sw_layers_mut().into_iter().zip(&values).enumerate()
    {
        let magnitude = per_kernel(b, *k2, |w, _| w.abs() as f64);
        let grads = grad_magnitudes.get(i).map_or(&[][..], Vec::as_slice);
        let mut mask = layer.mask();
        let stats =
            sparsity::prune_regrow(&mut mask, &magnitude, grads, fraction, cfg.growth, &mut rng);
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

/// `--growth gradient`: per shift-wise layer, `sum |dL/dw|` over taps and paths of every
/// kernel, live or not, on `batch`. The sparse kernels never compute a pruned kernel's
/// gradient, so this is one extra forward and backward with every kernel live: the pruned
/// weights are zero after every optimiser step, so the forward is the sparse network's, and
/// the gradient of a dead kernel is the one it would have if it were regrown. It runs at the
/// weights after the step (the reference reads `weight.grad` of the step's own backward, at
/// the weights before it). The model's state (masks, weights, batch-norm running statistics)
/// is restored afterwards and the gradients are cleared.
fn dense_grad_magnitudes(
    model: &mut SwResNet<f32>,
    (x, labels): StepBatch<'_>,
    device: &Device,
) -> Result<Vec<Vec<f64>>> {
    let mut saved = StateDict::new();
    model.save_state("", &mut saved)?;
    for (_, layer) in model.sw_layers_mut() {
        layer.set_mask(&vec![true; layer.kernels()])?;
    }
    let clear = |model: &SwResNet<f32>| {
        for p in model.named_parameters() {
            p.var.zero_grad();
        }
    };
    clear(model);
    let logits = model.forward(&Var::constant(x.to_device(device)?), Mode::Train)?;
    cross_entropy(&logits, labels)?.backward()?;
    let magnitudes = banks(model, true)?
        .into_iter()
        .map(|(_, k2, b)| per_kernel(&b, k2, |_, g| g.abs() as f64))
        .collect();
    clear(model);
    model.load_state("", &saved)?;
    Ok(magnitudes)
}

/// The weights of pruned kernels over every bank of every shift-wise layer (zeros that the
/// sparse kernels never read).
pub fn pruned_weights(model: &mut SwResNet<f32>) -> usize {
    model
        .sw_layers_mut()
        .iter()
        .map(|(_, l)| {
            let dead = l.mask().iter().filter(|&&b| !b).count();
            dead * l.config.small_kernel * l.config.small_kernel * l.banks.len()
        })
        .sum()
}

/// The density (live fraction) of every shift-wise layer, in network order.
pub fn densities(model: &mut SwResNet<f32>) -> Vec<f64> {
    model
        .sw_layers_mut()
        .iter()
        .map(|(_, l)| sparsity::density(&l.mask()))
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use shiftgrad_nn::resnet::ResNetConfig;

    /// The dense gradient pass of `--growth gradient`: live kernels get exactly the gradient
    /// of the sparse backward (the forward is the same network), dead kernels a gradient
    /// (they are not computed by the sparse kernels), and the model is left as it was.
    #[test]
    fn the_dense_gradient_pass_extends_the_sparse_gradient_and_leaves_no_trace() {
        let mut c = ResNetConfig::preset("sw-resnet-tiny").unwrap();
        c.widths = vec![8, 12];
        c.depths = vec![1, 1];
        c.big_kernels = vec![7, 5];
        c.seed = 3;
        let mut model = SwResNet::<f32>::new(c).unwrap();
        let device = Device::Cpu;
        let mut rng = init::rng(5);
        for (_, layer) in model.sw_layers_mut() {
            let n = layer.kernels();
            let mask: Vec<bool> = (0..n).map(|i| (i * 7 + 3) % 5 < 3).collect();
            layer.set_mask(&mask).unwrap();
        }
        let x: Tensor<f32> = init::normal([4, 1, 12, 12], 0.0, 1.0, &mut rng);
        let labels = [0, 3, 7, 9];
        // The sparse gradient, then the model state before the dense pass.
        let logits = model
            .forward(&Var::constant(x.clone()), Mode::Train)
            .unwrap();
        cross_entropy(&logits, &labels).unwrap().backward().unwrap();
        let sparse: Vec<Vec<f64>> = banks(&mut model, true)
            .unwrap()
            .into_iter()
            .map(|(_, k2, b)| per_kernel(&b, k2, |_, g| g.abs() as f64))
            .collect();
        for p in model.named_parameters() {
            p.var.zero_grad();
        }
        let mut before = StateDict::new();
        model.save_state("", &mut before).unwrap();
        let masks: Vec<Vec<bool>> = model
            .sw_layers_mut()
            .iter()
            .map(|(_, l)| l.mask())
            .collect();
        let dense = dense_grad_magnitudes(&mut model, (&x, &labels), &device).unwrap();
        assert_eq!(dense.len(), masks.len());
        let mut dead_with_gradient = 0;
        let mut worst = 0.0f64;
        for ((d, s), m) in dense.iter().zip(&sparse).zip(&masks) {
            for i in 0..m.len() {
                if m[i] {
                    // The same network; only the order of the f32 sums differs (the dense
                    // pass runs the bank as conv2d). Measured: at most 8.0e-7 relative.
                    let rel = (d[i] - s[i]).abs() / s[i].abs().max(1e-3);
                    assert!(
                        rel.is_finite() && rel < 5e-6,
                        "live kernel {i}: {} against {}",
                        d[i],
                        s[i]
                    );
                    worst = worst.max(rel);
                } else {
                    assert_eq!(s[i], 0.0, "a dead kernel got a sparse gradient");
                    dead_with_gradient += usize::from(d[i] > 0.0);
                }
            }
        }
        assert!(
            dead_with_gradient > 0,
            "no dead kernel got a dense gradient"
        );
        eprintln!("dense against sparse gradient of live kernels: {worst:e} relative");
        // Nothing left behind: masks, weights and running statistics as before, no gradients.
        let after_masks: Vec<Vec<bool>> = model
            .sw_layers_mut()
            .iter()
            .map(|(_, l)| l.mask())
            .collect();
        assert_eq!(after_masks, masks);
        let mut after = StateDict::new();
        model.save_state("", &mut after).unwrap();
        for name in before.names() {
            if let Ok(t) = before.tensor(name) {
                assert_eq!(t.data(), after.tensor(name).unwrap().data(), "{name}");
            }
        }
        for p in model.named_parameters() {
            assert!(p.var.grad().is_none(), "{} kept a gradient", p.name);
        }
    }
}
