//! End-to-end training tests (SPEC section 5): the network learns (accuracy far above the
//! 10 % of chance), the checkpoint round-trips, an interrupted run resumed from its checkpoint
//! reproduces the uninterrupted run exactly, an extended run follows its documented schedule,
//! a diverging run stops naming the parameter and keeps its last good checkpoint, and bad
//! data, bad checkpoints and bad flags are clear errors.
//!
//! Data: Fashion-MNIST where it is installed (Debian's `dataset-fashion-mnist`, or
//! `FASHION_MNIST_DIR`); otherwise a synthetic set of the same format
//! (`shiftgrad::nn::synthetic`) written to a temporary directory, with a line on stderr
//! saying so. With `SHIFTGRAD_REQUIRE_DATA=1` (CI sets it) missing real data fails instead.
//! Runs on `$SHIFTGRAD_DEVICE`, else the CPU; the CLI cases run on the CPU.

use shiftgrad::nn::{data, synthetic, StateDict};
use shiftgrad::tensor::Device;
use shiftgrad::train::config::{OptimName, RunConfig};
use shiftgrad::train::metrics::EpochMetrics;
use shiftgrad::train::{build_model, evaluate, load_checkpoint, read_meta, train, Start, TrainJob};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

mod common;
use common::TestData;

fn test_data() -> &'static TestData {
    common::test_data("train", 600, 300, 11)
}

fn small_config() -> RunConfig {
    RunConfig {
        preset: "sw-resnet-tiny".into(),
        spatial: "sw".into(),
        widths: vec![16, 32],
        depths: vec![1, 1],
        big_kernels: vec![13, 7],
        small_kernel: 3,
        ghost_ratio: 0.23,
        n_path: 2,
        n_rep: 4,
        epochs: 2,
        batch_size: 32,
        lr: 0.05,
        optimizer: OptimName::Sgd,
        momentum: 0.9,
        weight_decay: 5e-4,
        warmup_epochs: 0.25,
        seed: 7,
        limit: Some(512),
        test_limit: Some(256),
        crop_pad: 2,
        flip: true,
        sparse: None,
        distributed: None,
    }
}

/// A still smaller run (64 images, 2 steps an epoch) for the checkpoint and error cases.
fn tiny_config() -> RunConfig {
    RunConfig {
        widths: vec![8, 16],
        limit: Some(64),
        test_limit: Some(64),
        ..small_config()
    }
}

fn tmp(tag: &str) -> PathBuf {
    common::tmp("train", tag)
}

fn job(out: &Path, start: Start, device: &Device, stop_after: Option<usize>) -> TrainJob {
    TrainJob {
        start,
        device: device.clone(),
        out: out.to_path_buf(),
        data_dir: test_data().dir.clone(),
        quiet: true,
        stop_after,
        group: std::rc::Rc::new(shiftgrad::dist::Group::single()),
    }
}

fn resume(epochs: Option<usize>) -> Start {
    Start::Resume { epochs }
}

fn strip(h: &[EpochMetrics]) -> Vec<EpochMetrics> {
    h.iter().map(|m| m.without_timing()).collect()
}

/// A finished 2-epoch run of [`tiny_config`] on the CPU, trained once for all tests; copy it
/// with [`copy_run`] before changing anything.
fn base_run() -> &'static Path {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        let out = tmp("base");
        let cfg = Box::new(tiny_config());
        train(job(&out, Start::Fresh(cfg), &Device::Cpu, None)).unwrap();
        out
    })
}

fn copy_run(tag: &str) -> PathBuf {
    copy_dir(base_run(), tag)
}

/// A copy of the run directory `from`.
fn copy_dir(from: &Path, tag: &str) -> PathBuf {
    let to = tmp(tag);
    std::fs::create_dir_all(&to).unwrap();
    for f in std::fs::read_dir(from).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, to.join(f.file_name().unwrap())).unwrap();
    }
    to
}

