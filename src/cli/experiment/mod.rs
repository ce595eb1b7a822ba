//! `shiftgrad experiment`: one training recipe over a grid of configurations and seeds, each
//! run in its own directory, then a table, a JSON file and a picture of the results.
//!
//! The grid: every spatial operator of `--spatial`, times every `--big-kernels` set (for the
//! operators with a big kernel), and for `sw` every `--sparsity`, `--n-rep` and
//! `--ghost-ratio`; every configuration with every seed of `--seeds`. Each run is an ordinary
//! `shiftgrad train` run in `OUT/<label>-seed<s>`, started from the same recipe (every other
//! `train` flag), so the same seed gives every configuration the same data order and
//! augmentation (they are drawn from the seed and the epoch only). Runs are resumable: a
//! finished run (its checkpoint at the recipe's epochs) is skipped, an unfinished one resumes
//! (`train --resume`, to the recipe's epochs), a missing one starts. A run keeps the
//! configuration of its checkpoint: a changed recipe does not retrain existing runs (only a
//! larger `--epochs` extends them).
//!
//! Results come from each run's own files (`checkpoint.npz`, `summary.json`): parameters as
//! trained (live ones in a sparse run) and deployed (sw: the P paths merged into one bank;
//! slak, dense, small: each spatial operator folded into one depthwise kernel), the forward and
//! backward FLOPs per image, the peak device memory, the training images/s, and the final test
//! accuracy as the mean and sample standard deviation (n - 1) over the seeds.

use crate::train::metrics::{write_atomic, Summary};
use crate::train::{build_model, load_checkpoint, read_meta};
use serde::Serialize;
use shiftgrad_nn::baselines::SpatialKind;
use shiftgrad_nn::reparam::merge_paths;
use shiftgrad_nn::resnet::SwResNet;
use shiftgrad_tensor::{Device, Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

mod plot;
use plot::draw;

/// The grid of configurations and seeds.
#[derive(Debug, Clone)]
pub struct Grid {
    pub spatial: Vec<SpatialKind>,
    pub seeds: Vec<u64>,
    /// Per-stage big-kernel sets (none: the preset's).
    pub big_kernels: Vec<Option<Vec<usize>>>,
    /// For sw only.
    pub sparsity: Vec<f64>,
    pub n_rep: Vec<Option<usize>>,
    pub ghost_ratio: Vec<Option<f64>>,
}

/// One configuration of the grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub spatial: SpatialKind,
    pub big_kernels: Option<Vec<usize>>,
    pub sparsity: f64,
    pub n_rep: Option<usize>,
    pub ghost_ratio: Option<f64>,
}

impl Config {
    /// A label naming what differs from the recipe, also the run directory's stem.
    pub fn label(&self) -> String {
        let mut s = self.spatial.to_string();
        if let (Some(b), false) = (&self.big_kernels, self.spatial == SpatialKind::Small) {
            let b: Vec<String> = b.iter().map(|k| k.to_string()).collect();
            s += &format!("-M{}", b.join("_"));
        }
        if let Some(g) = self.n_rep {
            s += &format!("-G{g}");
        }
        if let Some(r) = self.ghost_ratio {
            s += &format!("-ghost{r}");
        }
        if self.sparsity > 0.0 {
            s += &format!("-sparse{}", self.sparsity);
        }
        s
    }

    /// The `train` flags of this configuration.
    pub fn flags(&self) -> Vec<String> {
        let mut f = vec!["--spatial".to_string(), self.spatial.to_string()];
        if let Some(b) = &self.big_kernels {
            let b: Vec<String> = b.iter().map(|k| k.to_string()).collect();
            f.extend(["--big-kernels".into(), b.join(",")]);
        }
        if let Some(g) = self.n_rep {
            f.extend(["--n-rep".into(), g.to_string()]);
        }
        if let Some(r) = self.ghost_ratio {
            f.extend(["--ghost-ratio".into(), r.to_string()]);
        }
        if self.sparsity > 0.0 {
            f.extend(["--sparsity".into(), self.sparsity.to_string()]);
        }
        f
    }
}

