//! `shiftgrad compare`, `profile` and `bench`: costs, times and their tables.

use super::*;

#[test]
fn compare_sparse_sw_costs_less_and_the_dense_table_is_unchanged() {
    let base = [
        "compare",
        "--channels",
        "8",
        "--height",
        "12",
        "--width",
        "12",
        "--big",
        "13",
        "--small",
        "3",
    ];
    let dense = shiftgrad(&base);
    assert!(dense.status.success(), "{}", stderr(&dense));
    let mut args = base.to_vec();
    args.extend(["--sparsity", "0.5"]);
    let sparse = shiftgrad(&args);
    assert!(sparse.status.success(), "{}", stderr(&sparse));
    let (d, s) = (stdout(&dense), stdout(&sparse));
    assert!(!d.contains("sw*"), "{d}");
    // The S = 0 table is the first rows of the sparse output, line for line, sw* aside.
    let without_sparse: Vec<&str> = s.lines().filter(|l| !l.starts_with("sw*")).collect();
    assert_eq!(without_sparse, d.lines().collect::<Vec<_>>());
    // params, fwd FLOPs, bwd FLOPs, folded params, folded fwd FLOPs
    let (sw, sw_sparse) = (compare_row(&d, "sw"), compare_row(&s, "sw*"));
    assert!(sw_sparse[1] < sw[1], "fwd FLOPs {sw_sparse:?} vs {sw:?}");
    assert!(sw_sparse[2] < sw[2], "bwd FLOPs {sw_sparse:?} vs {sw:?}");
    // R*nk = 8*5 = 40 kernels, 20 pruned: 20 * k*k * P = 20 * 9 * 2 weights fewer.
    assert_eq!(sw[0] - sw_sparse[0], 20 * 9 * 2, "{s}");
    assert_eq!(sw_sparse[3..], sw[3..], "{s}");
    assert!(s.contains("20 of 40 small kernels live"), "{s}");
    assert!(s.contains("the counters agree"), "{s}");
}

/// `profile` with two sparsities: one report each (on OpenCL with the shift-wise regions), and
/// the bank convolution + shift-add of both side by side. On the CPU (no OpenCL here) it
/// still runs both networks, without device times.
#[test]
fn profile_compares_sparsities_in_one_run() {
    let opencl = shiftgrad_opencl_available();
    let device = if opencl { "opencl" } else { "cpu" };
    // Two small networks, one step each, two alternating rounds; `extra` says which.
    let profile = |extra: &[&str]| {
        let mut args = vec![
            "profile",
            "--device",
            device,
            "--batch-size",
            "2",
            "--steps",
            "1",
            "--rounds",
            "2",
            "--widths",
            "8,16,24",
        ];
        args.extend_from_slice(extra);
        shiftgrad(&args)
    };
    let o = profile(&["--sparsity", "0,0.5"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("== sparsity 0 ==") && out.contains("== sparsity 0.5 =="),
        "{out}"
    );
    assert_eq!(out.matches("over 2 steps").count(), 2, "{out}");
    if opencl {
        assert!(out.contains("sw_fused::sw_fused_forward"), "{out}");
        // A row per region in each report: on OpenCL both networks run the fused op (and
        // merge their two banks under the bank region); no separate shift-add.
        for (region, rows) in [
            ("sw bank convolution", 2),
            ("sw shift-add", 0),
            ("sw fused bank convolution + shift-add", 2),
            ("(the rest)", 2),
        ] {
            let found = out.lines().filter(|l| l.starts_with(region)).count();
            assert_eq!(found, rows, "{region}: {out}");
        }
        let line = out
            .lines()
            .find(|l| l.trim_start().starts_with("sparsity 0.5 "))
            .unwrap_or_else(|| panic!("{out}"));
        assert!(line.contains("% against sparsity 0"), "{line}");
    } else {
        shiftgrad::opencl::skip("profile regions", "no OpenCL device: CPU step times only");
    }
    // Several spatial operators: one report each, then their images/s side by side.
    let o = profile(&["--spatial", "sw,small"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("== sw ==") && out.contains("== small =="),
        "{out}"
    );
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with("small:"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains("x the images/s of sw"), "{line}");
    let base = [
        "profile",
        "--device",
        "cpu",
        "--steps",
        "1",
        "--batch-size",
        "1",
    ];
    assert_fails(
        &base,
        &["--sparsity", "0,1.5"],
        "--sparsity must be in [0, 1)",
    );
    assert_fails(&base, &["--spatial", "sw,round"], "round");
    assert_fails(&base, &["--rounds", "0"], "at least 1");
}

/// `bench`: a row per kind (and `sw*` with a sparsity), times and rates that are numbers, the
/// measured peaks, and clear errors for bad flags.
#[test]
fn bench_times_each_kind_against_the_measured_peaks() {
    let opencl = shiftgrad_opencl_available();
    let device = if opencl { "opencl" } else { "cpu" };
    let o = shiftgrad(&[
        "bench",
        "--kernels",
        "--device",
        device,
        "--batch",
        "1",
        "--channels",
        "8",
        "--height",
        "12",
        "--width",
        "12",
        "--big",
        "7",
        "--small",
        "3",
        "--steps",
        "1",
        "--warmup",
        "0",
        "--sparsity",
        "0.5",
    ]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("measured peaks of this device"), "{out}");
    for kind in ["sw", "sw*", "slak", "dense", "small"] {
        let row = out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(kind))
            .unwrap_or_else(|| panic!("no {kind} row: {out}"));
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols.len(), 12, "{row}");
        for c in [&cols[1..4], &cols[6..]].concat() {
            let v: f64 = c.parse().unwrap_or_else(|_| panic!("{c} in {row}"));
            assert!(v.is_finite() && v >= 0.0, "{row}");
        }
        // Every layer does work, forward and backward.
        assert!(cols[6].parse::<f64>().unwrap() > 0.0, "{row}");
    }
    let slak = out.lines().find(|l| l.starts_with("slak ")).unwrap();
    assert!(slak.contains("1.00x"), "{slak}");
    // --kernels: the fused forward among the sw row's kernels, with a device time.
    if opencl {
        let listing = out
            .split("sw: kernels, device ms per step")
            .nth(1)
            .unwrap_or_else(|| panic!("no kernel listing for sw: {out}"));
        let fused = listing
            .lines()
            .find(|l| l.contains("sw_fused/sw_fused_forward"))
            .unwrap_or_else(|| panic!("no fused forward in {listing}"));
        let ms: f64 = fused.split_whitespace().nth(3).unwrap().parse().unwrap();
        assert!(ms.is_finite() && ms > 0.0, "{fused}");
    } else {
        assert!(out.contains("sw: no OpenCL kernels (CPU backend)"), "{out}");
        shiftgrad::opencl::skip("bench --kernels", "no OpenCL device: CPU rows only");
    }
    let base = [
        "bench",
        "--device",
        "cpu",
        "--batch",
        "1",
        "--channels",
        "8",
    ];
    assert_fails(&base, &["--steps", "0"], "at least 1");
    assert_fails(
        &base,
        &["--sparsity", "1.5"],
        "--sparsity must be in [0, 1)",
    );
    assert_fails(
        &base,
        &["--spatial", "sw,bogus"],
        "unknown spatial operator",
    );
}