/// Rewrites the checkpoint of run `dir` after `change` edits its state dict.
fn tamper(dir: &Path, change: impl FnOnce(&mut StateDict<f32>)) {
    let path = dir.join("checkpoint.npz");
    let mut sd = StateDict::<f32>::load(&path).unwrap();
    change(&mut sd);
    sd.save(&path).unwrap();
}

fn set_text(sd: &mut StateDict<f32>, name: &str, text: &str) {
    let bytes: Vec<i32> = text.bytes().map(i32::from).collect();
    sd.insert_int(name.into(), &[bytes.len()], bytes);
}

/// Replaces text entry `name` of `sd` by `change` of it.
fn edit_text(sd: &mut StateDict<f32>, name: &str, change: impl FnOnce(&str) -> String) {
    let (_, b) = sd.int(name).unwrap();
    let text = String::from_utf8(b.iter().map(|&x| x as u8).collect()).unwrap();
    let new = change(&text);
    assert_ne!(new, text, "{name}: the edit changed nothing");
    set_text(sd, name, &new);
}

/// Rewrites the configuration stored in the checkpoint of run `dir`.
fn tamper_config(dir: &Path, change: impl FnOnce(&mut RunConfig)) {
    let path = dir.join("checkpoint.npz");
    let meta = read_meta(&load_checkpoint(&path).unwrap(), &path).unwrap();
    let mut cfg = meta.config;
    change(&mut cfg);
    tamper(dir, |sd| set_text(sd, "meta.config_json", &cfg.to_json()));
}

