//! PyTorch's NaN semantics: a NaN that goes in comes out, in every op, forward and backward,
//! on the CPU reference and on OpenCL.
//!
//! Every case of the gradcheck suite (every op, every configuration) is run with one input
//! filled with NaN: the output must hold a NaN. Then with finite inputs and a NaN cotangent:
//! every checked input's gradient must hold a NaN. (An op that clamps, or a kernel that skips
//! a zero weight, or a relu written `v > 0 ? v : 0`, turns NaN into a finite number and hides
//! a diverged run behind a finite loss; the old relu did exactly that.) Single-element cases
//! for the ops where the position matters (relu, cross-entropy, batch-norm) follow.

use shiftgrad::autograd::Var;
use shiftgrad::ops::parity::{fp64, opencl_device};
use shiftgrad::ops::suite::all_cases;
use shiftgrad::ops::{batch_norm2d_eval, batch_norm2d_train, cross_entropy, relu};
use shiftgrad::tensor::{Device, Tensor};

fn has_nan(t: &Tensor<f64>) -> bool {
    t.to_vec().unwrap().iter().any(|v| v.is_nan())
}

fn nan_like(t: &Tensor<f64>) -> Tensor<f64> {
    Tensor::full(t.shape().clone(), f64::NAN)
}

/// Failures of the whole suite on `device`, one line each.
fn suite_failures(device: &Device) -> Vec<String> {
    let mut failures = Vec::new();
    for case in all_cases() {
        let name = format!("{} [{}]", case.op, case.config);
        let leaves = |inputs: &[Tensor<f64>]| -> Vec<Var<f64>> {
            inputs
                .iter()
                .zip(&case.wrt)
                .map(|(t, &g)| Var::leaf(t.to_device(device).unwrap(), g))
                .collect()
        };
        // Forward: one input at a time all NaN.
        for i in 0..case.inputs.len() {
            let mut inputs = case.inputs.clone();
            inputs[i] = nan_like(&inputs[i]);
            match (case.f)(&leaves(&inputs)) {
                Ok(y) if has_nan(&y.value().to_host().unwrap()) => {}
                Ok(_) => failures.push(format!("{name}: NaN in input {i} gave no NaN out")),
                Err(e) => failures.push(format!("{name}: input {i} NaN: error {e}")),
            }
        }
        // Backward: finite inputs, NaN cotangent.
        if !case.wrt.iter().any(|&w| w) {
            continue;
        }
        let vars = leaves(&case.inputs);
        let y = (case.f)(&vars).unwrap();
        let g = nan_like(&y.value().to_host().unwrap());
        y.backward_with(g.to_device(device).unwrap()).unwrap();
        for (i, (v, &w)) in vars.iter().zip(&case.wrt).enumerate() {
            if !w {
                continue;
            }
            let ok = v
                .grad()
                .as_ref()
                .is_some_and(|g| has_nan(&g.to_host().unwrap()));
            if !ok {
                failures.push(format!(
                    "{name}: NaN cotangent gave no NaN in the gradient of input {i}"
                ));
            }
        }
    }
    failures
}

#[test]
fn nan_propagates_through_every_op_on_cpu() {
    let f = suite_failures(&Device::Cpu);
    assert!(f.is_empty(), "{} failures:\n{}", f.len(), f.join("\n"));
}

#[test]
fn nan_propagates_through_every_op_on_opencl() {
    let Some(dev) = opencl_device() else { return };
    if !fp64(&dev, "NaN propagation suite (f64 cases)") {
        return;
    }
    let f = suite_failures(&dev);
    assert!(f.is_empty(), "{} failures:\n{}", f.len(), f.join("\n"));
}

fn devices() -> Vec<Device> {
    let mut d = vec![Device::Cpu];
    d.extend(opencl_device());
    d
}

