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

#[path = "../common/mod.rs"]
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

mod cli_errors;
mod experiment;
mod failing_runs;
mod sparse;
