//! The data-parallel parts of a training step (see [`crate::dist`] for the processes and their
//! collectives, and the module docs of [`super`] for the whole loop):
//!
//! * every process builds the same model from the seed and draws the same global batch
//!   (shuffle and augmentation from the epoch's RNG); process r trains on rows
//!   `r * B/N .. (r + 1) * B/N` of it ([`shard`]);
//! * after the backward, the gradients are summed over the processes in rank order and divided
//!   by N ([`average_gradients`]): each process's loss is the mean over its shard, so this is
//!   the gradient of the mean loss over the global batch, identical on every process, which
//!   then takes the same optimiser step;
//! * before an evaluation and a checkpoint, rank 0's parameters and buffers are copied to the
//!   others ([`share_state`]): without `--sync-bn` each process keeps its own running
//!   batch-norm statistics, and rank 0's are the ones saved and evaluated.

use crate::dist::Group;
use shiftgrad_nn::optim::Optimizer;
use shiftgrad_nn::resnet::SwResNet;
use shiftgrad_nn::{Module, StateDict};
use shiftgrad_tensor::{Error, Result, Tensor};

/// Rows `r * B/N .. (r + 1) * B/N` of the global batch `(x, labels)`, for rank r of N.
pub(crate) fn shard(
    group: &Group,
    x: Tensor<f32>,
    labels: Vec<usize>,
) -> Result<(Tensor<f32>, Vec<usize>)> {
    let (n, r) = (group.size(), group.rank());
    if n == 1 {
        return Ok((x, labels));
    }
    let b = labels.len();
    if !b.is_multiple_of(n) {
        return Err(Error::arg(
            "train",
            format!("a global batch of {b} images does not split evenly over {n} processes"),
        ));
    }
    let local = b / n;
    let per: usize = x.dims()[1..].iter().product();
    let mut dims = x.dims().to_vec();
    dims[0] = local;
    let rows = x.data()[r * local * per..(r + 1) * local * per].to_vec();
    Ok((
        Tensor::new(dims, rows)?,
        labels[r * local..(r + 1) * local].to_vec(),
    ))
}

/// Replaces every parameter's gradient by the mean over the processes (sum in rank order, in
/// f64, then divided by N): one collective for all of them.
pub(crate) fn average_gradients(group: &Group, optim: &Optimizer<f32>) -> Result<()> {
    if group.size() == 1 {
        return Ok(());
    }
    let params = optim.params();
    let mut flat = Vec::new();
    let mut have = Vec::with_capacity(params.len());
    for p in params {
        let g = p.var.grad();
        have.push(g.is_some());
        if let Some(g) = g.as_ref() {
            flat.extend(g.to_vec()?.iter().map(|&v| v as f64));
        }
    }
    // Every process has the same graph, so the same parameters have gradients; the lengths
    // are compared first (a collective of unequal lengths would be undefined).
    let lengths = group.all_gather(&[flat.len() as f64])?;
    if lengths.iter().any(|&l| l != flat.len() as f64) {
        return Err(group.fail_together(Error::Other(format!(
            "distributed: the processes' gradients differ in size ({lengths:?} values by rank)"
        ))));
    }
    group.sum(&mut flat)?;
    let scale = 1.0 / group.size() as f64;
    let mut at = 0;
    for (p, has) in params.iter().zip(have) {
        if !has {
            continue;
        }
        let device = p.var.value().device();
        let shape = p.var.shape();
        let n = shape.numel();
        let mean = Tensor::from_fn(shape, |i| (flat[at + i] * scale) as f32);
        at += n;
        p.var.set_grad(mean.to_device(&device)?)?;
    }
    Ok(())
}

/// Copies rank 0's parameters and buffers (every float entry of the state dict) to the other
/// processes.
pub(crate) fn share_state(group: &Group, model: &mut SwResNet<f32>) -> Result<()> {
    if group.size() == 1 {
        return Ok(());
    }
    let mut sd = StateDict::new();
    model.save_state("", &mut sd)?;
    let names: Vec<String> = sd
        .names()
        .filter(|n| sd.tensor(n).is_ok())
        .map(str::to_string)
        .collect();
    let mut flat = Vec::new();
    for n in &names {
        flat.extend(sd.tensor(n)?.data().iter().map(|&v| v as f64));
    }
    group.broadcast(&mut flat)?;
    if group.is_root() {
        return Ok(());
    }
    let mut at = 0;
    for n in &names {
        let shape = sd.tensor(n)?.shape().clone();
        let len = shape.numel();
        let t = Tensor::from_fn(shape, |i| flat[at + i] as f32);
        at += len;
        sd.insert(n.clone(), t)?;
    }
    model.load_state("", &sd)
}

/// The global batch's `(mean loss, correct count)` from this shard's `[loss sum, correct]`,
/// and the check that every process holds the same parameters after the step (their finite
/// totals, bit for bit): processes on different kinds of device can round the same update
/// differently, and would then train different models.
pub(crate) fn step_totals(
    group: &Group,
    shard: [f64; 2],
    params_total: f32,
    batch: usize,
    (epoch, step): (usize, usize),
) -> Result<(f64, usize)> {
    let all = group.all_gather(&[shard[0], shard[1], params_total as f64])?;
    let (mut loss, mut correct) = (0.0f64, 0.0f64);
    for r in all.chunks(3) {
        loss += r[0];
        correct += r[1];
    }
    // (A non-finite total stops the run at the finite check instead, naming the parameter.)
    let differs = |r: &[f64]| r[2].to_bits() != all[2].to_bits();
    if let Some(r) = all
        .chunks(3)
        .position(differs)
        .filter(|_| all[2].is_finite())
    {
        return Err(group.fail_together(Error::Other(format!(
            "distributed: after epoch {} step {} the parameters of rank {r} differ from rank 0's (sums {} and {}); every process must run the same kind of device (--device)",
            epoch + 1,
            step + 1,
            all[3 * r + 2],
            all[2]
        ))));
    }
    Ok((loss / batch as f64, correct as usize))
}
