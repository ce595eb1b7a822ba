//! A corpus of bad inputs, built here in a scratch directory, each of which must be an error
//! whose message names the problem (and the file), never a panic and never a "successful"
//! load: IDX files for the data loader, and `.npz` checkpoints (written with the project's own
//! `StateDict::save`, then corrupted) for `StateDict::load` and `Module::load_state`.
//!
//! Every load runs under `catch_unwind`, so a panic is reported as a failure of the case that
//! caused it rather than as an anonymous test crash. The training-run `--resume` cases are in
//! tests/train/.

use shiftgrad::nn::data::{self, Split};
use shiftgrad::nn::resnet::{ResNetConfig, SwResNet};
use shiftgrad::nn::{Module, SpatialKind, StateDict};
use shiftgrad::tensor::io::NpzWriter;
use shiftgrad::tensor::Tensor;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// A fresh, empty scratch directory unique to this process and `tag`.
fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("shiftgrad-bad-inputs-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs `f`, which must fail without panicking, with an error containing every one of `want`.
fn expect_err<T: std::fmt::Debug>(
    case: &str,
    want: &[&str],
    f: impl FnOnce() -> shiftgrad::tensor::Result<T>,
) {
    let outcome = catch_unwind(AssertUnwindSafe(f));
    let e = match outcome {
        Err(_) => panic!("{case}: panicked instead of returning an error"),
        Ok(Ok(v)) => panic!("{case}: loaded without error: {v:?}"),
        Ok(Err(e)) => e.to_string(),
    };
    eprintln!("{case}: {e}");
    for w in want {
        assert!(e.contains(w), "{case}: error lacks {w:?}: {e}");
    }
}

mod checkpoints;
mod idx;
