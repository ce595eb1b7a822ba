//! Support shared by the integration tests: each test crate that needs it says `mod common;`.
//! Not every crate uses every helper.
#![allow(dead_code)]

use shiftgrad::nn::{data, synthetic};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

/// A temporary directory path for `tag` of the test crate `krate`, unique to this process
/// (removed first if it exists).
pub fn tmp(krate: &str, tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("shiftgrad-{krate}-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// The data the tests train on: Fashion-MNIST where it is installed (`real`), else a
/// synthetic set of its format (`shiftgrad::nn::synthetic`) with `train` and `test` images
/// from `seed`, written once per process, with a line on stderr saying so.
/// SHIFTGRAD_REQUIRE_DATA=1 fails instead of falling back. The first call's sizes hold for
/// the process.
pub struct TestData {
    pub dir: PathBuf,
    pub real: bool,
}

pub fn test_data(krate: &str, train: usize, test: usize, seed: u64) -> &'static TestData {
    static DATA: OnceLock<TestData> = OnceLock::new();
    DATA.get_or_init(|| {
        let dir = data::data_dir(None);
        let found = data::load(&dir, data::Split::Test);
        if found.is_ok() {
            return TestData { dir, real: true };
        }
        assert!(
            !shiftgrad::opencl::required("SHIFTGRAD_REQUIRE_DATA"),
            "SHIFTGRAD_REQUIRE_DATA=1 but Fashion-MNIST is not at {}: {}",
            dir.display(),
            found.err().map(|e| e.to_string()).unwrap_or_default()
        );
        let synth = tmp(krate, "synthetic-data");
        synthetic::write(&synth, train, test, seed).unwrap();
        // Written past the test harness's capture, so that a passing run shows it too.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "{krate} tests: Fashion-MNIST not found at {}; using the synthetic data set written to {} (SHIFTGRAD_REQUIRE_DATA=1 fails instead)",
            dir.display(),
            synth.display()
        );
        TestData {
            dir: synth,
            real: false,
        }
    })
}

/// `shiftgrad ARGS` on the CPU backend (SHIFTGRAD_DEVICE=cpu), as a user runs it.
pub fn shiftgrad_cpu(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shiftgrad"))
        .args(args)
        .env("SHIFTGRAD_DEVICE", "cpu")
        .output()
        .expect("run shiftgrad")
}
