//! Tier 1 of the gradient evidence: the whole f64 finite-difference suite, the same cases
//! `shiftgrad gradcheck` prints.

#[test]
fn every_case_of_the_suite_passes() {
    let mut out = Vec::new();
    let rows = shiftgrad::cli::gradcheck::run(None, &Default::default(), &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(!rows.is_empty());
    let failed: Vec<_> = rows.iter().filter(|r| !r.passed).collect();
    assert!(failed.is_empty(), "failing cases:\n{text}");
}

#[test]
fn unknown_op_is_an_error_listing_the_known_ones() {
    let e = shiftgrad::cli::gradcheck::run(Some("nope"), &Default::default(), &mut Vec::new())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("unknown op \"nope\""), "{e}");
    assert!(e.contains("relu"), "{e}");
}
