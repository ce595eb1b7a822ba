//! Data-parallel training under `mpirun` (the `mpi` feature): a 2-process run with
//! synchronised batch-norm against the one-process run of the same global batch, on the CPU
//! backend and on OpenCL; the run without it; two identical runs; resuming; a failing rank.
//!
//! These tests start `mpirun` (Open MPI: `--oversubscribe`, and `--allow-run-as-root` as
//! root). Without the feature or without `mpirun`, each says "skipped" and passes, unless
//! SHIFTGRAD_REQUIRE_MPI=1 (CI), where it fails. Without Fashion-MNIST they train on a
//! synthetic set of the same format (SHIFTGRAD_REQUIRE_DATA=1 fails instead).

use shiftgrad::nn::StateDict;
use shiftgrad::train::metrics::EpochMetrics;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_shiftgrad");

/// Whether the tests can run here; reports the skip (or panics when MPI is required).
fn ready(test: &str) -> bool {
    let required = shiftgrad::opencl::required("SHIFTGRAD_REQUIRE_MPI");
    let why = if !cfg!(feature = "mpi") {
        Some("built without the mpi feature".to_string())
    } else if Command::new("mpirun").arg("--version").output().is_err() {
        Some("no mpirun on the PATH (apt-get install -y openmpi-bin)".to_string())
    } else {
        None
    };
    match why {
        None => true,
        Some(why) => {
            assert!(
                !required,
                "SHIFTGRAD_REQUIRE_MPI=1 but {test} cannot run: {why}"
            );
            shiftgrad::opencl::skip(test, &why);
            false
        }
    }
}

mod common;

/// Fashion-MNIST, or a synthetic set in its format.
fn data_dir() -> PathBuf {
    common::test_data("dist", 1024, 256, 11).dir.clone()
}

fn tmp(tag: &str) -> PathBuf {
    common::tmp("dist", tag)
}

/// The recipe of every run here: one epoch of 16 steps (1024 images, global batch 64) of a
/// small network, evaluated on 256 test images.
fn recipe(out: &Path, device: &str) -> Vec<String> {
    let data = data_dir();
    [
        "train",
        "--quiet",
        "--limit",
        "1024",
        "--test-limit",
        "256",
        "--epochs",
        "1",
        "--widths",
        "8,16",
        "--depths",
        "1,1",
        "--big-kernels",
        "7,5",
        "--small-kernel",
        "3",
        "--batch-size",
        "64",
        "--device",
        device,
        "--data",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        data.display().to_string(),
        "--out".into(),
        out.display().to_string(),
    ])
    .collect()
}

/// `mpirun -np n` of the shiftgrad binary with `args` (one process without `mpirun` for 1).
fn launch(n: usize, args: &[String]) -> Output {
    let mut cmd = match n {
        1 => Command::new(BIN),
        _ => {
            let mut c = Command::new("mpirun");
            c.args(mpirun_flags()).args(["-np", &n.to_string(), BIN]);
            c
        }
    };
    cmd.args(args);
    within(cmd)
}

