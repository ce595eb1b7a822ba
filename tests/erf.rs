//! `shiftgrad erf` (SPEC 6): a larger big kernel gives a larger effective receptive field on
//! untrained networks; the command writes its three files for untrained networks and for
//! checkpoints; bad flags are clear errors. On Fashion-MNIST where it is installed, else on a
//! synthetic set of its format (SHIFTGRAD_REQUIRE_DATA=1 fails instead).

use indicatif::ProgressBar;
use shiftgrad::cli::erf::{erf_map, log_normalised, squares, ErfModel};
use shiftgrad::nn::data;
use shiftgrad::nn::resnet::ResNetConfig;
use shiftgrad::ops::parity::opencl_device;
use shiftgrad::tensor::Device;
use std::path::{Path, PathBuf};
use std::process::Output;

mod common;

fn tmp(tag: &str) -> PathBuf {
    common::tmp("erf", tag)
}

/// Fashion-MNIST, or a synthetic set in its format.
fn data_dir() -> &'static Path {
    &common::test_data("erf", 128, 64, 3).dir
}

fn shiftgrad(args: &[&str]) -> Output {
    common::shiftgrad_cpu(args)
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The area ratio of the 50 % square of an untrained sw network with `big` at every stage.
fn area50(big: usize, seed: u64) -> f64 {
    let mut config = ResNetConfig::preset("sw-resnet-tiny").unwrap();
    config.big_kernels = vec![big; 3];
    config.seed = seed;
    let mut m = ErfModel::untrained(config, &Device::Cpu).unwrap();
    let test = data::load(data_dir(), data::Split::Test).unwrap();
    let size = 56;
    let map = erf_map(
        &mut m.model,
        &test,
        4,
        size,
        &Device::Cpu,
        &ProgressBar::hidden(),
    )
    .unwrap();
    assert!(map.iter().all(|v| v.is_finite() && *v >= 0.0));
    assert!(map.iter().any(|v| *v > 0.0), "an all-zero ERF");
    let sq = squares(&log_normalised(&map), size);
    assert_eq!(sq[2].fraction, 0.5);
    sq[2].area_ratio
}

#[test]
fn a_larger_big_kernel_gives_a_larger_erf() {
    // Measured (4 images at 56x56, untrained, CPU): big kernels 5: 0.141 (seeds 0 and 1);
    // 13: 0.306 (seed 0), 0.268 (seed 1).
    for seed in [0, 1] {
        let (small, large) = (area50(5, seed), area50(13, seed));
        assert!(
            large > small,
            "seed {seed}: 50 % area ratio {large} with big kernels 13, {small} with 5"
        );
    }
}

#[test]
fn erf_on_opencl_matches_the_cpu() {
    let Some(dev) = opencl_device() else { return };
    let config = ResNetConfig::preset("sw-resnet-tiny").unwrap();
    let test = data::load(data_dir(), data::Split::Test).unwrap();
    let maps: Vec<Vec<f64>> = [Device::Cpu, dev]
        .iter()
        .map(|d| {
            let mut m = ErfModel::untrained(config.clone(), d).unwrap();
            erf_map(&mut m.model, &test, 2, 40, d, &ProgressBar::hidden()).unwrap()
        })
        .collect();
    let max = maps[0].iter().copied().fold(0.0, f64::max);
    let worst = maps[0]
        .iter()
        .zip(&maps[1])
        .map(|(a, b)| (a - b).abs())
        .fold(
            0.0,
            |m: f64, d| if d.is_nan() { f64::INFINITY } else { m.max(d) },
        );
    // Measured on PoCL: 3.2e-5 of the largest value 71.9 (4.5e-7 relative); the tolerance
    // sits 4x above.
    assert!(
        max > 0.0 && worst <= 2e-6 * max,
        "CPU and OpenCL ERF maps differ by {worst} (largest value {max})"
    );
}

#[test]
fn erf_writes_its_files_for_untrained_networks_and_checkpoints() {
    let out = tmp("untrained");
    let dir = data_dir().to_str().unwrap().to_string();
    let o = shiftgrad(&[
        "erf",
        "--spatial",
        "small",
        "--images",
        "3",
        "--size",
        "32",
        "--quiet",
        "--data",
        &dir,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("untrained small"), "{}", text(&o));
    let npy = npyz::NpyFile::new(std::fs::File::open(out.join("erf.npy")).unwrap()).unwrap();
    assert_eq!(npy.shape(), &[1, 32, 32]);
    let maps: Vec<f64> = npy.into_vec().unwrap();
    assert!(maps.iter().all(|v| v.is_finite() && *v >= 0.0) && maps.iter().any(|v| *v > 0.0));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("erf.json")).unwrap()).unwrap();
    let squares = json[0]["squares"].as_array().unwrap();
    let sides: Vec<u64> = squares
        .iter()
        .map(|s| s["side"].as_u64().unwrap())
        .collect();
    assert_eq!(sides.len(), 4);
    assert!(
        sides.windows(2).all(|w| w[0] <= w[1]) && sides[3] <= 32,
        "{sides:?}"
    );
    let png = std::fs::read(out.join("erf.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG"));

    // A checkpoint, named by its run directory and by its file: two identical maps.
    let run = tmp("run");
    let o = shiftgrad(&[
        "train",
        "--widths",
        "8,16",
        "--depths",
        "1,1",
        "--big-kernels",
        "7,5",
        "--epochs",
        "1",
        "--limit",
        "64",
        "--test-limit",
        "32",
        "--batch-size",
        "32",
        "--quiet",
        "--data",
        &dir,
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let out2 = tmp("checkpoint");
    let file = run.join("checkpoint.npz");
    let o = shiftgrad(&[
        "erf",
        "--checkpoint",
        run.to_str().unwrap(),
        "--checkpoint",
        file.to_str().unwrap(),
        "--images",
        "2",
        "--size",
        "24",
        "--quiet",
        "--data",
        &dir,
        "--out",
        out2.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("epoch 1"), "{}", text(&o));
    let npy = npyz::NpyFile::new(std::fs::File::open(out2.join("erf.npy")).unwrap()).unwrap();
    assert_eq!(npy.shape(), &[2, 24, 24]);
    let maps: Vec<f64> = npy.into_vec().unwrap();
    assert_eq!(
        maps[..576],
        maps[576..],
        "the same checkpoint gave two maps"
    );
    let _ = std::fs::remove_dir_all(&run);
    let _ = std::fs::remove_dir_all(&out);
    let _ = std::fs::remove_dir_all(&out2);
}

#[test]
fn bad_erf_flags_are_clear_errors() {
    let out = tmp("bad");
    let dir = data_dir().to_str().unwrap().to_string();
    let o_dir = out.to_str().unwrap();
    let cases: [(&[&str], &str); 6] = [
        (
            &["--checkpoint", "/nonexistent/run", "--spatial", "small"],
            "--spatial describes an untrained network",
        ),
        (&["--size", "4"], "--size must be between 8 and 1024"),
        (&["--images", "0"], "--images must be between 1"),
        (
            &["--checkpoint", "/nonexistent/run"],
            "checkpoint not found",
        ),
        (&["--spatial", "huge"], "huge"),
        (&["--big-kernels", "13,13"], "big"),
    ];
    for (flags, fragment) in cases {
        let mut args = vec!["erf", "--quiet", "--data", &dir, "--out", o_dir];
        args.extend_from_slice(flags);
        let o = shiftgrad(&args);
        let e = text(&o);
        assert_eq!(o.status.code(), Some(1), "{flags:?}: {e}");
        assert!(
            !e.contains("panicked") && e.contains(fragment),
            "{flags:?}: {e}"
        );
    }
    let o = shiftgrad(&[
        "erf",
        "--quiet",
        "--data",
        "/nonexistent/data",
        "--out",
        o_dir,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("/nonexistent/data"), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&out);
}
