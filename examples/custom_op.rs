//! A new differentiable op written outside shiftgrad's crates: `scaled_tanh(x, a) = a tanh(x)`
//! with a learnable scalar `a`, with its forward, its backward, its cost and a gradcheck.
//!
//! This is the extension path for an op that has no kernel of its own: the arithmetic runs on
//! the host (a device input is read back, and the result goes back to the input's device), the
//! backward is a closure handed to `Var::from_op`, and the cost goes to the same counters every
//! built-in op records into, so `shiftgrad profile`-style FLOP totals stay complete. A built-in
//! op keeps the same three parts in its folder (`ops/src/<op>/mod.rs`, `cpu.rs`, and `cl.rs`
//! with its `.cl` kernels); docs/TOUR.md walks through adding one.
//!
//! Run: `cargo run --release --example custom_op`. It exits with an error if a check fails.

use shiftgrad::autograd::{gradcheck, Tolerance, Var};
use shiftgrad::ops::{self, Cost, Work};
use shiftgrad::tensor::{counters, Error, Real, Result, Tensor};

/// FLOPs and bytes of `scaled_tanh` on `n` elements (counting conventions of SPEC section 4:
/// a tanh counts 1, a multiply 1). Forward: tanh and a multiply per element, reading x and a,
/// writing y. Backward: `dx = dy a (1 - t^2)` (with `t = y / a` recomputed as tanh(x): 1 + 4
/// FLOPs) and `da = sum dy t` (2 FLOPs), reading dy and x, writing dx and da.
fn cost<T: Real>(n: usize) -> Cost {
    let size = T::DTYPE.size() as u64;
    let n64 = n as u64;
    Cost {
        forward: Work::new(2 * n64, (2 * n64 + 1) * size),
        backward: Work::new(7 * n64, (3 * n64 + 2) * size),
    }
}

/// `a * tanh(x)` element-wise; `a` holds one element. Errors (never panics) on a bad shape.
fn scaled_tanh<T: Real>(x: &Var<T>, a: &Var<T>) -> Result<Var<T>> {
    const OP: &str = "scaled_tanh";
    if a.shape().numel() != 1 {
        return Err(Error::shape(
            OP,
            format!("the scale must hold one element, got shape {:?}", a.shape()),
        ));
    }
    let device = x.value().device();
    if !device.same(&a.value().device()) {
        return Err(Error::arg(OP, "x and the scale are on different devices"));
    }
    let xs = x.value().to_host()?;
    let scale = a.value().to_host()?.data()[0];
    let y = Tensor::from_fn(xs.shape().clone(), |i| scale * xs.data()[i].tanh());
    let c = cost::<T>(xs.numel());
    c.forward.record();

    // What the backward needs: x (saved with its version, so that changing x in place between
    // the forward and the backward is an error, not a wrong gradient) and a.
    let (x_saved, a_saved) = (x.save(), a.save());
    let y = y.to_device(&device)?;
    Ok(Var::from_op(OP, y, &[x, a], move |ctx| {
        c.backward.record();
        let dy = ctx.grad_out.to_host()?;
        let xs = x_saved.value(OP, "input")?.to_host()?;
        let scale = a_saved.value(OP, "scale")?.to_host()?.data()[0];
        let t = xs.map(|v| v.tanh());
        // Only the gradients someone needs (`ctx.needs`), each with its input's shape.
        let dx = ctx.needs[0]
            .then(|| {
                let g = Tensor::from_fn(dy.shape().clone(), |i| {
                    let ti = t.data()[i];
                    dy.data()[i] * scale * (T::one() - ti * ti)
                });
                g.to_device(&device)
            })
            .transpose()?;
        let da = ctx.needs[1]
            .then(|| {
                let s: T = dy.data().iter().zip(t.data()).map(|(&g, &ti)| g * ti).sum();
                Tensor::new([1], vec![s])?.to_device(&device)
            })
            .transpose()?;
        Ok(vec![dx, da])
    }))
}

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let mut rng = shiftgrad::tensor::init::rng(7);
    let x0: Tensor<f64> = shiftgrad::tensor::init::normal([3, 4], 0.0, 1.0, &mut rng);
    let a0 = Tensor::new([1], vec![1.7])?;

    // The op inside a larger expression: mean(scaled_tanh(x, a) * x).
    let before = counters::snapshot();
    let (x, a) = (Var::param(x0.clone()), Var::param(a0.clone()));
    let y = scaled_tanh(&x, &a)?;
    let loss = ops::mean(&ops::mul(&y, &x)?)?;
    loss.backward()?;
    let after = counters::snapshot();
    println!("loss = {:.6}", loss.value().item()?);
    println!(
        "d loss / d a = {:.6}",
        a.grad().as_ref().ok_or("a has no gradient")?.data()[0]
    );
    println!(
        "counted: {} FLOPs in {} records (scaled_tanh, mul, mean, forward and backward, and one gradient sum)",
        after.flops - before.flops,
        after.op_records - before.op_records
    );
    let expected = cost::<f64>(12);
    let (mul, mean) = (
        shiftgrad::ops::elementwise::mul_cost::<f64>(12),
        shiftgrad::ops::reduce::cost::<f64>(12, true),
    );
    // x reaches the loss twice (through scaled_tanh and through mul): the engine adds its two
    // gradients, one addition per element, counted as its own row.
    let accumulate = 12;
    let want = [expected, mul, mean]
        .iter()
        .map(|c| c.forward.flops + c.backward.flops)
        .sum::<u64>()
        + accumulate;
    if after.flops - before.flops != want {
        return Err(format!(
            "the counters hold {} FLOPs, the cost models say {want}",
            after.flops - before.flops
        )
        .into());
    }

    // A bad shape is an error with the op's name, not a panic.
    let bad = scaled_tanh(&x, &Var::param(Tensor::<f64>::zeros([2])));
    match bad {
        Err(e) => println!("a two-element scale is refused: {e}"),
        Ok(_) => return Err("a two-element scale was accepted".into()),
    }

    // Finite differences against the backward, both inputs, inside the same expression.
    let report = gradcheck(
        &|v: &[Var<f64>]| {
            let y = scaled_tanh(&v[0], &v[1])?;
            ops::mean(&ops::mul(&y, &v[0])?)
        },
        &[x0, a0],
        &[true, true],
        Tolerance::default(),
        1,
    )?;
    for r in &report.inputs {
        println!(
            "gradcheck input {}: max abs error {:.1e}, max rel error {:.1e}, {}",
            r.index,
            r.max_abs_err,
            r.max_rel_err,
            if r.passed { "passed" } else { "FAILED" }
        );
    }
    if !report.passed() {
        return Err("scaled_tanh's backward disagrees with finite differences".into());
    }
    println!("custom_op: the cost and the gradient check passed");
    Ok(())
}
