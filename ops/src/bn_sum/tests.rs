use super::*;
use shiftgrad_tensor::init;

fn param(dims: impl Into<shiftgrad_tensor::Shape>, seed: u64) -> Var<f64> {
    Var::param(init::uniform(dims, -1.0, 1.0, &mut init::rng(seed)))
}

/// One term over `z` with fresh state, mode and relu as given, and `residual`.
fn one(z: &Var<f64>, residual: Option<Residual<'_, f64>>) -> Result<Var<f64>> {
    let c = z.shape().dim(1);
    let (gamma, beta) = (
        Var::param(Tensor::ones([c])),
        Var::param(Tensor::zeros([c])),
    );
    let (mut m, mut v) = (Tensor::zeros([c]), Tensor::ones([c]));
    let mut terms = [BnTerm {
        x: z,
        gamma: &gamma,
        beta: &beta,
        running_mean: &mut m,
        running_var: &mut v,
        momentum: 0.1,
        eps: 1e-5,
    }];
    bn_sum(&mut terms, residual, BnMode::Train, true)
}

#[test]
fn bad_inputs_are_errors() {
    let z = param([2, 3, 2, 2], 1);
    let x = param([2, 4, 2, 2], 2);
    let err = |r: Result<Var<f64>>| match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    };
    let e = err(one(
        &z,
        Some(Residual {
            x: &x,
            channels: &[0, 1, 2, 2],
        }),
    ));
    assert!(e.contains("permutation"), "{e}");
    let e = err(one(
        &z,
        Some(Residual {
            x: &x,
            channels: &[0, 1, 2],
        }),
    ));
    assert!(e.contains("3 entries"), "{e}");
    let small = param([2, 2, 2, 2], 3);
    let e = err(one(
        &z,
        Some(Residual {
            x: &small,
            channels: &[0, 1],
        }),
    ));
    assert!(e.contains("at least their 3 channels"), "{e}");
    let e = err(bn_sum::<f64>(&mut [], None, BnMode::Train, false));
    assert!(e.contains("1 to 3"), "{e}");
}

/// The CPU op is the composition: relu(bn(z) + x[cmap]) with the ghost channel appended,
/// checked against the formula element by element.
#[test]
fn cpu_forward_matches_the_formula() {
    let z = param([2, 2, 2, 3], 4);
    let x = param([2, 3, 2, 3], 5);
    let map = [2, 0, 1];
    let y = one(
        &z,
        Some(Residual {
            x: &x,
            channels: &map,
        }),
    )
    .unwrap();
    assert_eq!(y.shape().dims(), &[2, 3, 2, 3]);
    let (zv, xv, yv) = (z.value(), x.value(), y.value());
    let (zd, xd, yd) = (zv.data(), xv.data(), yv.data());
    for j in 0..3 {
        let mut mean = 0.0;
        let mut var = 0.0;
        if j < 2 {
            let vals: Vec<f64> = (0..2)
                .flat_map(|b| (0..6).map(move |e| (b, e)))
                .map(|(b, e)| zd[(b * 2 + j) * 6 + e])
                .collect();
            mean = vals.iter().sum::<f64>() / 12.0;
            var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 12.0;
        }
        for b in 0..2 {
            for e in 0..6 {
                let res = xd[(b * 3 + map[j]) * 6 + e];
                let s = match j < 2 {
                    true => (zd[(b * 2 + j) * 6 + e] - mean) / (var + 1e-5).sqrt() + res,
                    false => res,
                };
                let got = yd[(b * 3 + j) * 6 + e];
                assert!(
                    (got - s.max(0.0)).abs() < 1e-12,
                    "channel {j}: {got} vs {s}"
                );
            }
        }
    }
}

#[test]
fn cost_counts_the_composed_flops() {
    let dims = [2, 3, 4, 5];
    let c = cost::<f32>(3, &dims, 4, true, true, true);
    let bn = batch_norm::cost::<f32>(&dims.into(), true);
    let (e_r, e_out) = (120u64, 160u64);
    assert_eq!(c.forward.flops, 3 * bn.forward.flops + 3 * e_r + e_out);
    assert_eq!(c.backward.flops, 3 * bn.backward.flops + e_out);
}
