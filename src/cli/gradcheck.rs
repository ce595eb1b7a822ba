//! `shiftgrad gradcheck`: runs the f64 finite-difference suite and prints a table.

use shiftgrad_ops::suite::{self, GradCase};
use shiftgrad_tensor::{Device, Error, Result};
use std::io::Write;
use std::time::Instant;

/// One row of the table.
pub struct Row {
    pub op: &'static str,
    pub config: String,
    pub max_abs: f64,
    pub max_rel: f64,
    pub passed: bool,
    pub error: Option<String>,
}

/// Every case of the suite (op-level, then module-level).
pub fn all_cases() -> Vec<GradCase> {
    let mut cases = suite::all_cases();
    cases.extend(shiftgrad_nn::cases::cases());
    cases
}

/// Runs the cases whose op is `op` (all when `None`), printing the table to `out` as it goes.
/// Returns the rows; an unknown op name is an error listing the known ones.
pub fn run(op: Option<&str>, device: &Device, out: &mut dyn Write) -> Result<Vec<Row>> {
    let cases = all_cases();
    let names = suite::op_names(&cases);
    if let Some(op) = op {
        if !names.contains(&op) {
            return Err(Error::arg(
                "gradcheck",
                format!("unknown op {op:?}; known ops: {}", names.join(", ")),
            ));
        }
    }
    let start = Instant::now();
    let io = |e: std::io::Error| Error::Other(format!("gradcheck: {e}"));
    writeln!(
        out,
        "f64 finite-difference gradient checks on {}",
        device.name()
    )
    .map_err(io)?;
    writeln!(
        out,
        "{:<16} {:<44} {:>11} {:>11}  result",
        "op", "configuration", "max abs", "max rel"
    )
    .map_err(io)?;
    let mut rows = Vec::new();
    for case in cases.iter().filter(|c| op.is_none_or(|o| c.op == o)) {
        let row = match case.run_on(device) {
            Ok(r) => Row {
                op: case.op,
                config: case.config.clone(),
                max_abs: r.max_abs_err(),
                max_rel: r.max_rel_err(),
                passed: r.passed(),
                error: None,
            },
            Err(e) => Row {
                op: case.op,
                config: case.config.clone(),
                max_abs: f64::NAN,
                max_rel: f64::NAN,
                passed: false,
                error: Some(e.to_string()),
            },
        };
        write!(
            out,
            "{:<16} {:<44} {:>11.3e} {:>11.3e}  {}",
            row.op,
            row.config,
            row.max_abs,
            row.max_rel,
            if row.passed { "pass" } else { "FAIL" }
        )
        .map_err(io)?;
        if let Some(e) = &row.error {
            write!(out, " ({e})").map_err(io)?;
        }
        writeln!(out).map_err(io)?;
        rows.push(row);
    }
    let failed = rows.iter().filter(|r| !r.passed).count();
    writeln!(
        out,
        "{} cases, {} passed, {} failed, {:.1} s",
        rows.len(),
        rows.len() - failed,
        failed,
        start.elapsed().as_secs_f64()
    )
    .map_err(io)?;
    Ok(rows)
}
