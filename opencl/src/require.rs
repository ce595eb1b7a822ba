//! Test support: the one parser of the `SHIFTGRAD_REQUIRE_*` variables, which turn a test
//! that cannot run here (no OpenCL device, no fp64, no Fashion-MNIST) from a loud skip into a
//! failure. CI sets them to `1`.
//!
//! `1`, `true` or `yes` require; unset, empty, `0`, `false` or `no` do not. Anything else
//! panics with the variable named: `SHIFTGRAD_REQUIRE_OPENCL=maybe` is a mistake to report,
//! not a value to guess (the earlier `var_os(..).is_some()` took `=0` as "required").

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::Mutex;

/// Whether the environment variable `var` requires what it names (see the module docs).
pub fn required(var: &str) -> bool {
    let value = std::env::var(var).unwrap_or_default();
    match value.trim().to_ascii_lowercase().as_str() {
        "" | "0" | "false" | "no" => false,
        "1" | "true" | "yes" => true,
        other => panic!("{var}={other:?}: expected 1 (required) or 0 (not required)"),
    }
}

/// Reports a skipped test as `skipped: <what>: <reason>` on the process's stderr, past the
/// test harness's output capture (which takes only `print!`/`eprint!`), so that `cargo test`
/// shows it even for a test that then passes. Each distinct line is written once per process
/// (a property test skips once per generated case).
pub fn skip(what: &str, reason: &str) {
    static SEEN: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let line = format!("skipped: {what}: {reason}");
    let first = SEEN
        .lock()
        .map(|mut seen| seen.insert(line.clone()))
        .unwrap_or(true);
    if first {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_means_not_required() {
        // Distinct names: tests run in parallel threads of one process.
        for (value, want) in [
            ("0", false),
            ("", false),
            ("no", false),
            ("1", true),
            ("TRUE", true),
        ] {
            let var = format!("SHIFTGRAD_REQUIRE_TEST_{value}");
            std::env::set_var(&var, value);
            assert_eq!(required(&var), want, "{var}={value:?}");
        }
        assert!(!required("SHIFTGRAD_REQUIRE_TEST_UNSET_VARIABLE"));
    }

    #[test]
    #[should_panic(expected = "expected 1")]
    fn other_values_are_refused() {
        std::env::set_var("SHIFTGRAD_REQUIRE_TEST_BAD", "maybe");
        required("SHIFTGRAD_REQUIRE_TEST_BAD");
    }
}
