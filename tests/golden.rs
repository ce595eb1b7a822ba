//! Tier 3 of the gradient evidence: forward values and every gradient against PyTorch.
//!
//! The golden files under `tests/golden/<case>/` (small float64 `.npy` files, int64 for
//! conv2d parameters and labels) are produced by a committed script; regenerate them with
//!
//! ```text
//! python3 tests/golden/generate.py
//! ```
//!
//! run from the repository root with torch and numpy installed. The script's header says what
//! each file holds. Backward values are the gradients of `sum(y * gy)` for a random cotangent
//! `gy`, fed here through `backward_with(gy)`.
//!
//! Tolerance: for every compared tensor, `max |ours - torch| <= 1e-10 * max |torch|` in f64,
//! the maximum taken per channel for NCHW tensors (so that a small channel's error is not
//! hidden by a large one) and over the whole tensor otherwise; NaN or Inf anywhere fails. The
//! bound is relative to the channel's largest reference value rather than element by
//! element: an element that cancels to nearly zero (a gradient of a saturated softmax, say)
//! cannot meet a per-element relative bound in any summation order, yet a real error in it
//! still shows at this scale.

use shiftgrad::autograd::Var;
use shiftgrad::ops;
use shiftgrad::ops::Conv2dParams;
use shiftgrad::tensor::compare::{self, Scale};
use shiftgrad::tensor::io::read_npy;
use shiftgrad::tensor::Tensor;
use std::path::{Path, PathBuf};

const RTOL: f64 = 1e-10;

/// The conv2d cases written by generate.py (a directory each).
const CONV_CASES: &[&str] = &[
    "conv2d_3x3_s1_p0",
    "conv2d_3x3_s2_p1",
    "conv2d_3x3_s1_asym_g2_nobias",
    "conv2d_3x3_s2_asym",
    "conv2d_3x3_depthwise_p1",
    "conv2d_3x3_mult5_g2",
    "conv2d_1x1_s1",
    "conv2d_1x1_s2_g2",
    "conv2d_5x1_depthwise",
    "conv2d_1x7_depthwise_s1x2",
    "conv2d_13x3_depthwise_nobias",
    "conv2d_13x3_asym_g1",
];

/// The other cases, each checked by its own test below.
const OTHER_CASES: &[&str] = &[
    "batch_norm2d_train",
    "batch_norm2d_eval",
    "linear",
    "global_avg_pool",
    "cross_entropy",
];

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn file(case: &str, name: &str) -> PathBuf {
    golden_dir().join(case).join(format!("{name}.npy"))
}

fn load(case: &str, name: &str) -> Tensor<f64> {
    read_npy(file(case, name)).unwrap_or_else(|e| panic!("{case}: {e}"))
}

fn load_opt(case: &str, name: &str) -> Option<Tensor<f64>> {
    file(case, name).exists().then(|| load(case, name))
}

fn load_i64(case: &str, name: &str) -> Vec<i64> {
    let path = file(case, name);
    let fail = |e: std::io::Error| -> ! { panic!("{case}: {}: {e}", path.display()) };
    let f = std::fs::File::open(&path).unwrap_or_else(|e| fail(e));
    let npy = npyz::NpyFile::new(std::io::BufReader::new(f)).unwrap_or_else(|e| fail(e));
    npy.into_vec::<i64>().unwrap_or_else(|e| fail(e))
}

fn grad(case: &str, what: &str, v: &Var<f64>) -> Tensor<f64> {
    v.grad()
        .as_ref()
        .unwrap_or_else(|| panic!("{case}: no gradient reached {what}"))
        .clone()
}

/// `Err` describing the mismatch unless `ours` matches `torch` (same shape, within RTOL).
fn compare(case: &str, what: &str, ours: &Tensor<f64>, torch: &Tensor<f64>) -> Result<(), String> {
    if ours.dims() != torch.dims() {
        return Err(format!(
            "{case}: {what}: shape {:?}, torch has {:?}",
            ours.dims(),
            torch.dims()
        ));
    }
    // NaN or Inf anywhere fails (compare counts them); NCHW tensors are scaled per channel.
    let scale = if torch.dims().len() == 4 {
        Scale::PerChannel(1)
    } else {
        Scale::Global
    };
    compare::check(&format!("{case}: {what}"), ours, torch, scale, RTOL)?;
    Ok(())
}

