//! End-to-end smoke test of training on Fashion-MNIST (SPEC section 5): `--limit 512`, the
//! loss falls, the checkpoint round-trips, and an interrupted run resumed from its checkpoint
//! reproduces the uninterrupted run's metrics exactly. Uses the real data set when it is
//! installed (Debian's `dataset-fashion-mnist`, or `FASHION_MNIST_DIR`); otherwise skips with a
//! note, unless `SHIFTGRAD_REQUIRE_DATA` is set (CI sets it). Runs on `$SHIFTGRAD_DEVICE`, else
//! the CPU.

use shiftgrad::nn::data;
use shiftgrad::tensor::Device;
use shiftgrad::train::config::{OptimName, RunConfig};
use shiftgrad::train::{build_model, evaluate, load_checkpoint, read_meta, train, Start, TrainJob};
use std::path::PathBuf;
use std::process::Command;

fn data_dir() -> Option<PathBuf> {
    let dir = data::data_dir(None);
    if data::load(&dir, data::Split::Test).is_ok() {
        return Some(dir);
    }
    if std::env::var_os("SHIFTGRAD_REQUIRE_DATA").is_some() {
        panic!(
            "SHIFTGRAD_REQUIRE_DATA is set but Fashion-MNIST is not at {}",
            dir.display()
        );
    }
    eprintln!(
        "skipping: Fashion-MNIST not found at {} (apt-get install dataset-fashion-mnist)",
        dir.display()
    );
    None
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
    }
}

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("shiftgrad-train-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn loss_falls_checkpoint_round_trips_and_resume_is_exact() {
    let Some(data_dir) = data_dir() else { return };
    let device = Device::open(None).unwrap();
    let job = |out: &PathBuf, start: Start, stop_after| TrainJob {
        start,
        device: device.clone(),
        out: out.clone(),
        data_dir: data_dir.clone(),
        quiet: true,
        stop_after,
    };

    // Uninterrupted: two epochs.
    let full_dir = tmp("full");
    let full = train(job(&full_dir, Start::Fresh(Box::new(small_config())), None)).unwrap();
    assert_eq!(full.history.len(), 2);
    let (e1, e2) = (&full.history[0], &full.history[1]);
    assert!(e1.train_loss < 2.2, "first epoch did not learn: {e1:?}");
    assert!(
        e2.train_loss < e1.train_loss,
        "loss did not fall: {e1:?} -> {e2:?}"
    );
    for f in [
        "checkpoint.npz",
        "metrics.jsonl",
        "curves.png",
        "summary.json",
        "config.json",
    ] {
        assert!(full_dir.join(f).is_file(), "{f} missing");
    }

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
    let mut test = data::load(&data_dir, data::Split::Test).unwrap();
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
    let first = train(job(
        &part_dir,
        Start::Fresh(Box::new(small_config())),
        Some(1),
    ))
    .unwrap();
    assert_eq!(first.history.len(), 1);
    let resumed = train(job(&part_dir, Start::Resume, None)).unwrap();
    let strip = |h: &[shiftgrad::train::metrics::EpochMetrics]| {
        h.iter().map(|m| m.without_timing()).collect::<Vec<_>>()
    };
    assert_eq!(strip(&resumed.history), strip(&full.history));
    let on_disk = shiftgrad::train::metrics::read_jsonl(&part_dir.join("metrics.jsonl")).unwrap();
    assert_eq!(strip(&on_disk), strip(&full.history));
}

fn shiftgrad(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_shiftgrad"))
        .args(args)
        .env("SHIFTGRAD_DEVICE", "cpu")
        .output()
        .expect("run shiftgrad")
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
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("nowhere") && e.contains("data directory not found"),
        "{e}"
    );
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
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("train-images-idx3-ubyte") && e.contains("wrong magic number"),
        "{e}"
    );
    // Not a checkpoint, and a missing one.
    let junk = dir.join("junk.npz");
    std::fs::write(&junk, b"not a zip").unwrap();
    let o = shiftgrad(&["eval", "--checkpoint", junk.to_str().unwrap()]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.code() == Some(1) && e.contains("junk.npz"), "{e}");
    let o = shiftgrad(&[
        "eval",
        "--checkpoint",
        dir.join("none.npz").to_str().unwrap(),
    ]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("none.npz") && e.contains("not found"), "{e}");
    // Bad flags.
    let o = shiftgrad(&[
        "train",
        "--spatial",
        "huge",
        "--out",
        dir.join("r3").to_str().unwrap(),
    ]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("unknown spatial operator"), "{e}");
    let o = shiftgrad(&["train", "--resume", dir.join("no-run").to_str().unwrap()]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("no-run"), "{e}");
    assert!(!e.contains("panicked"), "{e}");
}

#[test]
fn an_incompatible_checkpoint_is_an_error_naming_the_entry() {
    let Some(data_dir) = data_dir() else { return };
    let out = tmp("incompat");
    let mut cfg = small_config();
    cfg.epochs = 1;
    cfg.limit = Some(64);
    cfg.test_limit = Some(64);
    train(TrainJob {
        start: Start::Fresh(Box::new(cfg.clone())),
        device: Device::Cpu,
        out: out.clone(),
        data_dir,
        quiet: true,
        stop_after: None,
    })
    .unwrap();
    let ckpt = out.join("checkpoint.npz");
    let sd = load_checkpoint(&ckpt).unwrap();
    let mut other = cfg.clone();
    other.widths = vec![16, 48];
    let e = build_model(&other, &Device::Cpu, Some(&sd))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("stages.1") && e.contains("shape"), "{e}");
}
