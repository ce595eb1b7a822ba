//! OpenCL against the CPU reference for the shift-add (SPEC 1.3): forward values and `dY` of
//! each of the three paths, f32 and f64, on random geometries (M divisible by k or not,
//! k = 1, 3, 5, G = 1..4, maps smaller and larger than M, non-square); bitwise determinism of
//! forward and backward; the tables uploaded once per tables object; and the shift_add cases
//! of the gradcheck suite evaluated on the device. Skipped, with a note, where no OpenCL
//! device exists.

use proptest::prelude::*;
use shiftgrad::ops::parity::{compare, deterministic, fp64, opencl_device};
use shiftgrad::ops::shift_add::{shift_add, shift_add_sparse, LiveChannels, ShiftTables};
use shiftgrad::ops::{add_n, mul, sum, Real, Var};
use shiftgrad::tensor::compare::{assert_close, Scale};
use shiftgrad::tensor::{init, Device, Tensor};
use std::rc::Rc;

thread_local! {
    /// One device per test thread, so that each program is compiled once per thread rather
    /// than once per proptest case.
    static DEVICE: Option<Device> = opencl_device();
}

fn device() -> Option<Device> {
    DEVICE.with(|d| d.clone())
}

/// (M, k) pairs: M divisible by k or not, k = 1, 3, 5, M = k.
const GEOMETRIES: [(usize, usize); 10] = [
    (13, 3),
    (10, 3),
    (51, 5),
    (9, 3),
    (3, 3),
    (17, 5),
    (5, 5),
    (7, 1),
    (4, 1),
    (31, 3),
];

fn tables(big: usize, small: usize, reps: usize, groups: usize, seed: u64) -> Rc<ShiftTables> {
    Rc::new(ShiftTables::random(big, small, reps, groups, &mut init::rng(seed)).unwrap())
}

/// A random `Y` for a `(batch, h, w)` output map.
fn bank_output<T: Real>(t: &ShiftTables, batch: usize, h: usize, w: usize, seed: u64) -> Tensor<T> {
    let e = t.extra();
    init::normal(
        [batch, t.reps * t.nk(), h + 2 * e, w + 2 * e],
        0.0,
        1.0,
        &mut init::rng(seed),
    )
}

/// Path `p` (0 = Hout, 1 = Vout, 2 = Iout) of the shift-add of `y`.
fn path<T: Real>(y: &Var<T>, t: &Rc<ShiftTables>, p: usize) -> shiftgrad::ops::Result<Var<T>> {
    let (h, v, i) = shift_add(y, t)?;
    Ok(vec![h, v, i].swap_remove(p))
}

