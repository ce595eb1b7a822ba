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
fn equiv_agrees_for_the_issue_configurations() {
    for (big, small, g, h, w) in [
        ("13", "3", "1", "9", "20"),
        ("13", "5", "4", "30", "8"),
        ("51", "5", "4", "14", "9"),
        ("51", "3", "2", "60", "55"),
        ("10", "3", "3", "7", "12"),
        ("10", "5", "4", "16", "16"),
    ] {
        let o = shiftgrad(&[
            "equiv",
            "--big",
            big,
            "--small",
            small,
            "--n-rep",
            g,
            "--height",
            h,
            "--width",
            w,
            "--channels",
            "3",
        ]);
        assert!(
            o.status.success(),
            "M={big} k={small}: {}{}",
            stdout(&o),
            stderr(&o)
        );
        assert!(
            stdout(&o).contains("tolerance 1e-12: equal"),
            "{}",
            stdout(&o)
        );
    }
    let o = shiftgrad(&["equiv", "--dtype", "f32", "--big", "49", "--small", "3"]);
    assert!(o.status.success(), "{}", stdout(&o));
}

#[test]
fn equiv_writes_the_documented_arrays() {
    let dir = std::env::temp_dir().join(format!("shiftgrad-cli-equiv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("eq.npz");
    let o = shiftgrad(&[
        "equiv",
        "--big",
        "13",
        "--small",
        "3",
        "--channels",
        "2",
        "--out",
        path.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = shiftgrad::tensor::io::NpzReader::open(&path).unwrap();
    let mut names = r.names();
    names.sort();
    assert_eq!(
        names,
        [
            "bank",
            "dense_h",
            "dense_i",
            "dense_v",
            "h",
            "i",
            "idx_identit",
            "pad_hv",
            "v",
            "x"
        ]
    );
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
