//! shift-add configurations for the gradcheck suite. The three outputs are checked together:
//! each case stacks `(Hout, Vout, Iout)` along a new leading axis (a small private op with its
//! own backward), so the random cotangent of the gradcheck weighs every element of every path.
//! Sizes are small: the input is `Y`, `(B, R*nk, H+2e, W+2e)`, and each element costs two
//! forward passes.

use super::{shift_add, shift_add_sparse, LiveChannels, ShiftTables};
use crate::device::common_device;
use crate::suite::{input, GradCase};
use shiftgrad_autograd::Var;
use shiftgrad_tensor::{init, Result, Tensor};
use std::rc::Rc;

/// Stacks three values of one shape along a new leading axis; the backward splits the
/// gradient into its three thirds. Works on any device: it is test scaffolding, not an op,
/// so it stacks on the host (reading device values back) and puts the result on the inputs'
/// device, which keeps the suite's `--device` runs on one device without a kernel of its own.
pub(crate) fn stack3(a: &Var<f64>, b: &Var<f64>, c: &Var<f64>) -> Result<Var<f64>> {
    let (va, vb, vc) = (a.value(), b.value(), c.value());
    va.check_same_shape(&vb, "stack3")?;
    va.check_same_shape(&vc, "stack3")?;
    let device = common_device("stack3", &[&va, &vb, &vc])?;
    let n = va.numel();
    let mut dims = vec![3];
    dims.extend_from_slice(va.dims());
    let mut data = Vec::with_capacity(3 * n);
    for v in [&va, &vb, &vc] {
        data.extend_from_slice(v.to_host()?.data());
    }
    let shape = va.shape().clone();
    let value = Tensor::new(dims, data)?.to_device(&device)?;
    drop((va, vb, vc));
    Ok(Var::from_op("stack3", value, &[a, b, c], move |ctx| {
        let g = ctx.grad_out.to_host()?;
        let g = g.data();
        (0..3)
            .map(|p| {
                ctx.needs[p]
                    .then(|| {
                        Tensor::new(shape.clone(), g[p * n..(p + 1) * n].to_vec())?
                            .to_device(&device)
                    })
                    .transpose()
            })
            .collect()
    }))
}

/// One case: tables drawn from `seed`, `Y` for a `(batch, h, w)` output map.
#[allow(clippy::too_many_arguments)]
fn case(
    big: usize,
    small: usize,
    reps: usize,
    groups: usize,
    batch: usize,
    h: usize,
    w: usize,
    seed: u64,
) -> GradCase {
    let tables = Rc::new(
        ShiftTables::random(big, small, reps, groups, &mut init::rng(seed))
            .expect("valid case geometry"),
    );
    let e = small / 2;
    let nk = tables.nk();
    let y = input([batch, reps * nk, h + 2 * e, w + 2 * e], seed + 1);
    GradCase::new(
        "shift_add",
        format!("M{big} k{small} R{reps} G{groups} B{batch} {h}x{w}"),
        vec![y],
        Box::new(move |v| {
            let (hout, vout, iout) = shift_add(&v[0], &tables)?;
            stack3(&hout, &vout, &iout)
        }),
    )
}

/// A random mask over `reps * nk` kernels with exactly `round(density * n)` of them live (at
/// least one and, below density 1, at least one pruned: a case with nothing live would pass
/// any check), drawn from `seed`.
pub(crate) fn random_mask(reps: usize, nk: usize, density: f64, seed: u64) -> Vec<bool> {
    let n = reps * nk;
    let mut live = ((density * n as f64).round() as usize).clamp(1, n);
    if density < 1.0 && n > 1 {
        live = live.min(n - 1);
    }
    let order = init::permutation(n, &mut init::rng(seed));
    let mut mask = vec![false; n];
    for &i in &order[..live] {
        mask[i] = true;
    }
    mask
}

/// One case of the sparse shift-add (SPEC 1.6): the live channels of `mask`, `Y` holding
/// only them.
#[allow(clippy::too_many_arguments)]
fn sparse_case(
    big: usize,
    small: usize,
    reps: usize,
    groups: usize,
    h: usize,
    w: usize,
    mask: Vec<bool>,
    seed: u64,
) -> GradCase {
    let tables = Rc::new(
        ShiftTables::random(big, small, reps, groups, &mut init::rng(seed))
            .expect("valid case geometry"),
    );
    let live = Rc::new(LiveChannels::from_mask(reps, tables.nk(), &mask).expect("mask length"));
    let e = small / 2;
    let y = input([1, live.len(), h + 2 * e, w + 2 * e], seed + 1);
    GradCase::new(
        "shift_add_sparse",
        format!(
            "M{big} k{small} R{reps} G{groups} {h}x{w} live {}/{}",
            live.len(),
            mask.len()
        ),
        vec![y],
        Box::new(move |v| {
            let (hout, vout, iout) = shift_add_sparse(&v[0], &tables, &live)?;
            stack3(&hout, &vout, &iout)
        }),
    )
}

pub fn cases() -> Vec<GradCase> {
    let mut one_live = vec![false; 2 * 5];
    one_live[7] = true;
    vec![
        // M not divisible by k, G = 1..4, k = 3 and 5, non-square maps.
        case(13, 3, 2, 1, 1, 5, 4, 301),
        case(10, 3, 1, 2, 2, 3, 5, 302),
        case(51, 5, 1, 3, 1, 3, 4, 303),
        // M larger than the map.
        case(13, 3, 1, 4, 1, 4, 3, 304),
        case(17, 5, 2, 2, 1, 2, 3, 305),
        // M divisible by k, M even, k = 1.
        case(9, 3, 2, 3, 1, 6, 7, 306),
        case(6, 1, 1, 2, 1, 3, 2, 307),
        // Sparse: random masks, one live kernel, and all live through the sparse path.
        sparse_case(13, 3, 2, 2, 4, 5, random_mask(2, 5, 0.5, 311), 311),
        sparse_case(51, 5, 1, 3, 3, 4, random_mask(1, 11, 0.3, 312), 312),
        sparse_case(13, 3, 2, 4, 3, 3, one_live, 313),
        sparse_case(10, 3, 2, 2, 3, 4, vec![true; 8], 314),
    ]
}