#[test]
fn learns_checkpoint_round_trips_and_resume_is_exact() {
    let td = test_data();
    let device = Device::open(None).unwrap();

    // Uninterrupted: two epochs of 16 steps (32 steps in all).
    let full_dir = tmp("full");
    let started = std::time::Instant::now();
    let full = train(job(
        &full_dir,
        Start::Fresh(Box::new(small_config())),
        &device,
        None,
    ))
    .unwrap();
    let _ = writeln!(
        std::io::stderr(),
        "train smoke test ({}): {:?} in {:.1} s",
        if td.real {
            "Fashion-MNIST"
        } else {
            "synthetic"
        },
        full.history
            .iter()
            .map(|m| (m.train_acc, m.test_acc))
            .collect::<Vec<_>>(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(full.history.len(), 2);
    let (e1, e2) = (&full.history[0], &full.history[1]);
    // The network learns: test accuracy (256 images) far above chance (10 %) after 32 steps.
    // Measured on the CPU after epoch 2 (epoch 1): Fashion-MNIST 0.504 (0.227), synthetic
    // 0.902 (0.742); the thresholds leave room for other devices' rounding.
    let min_acc = if td.real { 0.35 } else { 0.7 };
    assert!(
        e2.test_acc > min_acc,
        "test accuracy {} after 2 epochs, expected > {min_acc}: {e1:?} -> {e2:?}",
        e2.test_acc
    );
    assert!(
        e2.train_loss < e1.train_loss,
        "loss did not fall: {e1:?} -> {e2:?}"
    );
    // The loss through each epoch (curves.png): 16 steps in windows of 10 and 6, whose
    // step-weighted mean is the epoch's training loss.
    for e in [e1, e2] {
        let w = &e.train_loss_steps;
        assert_eq!(w.len(), 2, "{w:?}");
        let mean = (w[0] * 10.0 + w[1] * 6.0) / 16.0;
        assert!(
            (mean - e.train_loss).abs() <= 1e-12,
            "{w:?} against {}",
            e.train_loss
        );
    }
    for f in [
        "checkpoint.npz",
        "metrics.jsonl",
        "curves.png",
        "summary.json",
        "config.json",
    ] {
        assert!(full_dir.join(f).is_file(), "{f} missing");
    }
    // Every batch-norm's num_batches_tracked, an int64 scalar as in a PyTorch state dict:
    // one count per training step (32), none for evaluation.
    let mut npz = npyz::npz::NpzArchive::open(full_dir.join("checkpoint.npz")).unwrap();
    for name in [
        "stem.bn.num_batches_tracked",
        "stages.1.down.bn.num_batches_tracked",
    ] {
        let npy = npz
            .by_name(name)
            .unwrap()
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(npy.dtype(), npyz::DType::new_scalar("<i8".parse().unwrap()));
        assert!(npy.shape().is_empty(), "{name}: shape {:?}", npy.shape());
        assert_eq!(npy.into_vec::<i64>().unwrap(), vec![32], "{name}");
    }
    let summary = full.summary.as_ref().unwrap();
    // Nesterov SGD after its first step: 8 FLOPs per parameter element; the backward sums
    // gradients where a value feeds two ops (the residual additions).
    assert_eq!(
        summary.optimiser_flops_per_step,
        8.0 * summary.parameters as f64
    );
    let acc = summary.gradient_accumulation_flops_per_image;
    assert!(acc > 0.0 && acc < summary.backward_flops_per_image, "{acc}");
    assert!(summary.finite_check_seconds >= 0.0 && summary.finite_check_seconds.is_finite());
    // The memory split: f32 parameters, one gradient each, SGD momentum for each. (The graph's
    // bytes come from live-memory counters, which on the CPU are shared by the tests running
    // in parallel threads, so they are not asserted here; `shiftgrad profile` prints them.)
    let m = summary.memory;
    assert_eq!(m.parameters_bytes, 4 * summary.parameters as u64, "{m:?}");
    assert_eq!(m.gradients_bytes, m.parameters_bytes, "{m:?}");
    assert_eq!(m.optimiser_state_bytes, m.parameters_bytes, "{m:?}");
    // The graph's outputs by op (counted per thread, so exact here): every kind of op of an
    // SW-ResNet step, the shift-add with its three outputs per layer (2 layers).
    let by_op = &summary.graph_outputs_by_op;
    let find = |op: &str| by_op.iter().find(|e| e.op == op);
    for op in [
        "conv2d",
        "batch_norm2d",
        "relu",
        "shift_add",
        "cross_entropy",
    ] {
        assert!(
            find(op).is_some_and(|e| e.bytes > 0),
            "{op} missing: {by_op:?}"
        );
    }
    assert_eq!(find("shift_add").map(|e| e.outputs), Some(6), "{by_op:?}");

    // The checkpoint round-trips: the rebuilt model evaluates to the logged test metrics.
    let ckpt = full_dir.join("checkpoint.npz");
    let sd = load_checkpoint(&ckpt).unwrap();
    let meta = read_meta(&sd, &ckpt).unwrap();
    assert_eq!(meta.epoch, 2);
    assert_eq!(meta.config, small_config());
    assert!(sd
        .names()
        .any(|n| n == "stages.0.blocks.0.spatial.bank.0.weight"));
    assert!(sd.names().any(|n| n == "stages.0.blocks.0.spatial.pad_hv"));
    let mut model = build_model(&meta.config, &device, Some(&sd)).unwrap();
    let mut test = data::load(&td.dir, data::Split::Test).unwrap();
    test.truncate(256);
    let (loss, acc) = evaluate(&mut model, &test, &device).unwrap();
    assert_eq!(acc, e2.test_acc);
    assert!(
        (loss - e2.test_loss).abs() <= 1e-9 * loss.abs().max(1.0),
        "{loss} vs {}",
        e2.test_loss
    );

    // Interrupted after one epoch, then resumed: exactly the same metrics.
    let part_dir = tmp("part");
    let cfg = Box::new(small_config());
    let first = train(job(&part_dir, Start::Fresh(cfg), &device, Some(1))).unwrap();
    assert_eq!(first.history.len(), 1);
    let resumed = train(job(&part_dir, resume(None), &device, None)).unwrap();
    assert_eq!(strip(&resumed.history), strip(&full.history));
    let on_disk = shiftgrad::train::metrics::read_jsonl(&part_dir.join("metrics.jsonl")).unwrap();
    assert_eq!(strip(&on_disk), strip(&full.history));

    // A finished run resumed without a new epoch count has nothing to do and changes nothing.
    let before = std::fs::read(&ckpt).unwrap();
    let again = train(job(&full_dir, resume(None), &device, None)).unwrap();
    assert!(again.summary.is_none());
    assert_eq!(strip(&again.history), strip(&full.history));
    assert_eq!(std::fs::read(&ckpt).unwrap(), before);

    // Extended to 3 epochs: epochs 1-2 are kept, epoch 3 follows the 3-epoch cosine schedule
    // (its last step is global step 47 of 48: lr = 0.05 * (1 + cos(pi * 43/44)) / 2), and the
    // new plan is stored, so an interruption of the extension would resume exactly.
    let extended = train(job(&full_dir, resume(Some(3)), &device, None)).unwrap();
    assert_eq!(extended.history.len(), 3);
    assert_eq!(strip(&extended.history[..2]), strip(&full.history));
    let lr = shiftgrad::nn::optim::lr_at(47, 0.05, 4, 48);
    assert_eq!(extended.history[2].lr, lr);
    let meta = read_meta(&load_checkpoint(&ckpt).unwrap(), &ckpt).unwrap();
    assert_eq!((meta.epoch, meta.config.epochs), (3, 3));
}

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

#[test]
fn a_diverging_run_stops_naming_the_parameter_and_keeps_its_checkpoint() {
    // A learning rate that overflows f32: every parameter is infinite or NaN after the first
    // update, while the loss of that step is still finite. No checkpoint exists yet.
    let out = tmp("diverge-fresh");
    let cfg = RunConfig {
        lr: 1e300,
        ..tiny_config()
    };
    let e = train(job(&out, Start::Fresh(Box::new(cfg)), &Device::Cpu, None))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("parameter ")
            && e.contains("became non-finite")
            && e.contains("more parameters")
            && e.contains("epoch 1 step 1 of 2")
            && e.contains("no checkpoint was written yet"),
        "{e}"
    );
    assert!(!out.join("checkpoint.npz").exists());

    // The same learning rate in a resumed run: it stops in its first step, and the last good
    // checkpoint (epoch 2) is untouched, loadable, and evaluates to its logged accuracy.
    let dir = copy_run("diverge-resume");
    tamper_config(&dir, |c| c.lr = 1e300);
    let ckpt = dir.join("checkpoint.npz");
    let before = std::fs::read(&ckpt).unwrap();
    let e = train(job(&dir, resume(Some(3)), &Device::Cpu, None))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("became non-finite")
            && e.contains("epoch 3 step 1 of 2")
            && e.contains("last good checkpoint (epoch 2)"),
        "{e}"
    );
    assert_eq!(std::fs::read(&ckpt).unwrap(), before, "checkpoint changed");
    let sd = load_checkpoint(&ckpt).unwrap();
    let meta = read_meta(&sd, &ckpt).unwrap();
    assert_eq!(meta.epoch, 2);
    let mut model = build_model(&meta.config, &Device::Cpu, Some(&sd)).unwrap();
    let mut test = data::load(&test_data().dir, data::Split::Test).unwrap();
    test.truncate(64);
    let (_, acc) = evaluate(&mut model, &test, &Device::Cpu).unwrap();
    assert_eq!(acc, meta.history[1].test_acc);
    let metrics = shiftgrad::train::metrics::read_jsonl(&dir.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.len(), 2);

    // An injected NaN in one momentum buffer of the checkpoint: the resume refuses the
    // checkpoint, naming the entry, and leaves it as it was. (The per-step parameter check
    // that would catch such a NaN in training is exercised by the 1e300 learning rate above
    // and unit-tested in src/train/finite.rs.)
    let dir = copy_run("diverge-nan");
    let key = "optim.stages.1.blocks.0.pw.weight.slot1";
    tamper(&dir, |sd| {
        let t = sd.tensor(key).unwrap().map(|_| f32::NAN);
        sd.insert(key.into(), t).unwrap();
    });
    let before = std::fs::read(dir.join("checkpoint.npz")).unwrap();
    let e = train(job(&dir, resume(Some(3)), &Device::Cpu, None))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains(&format!("{key} holds NaN at element 0")), "{e}");
    assert_eq!(std::fs::read(dir.join("checkpoint.npz")).unwrap(), before);

    // An injected NaN in a weight: refused at load as well, naming the weight.
    let dir = copy_run("diverge-loss");
    tamper(&dir, |sd| {
        let t = sd.tensor("head.weight").unwrap().map(|_| f32::NAN);
        sd.insert("head.weight".into(), t).unwrap();
    });
    let e = train(job(&dir, resume(Some(3)), &Device::Cpu, None))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("head.weight holds NaN"), "{e}");

    // A finite but huge head weight: the logits overflow and the loss of the first step is
    // not finite, so the loss check stops the run.
    let dir = copy_run("diverge-loss-huge");
    tamper(&dir, |sd| {
        let t = sd.tensor("head.weight").unwrap().map(|_| 3e38f32);
        sd.insert("head.weight".into(), t).unwrap();
    });
    let e = train(job(&dir, resume(Some(3)), &Device::Cpu, None))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("non-finite loss") && e.contains("epoch 3 step 1"),
        "{e}"
    );
}

