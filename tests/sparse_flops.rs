//! The op counters see the sparse group convolution's saving (SPEC 1.6): with half of every
//! shift-wise layer's small kernels pruned, the network's forward FLOPs drop by half of what
//! the bank convolution and the shift-add cost, and by nothing else. The FLOPs come from the
//! per-thread region counters (`counters::region_flops`), so parallel tests do not disturb
//! them.

use shiftgrad::autograd::{no_grad, Var};
use shiftgrad::nn::resnet::{ResNetConfig, SwResNet};
use shiftgrad::nn::shiftwise::{REGION_BANK, REGION_SHIFT_ADD};
use shiftgrad::nn::sparsity::{init_masks, SparseConfig, SparseInit};
use shiftgrad::nn::{Mode, Module};
use shiftgrad::tensor::{counters, init, Tensor};

/// (total, bank convolution, shift-add) forward FLOPs of one image through `model`.
fn forward_flops(model: &mut SwResNet<f32>) -> (u64, u64, u64) {
    let x: Tensor<f32> = init::normal([1, 1, 28, 28], 0.0, 1.0, &mut init::rng(1));
    counters::reset_region_flops();
    no_grad(|| model.forward(&Var::constant(x), Mode::Eval)).unwrap();
    let total = counters::region_flops().iter().map(|r| r.flops).sum();
    (
        total,
        counters::flops_in(REGION_BANK),
        counters::flops_in(REGION_SHIFT_ADD),
    )
}

#[test]
fn half_the_kernels_pruned_halves_the_shift_wise_flops_and_nothing_else() {
    let config = ResNetConfig::preset("sw-resnet-tiny").unwrap();
    let mut model = SwResNet::<f32>::new(config).unwrap();
    let (t0, b0, s0) = forward_flops(&mut model);
    let scores: Vec<Vec<f64>> = model
        .sw_layers_mut()
        .iter()
        .map(|(_, l)| vec![1.0; l.kernels()])
        .collect();
    let cfg = SparseConfig {
        sparsity: 0.5,
        init: SparseInit::Uniform,
        ..Default::default()
    };
    let masks = init_masks(&scores, &cfg, &mut init::rng(0));
    for ((_, layer), m) in model.sw_layers_mut().into_iter().zip(&masks) {
        layer.set_mask(m).unwrap();
    }
    let (t1, b1, s1) = forward_flops(&mut model);
    assert!(b0 > 0 && s0 > 0 && t0 > b0 + s0, "{t0} {b0} {s0}");
    // Only the two shift-wise parts change.
    assert_eq!(t0 - t1, (b0 - b1) + (s0 - s1));
    let bank_cut = (b0 - b1) as f64 / b0 as f64;
    let shift_cut = (s0 - s1) as f64 / s0 as f64;
    let drop = (t0 - t1) as f64 / t0 as f64;
    let share = (b0 + s0) as f64 / t0 as f64;
    eprintln!(
        "forward FLOPs per image {t0} -> {t1} ({:.2} %); bank convolution {b0} -> {b1} \
         ({:.2} % less), shift-add {s0} -> {s1} ({:.2} % less); their share of the dense \
         network {:.2} %, times 0.5: {:.2} %",
        100.0 * drop,
        100.0 * bank_cut,
        100.0 * shift_cut,
        100.0 * share,
        50.0 * share
    );
    // Each layer keeps round(n/2) of its n kernels, so the cut is 1/2 within rounding
    // (measured: 49.67 % for the bank, 49.66 % for the shift-add, and a drop of 13.50 % against
    // 13.59 %).
    assert!((bank_cut - 0.5).abs() < 0.005, "bank cut {bank_cut}");
    assert!((shift_cut - 0.5).abs() < 0.01, "shift-add cut {shift_cut}");
    assert!(
        (drop - 0.5 * share).abs() < 0.002,
        "drop {drop}, share {share}"
    );
}
