//! relu configurations for the gradcheck suite. Inputs are kept away from 0, where relu has
//! no derivative and a central difference straddling the kink would be meaningless.

use crate::suite::{input, GradCase};

pub fn cases() -> Vec<GradCase> {
    let x = input([2, 3, 4, 5], 11).map(|v| if v.abs() < 0.05 { v + 0.1 } else { v });
    // Three summands whose sum stays away from 0 (the last one shifts it off the kink).
    let a = input([2, 3, 4, 5], 12);
    let b = input([2, 3, 4, 5], 13);
    let sum: Vec<f64> = a.data().iter().zip(b.data()).map(|(p, q)| p + q).collect();
    let c = input([2, 3, 4, 5], 14).map(|v| v * 0.01);
    let c = shiftgrad_tensor::Tensor::from_fn([2, 3, 4, 5], |i| {
        let s = sum[i] + c.data()[i];
        if s.abs() < 0.05 {
            c.data()[i] + 0.1
        } else {
            c.data()[i]
        }
    });
    vec![
        GradCase::new(
            "relu",
            "[2, 3, 4, 5]",
            vec![x],
            Box::new(|v| super::relu(&v[0])),
        ),
        GradCase::new(
            "add_relu",
            "3 x [2, 3, 4, 5]",
            vec![a, b, c],
            Box::new(|v| super::add_relu(&[&v[0], &v[1], &v[2]])),
        ),
    ]
}
