//! reshape configurations for the gradcheck suite.

use crate::suite::{input, GradCase};

pub fn cases() -> Vec<GradCase> {
    vec![
        GradCase::new(
            "reshape",
            "[2, 3, 1, 1] -> [2, 3]",
            vec![input([2, 3, 1, 1], 61)],
            Box::new(|v| super::reshape(&v[0], &[2, 3])),
        ),
        GradCase::new(
            "reshape",
            "[2, 3, 4] -> [4, 1, 6]",
            vec![input([2, 3, 4], 62)],
            Box::new(|v| super::reshape(&v[0], &[4, 1, 6])),
        ),
    ]
}
