//! linear configurations for the gradcheck suite: with and without bias, in != out.

use crate::suite::{input, GradCase};

pub fn cases() -> Vec<GradCase> {
    let (n, fin, fout) = (3, 4, 5);
    let x = input([n, fin], 51);
    let w = input([fout, fin], 52);
    let b = input([fout], 53);
    vec![
        GradCase::new(
            "linear",
            format!("[{n}, {fin}] -> {fout} bias"),
            vec![x.clone(), w.clone(), b],
            Box::new(|v| super::linear(&v[0], &v[1], Some(&v[2]))),
        ),
        GradCase::new(
            "linear",
            format!("[{n}, {fin}] -> {fout} no bias"),
            vec![x, w],
            Box::new(|v| super::linear(&v[0], &v[1], None)),
        ),
    ]
}
