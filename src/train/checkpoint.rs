//! `checkpoint.npz`: the model's state dict, the optimiser state, and three metadata entries
//! (`meta.epoch`, `meta.config_json`, `meta.metrics_json`; text is stored as int32 bytes so
//! that the archive stays plain NumPy).
//!
//! Reading a checkpoint checks everything the training loop would otherwise trust: the text
//! entries are UTF-8 bytes, the configuration parses and passes [`RunConfig::validate`] (a
//! batch size of 0 is an error naming the checkpoint, not a division by zero later), the
//! epoch count is non-negative and agrees with the metric lines, which are numbered 1, 2, ...
//! and do not outnumber the configured epochs. Writing one refuses non-finite values, so a
//! checkpoint never holds a NaN weight or a NaN loss serialised as `null`.
//!
//! The metrics stored in a checkpoint leave out the wall-clock fields (images/s, seconds;
//! zero there), and the archive's members carry a fixed time, so that a run repeated from the
//! same command line writes the same checkpoint byte for byte. `--resume` takes the earlier
//! epochs' times back from `metrics.jsonl` ([`super::metrics::restore_timing`]).

use super::config::RunConfig;
use super::metrics::EpochMetrics;
use shiftgrad_nn::optim::Optimizer;
use shiftgrad_nn::resnet::SwResNet;
use shiftgrad_nn::StateDict;
use shiftgrad_tensor::{Error, Result};
use std::path::Path;

fn bytes_entry(text: &str) -> Vec<i32> {
    text.bytes().map(i32::from).collect()
}

fn text_entry(sd: &StateDict<f32>, name: &str) -> Result<String> {
    let (_, d) = sd.int(name)?;
    let bytes = d
        .iter()
        .map(|&b| u8::try_from(b))
        .collect::<std::result::Result<Vec<u8>, _>>()
        .map_err(|_| Error::Other(format!("{name} holds a value outside the byte range")))?;
    String::from_utf8(bytes).map_err(|_| Error::Other(format!("{name} is not UTF-8 text")))
}

/// Everything a checkpoint holds besides the model and optimiser.
#[derive(Debug, Clone)]
pub struct Meta {
    pub config: RunConfig,
    /// Epochs trained.
    pub epoch: usize,
    pub history: Vec<EpochMetrics>,
}

/// Reads and checks the metadata of a checkpoint's state dict; `path` names it in errors.
pub fn read_meta(sd: &StateDict<f32>, path: &Path) -> Result<Meta> {
    let bad = |what: &dyn std::fmt::Display| {
        Error::file(path, format!("not a shiftgrad training checkpoint: {what}"))
    };
    let config = RunConfig::from_json(&text_entry(sd, "meta.config_json").map_err(|e| bad(&e))?)
        .map_err(|e| bad(&e))?;
    config.validate().map_err(|e| {
        Error::file(
            path,
            format!("the run configuration stored in this checkpoint is invalid: {e}"),
        )
    })?;
    let (_, epoch) = sd.int("meta.epoch").map_err(|e| bad(&e))?;
    let history: Vec<EpochMetrics> =
        serde_json::from_str(&text_entry(sd, "meta.metrics_json").map_err(|e| bad(&e))?)
            .map_err(|e| bad(&format!("meta.metrics_json: {e}")))?;
    let epoch = match epoch {
        [e] => usize::try_from(*e).map_err(|_| bad(&format!("meta.epoch is {e}")))?,
        other => {
            return Err(bad(&format!(
                "meta.epoch holds {} values, expected 1",
                other.len()
            )))
        }
    };
    if history.len() != epoch {
        return Err(bad(&format!(
            "meta.epoch says {epoch} epochs, meta.metrics_json holds {} metric lines",
            history.len()
        )));
    }
    if let Some((i, m)) = history.iter().enumerate().find(|(i, m)| m.epoch != i + 1) {
        return Err(bad(&format!(
            "metric line {} is numbered epoch {}",
            i + 1,
            m.epoch
        )));
    }
    if epoch > config.epochs {
        return Err(bad(&format!(
            "{epoch} epochs trained, more than the {} its configuration plans",
            config.epochs
        )));
    }
    Ok(Meta {
        config,
        epoch,
        history,
    })
}

/// Loads a checkpoint file into a state dict, with the file named in any error.
pub fn load_checkpoint(path: &Path) -> Result<StateDict<f32>> {
    if !path.is_file() {
        return Err(Error::file(path, "checkpoint not found"));
    }
    StateDict::load(path)
}