#[test]
fn empty_and_small_data_sets() {
    let cpu = Device::Cpu;
    // No training images, and no test images: errors naming the file, not 0/0.
    for (train_n, test_n, file, what) in [
        (0, 16, "train-images-idx3-ubyte", "training set"),
        (48, 0, "t10k-images-idx3-ubyte", "test set"),
    ] {
        let dir = tmp(&format!("empty-{train_n}-{test_n}"));
        synthetic::write(&dir, train_n, test_n, 1).unwrap();
        let out = dir.join("run");
        let e = TrainJob {
            data_dir: dir.clone(),
            ..job(&out, Start::Fresh(Box::new(tiny_config())), &cpu, None)
        };
        let e = train(e).err().unwrap().to_string();
        assert!(
            e.contains(file) && (e.contains(what) || e.contains("no images")),
            "{e}"
        );
        assert!(!out.join("checkpoint.npz").exists());
    }
    // --limit and --test-limit beyond the set's size use the whole set (48 images in one
    // batch of 32: one step per epoch).
    let dir = tmp("small-set");
    synthetic::write(&dir, 48, 16, 2).unwrap();
    let cfg = RunConfig {
        epochs: 1,
        limit: Some(100_000),
        test_limit: Some(100_000),
        ..tiny_config()
    };
    let out = dir.join("run");
    let o = TrainJob {
        data_dir: dir.clone(),
        ..job(&out, Start::Fresh(Box::new(cfg)), &cpu, None)
    };
    let o = train(o).unwrap();
    assert_eq!(o.history.len(), 1);
    assert!(o.history[0].is_finite());
    // eval --limit 0 is refused; a test set of 0 images is an error.
    let o = shiftgrad(&[
        "eval",
        "--checkpoint",
        out.join("checkpoint.npz").to_str().unwrap(),
        "--data",
        dir.to_str().unwrap(),
        "--limit",
        "0",
    ]);
    assert_error(&o, &["--limit must be at least 1"]);
}