/// Largest relative difference (output and `dY`) over the three paths.
fn parity<T: Real>(dev: &Device, t: &Rc<ShiftTables>, y: Tensor<T>, seed: u64) -> [f64; 3] {
    let mut out = [0.0; 3];
    for (p, slot) in out.iter_mut().enumerate() {
        let r = compare(
            dev,
            &|v| path(&v[0], t, p),
            std::slice::from_ref(&y),
            &[true],
            seed + p as u64,
        )
        .unwrap();
        *slot = r.max();
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn forward_and_gradients_match_cpu(
        geometry in 0..GEOMETRIES.len(),
        reps in 1usize..4,
        groups in 1usize..5,
        batch in 1usize..3,
        h in 1usize..12,
        w in 1usize..12,
        seed in 0u64..1000,
    ) {
        let Some(dev) = device() else { return Ok(()) };
        let (big, small) = GEOMETRIES[geometry];
        let t = tables(big, small, reps, groups, seed);
        let r = parity(&dev, &t, bank_output::<f32>(&t, batch, h, w, seed), seed);
        // Gathers of additions in the same order: bitwise equal (measured 0 in every case).
        prop_assert!(r.iter().all(|&d| d <= 0.0), "f32 M{big} k{small} {r:?}");
        if fp64(&dev, "f64 parity") {
            let r = parity(&dev, &t, bank_output::<f64>(&t, batch, h, w, seed), seed);
            prop_assert!(r.iter().all(|&d| d <= 0.0), "f64 M{big} k{small} {r:?}");
        }
    }
}

/// A few fixed geometries, including the SW-ResNet sizes (M = 13, k = 3, G = 4), maps much
/// smaller than M and an empty batch, so the edge cases do not depend on the proptest draw.
#[test]
fn fixed_geometries_match_cpu() {
    let Some(dev) = device() else { return };
    for (i, &(big, small, reps, groups, batch, h, w)) in [
        (13, 3, 3, 4, 2, 28, 28),
        (13, 3, 2, 4, 1, 7, 7),
        (51, 5, 2, 3, 1, 2, 9),
        (10, 3, 2, 2, 2, 13, 5),
        (7, 1, 1, 4, 1, 1, 1),
        (31, 3, 1, 1, 1, 1, 17),
        (13, 3, 2, 2, 0, 4, 4),
    ]
    .iter()
    .enumerate()
    {
        let seed = 50 + i as u64;
        let t = tables(big, small, reps, groups, seed);
        let r = parity(&dev, &t, bank_output::<f32>(&t, batch, h, w, seed), seed);
        assert!(r.iter().all(|&d| d <= 0.0), "f32 case {i}: {r:?}");
        if fp64(&dev, "f64 parity") {
            let r = parity(&dev, &t, bank_output::<f64>(&t, batch, h, w, seed), seed);
            assert!(r.iter().all(|&d| d <= 0.0), "f64 case {i}: {r:?}");
        }
    }
}

/// The sparse shift-add (SPEC 1.6) against the CPU reference: random masks, all live, all
/// pruned and one live kernel, f32 and f64, each path; bitwise equal like the dense op.
#[test]
fn sparse_masks_match_cpu() {
    use rand::Rng as _;
    let Some(dev) = device() else { return };
    for (i, &(big, small, reps, groups, batch, h, w)) in [
        (13, 3, 3, 4, 2, 28, 28),
        (13, 3, 2, 4, 1, 7, 7),
        (51, 5, 2, 3, 1, 2, 9),
        (10, 3, 2, 2, 2, 13, 5),
    ]
    .iter()
    .enumerate()
    {
        let seed = 70 + i as u64;
        let t = tables(big, small, reps, groups, seed);
        let n = reps * t.nk();
        let mut rng = init::rng(seed);
        let mut one = vec![false; n];
        one[rng.gen_range(0..n)] = true;
        let masks = [
            (0..n).map(|_| rng.gen_bool(0.5)).collect::<Vec<_>>(),
            (0..n).map(|_| rng.gen_bool(0.2)).collect(),
            vec![true; n],
            vec![false; n],
            one,
        ];
        for (m, mask) in masks.iter().enumerate() {
            let live = Rc::new(LiveChannels::from_mask(reps, t.nk(), mask).unwrap());
            let e = t.extra();
            let shape = [batch, live.len(), h + 2 * e, w + 2 * e];
            for p in 0..3 {
                let f = |v: &[Var<f32>]| -> shiftgrad::ops::Result<Var<f32>> {
                    let (h, v, i) = shift_add_sparse(&v[0], &t, &live)?;
                    Ok(vec![h, v, i].swap_remove(p))
                };
                let y = init::normal::<f32>(shape, 0.0, 1.0, &mut init::rng(seed + m as u64));
                let r = compare(&dev, &f, std::slice::from_ref(&y), &[true], seed).unwrap();
                assert!(
                    r.max() <= 0.0,
                    "f32 case {i} mask {m} path {p}: {}",
                    r.max()
                );
                if fp64(&dev, "f64 parity") {
                    let f = |v: &[Var<f64>]| -> shiftgrad::ops::Result<Var<f64>> {
                        let (h, v, i) = shift_add_sparse(&v[0], &t, &live)?;
                        Ok(vec![h, v, i].swap_remove(p))
                    };
                    let y = init::normal::<f64>(shape, 0.0, 1.0, &mut init::rng(seed + m as u64));
                    let r = compare(&dev, &f, std::slice::from_ref(&y), &[true], seed).unwrap();
                    assert!(
                        r.max() <= 0.0,
                        "f64 case {i} mask {m} path {p}: {}",
                        r.max()
                    );
                }
            }
        }
    }
}

#[test]
fn forward_and_backward_are_deterministic() {
    let Some(dev) = device() else { return };
    let t = tables(13, 3, 3, 4, 7);
    let y32 = bank_output::<f32>(&t, 2, 9, 14, 8);
    let y64 = bank_output::<f64>(&t, 2, 9, 14, 8);
    for p in 0..3 {
        let f32_same = deterministic(
            &dev,
            &|v| path(&v[0], &t, p),
            std::slice::from_ref(&y32),
            &[true],
        )
        .unwrap();
        assert!(f32_same, "f32 path {p} differs between runs");
        if fp64(&dev, "f64 parity") {
            let f64_same = deterministic(
                &dev,
                &|v| path(&v[0], &t, p),
                std::slice::from_ref(&y64),
                &[true],
            )
            .unwrap();
            assert!(f64_same, "f64 path {p} differs between runs");
        }
    }
}

/// The one backward of the op gathers `dY` from whichever output gradients exist: every
/// non-empty subset of the three paths (the kernel's `paths` mask), on the device against the
/// CPU, bitwise (the same additions in the same order; measured 0).
#[test]
fn backward_of_every_subset_of_paths_matches_cpu() {
    let Some(dev) = device() else { return };
    if !fp64(&dev, "shift-add backward subsets in f64") {
        return;
    }
    let t = tables(10, 3, 2, 3, 11);
    let y: Tensor<f64> = bank_output(&t, 2, 6, 5, 12);
    let seeds = [21, 22, 23];
    for mask in 1u32..8 {
        let run = |device: &Device| -> Tensor<f64> {
            let yv = Var::leaf(y.to_device(device).unwrap(), true);
            let (h, v, i) = shift_add(&yv, &t).unwrap();
            let terms: Vec<Var<f64>> = [h, v, i]
                .iter()
                .zip(seeds)
                .enumerate()
                .filter(|(p, _)| mask & (1 << p) != 0)
                .map(|(_, (out, s))| {
                    let g: Tensor<f64> = init::normal(out.shape(), 0.0, 1.0, &mut init::rng(s));
                    let g = Var::constant(g.to_device(device).unwrap());
                    sum(&mul(out, &g).unwrap()).unwrap()
                })
                .collect();
            let refs: Vec<&Var<f64>> = terms.iter().collect();
            add_n(&refs).unwrap().backward().unwrap();
            let g = yv.grad().as_ref().unwrap().to_host().unwrap();
            g
        };
        let (cpu, gpu) = (run(&Device::Cpu), run(&dev));
        assert_close(
            &format!("dY of paths {mask:03b}"),
            &gpu,
            &cpu,
            Scale::Absolute,
            0.0,
        );
    }
}

/// The tables are uploaded on the first call only, and released with their last `Rc`.
#[test]
fn tables_are_uploaded_once_per_tables_object() {
    let Some(dev) = device() else { return };
    let Device::OpenCl(ctx) = &dev else {
        unreachable!()
    };
    let allocations = || {
        let s = ctx.pool_stats();
        s.fresh_allocations + s.reuses
    };
    let table_bytes = |t: &ShiftTables| 4 * (t.pad_hv.len() + t.idx_identit.len()) as u64;
    let run = |t: &Rc<ShiftTables>, seed| {
        let y = bank_output::<f32>(t, 1, 5, 6, seed)
            .to_device(&dev)
            .unwrap();
        let (h, v, i) = shift_add(&Var::constant(y), t).unwrap();
        drop((h, v, i));
    };
    let t1 = tables(13, 3, 2, 4, 1);
    let live0 = ctx.pool_stats().live_bytes;
    run(&t1, 2);
    assert_eq!(ctx.pool_stats().live_bytes, live0 + table_bytes(&t1));
    // Second call: the input and three outputs only, no table upload.
    let before = allocations();
    run(&t1, 3);
    assert_eq!(allocations() - before, 4);
    assert_eq!(ctx.pool_stats().live_bytes, live0 + table_bytes(&t1));
    // A clone of the Rc is the same tables object; a new object with equal contents is not.
    let t1b = t1.clone();
    let before = allocations();
    run(&t1b, 4);
    assert_eq!(allocations() - before, 4);
    let t1c = Rc::new((*t1).clone());
    let before = allocations();
    run(&t1c, 5);
    assert_eq!(allocations() - before, 6);
    // Dropping the last Rc frees the device copy at the next lookup.
    drop((t1, t1b, t1c));
    let t2 = tables(51, 5, 1, 2, 5);
    run(&t2, 6);
    assert_eq!(ctx.pool_stats().live_bytes, live0 + table_bytes(&t2));
}

#[test]
fn gradcheck_suite_cases_pass_on_the_device() {
    let Some(dev) = device() else { return };
    if !fp64(&dev, "f64 gradcheck suite on the device") {
        return;
    }
    let cases: Vec<_> = shiftgrad::ops::suite::all_cases()
        .into_iter()
        .filter(|c| c.op == "shift_add" || c.op == "shift_add_sparse")
        .collect();
    assert!(!cases.is_empty());
    for case in &cases {
        let report = case.run_on(&dev).unwrap();
        assert!(report.passed(), "{}: {report:?}", case.config);
    }
}

/// The GPU-shaped kernels (an element per work-item; `ops::device::gpu_shaped`, forced here
/// with `with_gpu_shaped`) against the row and plane kernels, on the device: outputs and `dY`
/// bit for bit, dense and sparse (the sparse `Y` holds the live channels only), every subset
/// of paths in the backward. Made to fail by reading the vertical path's column without the
/// margin (`col` for `col + e`).
#[test]
fn gpu_shaped_variants_equal_the_row_kernels() {
    use shiftgrad::ops::device::with_gpu_shaped;
    let Some(dev) = device() else { return };
    for (n, &(big, small)) in GEOMETRIES.iter().enumerate() {
        let seed = 300 + n as u64;
        let t = tables(big, small, 3, 4, seed);
        let nk = t.nk();
        let mask: Vec<bool> = (0..3 * nk).map(|i| (i * 7 + n) % 3 != 0).collect();
        let live = Rc::new(LiveChannels::from_mask(3, nk, &mask).unwrap());
        for sparse in [false, true] {
            let channels = if sparse { live.len() } else { 3 * nk };
            let e = t.extra();
            let y: Tensor<f32> = init::normal(
                [2, channels, 9 + 2 * e, 21 + 2 * e],
                0.0,
                1.0,
                &mut init::rng(seed + 1),
            );
            for paths in 1u32..8 {
                let run = |gpu: bool| {
                    with_gpu_shaped(gpu, || {
                        let yv = Var::leaf(y.to_device(&dev).unwrap(), true);
                        let (h, v, i) = match sparse {
                            false => shift_add(&yv, &t).unwrap(),
                            true => shift_add_sparse(&yv, &t, &live).unwrap(),
                        };
                        let outs: Vec<Vec<f32>> = [&h, &v, &i]
                            .iter()
                            .map(|o| o.value().to_vec().unwrap())
                            .collect();
                        let terms: Vec<Var<f32>> = [h, v, i]
                            .iter()
                            .enumerate()
                            .filter(|(p, _)| paths & (1 << p) != 0)
                            .map(|(p, out)| {
                                let g: Tensor<f32> = init::normal(
                                    out.shape(),
                                    0.0,
                                    1.0,
                                    &mut init::rng(seed + 10 + p as u64),
                                );
                                let g = Var::constant(g.to_device(&dev).unwrap());
                                sum(&mul(out, &g).unwrap()).unwrap()
                            })
                            .collect();
                        let refs: Vec<&Var<f32>> = terms.iter().collect();
                        add_n(&refs).unwrap().backward().unwrap();
                        let dy = yv.grad().as_ref().unwrap().to_vec().unwrap();
                        (outs, dy)
                    })
                };
                let (rows, items) = (run(false), run(true));
                let what = format!("M{big} k{small} sparse {sparse} paths {paths:03b}");
                assert!(rows.1.iter().all(|v| v.is_finite()), "{what}");
                assert_eq!(rows.0, items.0, "outputs, {what}");
                assert_eq!(rows.1, items.1, "dY, {what}");
            }
        }
    }
}
