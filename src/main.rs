//! The `shiftgrad` command-line tool.

use clap::{Parser, Subcommand, ValueEnum};
use shiftgrad::cli;
use shiftgrad::nn::SwConfig;
use shiftgrad::tensor::{Device, Result};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "shiftgrad",
    version,
    about = "Shift-wise ResNets on an auditable autodiff engine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum DTypeArg {
    F32,
    F64,
}

#[derive(Subcommand)]
enum Command {
    /// Run the f64 finite-difference gradient checks of every op and module; print a table.
    Gradcheck {
        /// Device: cpu, opencl, opencl:P:D or auto (default: $SHIFTGRAD_DEVICE, else cpu).
        #[arg(long)]
        device: Option<String>,
        /// Run only this op's cases (e.g. conv2d, shift_add, sw_module).
        #[arg(long)]
        op: Option<String>,
    },
    /// Check that the SW operator equals depthwise convolutions with its dense kernels (SPEC 1.4).
    Equiv {
        /// Big kernel M.
        #[arg(long, default_value_t = 51)]
        big: usize,
        /// Small kernel k (odd).
        #[arg(long, default_value_t = 5)]
        small: usize,
        /// Rep channels R.
        #[arg(long, default_value_t = 4)]
        channels: usize,
        /// Index groups G.
        #[arg(long = "n-rep", default_value_t = 4)]
        n_rep: usize,
        /// Bank convolutions P (merged for the dense kernels).
        #[arg(long = "n-path", default_value_t = 2)]
        n_path: usize,
        #[arg(long, default_value_t = 14)]
        height: usize,
        #[arg(long, default_value_t = 9)]
        width: usize,
        #[arg(long, default_value_t = 2)]
        batch: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, value_enum, default_value = "f64")]
        dtype: DTypeArg,
        /// Device: cpu, opencl, opencl:P:D or auto (default: $SHIFTGRAD_DEVICE, else cpu).
        #[arg(long)]
        device: Option<String>,
        /// Write x, bank, pad_hv, idx_identit, h, v, i, dense_h, dense_v, dense_i to this .npz.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Parameters and measured FLOPs of one SW layer against its slak, dense and small baselines.
    Compare {
        #[arg(long, default_value_t = 51)]
        big: usize,
        #[arg(long, default_value_t = 5)]
        small: usize,
        /// Channels C.
        #[arg(long, default_value_t = 64)]
        channels: usize,
        #[arg(long = "ghost-ratio", default_value_t = 0.0)]
        ghost_ratio: f64,
        #[arg(long = "n-path", default_value_t = 2)]
        n_path: usize,
        #[arg(long = "n-rep", default_value_t = 4)]
        n_rep: usize,
        #[arg(long, default_value_t = 56)]
        height: usize,
        #[arg(long, default_value_t = 56)]
        width: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

fn run(command: Command) -> Result<bool> {
    let mut stdout = std::io::stdout();
    match command {
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
            dtype,
            device,
            out,
        } => {
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
                out,
            };
            let report = match dtype {
                DTypeArg::F32 => cli::equiv::run::<f32>(&args, &mut stdout)?,
                DTypeArg::F64 => cli::equiv::run::<f64>(&args, &mut stdout)?,
            };
            Ok(report.passed())
        }
        Command::Compare {
            big,
            small,
            channels,
            ghost_ratio,
            n_path,
            n_rep,
            height,
            width,
            seed,
        } => {
            let config = SwConfig {
                channels,
                big_kernel: big,
                small_kernel: small,
                ghost_ratio,
                n_path,
                n_rep,
                seed,
            };
            config.validate()?;
            cli::compare::run(config, height, width, &mut stdout)?;
            Ok(true)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
