use super::*;
use crate::suite::GradCase;
use proptest::prelude::*;
use rand::Rng;
use shiftgrad_tensor::{init, Tensor};

fn t(dims: &[usize], data: &[f64]) -> Tensor<f64> {
    Tensor::new(dims, data.to_vec()).unwrap()
}

fn err(x: &[usize], w: &[usize], b: Option<&[usize]>, p: Conv2dParams) -> String {
    let x = Var::constant(Tensor::<f64>::zeros(x));
    let w = Var::constant(Tensor::<f64>::zeros(w));
    let b = b.map(|b| Var::constant(Tensor::<f64>::zeros(b)));
    conv2d(&x, &w, b.as_ref(), p).unwrap_err().to_string()
}

#[test]
fn params_builders() {
    let d = Conv2dParams::new();
    assert_eq!(d, Conv2dParams::default());
    assert_eq!((d.stride, d.pad, d.groups), ((1, 1), [0; 4], 1));
    let p = d.stride(2).pad(1, 3).groups(4);
    assert_eq!((p.stride, p.pad, p.groups), ((2, 2), [1, 1, 3, 3], 4));
    assert_eq!(p.pad_sides([1, 0, 2, 1]).pad, [1, 0, 2, 1]);
}

/// 3x3 input 1..9, kernel [[1, 0], [0, -1]], bias 0.5: every output is
/// x[i,j] - x[i+1,j+1] + 0.5 = -3.5. For L = sum(y): dx = sum of the kernel taps that read
/// each x, dw[ky,kx] = sum of the 2x2 input window at (ky, kx), db = 4.
#[test]
fn values_and_gradients_by_hand() {
    let x = Var::param(t(&[1, 1, 3, 3], &[1., 2., 3., 4., 5., 6., 7., 8., 9.]));
    let w = Var::param(t(&[1, 1, 2, 2], &[1., 0., 0., -1.]));
    let b = Var::param(t(&[1], &[0.5]));
    let y = conv2d(&x, &w, Some(&b), Conv2dParams::new()).unwrap();
    assert_eq!(y.shape().dims(), &[1, 1, 2, 2]);
    assert_eq!(y.value().data(), &[-3.5; 4]);
    crate::sum(&y).unwrap().backward().unwrap();
    assert_eq!(
        x.grad().as_ref().unwrap().data(),
        &[1., 1., 0., 1., 0., -1., 0., -1., -1.]
    );
    assert_eq!(
        w.grad().as_ref().unwrap().data(),
        &[12., 16., 24., 28.] // 1+2+4+5, 2+3+5+6, 4+5+7+8, 5+6+8+9
    );
    assert_eq!(b.grad().as_ref().unwrap().data(), &[4.]);
}

/// 3x3 input 1..9, 3x3 kernel of ones, stride 2, pad 1: the four outputs sum the 2x2 corners.
#[test]
fn stride_and_padding_by_hand() {
    let x = Var::param(t(&[1, 1, 3, 3], &[1., 2., 3., 4., 5., 6., 7., 8., 9.]));
    let w = Var::param(Tensor::ones([1, 1, 3, 3]));
    let y = conv2d(&x, &w, None, Conv2dParams::new().stride(2).pad(1, 1)).unwrap();
    assert_eq!(y.value().data(), &[12., 16., 24., 28.]);
    crate::sum(&y).unwrap().backward().unwrap();
    // How many of the four windows (rows/cols -1..1 and 1..3) hold each input.
    assert_eq!(
        x.grad().as_ref().unwrap().data(),
        &[1., 2., 1., 2., 4., 2., 1., 2., 1.]
    );
    // dw[ky,kx] sums x at rows {ky-1, ky+1} and columns {kx-1, kx+1} inside the map.
    assert_eq!(
        w.grad().as_ref().unwrap().data(),
        &[
            5.,
            4. + 6.,
            5.,
            2. + 8.,
            1. + 3. + 7. + 9.,
            2. + 8.,
            5.,
            4. + 6.,
            5.
        ]
    );
}

