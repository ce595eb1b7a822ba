//! A shift-wise layer and the one dense depthwise kernel it folds into give the same output.
//!
//! SPEC 1.4: in eval mode a shift-wise layer (its P bank convolutions, the shift-add's three
//! paths with their batch-norms, the identity) is linear in its input, so it equals a single
//! plus-shaped depthwise convolution with a bias per channel, `nn::reparam::fold_sw`. This
//! example builds a layer (C = 16, big kernel 13, small kernel 3, the paper's P = 2, G = 4 and
//! ghost ratio 0.23), gives its batch-norms non-trivial statistics, folds it, and compares the
//! two outputs in f64 on random input, with `tensor::compare` (NaN and Inf fail).
//!
//! Run: `cargo run --release --example sw_equivalence`. `shiftgrad equiv` does the same for
//! any configuration from the command line.

use shiftgrad::nn::reparam::fold_sw;
use shiftgrad::nn::{BatchNorm2d, Mode, Module, ShiftWiseConv, SwConfig};
use shiftgrad::ops::Var;
use shiftgrad::tensor::compare::{check, Scale};
use shiftgrad::tensor::{init, Result};

/// Random gamma, beta and running statistics, so that folding them is tested too.
fn randomise(bn: &mut BatchNorm2d<f64>, rng: &mut init::Rng) -> Result<()> {
    let c = bn.running_mean.numel();
    bn.weight.set_value(init::uniform([c], 0.5, 1.5, rng))?;
    bn.bias.set_value(init::uniform([c], -0.5, 0.5, rng))?;
    bn.running_mean = init::uniform([c], -0.3, 0.3, rng);
    bn.running_var = init::uniform([c], 0.5, 2.0, rng);
    Ok(())
}

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let config = SwConfig::new(16, 13, 3, 0);
    let mut sw = ShiftWiseConv::<f64>::new(config)?;
    let mut rng = init::rng(1);
    randomise(&mut sw.bn_h, &mut rng)?;
    randomise(&mut sw.bn_v, &mut rng)?;
    randomise(&mut sw.bn_i, &mut rng)?;
    println!(
        "shift-wise layer: {} channels ({} ghost), {} small {}x{} kernels in each of {} banks",
        config.channels,
        config.ghost_channels(),
        sw.kernels(),
        config.small_kernel,
        config.small_kernel,
        config.n_path
    );

    let x = Var::constant(init::normal([2, 16, 20, 20], 0.0, 1.0, &mut rng));
    let y_sw = sw.forward(&x, Mode::Eval)?.value().clone();

    let mut folded = fold_sw(&sw)?;
    let dims = folded.weight.shape();
    println!(
        "folded: one {}x{} depthwise kernel per processed channel ({} channels), with a bias",
        dims.dims()[2],
        dims.dims()[3],
        dims.dims()[0]
    );
    let y_folded = folded.forward(&x, Mode::Eval)?.value().clone();

    // Per-channel scale: each channel's error against that channel's largest output. The
    // difference is rounding alone (measured 7e-16 here in f64); 1e-12 leaves room for other
    // summation orders and still fails any wrong tap, shift or batch-norm fold.
    let d = check(
        "shift-wise layer against its folded kernel",
        &y_folded,
        &y_sw,
        Scale::<f64>::PerChannel(1),
        1e-12,
    )?;
    println!(
        "largest difference: {:.1e} absolute, {:.1e} relative",
        d.max_abs, d.max_rel
    );
    println!("sw_equivalence: the layer and its folded kernel agree");
    Ok(())
}
