//! conv2d configurations for the gradcheck suite: strides 1, 2 and (2, 1); padding 0, 1 and
//! asymmetric; groups 1, 2, depthwise and a channel multiplier of 5; kernels 3x3, 1x1, 5x1,
//! 1x7, 5x5 and 13x3 (the last two larger than their map); with and without bias; and two
//! cases where only some inputs take a gradient (the backward must skip the others).
//! Config: `"KHxKW s<stride> p<pad> g<groups> <C_in>-><C_out> <H>x<W> [b]"`; `p[t,b,l,r]` is
//! per side.

use super::{conv2d, Conv2dParams};
use crate::suite::{input, GradCase};

/// One case: `x (n, c_in, h, w)`, `w (c_out, c_in/groups, kh, kw)`, bias if `bias`.
fn case(
    config: &str,
    (n, c_in, h, w): (usize, usize, usize, usize),
    (c_out, kh, kw): (usize, usize, usize),
    p: Conv2dParams,
    bias: bool,
    seed: u64,
) -> GradCase {
    let mut inputs = vec![
        input([n, c_in, h, w], seed),
        input([c_out, c_in / p.groups, kh, kw], seed + 1),
    ];
    if bias {
        inputs.push(input([c_out], seed + 2));
    }
    GradCase::new(
        "conv2d",
        config,
        inputs,
        Box::new(move |v| conv2d(&v[0], &v[1], v.get(2), p)),
    )
}

pub fn cases() -> Vec<GradCase> {
    let p = Conv2dParams::new;
    let mut cases = vec![
        case(
            "3x3 s1 p0 g1 3->4 6x6 b",
            (1, 3, 6, 6),
            (4, 3, 3),
            p(),
            true,
            100,
        ),
        case(
            "3x3 s2 p1 g1 4->6 5x5",
            (2, 4, 5, 5),
            (6, 3, 3),
            p().stride(2).pad(1, 1),
            false,
            110,
        ),
        case(
            "3x3 s1 p[1,0,2,1] g2 4->6 5x6 b",
            (1, 4, 5, 6),
            (6, 3, 3),
            p().pad_sides([1, 0, 2, 1]).groups(2),
            true,
            120,
        ),
        case(
            "3x3 s2 p[0,2,1,0] g1 2->3 6x5 b",
            (2, 2, 6, 5),
            (3, 3, 3),
            p().stride(2).pad_sides([0, 2, 1, 0]),
            true,
            130,
        ),
        case(
            "3x3 s(2,1) p1 g1 2->3 5x5",
            (1, 2, 5, 5),
            (3, 3, 3),
            Conv2dParams {
                stride: (2, 1),
                ..p().pad(1, 1)
            },
            false,
            140,
        ),
        case(
            "3x3 s1 p1 depthwise 4 6x6 b",
            (2, 4, 6, 6),
            (4, 3, 3),
            p().pad(1, 1).groups(4),
            true,
            150,
        ),
        case(
            "3x3 s2 p1 g2 2->10 (x5) 5x5 b",
            (1, 2, 5, 5),
            (10, 3, 3),
            p().stride(2).pad(1, 1).groups(2),
            true,
            160,
        ),
        case(
            "1x1 s1 p0 g1 4->3 4x4 b",
            (2, 4, 4, 4),
            (3, 1, 1),
            p(),
            true,
            170,
        ),
        case(
            "1x1 s2 p0 g1 3->2 5x5",
            (1, 3, 5, 5),
            (2, 1, 1),
            p().stride(2),
            false,
            180,
        ),
        case(
            "5x1 s1 p(2,0) depthwise 3 7x5 b",
            (1, 3, 7, 5),
            (3, 5, 1),
            p().pad(2, 0).groups(3),
            true,
            190,
        ),
        case(
            "1x7 s1 p(0,3) g1 2->3 4x8 b",
            (1, 2, 4, 8),
            (3, 1, 7),
            p().pad(0, 3),
            true,
            200,
        ),
        case(
            "1x7 s2 p(0,3) depthwise 2 3x9",
            (2, 2, 3, 9),
            (2, 1, 7),
            p().stride(2).pad(0, 3).groups(2),
            false,
            210,
        ),
        case(
            "13x3 s1 p(6,1) depthwise 2 6x6 b",
            (1, 2, 6, 6),
            (2, 13, 3),
            p().pad(6, 1).groups(2),
            true,
            220,
        ),
        case(
            "5x5 s1 p2 g1 2->2 3x3 b",
            (1, 2, 3, 3),
            (2, 5, 5),
            p().pad(2, 2),
            true,
            230,
        ),
    ];
    // Only the weight and bias take a gradient (a first layer), then only the input.
    let mut weight_only = case(
        "3x3 s1 p1 g1 2->3 5x5 b, dw db only",
        (1, 2, 5, 5),
        (3, 3, 3),
        p().pad(1, 1),
        true,
        240,
    );
    weight_only.wrt = vec![false, true, true];
    let mut input_only = case(
        "3x3 s2 p1 g2 4->4 5x5 b, dx only",
        (1, 4, 5, 5),
        (4, 3, 3),
        p().stride(2).pad(1, 1).groups(2),
        true,
        250,
    );
    input_only.wrt = vec![true, false, false];
    cases.push(weight_only);
    cases.push(input_only);
    cases
}