/// Depthwise with a channel multiplier of 2 (1 input channel per group, 2 outputs per group):
/// output channel `co` reads input channel `co / 2`.
#[test]
fn groups_route_channels() {
    let x = Var::constant(t(&[1, 2, 1, 2], &[1., 2., 10., 20.]));
    let w = Var::constant(t(&[4, 1, 1, 1], &[1., -1., 2., 3.]));
    let y = conv2d(&x, &w, None, Conv2dParams::new().groups(2)).unwrap();
    assert_eq!(y.value().data(), &[1., 2., -1., -2., 20., 40., 30., 60.]);
}

#[test]
fn error_messages_name_the_op_and_the_shapes() {
    let p = Conv2dParams::new();
    assert_eq!(
        err(&[1, 3, 5, 5], &[2, 4, 3, 3], None, p),
        "conv2d: input has 3 channels, weight expects 4"
    );
    assert_eq!(
        err(&[1, 6, 5, 5], &[4, 2, 3, 3], None, p.groups(2)),
        "conv2d: input has 6 channels, weight expects 4 (2 per group x 2 groups)"
    );
    assert_eq!(
        err(&[3, 5, 5], &[2, 3, 3, 3], None, p),
        "conv2d: input must have 4 dimensions (N, C, H, W), got [3, 5, 5]"
    );
    assert_eq!(
        err(&[1, 3, 5, 5], &[2, 3, 3], None, p),
        "conv2d: weight must have 4 dimensions (C_out, C_in/groups, KH, KW), got [2, 3, 3]"
    );
    assert_eq!(
        err(&[1, 3, 5, 5], &[2, 3, 3, 3], Some(&[3]), p),
        "conv2d: bias must have shape [2] (C_out of weight [2, 3, 3, 3]), got [3]"
    );
    assert_eq!(
        err(&[1, 6, 5, 5], &[6, 2, 3, 3], Some(&[6, 1]), p.groups(3)),
        "conv2d: bias must have shape [6] (C_out of weight [6, 2, 3, 3]), got [6, 1]"
    );
    assert_eq!(
        err(&[1, 6, 5, 5], &[4, 1, 3, 3], None, p.groups(4)),
        "conv2d: input has 6 channels, not divisible by groups 4 (input [1, 6, 5, 5])"
    );
    assert_eq!(
        err(&[1, 4, 5, 5], &[6, 1, 3, 3], None, p.groups(4)),
        "conv2d: weight has 6 output channels, not divisible by groups 4 (weight [6, 1, 3, 3])"
    );
    assert_eq!(
        err(&[1, 4, 5, 5], &[4, 1, 3, 3], None, p.groups(0)),
        "conv2d: groups must be at least 1, got 0"
    );
    assert_eq!(
        err(&[1, 4, 5, 5], &[4, 4, 3, 3], None, p.stride(0)),
        "conv2d: stride must be at least 1, got (0, 0)"
    );
    assert_eq!(
        err(&[1, 2, 6, 6], &[2, 1, 13, 3], None, p.pad(3, 1).groups(2)),
        "conv2d: kernel 13x3 is larger than the padded input 12x8 \
         (input 6x6, pad [top, bottom, left, right] = [3, 3, 1, 1])"
    );
    // The cost model validates the same way.
    let e = cost::<f32>(&[1, 3, 5, 5].into(), &[2, 4, 3, 3].into(), &p, false).unwrap_err();
    assert_eq!(
        e.to_string(),
        "conv2d: input has 3 channels, weight expects 4"
    );
}

