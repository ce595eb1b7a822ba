//! Module-level gradient checks, added to the op suite by `shiftgrad gradcheck`.
//!
//! Each case builds the module afresh inside the checked function (so batch-norm running
//! statistics never leak between evaluations), swaps in the checked tensors as its parameters,
//! and runs it in training mode (batch statistics), f64.

use crate::baselines::{Spatial, SpatialKind};
use crate::module::{Mode, Module};
use crate::shiftwise::{ShiftWiseConv, SwConfig};
use shiftgrad_autograd::Var;
use shiftgrad_ops::suite::{input, GradCase};

fn sw_case(config: SwConfig, batch: usize, h: usize, w: usize, seed: u64) -> GradCase {
    sw_case_masked(config, batch, h, w, seed, None)
}

/// A shift-wise case, with the kernels where `mask` is `false` pruned (SPEC 1.6).
fn sw_case_masked(
    config: SwConfig,
    batch: usize,
    h: usize,
    w: usize,
    seed: u64,
    mask: Option<Vec<bool>>,
) -> GradCase {
    let layer = ShiftWiseConv::<f64>::new(config).expect("valid case config");
    let bank_shape = layer.banks[0].shape();
    let mut inputs = vec![input([batch, config.channels, h, w], seed)];
    for q in 0..config.n_path {
        inputs.push(input(bank_shape.clone(), seed + 1 + q as u64));
    }
    let reps = layer.reps();
    inputs.push(input([reps], seed + 50).map(|g| 1.0 + 0.5 * g)); // gamma of bn_h
    let sparse = match &mask {
        Some(m) => format!(" live {}/{}", m.iter().filter(|&&b| b).count(), m.len()),
        None => String::new(),
    };
    let desc = format!(
        "C{} M{} k{} G{} P{} ghost{} {}x{}x{}{sparse}",
        config.channels,
        config.big_kernel,
        config.small_kernel,
        config.n_rep,
        config.n_path,
        config.ghost_ratio,
        batch,
        h,
        w
    );
    GradCase::new(
        "sw_module",
        desc,
        inputs,
        Box::new(move |v: &[Var<f64>]| {
            let mut layer = ShiftWiseConv::<f64>::new(config)?;
            layer.move_to(&v[0].value().device())?;
            let p = config.n_path;
            layer.banks = v[1..1 + p].to_vec();
            layer.bn_h.weight = v[1 + p].clone();
            if let Some(m) = &mask {
                // Set the live kernels only: set_mask would zero the checked bank tensors
                // in place, and the gradcheck perturbs their pruned entries too (which must
                // then have no effect and receive a zero gradient).
                layer.live = Some(std::rc::Rc::new(
                    shiftgrad_ops::shift_add::LiveChannels::from_mask(
                        layer.reps(),
                        layer.tables.nk(),
                        m,
                    )?,
                ));
            }
            layer.forward(&v[0], Mode::Train)
        }),
    )
}

fn baseline_case(kind: SpatialKind, op: &'static str, config: SwConfig, seed: u64) -> GradCase {
    let x = input([2, config.channels, 5, 6], seed);
    GradCase::new(
        op,
        format!(
            "C{} M{} k{} 2x5x6",
            config.channels, config.big_kernel, config.small_kernel
        ),
        vec![x],
        Box::new(move |v: &[Var<f64>]| {
            let mut layer = Spatial::<f64>::new(kind, config)?;
            layer.move_to(&v[0].value().device())?;
            layer.forward(&v[0], Mode::Train)
        }),
    )
}

/// The module-level cases.
pub fn cases() -> Vec<GradCase> {
    let cfg = |channels, big, small, ghost_ratio, n_path, n_rep| SwConfig {
        channels,
        big_kernel: big,
        small_kernel: small,
        ghost_ratio,
        n_path,
        n_rep,
        seed: 7,
    };
    vec![
        sw_case(cfg(4, 7, 3, 0.25, 2, 2), 2, 5, 6, 100),
        sw_case(cfg(3, 10, 3, 0.0, 1, 3), 2, 4, 7, 200),
        sw_case(cfg(5, 13, 5, 0.23, 2, 1), 2, 6, 5, 300),
        // Sparse: C 4, ghost 0.25 -> R 3, M 7, k 3 -> nk 3: 9 kernels, 4 live.
        sw_case_masked(
            cfg(4, 7, 3, 0.25, 2, 2),
            2,
            5,
            6,
            110,
            Some(vec![
                true, false, false, true, true, false, false, false, true,
            ]),
        ),
        baseline_case(
            SpatialKind::Dense,
            "dense_module",
            cfg(3, 5, 3, 0.0, 1, 1),
            400,
        ),
        baseline_case(
            SpatialKind::Slak,
            "slak_module",
            cfg(3, 7, 3, 0.0, 1, 1),
            500,
        ),
        baseline_case(
            SpatialKind::Small,
            "small_module",
            cfg(3, 5, 3, 0.0, 1, 1),
            600,
        ),
    ]
}