/// The first float entry of `sd` holding a non-finite value, if any.
pub fn first_non_finite(sd: &StateDict<f32>) -> Option<String> {
    sd.names()
        .find(|name| {
            sd.tensor(name)
                .is_ok_and(|t| !t.all_finite().unwrap_or(false))
        })
        .map(str::to_string)
}

/// Writes the checkpoint of a run that has trained `history.len()` epochs, atomically.
/// Refuses (and writes nothing) when a tensor or a metric is not finite.
pub fn save_checkpoint(
    path: &Path,
    model: &SwResNet<f32>,
    optim: &Optimizer<f32>,
    config: &RunConfig,
    history: &[EpochMetrics],
) -> Result<()> {
    if let Some(m) = history.iter().find(|m| !m.is_finite()) {
        return Err(Error::file(
            path,
            format!(
                "not written: the metrics of epoch {} are not finite: {m:?}",
                m.epoch
            ),
        ));
    }
    let mut sd = model.state_dict()?;
    optim.save_state(&mut sd)?;
    if let Some(name) = first_non_finite(&sd) {
        return Err(Error::file(
            path,
            format!(
                "not written: {name} holds a non-finite value after epoch {}",
                history.len()
            ),
        ));
    }
    sd.insert_int("meta.epoch".into(), &[1], vec![history.len() as i32]);
    let cfg = bytes_entry(&config.to_json());
    sd.insert_int("meta.config_json".into(), &[cfg.len()], cfg);
    // Without the wall-clock fields (they are in metrics.jsonl): the same run writes the same
    // checkpoint, byte for byte.
    let untimed: Vec<EpochMetrics> = history.iter().map(EpochMetrics::without_timing).collect();
    let m = bytes_entry(&serde_json::to_string(&untimed).expect("finite metrics serialise"));
    sd.insert_int("meta.metrics_json".into(), &[m.len()], m);
    sd.save(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::build_model;
    use crate::train::config::OptimName;
    use shiftgrad_tensor::Device;

    fn config() -> RunConfig {
        RunConfig {
            preset: "sw-resnet-tiny".into(),
            spatial: "sw".into(),
            widths: vec![4],
            depths: vec![1],
            big_kernels: vec![5],
            small_kernel: 3,
            ghost_ratio: 0.23,
            n_path: 2,
            n_rep: 2,
            epochs: 2,
            batch_size: 8,
            lr: 0.1,
            optimizer: OptimName::Sgd,
            momentum: 0.9,
            weight_decay: 0.0,
            warmup_epochs: 0.0,
            seed: 1,
            limit: None,
            test_limit: None,
            crop_pad: 0,
            flip: false,
            sparse: None,
            distributed: None,
        }
    }

    fn metrics(epoch: usize, test_loss: f64) -> EpochMetrics {
        EpochMetrics {
            densities: Vec::new(),
            train_loss_steps: Vec::new(),
            epoch,
            lr: 0.1,
            train_loss: 1.0,
            train_acc: 0.5,
            test_loss,
            test_acc: 0.5,
            train_images_per_s: 10.0,
            epoch_seconds: 1.0,
        }
    }

    #[test]
    fn round_trips_and_refuses_non_finite_values() {
        let dir = std::env::temp_dir().join(format!("shiftgrad-ckpt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("checkpoint.npz");
        let cfg = config();
        let model = build_model(&cfg, &Device::Cpu, None).unwrap();
        let optim = Optimizer::new(cfg.optim_kind(), model.named_parameters());
        let history = vec![metrics(1, 2.0)];
        save_checkpoint(&path, &model, &optim, &cfg, &history).unwrap();
        let meta = read_meta(&load_checkpoint(&path).unwrap(), &path).unwrap();
        // Everything but the wall-clock fields, which stay in metrics.jsonl.
        let untimed: Vec<EpochMetrics> = history.iter().map(|m| m.without_timing()).collect();
        assert_eq!(
            (meta.epoch, meta.config, meta.history),
            (1, cfg.clone(), untimed)
        );
        std::fs::remove_file(&path).unwrap();

        // A NaN loss is not written as `null`.
        let e = save_checkpoint(&path, &model, &optim, &cfg, &[metrics(1, f64::NAN)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("not written") && e.contains("epoch 1"), "{e}");
        // Nor a NaN weight.
        let p = &model.named_parameters()[0];
        let bad = p.var.value().map(|_| f32::NAN);
        p.var.set_value(bad).unwrap();
        let e = save_checkpoint(&path, &model, &optim, &cfg, &[metrics(1, 2.0)])
            .unwrap_err()
            .to_string();
        assert!(e.contains(&p.name) && e.contains("non-finite"), "{e}");
        assert!(!path.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