#[test]
fn output_size_formula() {
    let p = Conv2dParams::new();
    assert_eq!(output_hw(5, 5, 3, 3, &p).unwrap(), (3, 3));
    assert_eq!(
        output_hw(5, 6, 3, 3, &p.stride(2).pad(1, 1)).unwrap(),
        (3, 3)
    );
    assert_eq!(output_hw(28, 28, 13, 3, &p.pad(6, 1)).unwrap(), (28, 28));
    // A kernel taller than the map is fine when padding makes room.
    assert_eq!(output_hw(6, 6, 13, 3, &p.pad(6, 1)).unwrap(), (6, 6));
    assert_eq!(output_hw(1, 1, 51, 5, &p.pad(25, 2)).unwrap(), (1, 1));
    assert_eq!(
        output_hw(7, 7, 3, 3, &p.pad_sides([1, 0, 2, 1]).stride(2)).unwrap(),
        (3, 4) // (7+1-3)/2+1, (7+3-3)/2+1
    );
    assert!(output_hw(2, 9, 3, 3, &p).is_err());
}

#[test]
fn cost_matches_hand_formula() {
    // 3x3, stride 1, pad 1, 4 -> 6 channels, groups 1, batch 2, 8x8, bias; f32.
    let c = cost::<f32>(
        &[2, 4, 8, 8].into(),
        &[6, 4, 3, 3].into(),
        &Conv2dParams::new().pad(1, 1),
        true,
    )
    .unwrap();
    let (x, w, b, y) = (2 * 4 * 64, 6 * 4 * 9, 6, 2 * 6 * 64);
    let macs = (2 * 6 * 64 * 4 * 9) as u64; // N*Co*Ho*Wo * Cin/G*KH*KW
    assert_eq!(c.forward.macs, macs);
    assert_eq!(c.forward.flops, 2 * macs + y as u64);
    assert_eq!(c.forward.bytes, 4 * (x + w + b + y) as u64);
    assert_eq!(c.backward.macs, 2 * macs);
    assert_eq!(c.backward.flops, 4 * macs + y as u64);
    // Reads dy, x, w; writes dx, dw, db.
    assert_eq!(c.backward.bytes, 4 * (y + x + w + x + w + b) as u64);

    // Depthwise 13x3 on 6x6 with pad (6, 1), stride 2, 3 channels, no bias; f64.
    let c = cost::<f64>(
        &[1, 3, 6, 6].into(),
        &[3, 1, 13, 3].into(),
        &Conv2dParams::new().pad(6, 1).stride(2).groups(3),
        false,
    )
    .unwrap();
    let (x, w, y) = (3 * 36, 3 * 39, 3 * 3 * 3); // Ho = (6+12-13)/2+1 = 3, Wo = (6+2-3)/2+1 = 3
    let macs = (y * 39) as u64;
    assert_eq!(c.forward, Work::with_macs(macs, 0, 8 * (x + w + y) as u64));
    assert_eq!(
        c.backward,
        Work::with_macs(2 * macs, 0, 8 * (y + 2 * x + 2 * w) as u64)
    );
}

#[test]
fn backward_records_only_the_gradients_computed() {
    let g = Geometry::new(
        &[2, 4, 8, 8].into(),
        &[6, 2, 3, 3].into(),
        Some(&[6].into()),
        &Conv2dParams::new().groups(2),
    )
    .unwrap();
    let (x, w, b, y) = (2 * 4 * 64, 6 * 2 * 9, 6, 2 * 6 * 36);
    let macs = g.macs();
    assert_eq!(macs, (y * 2 * 9) as u64);
    let dx = g.backward_work::<f32>(true, false, false);
    assert_eq!(dx, Work::with_macs(macs, 0, 4 * (y + w + x) as u64));
    let dw_db = g.backward_work::<f32>(false, true, true);
    assert_eq!(
        dw_db,
        Work::with_macs(macs, y as u64, 4 * (y + x + w + b) as u64)
    );
    assert_eq!(g.backward_work::<f32>(false, false, false), Work::default());
}

