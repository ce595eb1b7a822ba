//! Tables.

use super::*;

#[test]
fn geometry_matches_spec_examples() {
    assert_eq!(
        ShiftTables::shifts(51, 3),
        (0..17).map(|i| 23 - 3 * i).collect::<Vec<_>>()
    );
    assert_eq!(ShiftTables::shifts(51, 3).last(), Some(&-25));
    assert_eq!(
        ShiftTables::shifts(51, 5),
        (0..11).map(|i| 21 - 5 * i).collect::<Vec<_>>()
    );
    assert_eq!(ShiftTables::shifts(51, 5).last(), Some(&-29));
    assert_eq!(ShiftTables::shifts(10, 3), vec![3, 0, -3, -6]);
    let t = tables(49, 3, 2, 1, 0);
    assert_eq!((t.nk(), t.extra()), (17, 1));
    let t = tables(51, 5, 1, 1, 0);
    assert_eq!((t.nk(), t.extra()), (11, 2));
    let t = tables(7, 1, 1, 1, 0);
    assert_eq!((t.nk(), t.extra()), (7, 0));
}

#[test]
fn bad_geometry_is_an_error() {
    let msg = |r: Result<()>| r.unwrap_err().to_string();
    assert_eq!(
        msg(ShiftTables::check_geometry(13, 4, 1, 1)),
        "shift_add: small kernel must be odd, got 4"
    );
    assert_eq!(
        msg(ShiftTables::check_geometry(13, 0, 1, 1)),
        "shift_add: small kernel must be at least 1, got 0"
    );
    assert_eq!(
        msg(ShiftTables::check_geometry(3, 5, 1, 1)),
        "shift_add: big kernel must be at least the small kernel, got big 3 < small 5"
    );
    assert_eq!(
        msg(ShiftTables::check_geometry(13, 3, 0, 1)),
        "shift_add: need at least one rep channel, got 0"
    );
    assert_eq!(
        msg(ShiftTables::check_geometry(13, 3, 1, 0)),
        "shift_add: need at least one index group, got 0"
    );
    assert!(ShiftTables::random(13, 4, 1, 1, &mut init::rng(0)).is_err());
    assert!(ShiftTables::check_geometry(3, 3, 1, 1).is_ok());
}

#[test]
fn random_tables_follow_the_draw_order() {
    let (big, small, reps, groups) = (13, 3, 3, 2);
    let t = ShiftTables::random(big, small, reps, groups, &mut init::rng(42)).unwrap();
    let nk = t.nk();
    let s = ShiftTables::shifts(big, small);
    let mut rng = init::rng(42);
    for g in 0..groups {
        for o in 0..reps {
            let rh = init::permutation(nk, &mut rng);
            let rv = init::permutation(nk, &mut rng);
            let u: usize = rand::Rng::gen_range(&mut rng, 0..nk);
            assert_eq!(t.rh(g, o), rh);
            assert_eq!(t.rv(g, o), rv);
            assert_eq!(t.idx_identit[o * groups + g], (o * nk + u) as i32);
            for i in 0..nk {
                // SPEC 1.2: pad_hv[o*nk + rh[g][o][i], g] = s_i, column G + g for rv.
                assert_eq!(t.pad_hv[(o * nk + rh[i]) * 2 * groups + g], s[i]);
                assert_eq!(t.pad_hv[(o * nk + rv[i]) * 2 * groups + groups + g], s[i]);
            }
        }
    }
    // Same seed, same tables; another seed, other tables.
    assert_eq!(
        t,
        ShiftTables::random(big, small, reps, groups, &mut init::rng(42)).unwrap()
    );
    assert_ne!(
        t,
        ShiftTables::random(big, small, reps, groups, &mut init::rng(43)).unwrap()
    );
}

#[test]
fn tables_round_trip_through_from_arrays() {
    for (big, small, reps, groups) in [(13, 3, 2, 4), (51, 5, 3, 1), (10, 3, 1, 2), (4, 1, 2, 3)] {
        let t = ShiftTables::random(big, small, reps, groups, &mut init::rng(5)).unwrap();
        let back = ShiftTables::from_arrays(
            big,
            small,
            reps,
            groups,
            t.pad_hv.clone(),
            t.idx_identit.clone(),
        )
        .unwrap();
        assert_eq!(back, t);
    }
}

#[test]
fn from_arrays_rejects_corrupted_tables() {
    let t = ShiftTables::random(13, 3, 2, 2, &mut init::rng(9)).unwrap();
    let (nk, cols) = (t.nk(), 4);
    let rebuild = |pad: Vec<i32>, idx: Vec<i32>| {
        ShiftTables::from_arrays(13, 3, 2, 2, pad, idx)
            .unwrap_err()
            .to_string()
    };
    // Wrong shapes.
    let e = rebuild(t.pad_hv[1..].to_vec(), t.idx_identit.clone());
    assert!(e.starts_with("shift_add: pad_hv must have shape"), "{e}");
    let e = rebuild(t.pad_hv.clone(), vec![0; 3]);
    assert!(
        e.starts_with("shift_add: idx_identit must have shape"),
        "{e}"
    );
    // A value that is not a shift.
    let mut pad = t.pad_hv.clone();
    pad[cols + 1] += 1;
    let e = rebuild(pad, t.idx_identit.clone());
    assert!(e.contains("is not a permutation of the shifts"), "{e}");
    // A duplicated shift within a block (vertical column of group 1, rep 1).
    let mut pad = t.pad_hv.clone();
    pad[nk * cols + 3] = pad[(nk + 1) * cols + 3];
    let e = rebuild(pad, t.idx_identit.clone());
    assert!(e.contains("column 3 of rep block 1"), "{e}");
    // Column 0 of rep block 0 made to repeat a shift taken from block 1: the column is no
    // longer a permutation within block 0.
    let mut pad = t.pad_hv.clone();
    let other = (0..nk)
        .map(|j| pad[(nk + j) * cols])
        .find(|&s| s != pad[0])
        .unwrap();
    let twin = (1..nk).find(|&j| pad[j * cols] == other).unwrap();
    pad[0] = pad[twin * cols];
    let e = rebuild(pad, t.idx_identit.clone());
    assert!(e.contains("column 0 of rep block 0"), "{e}");
    // An identity index in another rep's block, and a negative one.
    let mut idx = t.idx_identit.clone();
    idx[0] = nk as i32; // rep 0, group 0 pointing into rep 1
    let e = rebuild(t.pad_hv.clone(), idx);
    assert!(
        e.contains("idx_identit[0, 0] = 5 is outside rep 0's bank channels 0..5"),
        "{e}"
    );
    let mut idx = t.idx_identit.clone();
    idx[3] = -1;
    assert!(rebuild(t.pad_hv.clone(), idx).contains("idx_identit[1, 1] = -1"));
    // Bad geometry.
    let e = ShiftTables::from_arrays(13, 2, 2, 2, t.pad_hv.clone(), t.idx_identit.clone())
        .unwrap_err()
        .to_string();
    assert_eq!(e, "shift_add: small kernel must be odd, got 2");
}