impl Grid {
    /// Every configuration, in the order of the flags' values.
    pub fn configs(&self) -> Vec<Config> {
        let mut out = Vec::new();
        for &spatial in &self.spatial {
            // The small operator has no big kernel: one set stands for all (the first: the
            // network still validates its per-stage list).
            let bigs = match spatial {
                SpatialKind::Small => &self.big_kernels[..self.big_kernels.len().min(1)],
                _ => &self.big_kernels[..],
            };
            for big in bigs {
                if spatial != SpatialKind::Sw {
                    out.push(Config {
                        spatial,
                        big_kernels: big.clone(),
                        sparsity: 0.0,
                        n_rep: None,
                        ghost_ratio: None,
                    });
                    continue;
                }
                for &sparsity in &self.sparsity {
                    for &n_rep in &self.n_rep {
                        for &ghost_ratio in &self.ghost_ratio {
                            out.push(Config {
                                spatial,
                                big_kernels: big.clone(),
                                sparsity,
                                n_rep,
                                ghost_ratio,
                            });
                        }
                    }
                }
            }
        }
        out
    }
}

/// What one run directory holds.
enum RunState {
    Missing,
    /// Epochs done, epochs planned.
    Partial(usize),
    Done,
}

fn run_state(dir: &Path, epochs: usize) -> Result<RunState> {
    let ckpt = dir.join("checkpoint.npz");
    if !ckpt.is_file() {
        return Ok(RunState::Missing);
    }
    let meta = read_meta(&load_checkpoint(&ckpt)?, &ckpt)?;
    Ok(
        match meta.epoch >= epochs && dir.join("summary.json").is_file() {
            true => RunState::Done,
            false => RunState::Partial(meta.epoch),
        },
    )
}

/// One seed's numbers.
#[derive(Debug, Clone, Serialize)]
pub struct SeedResult {
    pub seed: u64,
    pub dir: PathBuf,
    pub test_accuracy: f64,
    /// Test accuracy after each epoch.
    pub test_accuracy_by_epoch: Vec<f64>,
    pub train_images_per_s: f64,
}

/// One configuration's numbers over its seeds.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigResult {
    pub label: String,
    pub spatial: String,
    pub big_kernels: Vec<usize>,
    pub sparsity: f64,
    pub n_rep: usize,
    pub ghost_ratio: f64,
    /// As trained (live parameters in a sparse run).
    pub params: usize,
    /// Deployed: sw with its P paths merged (still shift-wise); the others folded.
    pub params_merged: usize,
    pub forward_flops_per_image: f64,
    pub backward_flops_per_image: f64,
    pub peak_device_memory_bytes: u64,
    /// Mean over the seeds.
    pub train_images_per_s: f64,
    pub test_accuracy_mean: f64,
    /// Sample standard deviation (n - 1); 0 for one seed.
    pub test_accuracy_std: f64,
    pub seeds: Vec<SeedResult>,
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n.max(1.0);
    let var = match v.len() {
        0 | 1 => 0.0,
        _ => v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0),
    };
    (mean, var.sqrt())
}

/// The deployed form: a shift-wise network with its P paths merged into one bank (it stays
/// shift-wise, as the paper deploys it); the others with each spatial operator folded into one
/// depthwise kernel (structural re-parameterisation, as SLaK deploys).
fn deploy(model: &mut SwResNet<f32>, spatial: SpatialKind) -> Result<()> {
    match spatial {
        SpatialKind::Sw => {
            for (_, sw) in model.sw_layers_mut() {
                merge_paths(sw)?;
            }
            Ok(())
        }
        _ => model.reparameterize(),
    }
}

