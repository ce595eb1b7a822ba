//! The `shiftgrad` command-line tool; its subcommands and flags are in `cmd/`.

mod cmd;

use clap::{CommandFactory, FromArgMatches};
use std::process::ExitCode;

fn main() -> ExitCode {
    let matches =
        cmd::Cli::command().get_matches_from(cmd::experiment_argv(std::env::args().collect()));
    let cli = cmd::Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match cmd::run(cli.command, &matches) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