/// The backward computes, returns and records only what `needs` asks for.
#[test]
fn backward_computes_only_what_is_needed() {
    let mut rng = init::rng(5);
    let g = random_geometry(&mut rng, 6, 3);
    let x: Tensor<f64> = init::uniform([g.n, g.c_in, g.h, g.w], -1., 1., &mut rng);
    let w: Tensor<f64> = init::uniform([g.c_out, g.cig(), g.kh, g.kw], -1., 1., &mut rng);
    let dy: Tensor<f64> = init::uniform(g.y_shape(), -1., 1., &mut rng);
    for mask in 0..8 {
        let needs = [mask & 1 != 0, mask & 2 != 0, mask & 4 != 0];
        let (grads, work) = backward(&g, &dy, &x, &w, needs, 1).unwrap();
        let computed = grads.iter().map(Option::is_some).collect::<Vec<_>>();
        assert_eq!(computed, needs);
        assert_eq!(work, g.backward_work::<f64>(needs[0], needs[1], needs[2]));
    }
}

/// Only the gradients of inputs that require one reach them.
#[test]
fn constant_inputs_get_no_gradient() {
    let mut rng = init::rng(3);
    let x = Var::constant(init::uniform::<f64>([1, 2, 4, 4], -1., 1., &mut rng));
    let w = Var::param(init::uniform([3, 2, 3, 3], -1., 1., &mut rng));
    let b = Var::constant(init::uniform([3], -1., 1., &mut rng));
    let y = conv2d(&x, &w, Some(&b), Conv2dParams::new().pad(1, 1)).unwrap();
    crate::sum(&y).unwrap().backward().unwrap();
    assert!(x.grad().is_none() && b.grad().is_none());
    assert!(w.grad().is_some());
}

// ----- the fast kernels against a naive seven-loop reference -----

/// Forward and all three gradients by the definition: seven nested loops over
/// (n, co, oy, ox, ci, ky, kx) with a bounds check on every read.
struct Naive {
    y: Vec<f64>,
    dx: Vec<f64>,
    dw: Vec<f64>,
    db: Vec<f64>,
}

#[allow(clippy::needless_range_loop)] // the definition, index by index
fn naive(g: &Geometry, x: &[f64], w: &[f64], b: &[f64], dy: &[f64]) -> Naive {
    let (cig, cog) = (g.cig(), g.cog());
    let (sh, sw) = g.p.stride;
    let (top, left) = (g.p.pad[0] as isize, g.p.pad[2] as isize);
    let mut r = Naive {
        y: vec![0.0; g.y_numel()],
        dx: vec![0.0; g.x_numel()],
        dw: vec![0.0; g.w_numel()],
        db: vec![0.0; g.c_out],
    };
    for n in 0..g.n {
        for co in 0..g.c_out {
            for oy in 0..g.ho {
                for ox in 0..g.wo {
                    let yi = ((n * g.c_out + co) * g.ho + oy) * g.wo + ox;
                    let mut acc = b[co];
                    r.db[co] += dy[yi];
                    for ci in 0..cig {
                        let c = co / cog * cig + ci;
                        for ky in 0..g.kh {
                            for kx in 0..g.kw {
                                let iy = (oy * sh + ky) as isize - top;
                                let ix = (ox * sw + kx) as isize - left;
                                if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                                    continue;
                                }
                                let xi = ((n * g.c_in + c) * g.h + iy as usize) * g.w + ix as usize;
                                let wi = ((co * cig + ci) * g.kh + ky) * g.kw + kx;
                                acc += w[wi] * x[xi];
                                r.dx[xi] += w[wi] * dy[yi];
                                r.dw[wi] += x[xi] * dy[yi];
                            }
                        }
                    }
                    r.y[yi] = acc;
                }
            }
        }
    }
    r
}

fn close(a: &[f64], b: &[f64], what: &str, g: &Geometry) {
    assert_eq!(a.len(), b.len());
    for (i, (p, q)) in a.iter().zip(b).enumerate() {
        assert!(
            (p - q).abs() <= 1e-12 * (1.0 + q.abs()),
            "{what}[{i}]: {p} vs {q} for {g:?}"
        );
    }
}

