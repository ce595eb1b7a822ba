use super::*;

/// y = a * b element-wise, written here so the engine can be tested without the ops crate.
fn mul(a: &Var<f64>, b: &Var<f64>) -> Var<f64> {
    let out = a.value().zip_map(&b.value(), "mul", |x, y| x * y).unwrap();
    let (ac, bc) = (a.clone(), b.clone());
    Var::from_op("mul", out, &[a, b], move |ctx| {
        let ga = ctx.needs[0].then(|| {
            ctx.grad_out
                .zip_map(&bc.value(), "mul", |g, y| g * y)
                .unwrap()
        });
        let gb = ctx.needs[1].then(|| {
            ctx.grad_out
                .zip_map(&ac.value(), "mul", |g, x| g * x)
                .unwrap()
        });
        Ok(vec![ga, gb])
    })
}

fn sum(a: &Var<f64>) -> Var<f64> {
    let s = Tensor::scalar(a.value().sum_all().unwrap());
    let shape = a.shape();
    Var::from_op("sum", s, &[a], move |ctx| {
        Ok(vec![Some(Tensor::full(shape, ctx.grad_out.item()?))])
    })
}

#[test]
fn gradient_accumulation_is_counted_in_its_region() {
    // x feeds mul twice: its two gradients (3 elements) are summed once, 3 FLOPs, in
    // REGION_ACCUMULATE (per-thread counts, exact beside parallel tests).
    shiftgrad_tensor::counters::reset_region_flops();
    let x = Var::param(Tensor::new([3], vec![1.0, 2.0, 3.0]).unwrap());
    sum(&mul(&x, &x)).backward().unwrap();
    assert_eq!(shiftgrad_tensor::counters::flops_in(REGION_ACCUMULATE), 3);
}

#[test]
fn gradient_accumulates_when_a_value_is_used_twice() {
    let x = Var::param(Tensor::new([3], vec![1.0, 2.0, 3.0]).unwrap());
    let y = sum(&mul(&x, &x)); // sum x^2 -> grad 2x
    y.backward().unwrap();
    assert_eq!(x.grad().as_ref().unwrap().data(), &[2.0, 4.0, 6.0]);
    // A second graph accumulates into the same leaf until zero_grad.
    sum(&x).backward().unwrap();
    assert_eq!(x.grad().as_ref().unwrap().data(), &[3.0, 5.0, 7.0]);
    x.zero_grad();
    assert!(x.grad().is_none());
}

#[test]
fn only_needed_gradients_are_computed() {
    let x = Var::param(Tensor::new([2], vec![1.0, 2.0]).unwrap());
    let c = Var::constant(Tensor::new([2], vec![5.0, 7.0]).unwrap());
    let y = sum(&mul(&x, &c));
    y.backward().unwrap();
    assert_eq!(x.grad().as_ref().unwrap().data(), &[5.0, 7.0]);
    assert!(c.grad().is_none());
}

#[test]
fn no_grad_records_nothing() {
    let x = Var::param(Tensor::new([2], vec![1.0, 2.0]).unwrap());
    let y = no_grad(|| sum(&mul(&x, &x)));
    assert!(!y.requires_grad());
    assert!(y.backward().is_err());
    assert!(is_grad_enabled());
}

/// Backward frees each node once its backward has run: when the bottom op of a chain runs
/// its backward, the values above it are gone (they were all alive after the forward).
#[test]
fn activations_are_freed_while_backward_proceeds() {
    type Probe = Rc<RefCell<Vec<std::rc::Weak<Node<f64>>>>>;
    let seen_alive: Rc<Cell<Option<usize>>> = Rc::new(Cell::new(None));
    let above: Probe = Rc::new(RefCell::new(Vec::new()));
    // y = 2 * x, backward reports how many of the recorded nodes are still alive.
    let double = |x: &Var<f64>, report: bool| -> Var<f64> {
        let out = x.value().map(|v| 2.0 * v);
        let (seen, above) = (seen_alive.clone(), above.clone());
        Var::from_op("double", out, &[x], move |ctx| {
            if report {
                let alive = above
                    .borrow()
                    .iter()
                    .filter(|w| w.upgrade().is_some())
                    .count();
                seen.set(Some(alive));
            }
            Ok(vec![Some(ctx.grad_out.map(|g| 2.0 * g))])
        })
    };
    let x = Var::param(Tensor::new([4], vec![1.0; 4]).unwrap());
    let mut v = double(&x, true);
    for _ in 0..5 {
        v = double(&v, false);
        above.borrow_mut().push(Rc::downgrade(&v.0));
    }
    let y = sum(&v);
    drop(v);
    let alive_after_forward = above
        .borrow()
        .iter()
        .filter(|w| w.upgrade().is_some())
        .count();
    assert_eq!(alive_after_forward, 5);
    y.backward().unwrap();
    assert_eq!(
        seen_alive.get(),
        Some(0),
        "values above the bottom op were still alive"
    );
    assert_eq!(x.grad().as_ref().unwrap().data(), &[64.0; 4]);
}