fn shiftgrad(args: &[&str]) -> Output {
    common::shiftgrad_cpu(args)
}

/// Exit code 1, every fragment in stderr, and no panic; else what differs.
fn check_error(o: &Output, fragments: &[&str]) -> Result<(), String> {
    let e = String::from_utf8_lossy(&o.stderr);
    if o.status.code() != Some(1) || e.contains("panicked") {
        return Err(format!("exit code {:?}: {e}", o.status.code()));
    }
    match fragments.iter().find(|f| !e.contains(*f)) {
        Some(f) => Err(format!("{f:?} not in: {e}")),
        None => Ok(()),
    }
}

fn assert_error(o: &Output, fragments: &[&str]) {
    if let Err(e) = check_error(o, fragments) {
        panic!("{e}");
    }
}

#[test]
fn bad_inputs_are_clear_errors_and_lose_nothing() {
    let dir = tmp("bad");
    std::fs::create_dir_all(&dir).unwrap();
    // A missing data directory.
    let o = shiftgrad(&[
        "train",
        "--data",
        dir.join("nowhere").to_str().unwrap(),
        "--out",
        dir.join("r").to_str().unwrap(),
    ]);
    assert_error(&o, &["nowhere", "data directory not found"]);
    // A data file with a wrong magic number names the file.
    let bad = dir.join("bad-data");
    std::fs::create_dir_all(&bad).unwrap();
    for f in [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ] {
        std::fs::write(
            bad.join(f),
            [0u8, 0, 8, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0],
        )
        .unwrap();
    }
    let o = shiftgrad(&[
        "train",
        "--data",
        bad.to_str().unwrap(),
        "--out",
        dir.join("r2").to_str().unwrap(),
    ]);
    assert_error(&o, &["train-images-idx3-ubyte", "wrong magic number"]);
    // Not a checkpoint, and a missing one.
    let junk = dir.join("junk.npz");
    std::fs::write(&junk, b"not a zip").unwrap();
    let o = shiftgrad(&["eval", "--checkpoint", junk.to_str().unwrap()]);
    assert_error(&o, &["junk.npz"]);
    let none = dir.join("none.npz");
    let o = shiftgrad(&["eval", "--checkpoint", none.to_str().unwrap()]);
    assert_error(&o, &["none.npz", "not found"]);
    // Bad flags.
    let r3 = dir.join("r3");
    let o = shiftgrad(&["train", "--spatial", "huge", "--out", r3.to_str().unwrap()]);
    assert_error(&o, &["unknown spatial operator"]);
}