/// A random geometry: sizes up to `max_hw`, kernels up to `max_k`, maps smaller than kernels
/// included (padding is raised until the kernel fits).
fn random_geometry(rng: &mut init::Rng, max_hw: usize, max_k: usize) -> Geometry {
    let groups = rng.gen_range(1..=3);
    let (kh, kw) = (rng.gen_range(1..=max_k), rng.gen_range(1..=max_k));
    let (h, w) = (rng.gen_range(1..=max_hw), rng.gen_range(1..=max_hw));
    let mut pad = [0; 4].map(|_| rng.gen_range(0..=3));
    pad[1] = pad[1].max(kh.saturating_sub(h + pad[0]));
    pad[3] = pad[3].max(kw.saturating_sub(w + pad[2]));
    let p = Conv2dParams {
        stride: (rng.gen_range(1..=3), rng.gen_range(1..=3)),
        pad,
        groups,
    };
    let x = [rng.gen_range(1..=3), groups * rng.gen_range(1..=3), h, w];
    let wt = [groups * rng.gen_range(1..=3), x[1] / groups, kh, kw];
    Geometry::new(&x.into(), &wt.into(), None, &p).unwrap()
}

#[test]
fn fast_kernels_match_the_naive_reference() {
    let mut rng = init::rng(2024);
    for round in 0..300 {
        // Mostly small maps; every tenth is large enough to run on several threads.
        let g = if round % 10 == 0 {
            random_geometry(&mut rng, 40, 13)
        } else {
            random_geometry(&mut rng, 9, 7)
        };
        let x: Tensor<f64> = init::uniform([g.n, g.c_in, g.h, g.w], -1., 1., &mut rng);
        let w: Tensor<f64> = init::uniform([g.c_out, g.cig(), g.kh, g.kw], -1., 1., &mut rng);
        let b: Tensor<f64> = init::uniform([g.c_out], -1., 1., &mut rng);
        let dy: Tensor<f64> = init::uniform(g.y_shape(), -1., 1., &mut rng);
        let r = naive(&g, x.data(), w.data(), b.data(), dy.data());
        let threads = cpu::threads_for(g.macs());
        close(
            cpu::forward(&g, &x, &w, Some(&b), threads).data(),
            &r.y,
            "y",
            &g,
        );
        close(cpu::data_grad(&g, &dy, &w, threads).data(), &r.dx, "dx", &g);
        close(
            cpu::weight_grad(&g, &dy, &x, threads).data(),
            &r.dw,
            "dw",
            &g,
        );
        close(cpu::bias_grad(&g, &dy).data(), &r.db, "db", &g);
    }
}

/// Each output element is computed by one thread in a fixed order: any thread count gives
/// bit-identical results.
#[test]
fn results_do_not_depend_on_the_thread_count() {
    let mut rng = init::rng(7);
    for _ in 0..20 {
        let g = random_geometry(&mut rng, 12, 7);
        let x: Tensor<f32> = init::uniform([g.n, g.c_in, g.h, g.w], -1., 1., &mut rng);
        let w: Tensor<f32> = init::uniform([g.c_out, g.cig(), g.kh, g.kw], -1., 1., &mut rng);
        let dy: Tensor<f32> = init::uniform(g.y_shape(), -1., 1., &mut rng);
        for threads in [2, 3, 5] {
            assert_eq!(
                cpu::forward(&g, &x, &w, None, threads),
                cpu::forward(&g, &x, &w, None, 1)
            );
            assert_eq!(
                cpu::data_grad(&g, &dy, &w, threads),
                cpu::data_grad(&g, &dy, &w, 1)
            );
            assert_eq!(
                cpu::weight_grad(&g, &dy, &x, threads),
                cpu::weight_grad(&g, &dy, &x, 1)
            );
        }
    }
}

