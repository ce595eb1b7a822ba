//! gather_channels / concat_channels configurations for the gradcheck suite.

use crate::suite::{input, GradCase};

pub fn cases() -> Vec<GradCase> {
    vec![
        GradCase::new(
            "gather_channels",
            "[2, 5, 3, 4] idx [4, 0, 2]",
            vec![input([2, 5, 3, 4], 51)],
            Box::new(|v| super::gather_channels(&v[0], &[4, 0, 2])),
        ),
        GradCase::new(
            "gather_channels",
            "[2, 4, 3, 3] idx [1, 3, 1, 1, 0] (repeats)",
            vec![input([2, 4, 3, 3], 52)],
            Box::new(|v| super::gather_channels(&v[0], &[1, 3, 1, 1, 0])),
        ),
        GradCase::new(
            "concat_channels",
            "[2, 1, 3, 4] ++ [2, 3, 3, 4] ++ [2, 2, 3, 4]",
            vec![
                input([2, 1, 3, 4], 53),
                input([2, 3, 3, 4], 54),
                input([2, 2, 3, 4], 55),
            ],
            Box::new(|v| super::concat_channels(&[&v[0], &v[1], &v[2]])),
        ),
    ]
}
