//! The `shiftgrad` command-line tool.

use clap::{Parser, Subcommand};
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

#[derive(Subcommand)]
enum Command {
    /// Run the f64 finite-difference gradient checks of every op and print a table.
    Gradcheck {
        /// Device to run on (cpu).
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Run only this op's cases (e.g. conv2d).
        #[arg(long)]
        op: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Gradcheck { device, op } => {
            if device != "cpu" {
                Err(shiftgrad::tensor::Error::arg(
                    "gradcheck",
                    format!("unknown device {device:?}: this build has the cpu device only"),
                ))
            } else {
                shiftgrad::cli::gradcheck::run(op.as_deref(), &mut std::io::stdout())
                    .map(|rows| rows.iter().all(|r| r.passed))
            }
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
