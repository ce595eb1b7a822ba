//! Bad flags, bad data and bad checkpoints given to `shiftgrad train`: clear errors that lose
//! nothing.

use super::*;

#[test]
fn bad_inputs_are_clear_errors_and_lose_nothing() {
    let dir = tmp("bad");
    std::fs::create_dir_all(&dir).unwrap();
    // A missing data directory.
    let o = shiftgrad(&[
        "train",
        "--data",
        dir.join("nowhere").to_str().unwrap(),
        "--out",
        dir.join("r").to_str().unwrap(),
    ]);
    assert_error(&o, &["nowhere", "data directory not found"]);
    // A data file with a wrong magic number names the file.
    let bad = dir.join("bad-data");
    std::fs::create_dir_all(&bad).unwrap();
    for f in [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ] {
        std::fs::write(
            bad.join(f),
            [0u8, 0, 8, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0],
        )
        .unwrap();
    }
    let o = shiftgrad(&[
        "train",
        "--data",
        bad.to_str().unwrap(),
        "--out",
        dir.join("r2").to_str().unwrap(),
    ]);
    assert_error(&o, &["train-images-idx3-ubyte", "wrong magic number"]);
    // Not a checkpoint, and a missing one.
    let junk = dir.join("junk.npz");
    std::fs::write(&junk, b"not a zip").unwrap();
    let o = shiftgrad(&["eval", "--checkpoint", junk.to_str().unwrap()]);
    assert_error(&o, &["junk.npz"]);
    let none = dir.join("none.npz");
    let o = shiftgrad(&["eval", "--checkpoint", none.to_str().unwrap()]);
    assert_error(&o, &["none.npz", "not found"]);
    // Bad flags.
    let r3 = dir.join("r3");
    let o = shiftgrad(&["train", "--spatial", "huge", "--out", r3.to_str().unwrap()]);
    assert_error(&o, &["unknown spatial operator"]);
}