#[test]
fn compare_sweeps_sizes_times_rows_and_writes_its_files() {
    let dir = std::env::temp_dir().join(format!("shiftgrad-compare-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let o = shiftgrad(&[
        "compare",
        "--big",
        "7,13",
        "--small",
        "3",
        "--channels",
        "8",
        "--height",
        "10,12",
        "--device",
        "cpu",
        "--steps",
        "2",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.matches("timed on cpu").count(), 4, "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("compare.json")).unwrap()).unwrap();
    let points = json.as_array().unwrap();
    let sizes: Vec<(u64, u64)> = points
        .iter()
        .map(|p| (p["height"].as_u64().unwrap(), p["big"].as_u64().unwrap()))
        .collect();
    assert_eq!(sizes, vec![(10, 7), (10, 13), (12, 7), (12, 13)]);
    for p in points {
        let rows = p["rows"].as_array().unwrap();
        let labels: Vec<&str> = rows.iter().map(|r| r["label"].as_str().unwrap()).collect();
        assert_eq!(labels, ["sw", "sw-merged", "slak", "dense", "small"], "{p}");
        for r in rows {
            let t = &r["timed"];
            let ms = t["forward_ms"].as_f64().unwrap();
            assert!(ms > 0.0 && ms.is_finite(), "{r}");
            assert!(t["forward_min_ms"].as_f64().unwrap() <= ms, "{r}");
            assert!(ms <= t["forward_max_ms"].as_f64().unwrap(), "{r}");
            assert!(t["peak_bytes"].as_u64().unwrap() > 0, "{r}");
        }
        // Merging the P = 2 paths halves the bank's weights and keeps the folded kernel.
        let (sw, merged) = (&rows[0], &rows[1]);
        assert!(merged["params"].as_u64() < sw["params"].as_u64(), "{p}");
        assert_eq!(merged["folded_params"], sw["folded_params"], "{p}");
    }
    let csv = std::fs::read_to_string(dir.join("compare.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 4 * 5, "{csv}");
    assert!(std::fs::read(dir.join("compare.png"))
        .unwrap()
        .starts_with(b"\x89PNG"));
    let _ = std::fs::remove_dir_all(&dir);

    // Bad sizes and flags are errors, not panics.
    for (args, msg) in [
        (vec!["bench", "--big", "7,13"], "take one value here"),
        (
            vec!["compare", "--device", "cpu", "--steps", "0"],
            "--steps and --batch must be at least 1",
        ),
        (vec!["compare", "--height", "0"], "at least 1"),
        (
            vec!["compare", "--big", "7,2", "--small", "3"],
            "big kernel",
        ),
    ] {
        let o = shiftgrad(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        let e = stderr(&o);
        assert!(e.contains(msg) && !e.contains("panicked"), "{args:?}: {e}");
    }
}
