//! Fused shift-wise operator configurations for the gradcheck suite: random masks, one live
//! kernel and every kernel live, k = 1, 3, 5, gradients with respect to the input and the
//! bank.

use super::sw_fused;
use crate::shift_add::cases::{random_mask, stack3};
use crate::shift_add::{LiveChannels, ShiftTables};
use crate::suite::{input, GradCase};
use shiftgrad_tensor::init;
use std::rc::Rc;

#[allow(clippy::too_many_arguments)]
fn case(
    big: usize,
    k: usize,
    reps: usize,
    groups: usize,
    h: usize,
    w: usize,
    mask: impl FnOnce(usize) -> Vec<bool>,
    seed: u64,
) -> GradCase {
    let tables = Rc::new(
        ShiftTables::random(big, k, reps, groups, &mut init::rng(seed))
            .expect("valid case geometry"),
    );
    let nk = tables.nk();
    let mask = mask(nk);
    let live = Rc::new(LiveChannels::from_mask(reps, nk, &mask).expect("mask length"));
    GradCase::new(
        "sw_fused",
        format!(
            "M{big} k{k} R{reps} G{groups} {h}x{w} live {}/{}",
            live.len(),
            mask.len()
        ),
        vec![
            input([1, reps, h, w], seed),
            input([reps * nk, 1, k, k], seed + 1),
        ],
        Box::new(move |v| {
            let (hout, vout, iout) = sw_fused(&v[0], &v[1], &tables, &live)?;
            stack3(&hout, &vout, &iout)
        }),
    )
}

pub fn cases() -> Vec<GradCase> {
    vec![
        case(13, 3, 2, 2, 4, 5, |nk| random_mask(2, nk, 0.5, 601), 601),
        case(11, 5, 1, 3, 3, 4, |nk| random_mask(1, nk, 0.4, 602), 602),
        case(
            7,
            3,
            2,
            4,
            3,
            3,
            |nk| {
                let mut one = vec![false; 2 * nk];
                one[nk + 1] = true;
                one
            },
            603,
        ),
        case(5, 1, 2, 2, 3, 4, |nk| vec![true; 2 * nk], 604),
    ]
}
