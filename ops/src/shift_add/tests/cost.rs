//! Cost.

use super::*;

/// In-bounds terms of each path, counted from the naive definition.
fn naive_terms(t: &ShiftTables, b: usize, h: usize, w: usize) -> [u64; 3] {
    let (e, g_n, nk) = (t.extra() as i64, t.groups, t.nk());
    let (hp, wp) = ((h + 2 * e as usize) as i64, (w + 2 * e as usize) as i64);
    let inside = |r: i64, q: i64| (0..hp).contains(&r) && (0..wp).contains(&q);
    let mut n = [0u64; 3];
    for o in 0..t.reps {
        for y in 0..h as i64 {
            for x in 0..w as i64 {
                for g in 0..g_n {
                    for j in 0..nk {
                        let c = o * nk + j;
                        n[0] += inside(y + e, x - t.pad_hv[c * 2 * g_n + g] as i64) as u64;
                        n[1] += inside(y - t.pad_hv[c * 2 * g_n + g_n + g] as i64, x + e) as u64;
                    }
                    n[2] += 1;
                }
            }
        }
    }
    n.map(|v| v * b as u64)
}

#[test]
fn cost_matches_hand_formula() {
    // k = 1, M = 3, one rep, one group, 1x3 map (the hand example): Hout has 2 + 3 + 2 terms,
    // Vout 3 (only the zero shift stays in a one-row map), Iout 3.
    let t = ShiftTables::from_arrays(3, 1, 1, 1, vec![1, 1, 0, 0, -1, -1], vec![2]).unwrap();
    let c = cost::<f64>(&t, 1, 1, 3);
    assert_eq!(c.forward.flops, 7 + 3 + 3);
    assert_eq!(c.forward.macs, 0);
    // Y 9 + outputs 9, f64; tables 6 + 1 int32.
    assert_eq!(c.forward.bytes, 8 * 18 + 4 * 7);
    assert_eq!(c.backward.flops, 13);
    // One node: read the three output gradients (3 each), write dY (9) once; tables 3 + 3 + 1.
    assert_eq!(c.backward.bytes, 8 * (3 * 3 + 9) + 4 * 7);

    // Against the naive count, and within SPEC 4's bound of (2nk + 1) G per pixel and channel.
    for (big, small, reps, groups, b, h, w) in [
        (13, 3, 2, 3, 2, 5, 7),
        (51, 5, 1, 4, 1, 14, 9),
        (10, 3, 3, 1, 1, 30, 2),
    ] {
        let t = tables(big, small, reps, groups, 7);
        let n = naive_terms(&t, b, h, w);
        let c = cost::<f32>(&t, b, h, w);
        assert_eq!(c.forward.flops, n.iter().sum::<u64>());
        assert_eq!(c.backward.flops, c.forward.flops);
        let bound = (b * reps * h * w * (2 * t.nk() + 1) * groups) as u64;
        assert!(c.forward.flops <= bound);
        let (e, nk) = (t.extra(), t.nk());
        let y = b * reps * nk * (h + 2 * e) * (w + 2 * e);
        let out = b * reps * h * w;
        let tb = 4 * (reps * nk * 2 * groups + reps * groups) as u64;
        assert_eq!(c.forward.bytes, (4 * (y + 3 * out)) as u64 + tb);
        // dY written once, the three output gradients read once each.
        assert_eq!(c.backward.bytes, (4 * (y + 3 * out)) as u64 + tb);
    }
}
