//! Tier 3 of the gradient evidence for the shift-add: golden values from PyTorch.
//!
//! Regenerate with `python tests/golden/shift_add_generate.py` (from the repository root; needs
//! torch and numpy). The script computes SPEC 1.3 by slicing a zero-padded `Y` in PyTorch, an
//! implementation independent of ours, and the gradient of `Y` by torch autograd of
//! `sum(h*gh + v*gv + i*gi)`. Here the same tables go through `ShiftTables::from_arrays`
//! (validated), and outputs and gradient must agree to 1e-12.

use shiftgrad::autograd::Var;
use shiftgrad::ops::shift_add::{shift_add, ShiftTables};
use shiftgrad::ops::{add_n, mul, sum};
use shiftgrad::tensor::compare::{assert_close, Scale};
use shiftgrad::tensor::{io::read_npy, Tensor};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::rc::Rc;

fn golden_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("golden");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|d| d.unwrap().path())
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("shift_add_"))
        })
        .collect();
    dirs.sort();
    dirs
}

fn ints<T: npyz::Deserialize>(path: &Path) -> (Vec<u64>, Vec<T>) {
    let f = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let npy = npyz::NpyFile::new(BufReader::new(f)).unwrap();
    let shape = npy.shape().to_vec();
    (shape, npy.into_vec::<T>().unwrap())
}

fn floats(dir: &Path, name: &str) -> Tensor<f64> {
    read_npy(dir.join(format!("{name}.npy"))).unwrap()
}

fn check(dir: &Path) {
    let what = dir.file_name().unwrap().to_string_lossy().to_string();
    let (_, params) = ints::<i64>(&dir.join("params.npy"));
    let [big, small, reps, groups] =
        [params[0], params[1], params[2], params[3]].map(|v| v as usize);
    let (pad_shape, pad_hv) = ints::<i32>(&dir.join("pad_hv.npy"));
    let (idx_shape, idx_identit) = ints::<i32>(&dir.join("idx_identit.npy"));
    let nk = big.div_ceil(small) as u64;
    assert_eq!(pad_shape, [reps as u64 * nk, 2 * groups as u64], "{what}");
    assert_eq!(idx_shape, [reps as u64, groups as u64], "{what}");
    let tables = Rc::new(
        ShiftTables::from_arrays(big, small, reps, groups, pad_hv, idx_identit)
            .unwrap_or_else(|e| panic!("{what}: {e}")),
    );

    let y = Var::param(floats(dir, "y"));
    let (h, v, i) = shift_add(&y, &tables).unwrap();
    for (got, name) in [(&h, "h"), (&v, "v"), (&i, "i")] {
        let want = floats(dir, name);
        assert_close(
            &format!("{what} {name}"),
            &got.value(),
            &want,
            Scale::Absolute,
            1e-12,
        );
    }
    // The gradient of sum(h*gh + v*gv + i*gi).
    // One backward through the three outputs together (the op is one graph node).
    let dot =
        |out: &Var<f64>, g: &str| sum(&mul(out, &Var::constant(floats(dir, g))).unwrap()).unwrap();
    let (sh, sv, si) = (dot(&h, "gh"), dot(&v, "gv"), dot(&i, "gi"));
    add_n(&[&sh, &sv, &si]).unwrap().backward().unwrap();
    let gy = y.grad().clone().unwrap();
    assert_close(
        &format!("{what} gy"),
        &gy,
        &floats(dir, "gy"),
        Scale::Absolute,
        1e-12,
    );
}

#[test]
fn shift_add_matches_pytorch() {
    let dirs = golden_dirs();
    let names: Vec<String> = dirs
        .iter()
        .map(|d| d.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    for expected in ["shift_add_m13_k3", "shift_add_m51_k5", "shift_add_m10_k3"] {
        assert!(
            names.iter().any(|n| n == expected),
            "missing {expected} in {names:?}"
        );
    }
    for d in &dirs {
        check(d);
    }
}
