//! `shiftgrad experiment`, a grid of runs.

use super::*;

/// `shiftgrad experiment`: a two-configuration, one-seed grid on 512 images; a second call
/// skips the finished runs and writes the same results; a longer recipe resumes them; bad
/// recipes fail before any run.
#[test]
fn experiment_runs_a_grid_resumably() {
    let out = tmp("experiment");
    let data = test_data().dir.to_str().unwrap().to_string();
    let run = |epochs: &str, extra: &[&str]| {
        let mut args = vec![
            "experiment",
            "--spatial",
            "sw,small",
            "--seeds",
            "3",
            "--out",
            out.to_str().unwrap(),
            "--epochs",
            epochs,
            "--limit",
            "512",
            "--test-limit",
            "128",
            "--widths",
            "8,16",
            "--depths",
            "1,1",
            "--big-kernels",
            "7,5",
            "--quiet",
            "--data",
            &data,
        ];
        args.extend_from_slice(extra);
        shiftgrad(&args)
    };
    let o = run("1", &[]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(text.matches(": training").count(), 2, "{text}");
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    let rows: Vec<&str> = md.lines().skip(2).collect();
    assert_eq!(rows.len(), 2, "{md}");
    assert!(
        rows[0].starts_with("| sw-M7_5 |") && rows[1].starts_with("| small |"),
        "{md}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    for r in json.as_array().unwrap() {
        let acc = r["test_accuracy_mean"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&acc), "{r}");
        assert_eq!(
            r["seeds"][0]["test_accuracy_by_epoch"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert!(r["forward_flops_per_image"].as_f64().unwrap() > 0.0, "{r}");
    }
    assert!(out.join("results.png").is_file());
    assert!(out.join("sw-M7_5-seed3").join("checkpoint.npz").is_file());

    // Again: nothing trains, the same table.
    let o = run("1", &[]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{text}");
    assert_eq!(text.matches("finished, skipped").count(), 2, "{text}");
    assert_eq!(std::fs::read_to_string(out.join("results.md")).unwrap(), md);

    // Two epochs: both runs resume from their checkpoints.
    let o = run("2", &[]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        text.matches("resuming after epoch 1 of 2").count(),
        2,
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(
        json[0]["seeds"][0]["test_accuracy_by_epoch"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Flags the experiment owns, and a bad train flag, fail before anything runs.
    let fresh = tmp("experiment-bad");
    for (extra, msg) in [
        (vec!["--resume", "x"], "--resume is not a recipe flag"),
        (vec!["--seed", "1"], "--seed is not a recipe flag"),
        (vec!["--lr", "fast"], "invalid value"),
    ] {
        let mut args = vec![
            "experiment",
            "--out",
            fresh.to_str().unwrap(),
            "--data",
            &data,
        ];
        args.extend_from_slice(&extra);
        assert_error(&shiftgrad(&args), &[msg]);
        assert!(!fresh.exists(), "{extra:?} created the directory");
    }
    let _ = std::fs::remove_dir_all(&out);
}
