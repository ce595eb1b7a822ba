//! Sparse group convolution (SPEC 1.6) in training runs.

use super::*;

/// Sparse group convolution (SPEC 1.6) in training: masks from SNIP at the requested overall
/// sparsity, saved in the checkpoint, densities fixed through prune/regrow (every 4 steps
/// here), pruned kernels zero in every bank, and an interrupted run resumed with its masks
/// reproduces the uninterrupted one exactly (metrics and checkpoint bytes).
#[test]
fn sparse_runs_keep_their_density_and_resume_exactly() {
    use shiftgrad::train::config::SparseRun;
    let device = Device::open(None).unwrap();
    // Four optimiser steps (64 images, batch 32, 2 epochs): prune/regrow after steps 1 to 3
    // (not after the last), on both sides of the resume after epoch 1.
    let cfg_with = |growth: &str| RunConfig {
        sparse: Some(SparseRun {
            sparsity: 0.5,
            init: "snip".into(),
            prune_rate: 0.3,
            prune_every: 1,
            growth: growth.into(),
        }),
        ..tiny_config()
    };
    let mut final_masks = Vec::new();
    for growth in ["random", "gradient"] {
        final_masks.push(sparse_run_resumes_exactly(
            &device,
            || cfg_with(growth),
            growth,
        ));
    }
    // The growth rule matters: the same seed and initial masks end in different masks.
    assert_ne!(final_masks[0].0, final_masks[1].0);
    let full_dir = final_masks[0].1.clone();
    // A mask that is not 0/1 is a clear error on resume.
    let bad = copy_dir(&full_dir, "sparse-bad");
    tamper(&bad, |sd| {
        let (_, m) = sd.int("stages.0.blocks.0.spatial.mask").unwrap();
        let mut m = m.to_vec();
        m[0] = 3;
        sd.insert_int("stages.0.blocks.0.spatial.mask".into(), &[m.len()], m);
    });
    let err = train(job(&bad, resume(Some(3)), &device, None))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("stages.0.blocks.0.spatial.mask") && err.contains("is 3"),
        "{err}"
    );
    // Sparse flags on the command line: bad values are errors, and so is pruning a network
    // without shift-wise layers.
    for (args, want) in [
        (vec!["--sparsity", "1.5"], "--sparsity must be in [0, 1)"),
        (
            vec!["--prune-every", "5"],
            "--prune-every needs --sparsity above 0",
        ),
        (vec!["--sparsity", "0.3", "--sparse-init", "magic"], "snip"),
        (vec!["--sparsity", "0.3", "--growth", "magic"], "gradient"),
        (
            vec!["--sparsity", "0.3", "--spatial", "slak"],
            "needs --spatial sw",
        ),
    ] {
        let mut a = vec!["train", "--quiet", "--limit", "64"];
        a.extend(args);
        assert_error(&shiftgrad(&a), &[want]);
    }
}

/// Trains `cfg()` straight through and interrupted after epoch 1 then resumed, checks that
/// both end identical with valid masks at the configured density, and returns the final
/// masks.
fn sparse_run_resumes_exactly(
    device: &Device,
    cfg: impl Fn() -> RunConfig,
    tag: &str,
) -> (Vec<Vec<i32>>, PathBuf) {
    let device = device.clone();
    let full_dir = tmp(&format!("sparse-full-{tag}"));
    let full = train(job(&full_dir, Start::Fresh(Box::new(cfg())), &device, None)).unwrap();
    let part_dir = tmp(&format!("sparse-part-{tag}"));
    train(job(
        &part_dir,
        Start::Fresh(Box::new(cfg())),
        &device,
        Some(1),
    ))
    .unwrap();
    let resumed = train(job(&part_dir, resume(None), &device, None)).unwrap();
    assert_eq!(strip(&resumed.history), strip(&full.history));
    // The first epoch's times came back from metrics.jsonl (the checkpoint has none).
    assert!(
        resumed.history[0].epoch_seconds > 0.0,
        "{:?}",
        resumed.history
    );
    let (a, b) = (
        full_dir.join("checkpoint.npz"),
        part_dir.join("checkpoint.npz"),
    );
    // The interrupted and resumed run writes the uninterrupted run's checkpoint, byte for
    // byte (no wall-clock fields or member times in it).
    assert!(
        std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(),
        "the checkpoints differ in bytes"
    );
    let (sa, sb) = (load_checkpoint(&a).unwrap(), load_checkpoint(&b).unwrap());
    for name in sa.names().filter(|n| !n.starts_with("meta.")) {
        if let Ok(t) = sa.tensor(name) {
            assert_eq!(t.data(), sb.tensor(name).unwrap().data(), "{name}");
        }
    }
    // Masks: one per shift-wise layer, 0/1, half of all kernels live overall (SNIP picks the
    // layers' densities), and unchanged in count through the prune/regrow steps.
    let mut live = 0;
    let mut total = 0;
    for s in 0..2 {
        let name = format!("stages.{s}.blocks.0.spatial.mask");
        let (shape, m) = sa.int(&name).unwrap();
        assert_eq!(shape.dims(), &[m.len()]);
        assert!(m.iter().all(|&v| v == 0 || v == 1), "{name}");
        live += m.iter().filter(|&&v| v == 1).count();
        total += m.len();
        // Pruned kernels are zero in every bank (k = 3: 9 taps per kernel).
        for q in 0..2 {
            let w = sa
                .tensor(&format!("stages.{s}.blocks.0.spatial.bank.{q}.weight"))
                .unwrap();
            for (i, v) in w.data().iter().enumerate() {
                assert!(
                    m[i / 9] == 1 || *v == 0.0,
                    "{name}: pruned kernel {} is {v}",
                    i / 9
                );
            }
        }
    }
    assert_eq!(
        live,
        (total as f64 * 0.5).round() as usize,
        "{live} of {total}"
    );
    for e in &full.history {
        assert_eq!(e.densities.len(), 2, "{e:?}");
    }
    assert_eq!(full.history[0].densities, full.history[1].densities);
    assert!(full_dir.join("masks.png").is_file(), "masks.png missing");
    let summary = full.summary.as_ref().unwrap();
    assert_eq!(summary.densities, full.history[1].densities);
    assert_eq!(summary.stage_densities.len(), 2);
    // Live parameters: all of them less the pruned kernels' 9 weights in each of 2 banks.
    assert_eq!(
        summary.live_parameters,
        Some(summary.parameters - (total - live) * 9 * 2)
    );
    // One layer per stage here, so the stage densities are the layer densities.
    assert_eq!(summary.stage_densities, summary.densities);
    let masks = (0..2)
        .map(|s| {
            let (_, m) = sa
                .int(&format!("stages.{s}.blocks.0.spatial.mask"))
                .unwrap();
            m.to_vec()
        })
        .collect();
    (masks, full_dir)
}
