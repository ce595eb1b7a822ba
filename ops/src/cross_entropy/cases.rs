//! cross_entropy configurations for the gradcheck suite: uneven logits (scaled by 5, one row
//! shifted far up, so the softmax is far from uniform and the max subtraction matters), several
//! classes, labels not all equal and not all at the row maximum.

use crate::suite::{input, GradCase};

pub fn cases() -> Vec<GradCase> {
    let (n, k) = (4, 5);
    let logits = input([n, k], 71).map(|v| 5.0 * v);
    let mut shifted = input([3, 7], 72).map(|v| 3.0 * v);
    for j in 0..7 {
        shifted.data_mut()[7 + j] += 40.0 + j as f64;
    }
    vec![
        GradCase::new(
            "cross_entropy",
            format!("[{n}, {k}] x5 labels 0 3 3 1"),
            vec![logits],
            Box::new(|v| super::cross_entropy(&v[0], &[0, 3, 3, 1])),
        ),
        GradCase::new(
            "cross_entropy",
            "[3, 7] row 1 shifted by ~40, labels 6 2 0",
            vec![shifted],
            Box::new(|v| super::cross_entropy(&v[0], &[6, 2, 0])),
        ),
    ]
}
