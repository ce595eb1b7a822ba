//! global_avg_pool configuration for the gradcheck suite (non-square plane).

use crate::suite::{input, GradCase};

pub fn cases() -> Vec<GradCase> {
    vec![GradCase::new(
        "global_avg_pool",
        "[2, 3, 4, 5]",
        vec![input([2, 3, 4, 5], 61)],
        Box::new(|v| super::global_avg_pool(&v[0])),
    )]
}
