//! add / mul / add_n configurations for the gradcheck suite.

use crate::suite::{input, GradCase};

pub fn cases() -> Vec<GradCase> {
    let s = [2, 3, 4, 5];
    let mut mask_case = GradCase::new(
        "mul",
        "[2, 3, 3, 3] x constant 0/1 mask",
        vec![
            input([2, 3, 3, 3], 33),
            input([2, 3, 3, 3], 34).map(|v| if v > 0.0 { 1.0 } else { 0.0 }),
        ],
        Box::new(|v| super::mul(&v[0], &v[1])),
    );
    // The mask is a constant: only the weight's gradient is computed and checked.
    mask_case.wrt = vec![true, false];
    vec![
        GradCase::new(
            "add",
            "[2, 3, 4, 5]",
            vec![input(s, 31), input(s, 32)],
            Box::new(|v| super::add(&v[0], &v[1])),
        ),
        GradCase::new(
            "add",
            "add_n of 4 x [2, 3, 4, 5]",
            vec![input(s, 35), input(s, 36), input(s, 37), input(s, 38)],
            Box::new(|v| super::add_n(&[&v[0], &v[1], &v[2], &v[3]])),
        ),
        GradCase::new(
            "mul",
            "[2, 3, 4, 5]",
            vec![input(s, 39), input(s, 40)],
            Box::new(|v| super::mul(&v[0], &v[1])),
        ),
        mask_case,
    ]
}
