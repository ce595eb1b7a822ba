//! Sparse bank convolution configurations for the gradcheck suite: random masks, one live
//! kernel and every kernel live, k = 1, 3, 5, maps smaller than the kernel.

use super::bank_conv;
use crate::shift_add::cases::random_mask;
use crate::shift_add::LiveChannels;
use crate::suite::{input, GradCase};
use std::rc::Rc;

#[allow(clippy::too_many_arguments)]
fn case(
    reps: usize,
    nk: usize,
    k: usize,
    batch: usize,
    h: usize,
    w: usize,
    mask: Vec<bool>,
    seed: u64,
) -> GradCase {
    let live = Rc::new(LiveChannels::from_mask(reps, nk, &mask).expect("mask length"));
    GradCase::new(
        "bank_conv",
        format!(
            "R{reps} nk{nk} k{k} B{batch} {h}x{w} live {}/{}",
            live.len(),
            mask.len()
        ),
        vec![
            input([batch, reps, h, w], seed),
            input([reps * nk, 1, k, k], seed + 1),
        ],
        Box::new(move |v| bank_conv(&v[0], &v[1], &live)),
    )
}

pub fn cases() -> Vec<GradCase> {
    let mut one = vec![false; 3 * 4];
    one[5] = true;
    vec![
        case(2, 3, 3, 2, 4, 5, random_mask(2, 3, 0.5, 501), 501),
        case(3, 4, 3, 1, 3, 3, one, 502),
        case(1, 3, 5, 1, 3, 4, vec![true; 3], 503),
        case(2, 2, 1, 2, 2, 3, random_mask(2, 2, 0.6, 504), 504),
        case(2, 5, 5, 1, 2, 2, random_mask(2, 5, 0.4, 505), 505),
    ]
}
