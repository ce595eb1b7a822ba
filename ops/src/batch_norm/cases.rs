//! batch_norm2d configurations for the gradcheck suite: training and evaluation mode, with
//! gamma away from 1, beta away from 0 and running statistics away from (0, 1), so that a
//! gradient that forgot gamma or used the wrong statistics cannot pass. The training closure
//! starts from a fresh copy of the running statistics on every call, so that the repeated
//! evaluations of gradcheck all see the same function. The statistics are copied to the
//! device of x, where batch-norm expects them.

use crate::suite::{input, GradCase};

pub fn cases() -> Vec<GradCase> {
    let (n, c, h, w) = (2, 3, 3, 4);
    let x = input([n, c, h, w], 41).map(|v| 2.0 * v + 0.5);
    let gamma = input([c], 42).map(|v| 1.0 + 0.8 * v);
    let beta = input([c], 43);
    let running_mean = input([c], 44).map(|v| 0.3 * v);
    let running_var = input([c], 45).map(|v| 1.2 + 0.5 * v);
    let (rm, rv) = (running_mean.clone(), running_var.clone());
    let train = GradCase::new(
        "batch_norm2d",
        format!("train [{n}, {c}, {h}, {w}]"),
        vec![x.clone(), gamma.clone(), beta.clone()],
        Box::new(move |v| {
            let dev = v[0].value().device();
            let (mut rm, mut rv) = (rm.to_device(&dev)?, rv.to_device(&dev)?);
            super::batch_norm2d_train(&v[0], &v[1], &v[2], &mut rm, &mut rv, 0.1, 1e-5)
        }),
    );
    let eval = GradCase::new(
        "batch_norm2d",
        format!("eval [{n}, {c}, {h}, {w}]"),
        vec![x, gamma, beta],
        Box::new(move |v| {
            let dev = v[0].value().device();
            let (rm, rv) = (running_mean.to_device(&dev)?, running_var.to_device(&dev)?);
            super::batch_norm2d_eval(&v[0], &v[1], &v[2], &rm, &rv, 1e-5)
        }),
    );
    vec![train, eval]
}