/// Reads a finished configuration's runs.
fn collect(config: &Config, runs: &[(u64, PathBuf)]) -> Result<ConfigResult> {
    let mut seeds = Vec::new();
    let mut first: Option<(Summary, crate::train::checkpoint::Meta, usize)> = None;
    for (seed, dir) in runs {
        let ckpt = dir.join("checkpoint.npz");
        let sd = load_checkpoint(&ckpt)?;
        let meta = read_meta(&sd, &ckpt)?;
        let path = dir.join("summary.json");
        let text = std::fs::read_to_string(&path).map_err(|e| Error::file(&path, e))?;
        let summary: Summary = serde_json::from_str(&text)
            .map_err(|e| Error::file(&path, format!("not a run summary: {e}")))?;
        seeds.push(SeedResult {
            seed: *seed,
            dir: dir.clone(),
            test_accuracy: summary.final_test_accuracy,
            test_accuracy_by_epoch: meta.history.iter().map(|m| m.test_acc).collect(),
            train_images_per_s: summary.train_images_per_s,
        });
        if first.is_none() {
            let mut model = build_model(&meta.config, &Device::Cpu, Some(&sd))?;
            deploy(&mut model, config.spatial)?;
            first = Some((summary, meta, model.parameter_count()));
        }
    }
    let (summary, meta, params_merged) =
        first.ok_or_else(|| Error::arg("experiment", "--seeds lists no seed"))?;
    let accs: Vec<f64> = seeds.iter().map(|s| s.test_accuracy).collect();
    let (test_accuracy_mean, test_accuracy_std) = mean_std(&accs);
    let ips: Vec<f64> = seeds.iter().map(|s| s.train_images_per_s).collect();
    let c = &meta.config;
    Ok(ConfigResult {
        label: config.label(),
        spatial: c.spatial.clone(),
        big_kernels: c.big_kernels.clone(),
        sparsity: config.sparsity,
        n_rep: c.n_rep,
        ghost_ratio: c.ghost_ratio,
        params: summary.live_parameters.unwrap_or(summary.parameters),
        params_merged,
        forward_flops_per_image: summary.forward_flops_per_image,
        backward_flops_per_image: summary.backward_flops_per_image,
        peak_device_memory_bytes: summary.peak_device_memory_bytes,
        train_images_per_s: mean_std(&ips).0,
        test_accuracy_mean,
        test_accuracy_std,
        seeds,
    })
}

