//! relu configurations for the gradcheck suite. Inputs are kept away from 0, where relu has
//! no derivative and a central difference straddling the kink would be meaningless.

use crate::suite::{input, GradCase};

pub fn cases() -> Vec<GradCase> {
    let x = input([2, 3, 4, 5], 11).map(|v| if v.abs() < 0.05 { v + 0.1 } else { v });
    vec![GradCase::new(
        "relu",
        "[2, 3, 4, 5]",
        vec![x],
        Box::new(|v| super::relu(&v[0])),
    )]
}