/// An op with two outputs (x and 3x): one backward, receiving both output gradients,
/// `None` for an unused one.
#[test]
fn several_outputs_share_one_backward() {
    let calls = Rc::new(Cell::new(0));
    let seen = Rc::new(RefCell::new(Vec::new()));
    let split = |x: &Var<f64>| -> Vec<Var<f64>> {
        let (calls, seen) = (calls.clone(), seen.clone());
        let values = vec![x.value().clone(), x.value().map(|v| 3.0 * v)];
        Var::from_op_multi("split", values, &[x], move |ctx| {
            calls.set(calls.get() + 1);
            seen.borrow_mut().push(
                ctx.grads_out
                    .iter()
                    .map(Option::is_some)
                    .collect::<Vec<_>>(),
            );
            let mut dx = Tensor::zeros(
                ctx.grads_out
                    .iter()
                    .flatten()
                    .next()
                    .unwrap()
                    .shape()
                    .clone(),
            );
            if let Some(g) = &ctx.grads_out[0] {
                dx.add_assign(g)?;
            }
            if let Some(g) = &ctx.grads_out[1] {
                dx.add_assign(&g.map(|v| 3.0 * v))?;
            }
            Ok(vec![Some(dx)])
        })
    };
    let x = Var::param(Tensor::new([2], vec![1.0, 2.0]).unwrap());
    let outs = split(&x);
    // First sum(a * a) alone, then sum(a * a) + sum(b): dx = 2x + 3.
    sum(&mul(&outs[0], &outs[0])).backward().unwrap(); // the second output unused
    x.zero_grad();
    let outs = split(&x);
    let y = sum(&mul(&outs[0], &outs[0]));
    let z = sum(&outs[1]);
    let total = Var::from_op(
        "add",
        Tensor::scalar(y.value().item().unwrap() + z.value().item().unwrap()),
        &[&y, &z],
        |ctx| Ok(vec![Some(ctx.grad_out.clone()), Some(ctx.grad_out.clone())]),
    );
    total.backward().unwrap();
    assert_eq!(x.grad().as_ref().unwrap().data(), &[5.0, 7.0]);
    assert_eq!(calls.get(), 2);
    assert_eq!(*seen.borrow(), vec![vec![true, false], vec![true, true]]);
    // Without a graph: plain constants.
    let outs = no_grad(|| split(&x));
    assert!(outs.iter().all(|o| !o.requires_grad()));
}

/// The graph's outputs are counted by op: two recorded muls and a sum, nothing under
/// no_grad, and the hidden node of a several-output op not at all.
#[test]
fn graph_outputs_are_counted_by_op() {
    reset_graph_outputs();
    let x = Var::param(Tensor::new([4], vec![1.0; 4]).unwrap());
    let y = sum(&mul(&mul(&x, &x), &x));
    no_grad(|| mul(&x, &x));
    let _outs = Var::from_op_multi(
        "pair",
        vec![Tensor::zeros([2]), Tensor::zeros([3])],
        &[&x],
        |_| Ok(vec![None]),
    );
    let g = graph_outputs();
    let find = |op: &str| g.iter().find(|e| e.op == op).map(|e| (e.outputs, e.bytes));
    assert_eq!(find("mul"), Some((2, 64)));
    assert_eq!(find("sum"), Some((1, 8)));
    assert_eq!(find("pair"), Some((2, 40)));
    drop(y);
}

#[test]
fn tape_is_released_after_backward() {
    let x = Var::param(Tensor::new([2], vec![1.0, 2.0]).unwrap());
    let m = mul(&x, &x);
    let y = sum(&m);
    y.backward().unwrap();
    // The closure of `mul` held a clone of x; after backward only our handle and the
    // released graph's nothing remain.
    assert_eq!(Rc::strong_count(&x.0), 1);
    let e = y.backward().unwrap_err().to_string();
    assert!(e.contains("already released"), "{e}");
}

#[test]
fn backward_needs_a_scalar() {
    let x = Var::param(Tensor::new([2], vec![1.0, 2.0]).unwrap());
    let e = mul(&x, &x).backward().unwrap_err().to_string();
    assert_eq!(e, "backward: needs a scalar to start from, got shape [2]");
}

#[test]
fn deep_chain_does_not_overflow() {
    let x = Var::param(Tensor::new([1], vec![1.0]).unwrap());
    let one = Var::constant(Tensor::new([1], vec![1.0]).unwrap());
    let mut y = x.clone();
    for _ in 0..100_000 {
        y = mul(&y, &one);
    }
    sum(&y).backward().unwrap();
    assert_eq!(x.grad().as_ref().unwrap().data(), &[1.0]);
    // Dropping a long chain that was never back-propagated must not overflow either.
    let mut z = x.clone();
    for _ in 0..100_000 {
        z = mul(&z, &one);
    }
    drop(z);
}