/// Runs (or skips, or resumes) every run of the grid through `train` (given a `train`
/// command line, without the program name), then writes `results.md`, `results.json` and
/// `results.png` into `out_dir`. `recipe` holds the shared `train` flags and `epochs` the
/// epochs they ask for; `resume_flags` are those of them `--resume` accepts (device, data,
/// quiet).
pub fn run(
    grid: &Grid,
    out_dir: &Path,
    recipe: &[String],
    epochs: usize,
    resume_flags: &[String],
    train: &mut dyn FnMut(Vec<String>) -> Result<()>,
    out: &mut dyn Write,
) -> Result<Vec<ConfigResult>> {
    let io = |e: std::io::Error| Error::Other(format!("experiment: {e}"));
    let configs = grid.configs();
    if configs.is_empty() || grid.seeds.is_empty() {
        return Err(Error::arg("experiment", "the grid has no configuration"));
    }
    std::fs::create_dir_all(out_dir).map_err(|e| Error::file(out_dir, e))?;
    let total = configs.len() * grid.seeds.len();
    let mut done = 0;
    let mut results = Vec::new();
    for config in &configs {
        let mut runs = Vec::new();
        for &seed in &grid.seeds {
            done += 1;
            let dir = out_dir.join(format!("{}-seed{seed}", config.label()));
            let name = dir.display().to_string();
            match run_state(&dir, epochs)? {
                RunState::Done => {
                    writeln!(out, "experiment [{done}/{total}] {name}: finished, skipped")
                        .map_err(io)?;
                }
                RunState::Partial(at) => {
                    writeln!(
                        out,
                        "experiment [{done}/{total}] {name}: resuming after epoch {at} of {epochs}"
                    )
                    .map_err(io)?;
                    let mut argv = vec![
                        "train".to_string(),
                        "--resume".into(),
                        name.clone(),
                        "--epochs".into(),
                        epochs.to_string(),
                    ];
                    argv.extend(resume_flags.iter().cloned());
                    train(argv)?;
                }
                RunState::Missing => {
                    writeln!(out, "experiment [{done}/{total}] {name}: training").map_err(io)?;
                    let mut argv = vec!["train".to_string()];
                    argv.extend(recipe.iter().cloned());
                    argv.extend(config.flags());
                    argv.extend([
                        "--seed".into(),
                        seed.to_string(),
                        "--out".into(),
                        name.clone(),
                    ]);
                    train(argv)?;
                }
            }
            out.flush().map_err(io)?;
            runs.push((seed, dir));
        }
        results.push(collect(config, &runs)?);
    }
    let json = serde_json::to_string_pretty(&results)
        .map_err(|e| Error::Other(format!("results.json: {e}")))?;
    write_atomic(&out_dir.join("results.json"), json.as_bytes())?;
    let md = markdown(&results, grid.seeds.len(), epochs);
    write_atomic(&out_dir.join("results.md"), md.as_bytes())?;
    draw(&out_dir.join("results.png"), &results)?;
    write!(out, "{md}").map_err(io)?;
    writeln!(
        out,
        "wrote results.md, results.json and results.png to {}",
        out_dir.display()
    )
    .map_err(io)?;
    Ok(results)
}

/// The results table (Markdown).
pub fn markdown(results: &[ConfigResult], seeds: usize, epochs: usize) -> String {
    let mut s = format!(
        "| configuration | params (trained) | params (deployed) | fwd MFLOP/image | bwd MFLOP/image | peak memory MB | train images/s | test accuracy % ({seeds} seed{}, {epochs} epoch{}) |\n|---|---|---|---|---|---|---|---|\n",
        if seeds == 1 { "" } else { "s" },
        if epochs == 1 { "" } else { "s" },
    );
    for r in results {
        s += &format!(
            "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.0} | {:.2} ± {:.2} |\n",
            r.label,
            r.params,
            r.params_merged,
            r.forward_flops_per_image * 1e-6,
            r.backward_flops_per_image * 1e-6,
            r.peak_device_memory_bytes as f64 * 1e-6,
            r.train_images_per_s,
            100.0 * r.test_accuracy_mean,
            100.0 * r.test_accuracy_std,
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grid_varies_sw_settings_for_sw_only() {
        let grid = Grid {
            spatial: vec![SpatialKind::Sw, SpatialKind::Slak, SpatialKind::Small],
            seeds: vec![0, 1],
            big_kernels: vec![None, Some(vec![25, 25, 13])],
            sparsity: vec![0.0, 0.5],
            n_rep: vec![None],
            ghost_ratio: vec![None],
        };
        let labels: Vec<String> = grid.configs().iter().map(|c| c.label()).collect();
        assert_eq!(
            labels,
            [
                "sw",
                "sw-sparse0.5",
                "sw-M25_25_13",
                "sw-M25_25_13-sparse0.5",
                "slak",
                "slak-M25_25_13",
                "small"
            ]
        );
        let c = &grid.configs()[3];
        assert_eq!(
            c.flags(),
            [
                "--spatial",
                "sw",
                "--big-kernels",
                "25,25,13",
                "--sparsity",
                "0.5"
            ]
        );
    }

    #[test]
    fn std_is_the_sample_deviation() {
        assert_eq!(mean_std(&[0.5]), (0.5, 0.0));
        let (m, s) = mean_std(&[1.0, 2.0, 3.0]);
        assert!((m - 2.0).abs() < 1e-15 && (s - 1.0).abs() < 1e-15);
    }
}
