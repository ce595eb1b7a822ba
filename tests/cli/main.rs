//! The command-line tool, run as a user runs it: exit codes, tables, error messages.

use std::process::{Command, Output};

fn shiftgrad(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shiftgrad"))
        .args(args)
        .output()
        .expect("run shiftgrad")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The number after `label` in a `kind params fwd bwd ...` row of `compare`.
fn compare_row(out: &str, label: &str) -> Vec<u64> {
    let line = out
        .lines()
        .find(|l| l.split_whitespace().next() == Some(label))
        .unwrap_or_else(|| panic!("no row {label}:\n{out}"));
    line.split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{line}")))
        .collect()
}

fn shiftgrad_opencl_available() -> bool {
    let available = shiftgrad::opencl::OPENCL_COMPILED
        && shiftgrad::opencl::list_devices().is_ok_and(|d| !d.is_empty());
    if !available && shiftgrad::opencl::required("SHIFTGRAD_REQUIRE_OPENCL") {
        panic!("SHIFTGRAD_REQUIRE_OPENCL is set but no OpenCL device is available");
    }
    available
}

/// `base` then `extra` exits with code 1 and a message containing `want`, without a panic.
fn assert_fails(base: &[&str], extra: &[&str], want: &str) {
    let args: Vec<&str> = base.iter().chain(extra).copied().collect();
    let o = shiftgrad(&args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
    assert!(
        err.contains(want) && !err.contains("panicked"),
        "{args:?}: {err}"
    );
}

#[test]
fn gradcheck_op_filter_runs_only_that_op() {
    let o = shiftgrad(&["gradcheck", "--op", "conv2d"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    let rows: Vec<&str> = out
        .lines()
        .skip(2)
        .filter(|l| !l.contains("cases,"))
        .collect();
    assert!(rows.len() >= 10, "{out}");
    assert!(
        rows.iter()
            .all(|l| l.starts_with("conv2d ") && l.ends_with("pass")),
        "{out}"
    );
}

#[test]
fn gradcheck_whole_suite_lists_every_op() {
    let o = shiftgrad(&["gradcheck"]);
    assert!(o.status.success(), "{}", stdout(&o));
    let out = stdout(&o);
    for op in [
        "conv2d",
        "shift_add",
        "batch_norm2d",
        "relu",
        "add",
        "mul",
        "gather_channels",
        "concat_channels",
        "global_avg_pool",
        "linear",
        "cross_entropy",
        "sum",
        "mean",
        "sw_module",
        "slak_module",
        "dense_module",
        "small_module",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(&format!("{op} "))),
            "{op} missing:\n{out}"
        );
    }
}

#[test]
fn gradcheck_unknown_op_and_device_are_errors() {
    let o = shiftgrad(&["gradcheck", "--op", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("unknown op \"nope\""), "{}", stderr(&o));
    let o = shiftgrad(&["gradcheck", "--device", "tpu"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("tpu"), "{}", stderr(&o));
}

#[test]
fn bad_hyper_parameters_are_clear_errors_not_panics() {
    for (args, msg) in [
        (
            vec!["equiv", "--small", "4"],
            "small kernel must be odd, got 4",
        ),
        (
            vec!["equiv", "--big", "3", "--small", "5"],
            "big kernel must be at least the small kernel",
        ),
        (
            vec!["compare", "--ghost-ratio", "1.0"],
            "ghost ratio must be in [0, 1)",
        ),
        (vec!["compare", "--small", "2"], "odd"),
    ] {
        let o = shiftgrad(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let e = stderr(&o);
        assert!(e.contains(msg), "{args:?}: {e}");
        assert!(!e.contains("panicked"), "{args:?}: {e}");
    }
}

#[test]
fn bad_sparsity_is_a_clear_error_not_a_panic() {
    for cmd in ["equiv", "compare"] {
        for bad in ["1", "1.5", "-0.1", "NaN", "inf"] {
            let o = shiftgrad(&[cmd, "--sparsity", bad]);
            assert_eq!(o.status.code(), Some(1), "{cmd} {bad}");
            let e = stderr(&o);
            assert!(
                e.contains("--sparsity must be in [0, 1), got"),
                "{cmd} {bad}: {e}"
            );
            assert!(!e.contains("panicked"), "{cmd} {bad}: {e}");
            assert!(stdout(&o).is_empty(), "{cmd} {bad}: {}", stdout(&o));
        }
    }
}

mod costs_and_times;
mod equiv;