#[test]
fn relu_keeps_a_single_nan_in_place_f32() {
    for dev in devices() {
        let x = Tensor::<f32>::new([4], vec![-1.0, f32::NAN, 2.0, 0.0]).unwrap();
        let xv = Var::leaf(x.to_device(&dev).unwrap(), true);
        let y = relu(&xv).unwrap();
        let v = y.value().to_vec().unwrap();
        assert_eq!(v[0], 0.0, "{}", dev.name());
        assert!(
            v[1].is_nan(),
            "relu(NaN) must be NaN on {}: {v:?}",
            dev.name()
        );
        assert_eq!((v[2], v[3]), (2.0, 0.0));
        let g = Tensor::<f32>::new([4], vec![1.0, 1.0, 1.0, 1.0]).unwrap();
        y.backward_with(g.to_device(&dev).unwrap()).unwrap();
        let dx = xv.grad().as_ref().unwrap().to_vec().unwrap();
        // PyTorch's threshold_backward: 0 where y <= 0, else dy (NaN outputs pass dy).
        assert_eq!(dx, vec![0.0, 1.0, 1.0, 0.0], "{}", dev.name());
    }
}

#[test]
fn cross_entropy_of_a_nan_logit_is_nan_f32() {
    for dev in devices() {
        for pos in [0, 1, 2] {
            let mut v = vec![0.5f32, -1.0, 2.0, 0.1, 0.2, 0.3];
            v[pos] = f32::NAN;
            let x = Tensor::<f32>::new([2, 3], v).unwrap();
            let xv = Var::leaf(x.to_device(&dev).unwrap(), true);
            let loss = cross_entropy(&xv, &[2, 0]).unwrap();
            let l = loss.value().item().unwrap();
            assert!(
                l.is_nan(),
                "NaN logit at {pos} gave loss {l} on {}",
                dev.name()
            );
            loss.backward().unwrap();
            let dx = xv.grad().as_ref().unwrap().to_vec().unwrap();
            assert!(
                dx[..3].iter().all(|d| d.is_nan()),
                "row with a NaN logit at {pos}: gradient {dx:?} on {}",
                dev.name()
            );
            assert!(dx[3..].iter().all(|d| d.is_finite()), "{dx:?}");
        }
    }
}

#[test]
fn batch_norm_spreads_a_nan_over_its_channel_only_f32() {
    for dev in devices() {
        // (N=2, C=2, H=1, W=2): one NaN in channel 0.
        let mut v: Vec<f32> = (0..8).map(|i| i as f32 * 0.25 - 1.0).collect();
        v[1] = f32::NAN;
        let x = Tensor::<f32>::new([2, 2, 1, 2], v)
            .unwrap()
            .to_device(&dev)
            .unwrap();
        let ones = Tensor::<f32>::ones([2]).to_device(&dev).unwrap();
        let zeros = Tensor::<f32>::zeros([2]).to_device(&dev).unwrap();
        let (gamma, beta) = (Var::constant(ones.clone()), Var::constant(zeros.clone()));
        let (mut rm, mut rv) = (zeros.clone(), ones.clone());
        let y = batch_norm2d_train(
            &Var::constant(x.clone()),
            &gamma,
            &beta,
            &mut rm,
            &mut rv,
            0.1,
            1e-5,
        )
        .unwrap();
        let y = y.value().to_vec().unwrap();
        let channel0 = [0, 1, 4, 5];
        for (i, v) in y.iter().enumerate() {
            assert_eq!(
                v.is_nan(),
                channel0.contains(&i),
                "train {i}: {y:?} on {}",
                dev.name()
            );
        }
        let (rm, rv) = (rm.to_vec().unwrap(), rv.to_vec().unwrap());
        assert!(rm[0].is_nan() && rv[0].is_nan() && rm[1].is_finite() && rv[1].is_finite());
        // Eval with a NaN running variance: that channel is NaN.
        let rv = Tensor::<f32>::new([2], vec![1.0, f32::NAN])
            .unwrap()
            .to_device(&dev)
            .unwrap();
        let xf = Tensor::<f32>::ones([2, 2, 1, 2]).to_device(&dev).unwrap();
        let y = batch_norm2d_eval(&Var::constant(xf), &gamma, &beta, &zeros, &rv, 1e-5).unwrap();
        let y = y.value().to_vec().unwrap();
        for (i, v) in y.iter().enumerate() {
            assert_eq!(v.is_nan(), [2, 3, 6, 7].contains(&i), "eval {i}: {y:?}");
        }
    }
}
