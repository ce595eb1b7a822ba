//! sum / mean configurations for the gradcheck suite.

use crate::suite::{input, GradCase};

pub fn cases() -> Vec<GradCase> {
    vec![
        GradCase::new(
            "sum",
            "[3, 4, 5]",
            vec![input([3, 4, 5], 21)],
            Box::new(|v| super::sum(&v[0])),
        ),
        GradCase::new(
            "mean",
            "[2, 3, 4, 5]",
            vec![input([2, 3, 4, 5], 22)],
            Box::new(|v| super::mean(&v[0])),
        ),
    ]
}
