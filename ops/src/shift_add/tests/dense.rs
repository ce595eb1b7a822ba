//! Dense equivalent (SPEC 1.4).

use super::*;

#[test]
fn dense_padding_is_asymmetric_when_needed() {
    let t = tables(49, 3, 1, 1, 0); // nk 17, L 51: offsets -24..+26
    assert_eq!(
        dense_padding(&t),
        ([1, 1, 24, 26], [24, 26, 1, 1], [1, 1, 1, 1])
    );
    let t = tables(51, 3, 1, 1, 0); // L = M = 51, symmetric
    assert_eq!(dense_padding(&t).0, [1, 1, 25, 25]);
    let t = tables(51, 5, 1, 1, 0); // nk 11, L 55: -25..+29
    assert_eq!(dense_padding(&t).1, [25, 29, 2, 2]);
    let t = tables(12, 3, 1, 1, 0); // L = M = 12, even: -6..+5
    assert_eq!(dense_padding(&t).0, [1, 1, 6, 5]);
}

/// Bank conv + shift-add equals three depthwise cross-correlations with the dense kernels.
pub(super) fn check_dense(
    big: usize,
    small: usize,
    reps: usize,
    groups: usize,
    hw: (usize, usize),
    seed: u64,
) {
    let (h, w) = hw;
    let t = tables(big, small, reps, groups, seed);
    let nk = t.nk();
    let x = input([2, reps, h, w], seed + 1);
    let bank = input([reps * nk, 1, small, small], seed + 2);
    let y = naive_bank_conv(&x, &bank, nk, small);
    let (hout, vout, iout) = shift_add(&Var::constant(y), &t).unwrap();
    let (dh, dv, di) = dense_kernels(&t, &bank).unwrap();
    let l = nk * small;
    assert_eq!(dh.dims(), &[reps, 1, small, l]);
    assert_eq!(dv.dims(), &[reps, 1, l, small]);
    assert_eq!(di.dims(), &[reps, 1, small, small]);
    let (ph, pv, pi) = dense_padding(&t);
    let cfg = format!("M{big} k{small} R{reps} G{groups} {h}x{w}");
    assert_close(&hout.value(), &naive_depthwise(&x, &dh, ph), 1e-12, &cfg);
    assert_close(&vout.value(), &naive_depthwise(&x, &dv, pv), 1e-12, &cfg);
    assert_close(&iout.value(), &naive_depthwise(&x, &di, pi), 1e-12, &cfg);
}

#[test]
fn dense_equivalent_is_exact() {
    let mut seed = 100;
    // 12: M even and divisible by k (k = 3), also an asymmetric kernel.
    for big in [13, 51, 10, 49, 12] {
        for small in [3, 5] {
            for groups in 1..=4 {
                // Maps smaller and larger than M, non-square.
                for hw in [(5, 3), (big + 4, 6), (7, big + 2)] {
                    check_dense(big, small, 2, groups, hw, seed);
                    seed += 3;
                }
            }
        }
    }
}

#[test]
fn dense_kernels_check_the_bank_shape() {
    let t = tables(13, 3, 2, 1, 0);
    let e = dense_kernels(&t, &Tensor::<f64>::zeros([10, 1, 5, 5]))
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "shift_add: bank weight must have shape [10, 1, 3, 3] (R*nk = 2*5), got [10, 1, 5, 5]"
    );
}
