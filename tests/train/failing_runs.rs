//! Runs that cannot go on: a diverging run, and data sets too small or empty.

use super::*;

#[test]
fn a_diverging_run_stops_naming_the_parameter_and_keeps_its_checkpoint() {
    // A learning rate that overflows f32: every parameter is infinite or NaN after the first
    // update, while the loss of that step is still finite. No checkpoint exists yet.
    let out = tmp("diverge-fresh");
    let cfg = RunConfig {
        lr: 1e300,
        ..tiny_config()
    };
    let e = train(job(&out, Start::Fresh(Box::new(cfg)), &Device::Cpu, None))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("parameter ")
            && e.contains("became non-finite")
            && e.contains("more parameters")
            && e.contains("epoch 1 step 1 of 2")
            && e.contains("no checkpoint was written yet"),
        "{e}"
    );
    assert!(!out.join("checkpoint.npz").exists());

    // The same learning rate in a resumed run: it stops in its first step, and the last good
    // checkpoint (epoch 2) is untouched, loadable, and evaluates to its logged accuracy.
    let dir = copy_run("diverge-resume");
    tamper_config(&dir, |c| c.lr = 1e300);
    let ckpt = dir.join("checkpoint.npz");
    let before = std::fs::read(&ckpt).unwrap();
    let e = train(job(&dir, resume(Some(3)), &Device::Cpu, None))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("became non-finite")
            && e.contains("epoch 3 step 1 of 2")
            && e.contains("last good checkpoint (epoch 2)"),
        "{e}"
    );
    assert_eq!(std::fs::read(&ckpt).unwrap(), before, "checkpoint changed");
    let sd = load_checkpoint(&ckpt).unwrap();
    let meta = read_meta(&sd, &ckpt).unwrap();
    assert_eq!(meta.epoch, 2);
    let mut model = build_model(&meta.config, &Device::Cpu, Some(&sd)).unwrap();
    let mut test = data::load(&test_data().dir, data::Split::Test).unwrap();
    test.truncate(64);
    let (_, acc) = evaluate(&mut model, &test, &Device::Cpu).unwrap();
    assert_eq!(acc, meta.history[1].test_acc);
    let metrics = shiftgrad::train::metrics::read_jsonl(&dir.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.len(), 2);

    // An injected NaN in one momentum buffer of the checkpoint: the resume refuses the
    // checkpoint, naming the entry, and leaves it as it was. (The per-step parameter check
    // that would catch such a NaN in training is exercised by the 1e300 learning rate above
    // and unit-tested in src/train/finite.rs.)
    let dir = copy_run("diverge-nan");
    let key = "optim.stages.1.blocks.0.pw.weight.slot1";
    tamper(&dir, |sd| {
        let t = sd.tensor(key).unwrap().map(|_| f32::NAN);
        sd.insert(key.into(), t).unwrap();
    });
    let before = std::fs::read(dir.join("checkpoint.npz")).unwrap();
    let e = train(job(&dir, resume(Some(3)), &Device::Cpu, None))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains(&format!("{key} holds NaN at element 0")), "{e}");
    assert_eq!(std::fs::read(dir.join("checkpoint.npz")).unwrap(), before);

    // An injected NaN in a weight: refused at load as well, naming the weight.
    let dir = copy_run("diverge-loss");
    tamper(&dir, |sd| {
        let t = sd.tensor("head.weight").unwrap().map(|_| f32::NAN);
        sd.insert("head.weight".into(), t).unwrap();
    });
    let e = train(job(&dir, resume(Some(3)), &Device::Cpu, None))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("head.weight holds NaN"), "{e}");

    // A finite but huge head weight: the logits overflow and the loss of the first step is
    // not finite, so the loss check stops the run.
    let dir = copy_run("diverge-loss-huge");
    tamper(&dir, |sd| {
        let t = sd.tensor("head.weight").unwrap().map(|_| 3e38f32);
        sd.insert("head.weight".into(), t).unwrap();
    });
    let e = train(job(&dir, resume(Some(3)), &Device::Cpu, None))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("non-finite loss") && e.contains("epoch 3 step 1"),
        "{e}"
    );
}

#[test]
fn empty_and_small_data_sets() {
    let cpu = Device::Cpu;
    // No training images, and no test images: errors naming the file, not 0/0.
    for (train_n, test_n, file, what) in [
        (0, 16, "train-images-idx3-ubyte", "training set"),
        (48, 0, "t10k-images-idx3-ubyte", "test set"),
    ] {
        let dir = tmp(&format!("empty-{train_n}-{test_n}"));
        synthetic::write(&dir, train_n, test_n, 1).unwrap();
        let out = dir.join("run");
        let e = TrainJob {
            data_dir: dir.clone(),
            ..job(&out, Start::Fresh(Box::new(tiny_config())), &cpu, None)
        };
        let e = train(e).err().unwrap().to_string();
        assert!(
            e.contains(file) && (e.contains(what) || e.contains("no images")),
            "{e}"
        );
        assert!(!out.join("checkpoint.npz").exists());
    }
    // --limit and --test-limit beyond the set's size use the whole set (48 images in one
    // batch of 32: one step per epoch).
    let dir = tmp("small-set");
    synthetic::write(&dir, 48, 16, 2).unwrap();
    let cfg = RunConfig {
        epochs: 1,
        limit: Some(100_000),
        test_limit: Some(100_000),
        ..tiny_config()
    };
    let out = dir.join("run");
    let o = TrainJob {
        data_dir: dir.clone(),
        ..job(&out, Start::Fresh(Box::new(cfg)), &cpu, None)
    };
    let o = train(o).unwrap();
    assert_eq!(o.history.len(), 1);
    assert!(o.history[0].is_finite());
    // eval --limit 0 is refused; a test set of 0 images is an error.
    let o = shiftgrad(&[
        "eval",
        "--checkpoint",
        out.join("checkpoint.npz").to_str().unwrap(),
        "--data",
        dir.to_str().unwrap(),
        "--limit",
        "0",
    ]);
    assert_error(&o, &["--limit must be at least 1"]);
}