#[test]
fn a_fresh_run_does_not_replace_a_finished_one() {
    let out = tmp("no-overwrite");
    let data = test_data().dir.to_str().unwrap().to_string();
    let dir = out.to_str().unwrap().to_string();
    let args = |extra: &[&'static str]| {
        let mut a: Vec<String> = [
            "train",
            "--quiet",
            "--limit",
            "64",
            "--test-limit",
            "64",
            "--epochs",
            "1",
            "--widths",
            "8,16",
            "--depths",
            "1,1",
            "--big-kernels",
            "7,5",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend([
            "--data".to_string(),
            data.clone(),
            "--out".to_string(),
            dir.clone(),
        ]);
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let run = |a: &[String]| shiftgrad(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let o = run(&args(&[]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ckpt = std::fs::read(out.join("checkpoint.npz")).unwrap();
    // Again into the same directory: refused, and the run is untouched.
    assert_error(
        &run(&args(&["--seed", "5"])),
        &["already holds a run", "--resume", "--overwrite"],
    );
    assert_eq!(std::fs::read(out.join("checkpoint.npz")).unwrap(), ckpt);
    // With --overwrite it starts again (another seed: another checkpoint).
    let o = run(&args(&["--seed", "5", "--overwrite"]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_ne!(std::fs::read(out.join("checkpoint.npz")).unwrap(), ckpt);
}

/// A tampering case: a tag, an edit of the checkpoint (or its configuration), and the
/// expected message.
type Case<T> = (&'static str, fn(&mut T), &'static str);

#[test]
fn bad_resumes_are_clear_errors() {
    // Every case runs; the failures are reported together at the end.
    let mut failures = Vec::new();
    let mut expect = |case: &str, o: &Output, fragments: &[&str]| {
        if let Err(e) = check_error(o, fragments) {
            failures.push(format!("{case}: {e}"));
        }
    };
    let resume_dir = |d: &Path| d.to_str().unwrap().to_string();
    // A missing run directory, and a directory without a checkpoint.
    let none = tmp("no-run");
    let o = shiftgrad(&["train", "--resume", &resume_dir(&none)]);
    expect("missing dir", &o, &["no-run", "no such run directory"]);
    let empty = tmp("empty-run");
    std::fs::create_dir_all(&empty).unwrap();
    let o = shiftgrad(&["train", "--resume", &resume_dir(&empty)]);
    expect(
        "no checkpoint",
        &o,
        &["checkpoint.npz", "checkpoint not found"],
    );

    // Stored configurations that fail validation: errors naming the checkpoint.
    let invalid: [Case<RunConfig>; 4] = [
        (
            "batch0",
            |c| c.batch_size = 0,
            "batch size must be at least 1",
        ),
        ("epochs0", |c| c.epochs = 0, "epochs and batch size"),
        ("widths", |c| c.widths.clear(), "must list the same number"),
        ("lr", |c| c.lr = -1.0, "learning rate must be positive"),
    ];
    for (tag, change, msg) in invalid {
        let dir = copy_run(&format!("cfg-{tag}"));
        tamper_config(&dir, change);
        let o = shiftgrad(&["train", "--resume", &resume_dir(&dir)]);
        let what = [
            "checkpoint.npz",
            "configuration stored in this checkpoint is invalid",
            msg,
        ];
        expect(tag, &o, &what);
        // eval refuses it too.
        let ckpt = dir.join("checkpoint.npz");
        let o = shiftgrad(&["eval", "--checkpoint", ckpt.to_str().unwrap()]);
        expect(&format!("eval {tag}"), &o, &["checkpoint.npz", msg]);
    }

    // Metadata that disagrees with itself.
    let inconsistent: [Case<StateDict<f32>>; 6] = [
        (
            "epoch-vs-metrics",
            |sd| sd.insert_int("meta.epoch".into(), &[1], vec![1]),
            "meta.epoch says 1 epochs, meta.metrics_json holds 2 metric lines",
        ),
        (
            "negative-epoch",
            |sd| sd.insert_int("meta.epoch".into(), &[1], vec![-1]),
            "meta.epoch is -1",
        ),
        (
            "not-text",
            |sd| sd.insert_int("meta.config_json".into(), &[2], vec![123, 300]),
            "meta.config_json holds a value outside the byte range",
        ),
        (
            "null-loss",
            |sd| {
                edit_text(sd, "meta.metrics_json", |t| {
                    let i = t.find("\"test_loss\":").unwrap() + "\"test_loss\":".len();
                    let j = i + t[i..].find(',').unwrap();
                    format!("{}null{}", &t[..i], &t[j..])
                })
            },
            "meta.metrics_json",
        ),
        (
            "renumbered",
            |sd| {
                edit_text(sd, "meta.metrics_json", |t| {
                    t.replace("\"epoch\":2", "\"epoch\":5")
                })
            },
            "metric line 2 is numbered epoch 5",
        ),
        (
            "more-than-planned",
            |sd| {
                edit_text(sd, "meta.config_json", |t| {
                    let mut c = RunConfig::from_json(t).unwrap();
                    c.epochs = 1;
                    c.to_json()
                })
            },
            "2 epochs trained, more than the 1 its configuration plans",
        ),
    ];
    for (tag, change, msg) in inconsistent {
        let dir = copy_run(&format!("meta-{tag}"));
        tamper(&dir, change);
        let o = shiftgrad(&["train", "--resume", &resume_dir(&dir), "--epochs", "3"]);
        let what = ["checkpoint.npz", "not a shiftgrad training checkpoint", msg];
        expect(tag, &o, &what);
    }

    // Flags that would change the run are refused, by name; --out too.
    let dir = copy_run("flags");
    let d = resume_dir(&dir);
    for (extra, msg) in [
        (
            vec!["--lr", "0.2"],
            "train: --lr cannot be changed on --resume (the run's configuration is in its checkpoint)",
        ),
        (
            vec!["--preset", "sw-resnet-20", "--batch-size", "8", "--no-flip"],
            "train: --preset, --batch-size, --no-flip cannot be changed on --resume",
        ),
        (vec!["--seed", "0"], "--seed cannot be changed"),
        (vec!["--widths", "8,16"], "--widths cannot be changed"),
        (vec!["--out", "elsewhere"], "--out cannot be used with --resume"),
        (
            vec!["--epochs", "1"],
            "--epochs 1 is fewer than the 2 epochs the run in",
        ),
    ] {
        let mut args = vec!["train", "--resume", &d];
        args.extend(&extra);
        let o = shiftgrad(&args);
        expect(&extra.join(" "), &o, &[msg]);
    }
    // The accepted ones: the finished run has nothing to do and says so.
    let o = shiftgrad(&[
        "train", "--resume", &d, "--epochs", "2", "--device", "cpu", "--data", "unused",
    ]);
    let e = String::from_utf8_lossy(&o.stderr);
    if !(o.status.success() && e.contains("nothing to do")) {
        failures.push(format!("accepted flags: {e}"));
    }
    let meta_path = dir.join("checkpoint.npz");
    let meta = read_meta(&load_checkpoint(&meta_path).unwrap(), &meta_path).unwrap();
    assert_eq!(meta.config, tiny_config());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn an_incompatible_checkpoint_is_an_error_naming_the_entry() {
    let ckpt = base_run().join("checkpoint.npz");
    let sd = load_checkpoint(&ckpt).unwrap();
    let mut other = tiny_config();
    other.widths = vec![8, 24];
    let e = build_model(&other, &Device::Cpu, Some(&sd))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("stages.1") && e.contains("shape"), "{e}");
}

/// `shiftgrad experiment`: a two-configuration, one-seed grid on 512 images; a second call
/// skips the finished runs and writes the same results; a longer recipe resumes them; bad
/// recipes fail before any run.
#[test]
fn experiment_runs_a_grid_resumably() {
    let out = tmp("experiment");
    let data = test_data().dir.to_str().unwrap().to_string();
    let run = |epochs: &str, extra: &[&str]| {
        let mut args = vec![
            "experiment",
            "--spatial",
            "sw,small",
            "--seeds",
            "3",
            "--out",
            out.to_str().unwrap(),
            "--epochs",
            epochs,
            "--limit",
            "512",
            "--test-limit",
            "128",
            "--widths",
            "8,16",
            "--depths",
            "1,1",
            "--big-kernels",
            "7,5",
            "--quiet",
            "--data",
            &data,
        ];
        args.extend_from_slice(extra);
        shiftgrad(&args)
    };
    let o = run("1", &[]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(text.matches(": training").count(), 2, "{text}");
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    let rows: Vec<&str> = md.lines().skip(2).collect();
    assert_eq!(rows.len(), 2, "{md}");
    assert!(
        rows[0].starts_with("| sw-M7_5 |") && rows[1].starts_with("| small |"),
        "{md}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    for r in json.as_array().unwrap() {
        let acc = r["test_accuracy_mean"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&acc), "{r}");
        assert_eq!(
            r["seeds"][0]["test_accuracy_by_epoch"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert!(r["forward_flops_per_image"].as_f64().unwrap() > 0.0, "{r}");
    }
    assert!(out.join("results.png").is_file());
    assert!(out.join("sw-M7_5-seed3").join("checkpoint.npz").is_file());

    // Again: nothing trains, the same table.
    let o = run("1", &[]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{text}");
    assert_eq!(text.matches("finished, skipped").count(), 2, "{text}");
    assert_eq!(std::fs::read_to_string(out.join("results.md")).unwrap(), md);

    // Two epochs: both runs resume from their checkpoints.
    let o = run("2", &[]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        text.matches("resuming after epoch 1 of 2").count(),
        2,
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(
        json[0]["seeds"][0]["test_accuracy_by_epoch"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Flags the experiment owns, and a bad train flag, fail before anything runs.
    let fresh = tmp("experiment-bad");
    for (extra, msg) in [
        (vec!["--resume", "x"], "--resume is not a recipe flag"),
        (vec!["--seed", "1"], "--seed is not a recipe flag"),
        (vec!["--lr", "fast"], "invalid value"),
    ] {
        let mut args = vec![
            "experiment",
            "--out",
            fresh.to_str().unwrap(),
            "--data",
            &data,
        ];
        args.extend_from_slice(&extra);
        assert_error(&shiftgrad(&args), &[msg]);
        assert!(!fresh.exists(), "{extra:?} created the directory");
    }
    let _ = std::fs::remove_dir_all(&out);
}