#[test]
fn a_fresh_run_does_not_replace_a_finished_one() {
    let out = tmp("no-overwrite");
    let data = test_data().dir.to_str().unwrap().to_string();
    let dir = out.to_str().unwrap().to_string();
    let args = |extra: &[&'static str]| {
        let mut a: Vec<String> = [
            "train",
            "--quiet",
            "--limit",
            "64",
            "--test-limit",
            "64",
            "--epochs",
            "1",
            "--widths",
            "8,16",
            "--depths",
            "1,1",
            "--big-kernels",
            "7,5",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend([
            "--data".to_string(),
            data.clone(),
            "--out".to_string(),
            dir.clone(),
        ]);
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let run = |a: &[String]| shiftgrad(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let o = run(&args(&[]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ckpt = std::fs::read(out.join("checkpoint.npz")).unwrap();
    // Again into the same directory: refused, and the run is untouched.
    assert_error(
        &run(&args(&["--seed", "5"])),
        &["already holds a run", "--resume", "--overwrite"],
    );
    assert_eq!(std::fs::read(out.join("checkpoint.npz")).unwrap(), ckpt);
    // With --overwrite it starts again (another seed: another checkpoint).
    let o = run(&args(&["--seed", "5", "--overwrite"]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_ne!(std::fs::read(out.join("checkpoint.npz")).unwrap(), ckpt);
}

/// A tampering case: a tag, an edit of the checkpoint (or its configuration), and the
/// expected message.
type Case<T> = (&'static str, fn(&mut T), &'static str);

#[test]
fn bad_resumes_are_clear_errors() {
    // Every case runs; the failures are reported together at the end.
    let mut failures = Vec::new();
    let mut expect = |case: &str, o: &Output, fragments: &[&str]| {
        if let Err(e) = check_error(o, fragments) {
            failures.push(format!("{case}: {e}"));
        }
    };
    let resume_dir = |d: &Path| d.to_str().unwrap().to_string();
    // A missing run directory, and a directory without a checkpoint.
    let none = tmp("no-run");
    let o = shiftgrad(&["train", "--resume", &resume_dir(&none)]);
    expect("missing dir", &o, &["no-run", "no such run directory"]);
    let empty = tmp("empty-run");
    std::fs::create_dir_all(&empty).unwrap();
    let o = shiftgrad(&["train", "--resume", &resume_dir(&empty)]);
    expect(
        "no checkpoint",
        &o,
        &["checkpoint.npz", "checkpoint not found"],
    );

    // Stored configurations that fail validation: errors naming the checkpoint.
    let invalid: [Case<RunConfig>; 4] = [
        (
            "batch0",
            |c| c.batch_size = 0,
            "batch size must be at least 1",
        ),
        ("epochs0", |c| c.epochs = 0, "epochs and batch size"),
        ("widths", |c| c.widths.clear(), "must list the same number"),
        ("lr", |c| c.lr = -1.0, "learning rate must be positive"),
    ];
    for (tag, change, msg) in invalid {
        let dir = copy_run(&format!("cfg-{tag}"));
        tamper_config(&dir, change);
        let o = shiftgrad(&["train", "--resume", &resume_dir(&dir)]);
        let what = [
            "checkpoint.npz",
            "configuration stored in this checkpoint is invalid",
            msg,
        ];
        expect(tag, &o, &what);
        // eval refuses it too.
        let ckpt = dir.join("checkpoint.npz");
        let o = shiftgrad(&["eval", "--checkpoint", ckpt.to_str().unwrap()]);
        expect(&format!("eval {tag}"), &o, &["checkpoint.npz", msg]);
    }

    // Metadata that disagrees with itself.
    let inconsistent: [Case<StateDict<f32>>; 6] = [
        (
            "epoch-vs-metrics",
            |sd| sd.insert_int("meta.epoch".into(), &[1], vec![1]),
            "meta.epoch says 1 epochs, meta.metrics_json holds 2 metric lines",
        ),
        (
            "negative-epoch",
            |sd| sd.insert_int("meta.epoch".into(), &[1], vec![-1]),
            "meta.epoch is -1",
        ),
        (
            "not-text",
            |sd| sd.insert_int("meta.config_json".into(), &[2], vec![123, 300]),
            "meta.config_json holds a value outside the byte range",
        ),
        (
            "null-loss",
            |sd| {
                edit_text(sd, "meta.metrics_json", |t| {
                    let i = t.find("\"test_loss\":").unwrap() + "\"test_loss\":".len();
                    let j = i + t[i..].find(',').unwrap();
                    format!("{}null{}", &t[..i], &t[j..])
                })
            },
            "meta.metrics_json",
        ),
        (
            "renumbered",
            |sd| {
                edit_text(sd, "meta.metrics_json", |t| {
                    t.replace("\"epoch\":2", "\"epoch\":5")
                })
            },
            "metric line 2 is numbered epoch 5",
        ),
        (
            "more-than-planned",
            |sd| {
                edit_text(sd, "meta.config_json", |t| {
                    let mut c = RunConfig::from_json(t).unwrap();
                    c.epochs = 1;
                    c.to_json()
                })
            },
            "2 epochs trained, more than the 1 its configuration plans",
        ),
    ];
    for (tag, change, msg) in inconsistent {
        let dir = copy_run(&format!("meta-{tag}"));
        tamper(&dir, change);
        let o = shiftgrad(&["train", "--resume", &resume_dir(&dir), "--epochs", "3"]);
        let what = ["checkpoint.npz", "not a shiftgrad training checkpoint", msg];
        expect(tag, &o, &what);
    }

    // Flags that would change the run are refused, by name; --out too.
    let dir = copy_run("flags");
    let d = resume_dir(&dir);
    for (extra, msg) in [
        (
            vec!["--lr", "0.2"],
            "train: --lr cannot be changed on --resume (the run's configuration is in its checkpoint)",
        ),
        (
            vec!["--preset", "sw-resnet-20", "--batch-size", "8", "--no-flip"],
            "train: --preset, --batch-size, --no-flip cannot be changed on --resume",
        ),
        (vec!["--seed", "0"], "--seed cannot be changed"),
        (vec!["--widths", "8,16"], "--widths cannot be changed"),
        (vec!["--out", "elsewhere"], "--out cannot be used with --resume"),
        (
            vec!["--epochs", "1"],
            "--epochs 1 is fewer than the 2 epochs the run in",
        ),
    ] {
        let mut args = vec!["train", "--resume", &d];
        args.extend(&extra);
        let o = shiftgrad(&args);
        expect(&extra.join(" "), &o, &[msg]);
    }
    // The accepted ones: the finished run has nothing to do and says so.
    let o = shiftgrad(&[
        "train", "--resume", &d, "--epochs", "2", "--device", "cpu", "--data", "unused",
    ]);
    let e = String::from_utf8_lossy(&o.stderr);
    if !(o.status.success() && e.contains("nothing to do")) {
        failures.push(format!("accepted flags: {e}"));
    }
    let meta_path = dir.join("checkpoint.npz");
    let meta = read_meta(&load_checkpoint(&meta_path).unwrap(), &meta_path).unwrap();
    assert_eq!(meta.config, tiny_config());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn an_incompatible_checkpoint_is_an_error_naming_the_entry() {
    let ckpt = base_run().join("checkpoint.npz");
    let sd = load_checkpoint(&ckpt).unwrap();
    let mut other = tiny_config();
    other.widths = vec![8, 24];
    let e = build_model(&other, &Device::Cpu, Some(&sd))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("stages.1") && e.contains("shape"), "{e}");
}
