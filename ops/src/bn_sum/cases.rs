//! bn_sum configurations for the gradcheck suite: three terms with a residual that has a ghost
//! channel and a permuted channel map, in training mode with relu; one term with the identity
//! map in evaluation mode with relu; two terms without a residual or relu in training mode.
//! Where relu is on, the residual's channels sit 30 above or below 0 (the summed terms stay
//! within about 15 of it), so every output is far from the kink and both sides of the mask
//! are checked. gamma, beta and the running statistics are away from 1, 0 and (0, 1), and
//! each evaluation starts from fresh running statistics (as batch_norm2d's cases do).

use super::{bn_sum, stacked_terms, BnMode, Residual};
use crate::suite::{input, GradCase};
use shiftgrad_autograd::Var;
use shiftgrad_tensor::{Result, Tensor};

/// The case's function: terms `v[0..k]`, gammas `v[k..2k]`, betas `v[2k..3k]`, the residual
/// `v[3k]` where `channels` is given.
fn run(
    v: &[Var<f64>],
    k: usize,
    running: &[(Tensor<f64>, Tensor<f64>)],
    channels: Option<&[usize]>,
    mode: BnMode,
    relu: bool,
) -> Result<Var<f64>> {
    let dev = v[0].value().device();
    let mut stats = running
        .iter()
        .map(|(m, s)| Ok((m.to_device(&dev)?, s.to_device(&dev)?)))
        .collect::<Result<Vec<_>>>()?;
    let mut terms = stacked_terms(v, &mut stats);
    let residual = channels.map(|channels| Residual {
        x: &v[3 * k],
        channels,
    });
    bn_sum(&mut terms, residual, mode, relu)
}

/// Each term's running mean and variance.
type Running = Vec<(Tensor<f64>, Tensor<f64>)>;

/// The inputs of `k` terms of shape `dims` (seeds from `seed`), and their running statistics.
fn terms(k: usize, dims: [usize; 4], seed: u64) -> (Vec<Tensor<f64>>, Running) {
    let c = dims[1];
    let mut inputs = Vec::new();
    for i in 0..k as u64 {
        inputs.push(input(dims, seed + i).map(|v| 2.0 * v + 0.5));
    }
    for i in 0..k as u64 {
        inputs.push(input([c], seed + 10 + i).map(|v| 1.0 + 0.8 * v));
    }
    for i in 0..k as u64 {
        inputs.push(input([c], seed + 20 + i));
    }
    let running = (0..k as u64)
        .map(|i| {
            (
                input([c], seed + 30 + i).map(|v| 0.3 * v),
                input([c], seed + 40 + i).map(|v| 1.2 + 0.5 * v),
            )
        })
        .collect();
    (inputs, running)
}

/// A residual (N, C, H, W) with channel `ch` at +30 or -30 (by `signs[ch]`) plus noise.
fn residual(dims: [usize; 4], signs: &[f64], seed: u64) -> Tensor<f64> {
    let [_, c, h, w] = dims;
    let noise = input(dims, seed);
    Tensor::from_fn(dims, |i| noise.data()[i] + 30.0 * signs[(i / (h * w)) % c])
}

pub fn cases() -> Vec<GradCase> {
    let mut cases = Vec::new();

    let (mut inputs, running) = terms(3, [2, 3, 3, 4], 61);
    inputs.push(residual([2, 4, 3, 4], &[1.0, -1.0, 1.0, -1.0], 69));
    const MAP: [usize; 4] = [2, 0, 3, 1];
    cases.push(GradCase::new(
        "bn_sum",
        "train, 3 x [2, 3, 3, 4] + residual [2, 4, 3, 4] map [2, 0, 3, 1], relu",
        inputs,
        Box::new(move |v| run(v, 3, &running, Some(&MAP), BnMode::Train, true)),
    ));

    let (mut inputs, running) = terms(1, [2, 3, 3, 4], 71);
    inputs.push(residual([2, 3, 3, 4], &[-1.0, 1.0, 1.0], 79));
    const IDENTITY: [usize; 3] = [0, 1, 2];
    cases.push(GradCase::new(
        "bn_sum",
        "eval, [2, 3, 3, 4] + residual, identity map, relu",
        inputs,
        Box::new(move |v| run(v, 1, &running, Some(&IDENTITY), BnMode::Eval, true)),
    ));

    let (inputs, running) = terms(2, [2, 3, 3, 4], 81);
    cases.push(GradCase::new(
        "bn_sum",
        "train, 2 x [2, 3, 3, 4], no residual, no relu",
        inputs,
        Box::new(move |v| run(v, 2, &running, None, BnMode::Train, false)),
    ));
    cases
}
