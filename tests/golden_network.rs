//! Tier 3 of the gradient evidence at the scale of a whole network: one training step of a
//! small SW-ResNet of each spatial kind against PyTorch, in f64.
//!
//! The golden files under `tests/golden/network_<kind>/` are written by a committed script;
//! regenerate them with
//!
//! ```text
//! python3 tests/golden/network_generate.py
//! ```
//!
//! run from the repository root with torch and numpy installed (the script's header says what
//! each file holds). The script re-implements the network in `torch.nn.functional` (the
//! shift-add by slicing, as in `shift_add_generate.py`), draws every parameter, running
//! statistic, index table and ghost/rep channel split itself, and stores them as a shiftgrad
//! checkpoint. Here the checkpoint goes through the public loader path the CLI uses
//! (`SwResNet::new`, `move_to`, `StateDict::load`, `load_state`), then forward in
//! `Mode::Train`, `cross_entropy`, `backward`; the loss, the logits, every parameter's
//! gradient and every running statistic after the step are compared with PyTorch's. This runs
//! on the CPU reference and, when an OpenCL device with fp64 opens, on OpenCL too (skipped
//! loudly otherwise; `SHIFTGRAD_REQUIRE_OPENCL=1` / `SHIFTGRAD_REQUIRE_FP64=1` make that fail).
//!
//! Scale: per output channel (axis 0) for parameters of rank 2 and more, over the whole tensor
//! otherwise; NaN or Inf anywhere fails. Every mismatch is collected before the assertion.
//! Run with `--nocapture` to see the measured errors.

use shiftgrad::autograd::Var;
use shiftgrad::nn::resnet::{ResNetConfig, SwResNet};
use shiftgrad::nn::{Mode, Module, SpatialKind, StateDict};
use shiftgrad::ops::cross_entropy;
use shiftgrad::ops::parity::{fp64, opencl_device};
use shiftgrad::tensor::compare::{check, Diff, Scale};
use shiftgrad::tensor::io::read_npy;
use shiftgrad::tensor::{Device, Tensor};
use std::path::{Path, PathBuf};

/// Largest scaled error allowed against PyTorch (f64, both backends), about 10x the largest
/// measured. Measured (largest over the 34 to 54 tensors of a kind): CPU reference sw 3.3e-14,
/// slak 1.3e-14, dense 2.1e-14, small 6.3e-15; OpenCL on PoCL sw 9.6e-15, slak 3.9e-15,
/// dense 6.6e-15, small 4.3e-15. The largest are in pointwise-weight gradients (sums of
/// N*H*W products at the end of a long backward chain).
const TOL: f64 = 3e-13;

/// The kinds the script writes, each in `tests/golden/network_<kind>/`.
const KINDS: [SpatialKind; 4] = [
    SpatialKind::Sw,
    SpatialKind::Slak,
    SpatialKind::Dense,
    SpatialKind::Small,
];

/// The network of `network_generate.py` (its constants, mirrored).
fn config(kind: SpatialKind) -> ResNetConfig {
    ResNetConfig {
        in_channels: 1,
        classes: 10,
        widths: vec![4, 8],
        depths: vec![1, 1],
        big_kernels: vec![7, 9],
        small_kernel: 3,
        ghost_ratio: 0.25,
        n_path: 2,
        n_rep: 2,
        spatial: kind,
        // Irrelevant: every parameter, buffer and table is replaced by the checkpoint's.
        seed: 0,
    }
}

fn case_dir(kind: SpatialKind) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("golden")
        .join(format!("network_{kind}"))
}

/// The golden files of one kind.
struct Golden {
    dir: PathBuf,
    checkpoint: StateDict<f64>,
    x: Tensor<f64>,
    labels: Vec<usize>,
    logits: Tensor<f64>,
    loss: Tensor<f64>,
    grads: StateDict<f64>,
    running_after: StateDict<f64>,
}

impl Golden {
    fn load(kind: SpatialKind) -> Self {
        let dir = case_dir(kind);
        let fail = |what: &str, e: &dyn std::fmt::Display| -> ! {
            panic!("{}: {what}: {e}", dir.display())
        };
        let npz =
            |name: &str| StateDict::<f64>::load(dir.join(name)).unwrap_or_else(|e| fail(name, &e));
        let npy = |name: &str| read_npy(dir.join(name)).unwrap_or_else(|e| fail(name, &e));
        let labels_path = dir.join("labels.npy");
        let f = std::fs::File::open(&labels_path).unwrap_or_else(|e| fail("labels.npy", &e));
        let labels = npyz::NpyFile::new(std::io::BufReader::new(f))
            .and_then(|n| n.into_vec::<i64>())
            .unwrap_or_else(|e| fail("labels.npy", &e))
            .into_iter()
            .map(|l| usize::try_from(l).expect("labels are non-negative"))
            .collect();
        Golden {
            checkpoint: npz("checkpoint.npz"),
            x: npy("x.npy"),
            labels,
            logits: npy("logits.npy"),
            loss: npy("loss.npy"),
            grads: npz("grads.npz"),
            running_after: npz("running_after.npz"),
            dir,
        }
    }
}

/// A parameter-shaped scale: per output channel for tensors of rank 2 and more.
fn scale_for(t: &Tensor<f64>) -> Scale<'static, f64> {
    if t.dims().len() >= 2 {
        Scale::PerChannel(0)
    } else {
        Scale::Global
    }
}

