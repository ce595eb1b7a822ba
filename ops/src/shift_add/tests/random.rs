//! The gradcheck suite and random configurations.

use super::dense::check_dense;
use super::*;

#[test]
fn gradcheck_cases_pass() {
    let cases = cases::cases();
    assert!(cases.len() >= 7);
    for case in &cases {
        let r = case.run().unwrap();
        assert!(r.passed(), "{}: {r:?}", case.config);
    }
}

#[test]
fn stack3_gradient_is_split() {
    let vars: Vec<Var<f64>> = (0..3).map(|s| Var::param(input([2, 3], s))).collect();
    let s = cases::stack3(&vars[0], &vars[1], &vars[2]).unwrap();
    assert_eq!(s.value().dims(), &[3, 2, 3]);
    assert_eq!(&s.value().data()[6..12], vars[1].value().data());
    let g = Tensor::from_fn([3, 2, 3], |i| i as f64);
    s.backward_with(g).unwrap();
    let want: Vec<f64> = (12..18).map(|i| i as f64).collect();
    assert_eq!(vars[2].grad().as_ref().unwrap().data(), &want[..]);
}

/// (M, k, G, R, B, H, W, seed) with nk <= 5, so that each gradcheck stays small.
fn config() -> impl Strategy<Value = (usize, usize, usize, usize, usize, usize, usize, u64)> {
    prop_oneof![Just(1usize), Just(3), Just(5)].prop_flat_map(|k| {
        (
            k..=5 * k,
            Just(k),
            1usize..=4,
            1usize..=2,
            1usize..=2,
            1usize..=6,
            1usize..=6,
            0u64..1_000_000,
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn random_configurations_gradcheck_and_dense(
        (big, small, groups, reps, b, h, w, seed) in config()
    ) {
        let t = tables(big, small, reps, groups, seed);
        let e = t.extra();
        let y = input([b, reps * t.nk(), h + 2 * e, w + 2 * e], seed ^ 1);
        let tc = t.clone();
        let f = move |v: &[Var<f64>]| {
            let (ho, vo, io) = shift_add(&v[0], &tc)?;
            cases::stack3(&ho, &vo, &io)
        };
        let r = gradcheck(&f, &[y], &[true], Tolerance::default(), seed).unwrap();
        prop_assert!(r.passed(), "{r:?}");
        check_dense(big, small, reps, groups, (h, w), seed);
    }
}
