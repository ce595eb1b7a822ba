//! `shiftgrad experiment`: every configuration and seed of the grid as one `train` command
//! line, run in-process.

use super::args::*;
use super::train::run_train;
use super::{Cli, Command};
use clap::{CommandFactory, FromArgMatches};
use shiftgrad::cli;
use shiftgrad::tensor::Result;

/// The long flags of [`ExperimentArgs`] other than the recipe.
pub(crate) const EXPERIMENT_FLAGS: [&str; 7] = [
    "--spatial",
    "--seeds",
    "--big-kernels",
    "--sparsity",
    "--n-rep",
    "--ghost-ratio",
    "--out",
];

/// `shiftgrad experiment ...` with the recipe (every argument that is not an experiment flag
/// or its value) moved behind `--`, so that every `train` flag can be given in any order.
pub(crate) fn experiment_argv(args: Vec<String>) -> Vec<String> {
    if args.get(1).map(String::as_str) != Some("experiment") || args.iter().any(|a| a == "--") {
        return args;
    }
    let (mut front, mut recipe) = (args[..2].to_vec(), Vec::new());
    let mut i = 2;
    while i < args.len() {
        let a = &args[i];
        let name = a.split('=').next().unwrap_or(a);
        if EXPERIMENT_FLAGS.contains(&name) || a == "-h" || a == "--help" {
            front.push(a.clone());
            if !a.contains('=') && a.starts_with("--") && a != "--help" {
                if let Some(v) = args.get(i + 1) {
                    front.push(v.clone());
                    i += 1;
                }
            }
        } else {
            recipe.push(a.clone());
        }
        i += 1;
    }
    front.push("--".into());
    front.extend(recipe);
    front
}

/// Runs one `train` command line (without the program name) as `shiftgrad train` would.
pub(crate) fn train_argv(argv: Vec<String>) -> Result<()> {
    use shiftgrad::tensor::Error;
    let full: Vec<String> = std::iter::once("shiftgrad".to_string())
        .chain(argv)
        .collect();
    let matches = Cli::command()
        .try_get_matches_from(&full)
        .map_err(|e| Error::Other(format!("experiment: {}", e.render().to_string().trim())))?;
    let cli = Cli::from_arg_matches(&matches).map_err(|e| Error::Other(e.to_string()))?;
    let (Command::Train(a), Some(m)) = (cli.command, matches.subcommand_matches("train")) else {
        return Err(Error::Other("experiment: not a train command".into()));
    };
    match run_train(*a, m)? {
        true => Ok(()),
        false => Err(Error::Other(format!(
            "experiment: `{}` failed",
            full[1..].join(" ")
        ))),
    }
}

pub(crate) fn run_experiment(a: ExperimentArgs) -> Result<bool> {
    use shiftgrad::tensor::Error;
    for bad in [
        "--out",
        "--resume",
        "--overwrite",
        "--seed",
        "--distributed",
        "--sync-bn",
    ] {
        if a.recipe.iter().any(|r| r.split('=').next() == Some(bad)) {
            return Err(Error::arg(
                "experiment",
                format!(
                    "{bad} is not a recipe flag here (the experiment names, resumes and seeds its runs: --out DIR, --seeds LIST)"
                ),
            ));
        }
    }
    // The recipe is parsed once as `train` would, for its epochs and the flags a resumed run
    // takes (and to report a bad flag before any run starts).
    let probe: Vec<String> = ["shiftgrad", "train"]
        .iter()
        .map(|s| s.to_string())
        .chain(a.recipe.iter().cloned())
        .collect();
    let matches = Cli::command()
        .try_get_matches_from(&probe)
        .map_err(|e| Error::Other(format!("experiment: {}", e.render().to_string().trim())))?;
    let Ok(Cli {
        command: Command::Train(t),
    }) = Cli::from_arg_matches(&matches)
    else {
        return Err(Error::Other(
            "experiment: the recipe is not a train command".into(),
        ));
    };
    let mut resume_flags = Vec::new();
    if let Some(d) = &t.device {
        resume_flags.extend(["--device".to_string(), d.clone()]);
    }
    if let Some(d) = &t.data {
        resume_flags.extend(["--data".to_string(), d.display().to_string()]);
    }
    if t.quiet {
        resume_flags.push("--quiet".into());
    }
    let spatial = a
        .spatial
        .iter()
        .map(|s| s.parse())
        .collect::<Result<Vec<shiftgrad::nn::baselines::SpatialKind>>>()?;
    let big_kernels = match a.big_kernels.is_empty() {
        true => vec![None],
        false => a
            .big_kernels
            .iter()
            .flat_map(|s| s.split(';'))
            .map(|set| {
                set.split(',')
                    .map(|k| {
                        k.trim().parse::<usize>().map_err(|_| {
                            Error::arg(
                                "experiment",
                                format!("--big-kernels: {set:?} is not a list of kernel sizes"),
                            )
                        })
                    })
                    .collect::<Result<Vec<usize>>>()
                    .map(Some)
            })
            .collect::<Result<Vec<_>>>()?,
    };
    for &s in &a.sparsity {
        cli::check_sparsity("experiment", s)?;
    }
    let option_list = |v: &[usize]| match v.is_empty() {
        true => vec![None],
        false => v.iter().map(|&x| Some(x)).collect(),
    };
    let grid = cli::experiment::Grid {
        spatial,
        seeds: a.seeds.clone(),
        big_kernels,
        sparsity: a.sparsity.clone(),
        n_rep: option_list(&a.n_rep),
        ghost_ratio: match a.ghost_ratio.is_empty() {
            true => vec![None],
            false => a.ghost_ratio.iter().map(|&x| Some(x)).collect(),
        },
    };
    cli::experiment::run(
        &grid,
        &a.out,
        &a.recipe,
        t.epochs,
        &resume_flags,
        &mut train_argv,
        &mut std::io::stdout(),
    )?;
    Ok(true)
}
