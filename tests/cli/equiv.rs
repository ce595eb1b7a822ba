//! `shiftgrad equiv`: the SW operator against its dense kernels, dense and sparse.

use super::*;

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
fn equiv_with_a_sparse_bank_agrees_and_reports_the_live_kernels() {
    for (big, small, g, dtype, tol) in [
        ("51", "5", "4", "f64", "1e-12"),
        ("13", "3", "1", "f64", "1e-12"),
        ("10", "3", "3", "f64", "1e-12"),
        ("49", "3", "4", "f32", "1e-5"),
    ] {
        let o = shiftgrad(&[
            "equiv",
            "--sparsity",
            "0.5",
            "--big",
            big,
            "--small",
            small,
            "--n-rep",
            g,
            "--channels",
            "4",
            "--dtype",
            dtype,
        ]);
        let out = stdout(&o);
        assert!(o.status.success(), "M={big} k={small}: {out}{}", stderr(&o));
        let nk = (big.parse::<usize>().unwrap()).div_ceil(small.parse().unwrap());
        // Exactly round(0.5 * 4 nk) live; 4 nk is even.
        let live = format!("sparse bank: {} of {} small kernels live", 2 * nk, 4 * nk);
        assert!(out.contains(&live), "{live}:\n{out}");
        assert!(out.contains(&format!("tolerance {tol}: equal")), "{out}");
        assert!(
            out.contains("exactly the blocks whose kernels are all pruned"),
            "{out}"
        );
    }
    // With one group every pruned kernel empties one block of each long kernel.
    let o = shiftgrad(&[
        "equiv",
        "--sparsity",
        "0.5",
        "--big",
        "13",
        "--small",
        "3",
        "--n-rep",
        "1",
        "--channels",
        "4",
    ]);
    assert!(
        stdout(&o).contains("horizontal 10/20, vertical 10/20"),
        "{}",
        stdout(&o)
    );
    // Sparsity 0 prints no mask line (the dense ops, as before).
    let o = shiftgrad(&["equiv", "--big", "13", "--small", "3"]);
    assert!(o.status.success());
    assert!(!stdout(&o).contains("sparse bank"), "{}", stdout(&o));
}

#[test]
fn equiv_sparse_writes_the_mask_and_the_masked_bank() {
    let dir = std::env::temp_dir().join(format!("shiftgrad-cli-sparse-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("eq.npz");
    let o = shiftgrad(&[
        "equiv",
        "--sparsity",
        "0.3",
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
    let mut r = shiftgrad::tensor::io::NpzReader::open(&path).unwrap();
    let (shape, mask) = r.int32("mask").unwrap();
    assert_eq!(shape.dims(), [10]);
    assert_eq!(mask.iter().filter(|&&m| m == 1).count(), 7); // round(0.7 * 10)
    assert!(mask.iter().all(|&m| m == 0 || m == 1));
    let bank: shiftgrad::tensor::Tensor<f64> = r.tensor("bank").unwrap();
    for (c, &m) in mask.iter().enumerate() {
        let kernel = &bank.data()[c * 9..(c + 1) * 9];
        assert_eq!(kernel.iter().all(|&v| v == 0.0), m == 0, "kernel {c}");
    }
    std::fs::remove_dir_all(&dir).ok();
}