#[test]
fn f32_matches_f64() {
    let mut rng = init::rng(11);
    let g = random_geometry(&mut rng, 10, 5);
    let x: Tensor<f64> = init::uniform([g.n, g.c_in, g.h, g.w], -1., 1., &mut rng);
    let w: Tensor<f64> = init::uniform([g.c_out, g.cig(), g.kh, g.kw], -1., 1., &mut rng);
    let y64 = cpu::forward(&g, &x, &w, None, 1);
    let y32 = cpu::forward(
        &g,
        &x.cast::<f32>().unwrap(),
        &w.cast::<f32>().unwrap(),
        None,
        1,
    );
    assert!(y32.cast::<f64>().unwrap().max_abs_diff(&y64).unwrap() < 1e-5);
}

#[test]
fn every_suite_case_passes() {
    for case in cases::cases() {
        let r = case.run().unwrap();
        assert!(r.passed(), "{}: {r:?}", case.config);
    }
}

// ----- property: random configurations pass gradcheck -----

#[derive(Debug, Clone)]
struct Config {
    x: [usize; 4],
    w: [usize; 4],
    p: Conv2dParams,
    bias: bool,
    seed: u64,
}

fn config() -> impl Strategy<Value = Config> {
    (
        (1..=2usize, 1..=3usize, 1..=2usize, 1..=2usize), // N, groups, C_in/G, C_out/G
        (1..=6usize, 1..=6usize, 1..=7usize, 1..=7usize), // H, W, KH, KW
        (1..=3usize, 1..=3usize, [0..=3usize, 0..=3, 0..=3, 0..=3]),
        (any::<bool>(), any::<u64>()),
    )
        .prop_map(
            |((n, g, cig, cog), (h, w, kh, kw), (sh, sw, mut pad), (bias, seed))| {
                // A kernel larger than the map gets enough padding to fit.
                pad[1] = pad[1].max(kh.saturating_sub(h + pad[0]));
                pad[3] = pad[3].max(kw.saturating_sub(w + pad[2]));
                Config {
                    x: [n, g * cig, h, w],
                    w: [g * cog, cig, kh, kw],
                    p: Conv2dParams {
                        stride: (sh, sw),
                        pad,
                        groups: g,
                    },
                    bias,
                    seed,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn random_configurations_pass_gradcheck(c in config()) {
        let mut inputs = vec![
            crate::suite::input(c.x, c.seed),
            crate::suite::input(c.w, c.seed ^ 1),
        ];
        if c.bias {
            inputs.push(crate::suite::input([c.w[0]], c.seed ^ 2));
        }
        let p = c.p;
        let case = GradCase::new(
            "conv2d",
            format!("{c:?}"),
            inputs,
            Box::new(move |v| conv2d(&v[0], &v[1], v.get(2), p)),
        );
        let r = case.run().unwrap();
        prop_assert!(r.passed(), "{:?}", r);
    }
}

/// Empty batches, inputs without channels and weights without output channels give empty or
/// zero results rather than a panic.
#[test]
fn empty_dimensions_give_empty_or_zero_results() {
    let p = Conv2dParams::new().pad(1, 1);
    for (xs, ws) in [
        ([0, 2, 5, 5], [3, 2, 3, 3]),
        ([2, 0, 5, 5], [3, 0, 3, 3]),
        ([2, 2, 5, 5], [0, 2, 3, 3]),
    ] {
        let x = Var::param(Tensor::<f64>::ones(xs));
        let w = Var::param(Tensor::<f64>::ones(ws));
        let b = Var::param(Tensor::<f64>::ones([ws[0]]));
        let y = conv2d(&x, &w, Some(&b), p).unwrap();
        // With no input channels every output is the bias.
        assert!(y.value().data().iter().all(|&v| v == 1.0));
        crate::sum(&y).unwrap().backward().unwrap();
        assert!(x.grad().as_ref().unwrap().data().iter().all(|&v| v == 0.0));
        assert_eq!(w.grad().as_ref().unwrap().shape().dims(), &ws);
        let n_out = (xs[0] * 5 * 5) as f64;
        assert!(b
            .grad()
            .as_ref()
            .unwrap()
            .data()
            .iter()
            .all(|&v| v == n_out));
    }
}