/// Runs `cmd` to completion, or kills it after `DEADLINE` seconds and fails the test: a job
/// whose processes wait for one another forever must not hang the suite.
fn within(mut cmd: Command) -> Output {
    use std::process::Stdio;
    const DEADLINE: u64 = 180;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the run");
    let start = std::time::Instant::now();
    loop {
        if child.try_wait().expect("waiting for the run").is_some() {
            return child.wait_with_output().expect("reading the run's output");
        }
        if start.elapsed().as_secs() > DEADLINE {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!(
                "the job did not finish within {DEADLINE} s (killed)\nstderr: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn mpirun_flags() -> Vec<&'static str> {
    let mut f = vec!["--oversubscribe"];
    // Open MPI refuses root without this (CI runs as root).
    if std::env::var("USER").is_ok_and(|u| u == "root") || is_root() {
        f.push("--allow-run-as-root");
    }
    f
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn history(out: &Path) -> Vec<EpochMetrics> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn with(mut args: Vec<String>, more: &[&str]) -> Vec<String> {
    args.extend(more.iter().map(|s| s.to_string()));
    args
}

/// The largest relative difference between the per-epoch losses of two runs.
fn loss_gap(a: &[EpochMetrics], b: &[EpochMetrics]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| [(x.train_loss, y.train_loss), (x.test_loss, y.test_loss)])
        .map(|(x, y)| {
            let r = (x - y).abs() / y.abs();
            if r.is_finite() {
                r
            } else {
                f64::INFINITY
            }
        })
        .fold(0.0, f64::max)
}

/// A 2-process run with --sync-bn against one process on `device`; returns the gap.
fn sync_bn_gap(device: &str, tag: &str, extra: &[&str]) -> f64 {
    let one = tmp(&format!("one-{tag}"));
    ok(&launch(1, &with(recipe(&one, device), extra)));
    let two = tmp(&format!("two-{tag}"));
    ok(&launch(
        2,
        &with(
            recipe(&two, device),
            &[&["--distributed", "--sync-bn"], extra].concat(),
        ),
    ));
    let (h1, h2) = (history(&one), history(&two));
    let gap = loss_gap(&h2, &h1);
    println!("{tag}: one process {h1:?}\ntwo processes {h2:?}\nlargest relative loss gap {gap:e}");
    // The same global batches: the same images, so the same accuracy counts.
    assert_eq!(h1[0].train_acc, h2[0].train_acc);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(two.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["distributed"]["ranks"], 2, "{summary}");
    assert_eq!(summary["distributed"]["sync_bn"], true, "{summary}");
    let frac = summary["distributed"]["communication_fraction_of_training"]
        .as_f64()
        .unwrap();
    assert!(frac > 0.0 && frac < 1.0, "{summary}");
    gap
}

/// CPU backend, the default learning rate. Measured: 6.0e-8 (the test loss; the CPU backend
/// accumulates its sums in f64, so splitting the batch barely moves them). Made to fail by
/// not dividing the summed gradients by the number of processes (the runs then differ
/// already in their training accuracy).
#[test]
fn sync_bn_two_processes_match_one_on_the_cpu() {
    if !ready("distributed training on the CPU backend") {
        return;
    }
    let gap = sync_bn_gap("cpu", "cpu", &[]);
    assert!(gap <= 1e-6, "per-epoch losses differ by {gap:e}");
}

/// OpenCL (PoCL in CI), at --lr 0.02. Measured: 1.8e-6. At the default 0.1 the one-process
/// OpenCL run is itself 3.3e-4 from the one-process CPU run in test loss (f32 sums inside
/// the kernels over 64 images per call rather than 32, amplified by 16 steps at a high
/// learning rate; the two-process OpenCL run lands within 1e-7 of the CPU one), so the
/// comparison would measure that, not the distribution.
#[test]
fn sync_bn_two_processes_match_one_on_opencl() {
    if !ready("distributed training on OpenCL") {
        return;
    }
    let Some(_) = shiftgrad::ops::parity::opencl_device() else {
        return;
    };
    let gap = sync_bn_gap("opencl", "opencl", &["--lr", "0.02"]);
    assert!(gap <= 1e-5, "per-epoch losses differ by {gap:e}");
}

/// Without --sync-bn each process normalises with its shard's statistics: the run completes,
/// reports its accuracy (rank 0 alone prints), and two identical runs write byte-identical
/// checkpoints (and every array bit for bit, the metrics but for the wall-clock fields).
#[test]
fn runs_without_sync_bn_complete_and_repeat_exactly() {
    if !ready("distributed training without --sync-bn") {
        return;
    }
    let dirs = [tmp("plain-a"), tmp("plain-b")];
    for d in &dirs {
        let args: Vec<String> = recipe(d, "cpu")
            .into_iter()
            .filter(|a| a != "--quiet")
            .chain(["--distributed".to_string()])
            .collect();
        let o = launch(2, &args);
        ok(&o);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.matches("epoch 1/1: train loss").count(), 1, "{err}");
        assert!(err.contains("distributed: 2 processes"), "{err}");
        assert!(err.contains("done: test accuracy"), "{err}");
    }
    // The same bytes (the checkpoint holds no wall-clock values or times).
    let bytes = |d: &Path| std::fs::read(d.join("checkpoint.npz")).unwrap();
    assert!(
        bytes(&dirs[0]) == bytes(&dirs[1]),
        "the checkpoints differ in bytes"
    );
    let h = history(&dirs[0]);
    assert!(h[0].test_acc > 0.15, "{h:?}");
    // The test metrics came from the processes' shards, each evaluated with rank 0's state:
    // the checkpoint evaluated whole in one process gives the same accuracy and loss (made
    // to fail by skipping the copy of rank 0's state: 24.22 % against 23.44 %).
    let o = launch(
        1,
        &[
            "eval",
            "--checkpoint",
            &dirs[0].join("checkpoint.npz").display().to_string(),
            "--device",
            "cpu",
            "--limit",
            "256",
            "--data",
            &data_dir().display().to_string(),
        ]
        .map(String::from),
    );
    ok(&o);
    let line = String::from_utf8_lossy(&o.stdout).to_string();
    let acc = format!("accuracy {:.2}%", 100.0 * h[0].test_acc);
    let loss = format!("loss {:.4}", h[0].test_loss);
    assert!(
        line.contains(&acc) && line.contains(&loss),
        "{line} against {acc}, {loss}"
    );
    let [a, b] = dirs
        .clone()
        .map(|d| StateDict::<f32>::load(d.join("checkpoint.npz")).unwrap());
    let names: Vec<&str> = a.names().collect();
    assert_eq!(names, b.names().collect::<Vec<_>>());
    for name in names {
        if name == "meta.metrics_json" {
            continue;
        }
        match (a.tensor(name), b.tensor(name)) {
            (Ok(x), Ok(y)) => {
                let bits = |t: &shiftgrad::tensor::Tensor<f32>| {
                    t.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>()
                };
                assert_eq!(bits(x), bits(y), "{name}");
            }
            _ => assert_eq!(a.int(name).unwrap(), b.int(name).unwrap(), "{name}"),
        }
    }
    let strip =
        |d: &Path| -> Vec<EpochMetrics> { history(d).iter().map(|m| m.without_timing()).collect() };
    assert_eq!(strip(&dirs[0]), strip(&dirs[1]));
}

/// A run resumes with as many processes as it started with, and refuses another count; a
/// global batch that does not split evenly, and --sync-bn without --distributed, are errors.
#[test]
fn resume_keeps_the_process_count() {
    if !ready("resuming a distributed run") {
        return;
    }
    let dir = tmp("resume");
    ok(&launch(
        2,
        &with(recipe(&dir, "cpu"), &["--distributed", "--sync-bn"]),
    ));
    let resume = |n: usize, more: &[&str]| {
        let mut a: Vec<String> = ["train", "--quiet", "--resume"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.push(dir.display().to_string());
        a.extend(["--epochs", "2", "--device", "cpu"].map(String::from));
        a.push("--data".into());
        a.push(data_dir().display().to_string());
        a.extend(more.iter().map(|s| s.to_string()));
        launch(n, &a)
    };
    let o = resume(1, &[]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("the run plans 2 process(es)"), "{err}");
    ok(&resume(2, &["--distributed"]));
    let h = history(&dir);
    assert_eq!(h.len(), 2, "{h:?}");
    // 64 images do not split over 3 processes.
    let o = launch(3, &with(recipe(&tmp("odd"), "cpu"), &["--distributed"]));
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("must be a multiple of the 3 processes"),
        "{err}"
    );
    let o = launch(1, &with(recipe(&tmp("nosync"), "cpu"), &["--sync-bn"]));
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--sync-bn needs --distributed"));
}

/// One rank that cannot open its device stops the whole job, naming itself, and nothing is
/// written. Made to fail by returning the error without the setup's agreement or the abort:
/// rank 0 then waited in its first collective until the deadline killed the job.
#[test]
fn a_failing_rank_stops_the_job_naming_it() {
    if !ready("a failing rank") {
        return;
    }
    let dir = tmp("failing");
    let good = with(recipe(&dir, "cpu"), &["--distributed"]);
    let bad: Vec<String> = good
        .iter()
        .map(|a| {
            if a == "cpu" {
                "opencl:97:3".to_string()
            } else {
                a.clone()
            }
        })
        .collect();
    // MPMD: rank 0 runs `good`, rank 1 `bad`.
    let mut cmd = Command::new("mpirun");
    cmd.args(mpirun_flags())
        .args(["-np", "1", BIN])
        .args(&good)
        .arg(":")
        .args(["-np", "1", BIN])
        .args(&bad);
    let o = within(cmd);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("rank 1 of 2:"), "{err}");
    assert!(!err.contains("rank 0 of 2:"), "{err}");
    assert!(!dir.join("checkpoint.npz").exists());
}
