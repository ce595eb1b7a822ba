//! OpenCL against the CPU reference for relu, sum and mean (the pattern the other ops'
//! parity tests follow). Skipped, with a note, where no OpenCL device exists.

use proptest::prelude::*;
use shiftgrad::ops::parity::{compare, deterministic, fp64, opencl_device};
use shiftgrad::ops::{mean, relu, sum};
use shiftgrad::tensor::{init, Tensor};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    #[test]
    fn relu_sum_mean_match_cpu(n in 1usize..3, c in 1usize..5, h in 1usize..9, w in 1usize..9, seed in 0u64..1000) {
        let Some(dev) = opencl_device() else { return Ok(()) };
        let x32: Tensor<f32> = init::normal([n, c, h, w], 0.0, 1.0, &mut init::rng(seed));
        let r = compare(&dev, &|v| relu(&v[0]), std::slice::from_ref(&x32), &[true], seed).unwrap();
        // relu is a select: bitwise equal (measured 0).
        prop_assert!(r.max() <= 0.0, "relu f32 {r:?}");
        let r = compare(&dev, &|v| sum(&relu(&v[0])?), std::slice::from_ref(&x32), &[true], seed).unwrap();
        // sum and mean: measured at most 1.8e-7 (f32), 4.6e-16 (f64).
        prop_assert!(r.max() <= 1e-6, "sum f32 {r:?}");
        let r = compare(&dev, &|v| mean(&relu(&v[0])?), &[x32], &[true], seed).unwrap();
        prop_assert!(r.max() <= 1e-6, "mean f32 {r:?}");
        if fp64(&dev, "f64 parity") {
            let x64: Tensor<f64> = init::normal([n, c, h, w], 0.0, 1.0, &mut init::rng(seed));
            let r = compare(&dev, &|v| mean(&relu(&v[0])?), &[x64], &[true], seed).unwrap();
            prop_assert!(r.max() <= 5e-15, "mean f64 {r:?}");
        }
    }
}

#[test]
fn relu_and_sum_are_deterministic() {
    let Some(dev) = opencl_device() else { return };
    let x: Tensor<f32> = init::normal([2, 3, 17, 5], 0.0, 1.0, &mut init::rng(4));
    assert!(deterministic(&dev, &|v| sum(&relu(&v[0])?), &[x], &[true]).unwrap());
}
