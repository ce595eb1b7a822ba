//! The dispatch of every subcommand.

use super::args::*;
use super::experiment::run_experiment;
use super::train::{given, run_train, train_device};
use super::{Command, DTypeArg};
use clap::ArgMatches;
use shiftgrad::cli;
use shiftgrad::tensor::{Device, Result};
use std::path::PathBuf;

pub(crate) fn run(command: Command, matches: &ArgMatches) -> Result<bool> {
    let mut stdout = std::io::stdout();
    match command {
        Command::Train(a) => {
            let m = matches
                .subcommand_matches("train")
                .ok_or_else(|| shiftgrad::tensor::Error::Other("train: no arguments".into()))?;
            run_train(*a, m)
        }
        Command::Eval {
            checkpoint,
            device,
            data,
            limit,
        } => {
            if limit == Some(0) {
                return Err(shiftgrad::tensor::Error::arg(
                    "eval",
                    "--limit must be at least 1",
                ));
            }
            let device = train_device(device.as_deref())?;
            let sd = shiftgrad::train::load_checkpoint(&checkpoint)?;
            let meta = shiftgrad::train::read_meta(&sd, &checkpoint)?;
            let mut model = shiftgrad::train::build_model(&meta.config, &device, Some(&sd))
                .map_err(|e| {
                    shiftgrad::tensor::Error::file(
                        &checkpoint,
                        format!("incompatible checkpoint: {e}"),
                    )
                })?;
            let dir = shiftgrad::nn::data::data_dir(data.as_deref());
            let test = shiftgrad::train::load_split(&dir, shiftgrad::nn::data::Split::Test, limit)?;
            let (loss, acc) = shiftgrad::train::evaluate(&mut model, &test, &device)?;
            println!(
                "{}: epoch {} of {} ({} {}), {} test images on {}: accuracy {:.2}%, loss {:.4}",
                checkpoint.display(),
                meta.epoch,
                meta.config.epochs,
                meta.config.preset,
                meta.config.spatial,
                test.len(),
                device.name(),
                100.0 * acc,
                loss
            );
            Ok(true)
        }
        Command::Profile {
            preset,
            spatial,
            batch_size,
            steps,
            warmup,
            widths,
            sparsity,
            rounds,
            device,
        } => {
            let mut configs = Vec::new();
            for kind in &spatial {
                let mut config = shiftgrad::nn::resnet::ResNetConfig::preset(&preset)?;
                config.spatial = kind.parse()?;
                if let Some(w) = &widths {
                    config.widths = w.clone();
                }
                configs.push(config);
            }
            let devices = (0..configs.len() * sparsity.len())
                .map(|_| train_device(device.as_deref()))
                .collect::<Result<Vec<_>>>()?;
            let shape = cli::profile::Shape {
                batch: batch_size,
                warmup,
                steps,
                rounds,
                sparsity,
            };
            cli::profile::run(&configs, &devices, shape, &mut stdout)?;
            Ok(true)
        }
        Command::Erf(a) => {
            let m = matches
                .subcommand_matches("erf")
                .ok_or_else(|| shiftgrad::tensor::Error::Other("erf: no arguments".into()))?;
            let net_flags = <NetArgs as clap::Args>::augment_args(clap::Command::new("erf"));
            let mut given_net = net_flags
                .get_arguments()
                .filter(|f| given(m, f.get_id().as_str()))
                .map(|f| format!("--{}", f.get_long().unwrap_or(f.get_id().as_str())))
                .chain(given(m, "seed").then(|| "--seed".to_string()));
            if let (false, Some(flag)) = (a.checkpoint.is_empty(), given_net.next()) {
                return Err(shiftgrad::tensor::Error::arg(
                    "erf",
                    format!(
                        "{flag} describes an untrained network; a --checkpoint carries its own"
                    ),
                ));
            }
            let device = train_device(a.device.as_deref())?;
            let mut models = if a.checkpoint.is_empty() {
                let mut net = a.net.network()?;
                net.seed = a.seed;
                vec![cli::erf::ErfModel::untrained(net, &device)?]
            } else {
                a.checkpoint
                    .iter()
                    .map(|c| cli::erf::ErfModel::from_checkpoint(c, &device))
                    .collect::<Result<Vec<_>>>()?
            };
            let args = cli::erf::ErfArgs {
                images: a.images,
                size: a.size,
                data: shiftgrad::nn::data::data_dir(a.data.as_deref()),
                out: a.out,
                quiet: a.quiet,
            };
            cli::erf::run(&mut models, &args, &device, &mut stdout)?;
            Ok(true)
        }
        Command::Experiment(a) => run_experiment(*a),
        Command::Devices => {
            let devices = shiftgrad::opencl::list_devices()
                .map_err(|e| shiftgrad::tensor::Error::Device(e.to_string()))?;
            print!("{}", shiftgrad::opencl::DeviceTable(&devices));
            Ok(true)
        }
        Command::Gradcheck { device, op } => {
            let device = Device::open(device.as_deref())?;
            let rows = cli::gradcheck::run(op.as_deref(), &device, &mut stdout)?;
            Ok(rows.iter().all(|r| r.passed))
        }
        Command::Equiv {
            big,
            small,
            channels,
            n_rep,
            n_path,
            height,
            width,
            batch,
            seed,
            sparsity,
            dtype,
            device,
            out,
        } => {
            cli::check_sparsity("equiv", sparsity)?;
            let device = Device::open(device.as_deref())?;
            let args = cli::equiv::EquivArgs {
                device,
                big,
                small,
                channels,
                n_rep,
                n_path,
                height,
                width,
                batch,
                seed,
                sparsity,
                out,
            };
            let report = match dtype {
                DTypeArg::F32 => cli::equiv::run::<f32>(&args, &mut stdout)?,
                DTypeArg::F64 => cli::equiv::run::<f64>(&args, &mut stdout)?,
            };
            Ok(report.passed())
        }
        Command::Bench {
            spatial,
            layer,
            batch,
            steps,
            warmup,
            kernels,
            device,
        } => {
            let (_, height, width) = layer.one_size("bench")?;
            let device = train_device(device.as_deref())?;
            let kinds = spatial
                .iter()
                .map(|k| k.parse())
                .collect::<Result<Vec<_>>>()?;
            let shape = cli::bench::BenchShape {
                batch,
                height,
                width,
                warmup,
                steps,
                kinds,
                sparsity: layer.sparsity,
                kernels,
            };
            cli::bench::run(layer.config(), &shape, &device, &mut stdout)?;
            Ok(true)
        }
        Command::Compare {
            layer,
            device,
            batch,
            steps,
            warmup,
            out,
        } => {
            cli::check_sparsity("compare", layer.sparsity)?;
            let timing = match device {
                Some(d) => Some(cli::compare::Timing {
                    device: Device::open(Some(&d))?,
                    batch,
                    steps,
                    warmup,
                }),
                None => None,
            };
            let several = layer.big.len() * layer.height.len() > 1;
            let sweep = cli::compare::Sweep {
                config: layer.config(),
                bigs: layer.big.clone(),
                heights: layer.height.clone(),
                width: layer.width,
                sparsity: layer.sparsity,
                timing,
                out: out.or_else(|| several.then(|| PathBuf::from("runs/compare"))),
            };
            cli::compare::sweep(&sweep, &mut stdout)?;
            Ok(true)
        }
    }
}