/// Panics with every mismatch found, one per line.
fn check_all(results: Vec<Result<(), String>>) {
    let failures: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

fn conv_case(case: &str) -> Vec<Result<(), String>> {
    let p: Vec<usize> = load_i64(case, "params")
        .into_iter()
        .map(|v| usize::try_from(v).expect("params are non-negative"))
        .collect();
    assert_eq!(p.len(), 7, "{case}: params must hold 7 integers");
    let params = Conv2dParams {
        stride: (p[0], p[1]),
        pad: [p[2], p[3], p[4], p[5]],
        groups: p[6],
    };
    let x = Var::param(load(case, "x"));
    let w = Var::param(load(case, "w"));
    let b = load_opt(case, "b").map(Var::param);
    let y = ops::conv2d(&x, &w, b.as_ref(), params).unwrap_or_else(|e| panic!("{case}: {e}"));
    let mut r = vec![compare(case, "y", &y.value(), &load(case, "y"))];
    y.backward_with(load(case, "gy"))
        .unwrap_or_else(|e| panic!("{case}: {e}"));
    r.push(compare(case, "gx", &grad(case, "x", &x), &load(case, "gx")));
    r.push(compare(case, "gw", &grad(case, "w", &w), &load(case, "gw")));
    if let Some(b) = &b {
        r.push(compare(case, "gb", &grad(case, "b", b), &load(case, "gb")));
    }
    r
}

#[test]
fn conv2d_matches_pytorch() {
    check_all(CONV_CASES.iter().flat_map(|c| conv_case(c)).collect());
}

#[test]
fn conv2d_params_builder_matches_the_literal() {
    // The builder used by the rest of the code gives the struct the cases above construct.
    let built = Conv2dParams::new()
        .stride(2)
        .pad_sides([0, 1, 0, 1])
        .groups(1);
    let literal = Conv2dParams {
        stride: (2, 2),
        pad: [0, 1, 0, 1],
        groups: 1,
    };
    assert_eq!(built, literal);
}

fn batch_norm_case(case: &str, training: bool) {
    let params = load(case, "params");
    let (momentum, eps) = (params.data()[0], params.data()[1]);
    let x = Var::param(load(case, "x"));
    let gamma = Var::param(load(case, "gamma"));
    let beta = Var::param(load(case, "beta"));
    let mut running_mean = load(case, "running_mean");
    let mut running_var = load(case, "running_var");
    let y = if training {
        ops::batch_norm::batch_norm2d_train(
            &x,
            &gamma,
            &beta,
            &mut running_mean,
            &mut running_var,
            momentum,
            eps,
        )
    } else {
        ops::batch_norm::batch_norm2d_eval(&x, &gamma, &beta, &running_mean, &running_var, eps)
    }
    .unwrap_or_else(|e| panic!("{case}: {e}"));
    let mut r = vec![compare(case, "y", &y.value(), &load(case, "y"))];
    if training {
        r.push(compare(
            case,
            "running_mean after",
            &running_mean,
            &load(case, "running_mean_after"),
        ));
        r.push(compare(
            case,
            "running_var after",
            &running_var,
            &load(case, "running_var_after"),
        ));
    }
    y.backward_with(load(case, "gy"))
        .unwrap_or_else(|e| panic!("{case}: {e}"));
    r.push(compare(case, "gx", &grad(case, "x", &x), &load(case, "gx")));
    r.push(compare(
        case,
        "ggamma",
        &grad(case, "gamma", &gamma),
        &load(case, "ggamma"),
    ));
    r.push(compare(
        case,
        "gbeta",
        &grad(case, "beta", &beta),
        &load(case, "gbeta"),
    ));
    check_all(r);
}

#[test]
fn batch_norm2d_train_matches_pytorch() {
    batch_norm_case("batch_norm2d_train", true);
}

#[test]
fn batch_norm2d_eval_matches_pytorch() {
    batch_norm_case("batch_norm2d_eval", false);
}

#[test]
fn linear_matches_pytorch() {
    let case = "linear";
    let x = Var::param(load(case, "x"));
    let w = Var::param(load(case, "w"));
    let b = Var::param(load(case, "b"));
    let y = ops::linear::linear(&x, &w, Some(&b)).unwrap_or_else(|e| panic!("{case}: {e}"));
    let mut r = vec![compare(case, "y", &y.value(), &load(case, "y"))];
    y.backward_with(load(case, "gy"))
        .unwrap_or_else(|e| panic!("{case}: {e}"));
    r.push(compare(case, "gx", &grad(case, "x", &x), &load(case, "gx")));
    r.push(compare(case, "gw", &grad(case, "w", &w), &load(case, "gw")));
    r.push(compare(case, "gb", &grad(case, "b", &b), &load(case, "gb")));
    check_all(r);
}

#[test]
fn global_avg_pool_matches_pytorch() {
    let case = "global_avg_pool";
    let x = Var::param(load(case, "x"));
    let y = ops::pool::global_avg_pool(&x).unwrap_or_else(|e| panic!("{case}: {e}"));
    let mut r = vec![compare(case, "y", &y.value(), &load(case, "y"))];
    y.backward_with(load(case, "gy"))
        .unwrap_or_else(|e| panic!("{case}: {e}"));
    r.push(compare(case, "gx", &grad(case, "x", &x), &load(case, "gx")));
    check_all(r);
}

#[test]
fn cross_entropy_matches_pytorch() {
    let case = "cross_entropy";
    let logits = Var::param(load(case, "logits"));
    let labels: Vec<usize> = load_i64(case, "labels")
        .into_iter()
        .map(|v| usize::try_from(v).expect("labels are non-negative"))
        .collect();
    let loss = ops::cross_entropy::cross_entropy(&logits, &labels)
        .unwrap_or_else(|e| panic!("{case}: {e}"));
    let mut r = vec![compare(case, "loss", &loss.value(), &load(case, "loss"))];
    loss.backward_with(load(case, "gy"))
        .unwrap_or_else(|e| panic!("{case}: {e}"));
    r.push(compare(
        case,
        "glogits",
        &grad(case, "logits", &logits),
        &load(case, "glogits"),
    ));
    check_all(r);
}

#[test]
fn every_golden_case_is_checked() {
    let mut on_disk: Vec<String> = std::fs::read_dir(golden_dir())
        .expect("tests/golden exists")
        .map(|e| e.expect("readable directory entry"))
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        // The shift-add and whole-network cases have their own tests (tests/golden_shift_add.rs,
        // tests/golden_network.rs).
        .filter(|name| !name.starts_with("shift_add_") && !name.starts_with("network_"))
        .collect();
    on_disk.sort();
    let mut checked: Vec<String> = CONV_CASES
        .iter()
        .chain(OTHER_CASES)
        .map(|s| s.to_string())
        .collect();
    checked.sort();
    assert_eq!(on_disk, checked);
}