fn sorted(names: impl Iterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = names.collect();
    v.sort();
    v
}

/// One compared tensor: its name and `Ok(diff)` or the mismatch.
type Compared = (String, Result<Diff, String>);

/// `check` under a name kept for the report.
fn compare(what: String, got: &Tensor<f64>, want: &Tensor<f64>, scale: Scale<'_, f64>) -> Compared {
    let r = check(&what, got, want, scale, TOL);
    (what, r)
}

/// Every comparison of one training step on `device`.
fn step(kind: SpatialKind, golden: &Golden, device: &Device) -> Vec<Compared> {
    let dir = golden.dir.display();
    // The loader path of the CLI (src/train: build_model): build, move, load.
    let mut model = SwResNet::<f64>::new(config(kind)).unwrap();
    model.move_to(device).unwrap();
    model
        .load_state("", &golden.checkpoint)
        .unwrap_or_else(|e| panic!("{dir}: checkpoint.npz does not load: {e}"));
    // The script writes exactly the model's state: no key missing (load_state would have
    // failed), none extra (it would be silently ignored). Its functional batch-norm keeps no
    // num_batches_tracked counter (which the loader then starts at 0).
    let ours = sorted(
        model
            .state_dict()
            .unwrap()
            .names()
            .filter(|n| !n.ends_with(".num_batches_tracked"))
            .map(str::to_string),
    );
    let theirs = sorted(golden.checkpoint.names().map(str::to_string));
    assert_eq!(ours, theirs, "{dir}: checkpoint keys");

    let x = Var::constant(golden.x.to_device(device).unwrap());
    let logits = model.forward(&x, Mode::Train).unwrap();
    let loss = cross_entropy(&logits, &golden.labels).unwrap();
    loss.backward().unwrap();

    let mut r = vec![
        compare(
            "loss".into(),
            &loss.value().to_host().unwrap(),
            &golden.loss,
            Scale::Global,
        ),
        compare(
            "logits".into(),
            &logits.value().to_host().unwrap(),
            &golden.logits,
            Scale::Global,
        ),
    ];
    let params = model.named_parameters();
    let names = sorted(params.iter().map(|p| p.name.clone()));
    let grad_names = sorted(golden.grads.names().map(str::to_string));
    assert_eq!(names, grad_names, "{dir}: grads.npz keys");
    for p in &params {
        let want = golden.grads.tensor(&p.name).unwrap();
        let what = format!("gradient of {}", p.name);
        r.push(match p.var.grad().as_ref() {
            None => (what.clone(), Err(format!("{what}: no gradient reached it"))),
            Some(g) => compare(what, &g.to_host().unwrap(), want, scale_for(want)),
        });
    }
    let after = model.state_dict().unwrap();
    let running = sorted(
        after
            .names()
            .filter(|n| n.ends_with(".running_mean") || n.ends_with(".running_var"))
            .map(str::to_string),
    );
    let golden_running = sorted(golden.running_after.names().map(str::to_string));
    assert_eq!(running, golden_running, "{dir}: running_after.npz keys");
    for name in &running {
        r.push(compare(
            format!("{name} after the step"),
            after.tensor(name).unwrap(),
            golden.running_after.tensor(name).unwrap(),
            Scale::Global,
        ));
    }
    r
}

/// Runs the step on `backend`, prints the largest error, and appends every mismatch.
fn run_on(
    kind: SpatialKind,
    golden: &Golden,
    backend: &str,
    device: &Device,
    failures: &mut Vec<String>,
) {
    let results = step(kind, golden, device);
    let compared = results.len();
    let mut worst = (0.0f64, String::from("(all equal)"));
    for (what, r) in results {
        match r {
            Ok(d) if d.max_rel > worst.0 => worst = (d.max_rel, format!("{what}: {d}")),
            Ok(_) => {}
            Err(e) => failures.push(format!("{kind} on {backend}: {e}")),
        }
    }
    eprintln!(
        "{kind} on {backend}: {compared} tensors compared with PyTorch, largest scaled error \
         {:.2e}, in {}",
        worst.0, worst.1
    );
}

fn matches_pytorch(kind: SpatialKind) {
    let golden = Golden::load(kind);
    let mut failures = Vec::new();
    run_on(kind, &golden, "cpu", &Device::Cpu, &mut failures);
    if let Some(dev) = opencl_device() {
        if fp64(&dev, "whole-network f64 golden") {
            run_on(kind, &golden, "opencl", &dev, &mut failures);
        }
    }
    assert!(
        failures.is_empty(),
        "{kind}: {} mismatches with PyTorch:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn sw_network_step_matches_pytorch() {
    matches_pytorch(SpatialKind::Sw);
}

#[test]
fn slak_network_step_matches_pytorch() {
    matches_pytorch(SpatialKind::Slak);
}

#[test]
fn dense_network_step_matches_pytorch() {
    matches_pytorch(SpatialKind::Dense);
}

#[test]
fn small_network_step_matches_pytorch() {
    matches_pytorch(SpatialKind::Small);
}

#[test]
fn every_network_golden_is_checked() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("golden");
    let on_disk = sorted(
        std::fs::read_dir(&root)
            .expect("tests/golden exists")
            .map(|e| e.expect("readable directory entry"))
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("network_")),
    );
    let checked = sorted(KINDS.iter().map(|k| format!("network_{k}")));
    assert_eq!(on_disk, checked);
}
