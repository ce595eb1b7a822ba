//! [`Var`]: values, gradients, the graph and backward.

use shiftgrad_tensor::opencl::region;
use shiftgrad_tensor::{Error, Real, Result, Shape, Tensor};
use std::cell::{Cell, Ref, RefCell, RefMut};
use std::collections::HashSet;
use std::rc::Rc;

thread_local! {
    static NO_GRAD_DEPTH: Cell<usize> = const { Cell::new(0) };
    static NEXT_ID: Cell<u64> = const { Cell::new(0) };
    /// Per op: outputs recorded into a graph and their bytes, since the last reset.
    static GRAPH_OUTPUTS: RefCell<Vec<GraphOutputs>> = const { RefCell::new(Vec::new()) };
}

/// What the graph recorded for one op name since [`reset_graph_outputs`]: how many outputs
/// and their bytes. Every recorded output stays alive until its node's backward has run (the
/// next op saved it, or the node is on the way from the loss), so for one training step this
/// is where the memory held for backward goes, op by op (the ops' own small saved statistics,
/// such as batch-norm's per-channel mean, are not included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphOutputs {
    /// The op name given to [`Var::from_op`] (or its several-output form).
    pub op: &'static str,
    /// Number of outputs of that op recorded into a graph.
    pub outputs: u64,
    /// Their values' total size in bytes (host or device).
    pub bytes: u64,
}

/// The outputs recorded into graphs on this thread since the last reset, by op, largest first.
pub fn graph_outputs() -> Vec<GraphOutputs> {
    let mut v = GRAPH_OUTPUTS.with(|g| g.borrow().clone());
    v.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.op.cmp(b.op)));
    v
}

/// Starts a new count for [`graph_outputs`].
pub fn reset_graph_outputs() {
    GRAPH_OUTPUTS.with(|g| g.borrow_mut().clear());
}

fn record_graph_output(op: &'static str, bytes: u64) {
    GRAPH_OUTPUTS.with(|g| {
        let mut g = g.borrow_mut();
        match g.iter_mut().find(|e| e.op == op) {
            Some(e) => {
                e.outputs += 1;
                e.bytes += bytes;
            }
            None => g.push(GraphOutputs {
                op,
                outputs: 1,
                bytes,
            }),
        }
    });
}

/// True unless inside a [`no_grad`] scope.
pub fn is_grad_enabled() -> bool {
    NO_GRAD_DEPTH.with(|d| d.get() == 0)
}

/// While alive, ops record no graph (evaluation, optimiser updates, finite differences).
pub struct NoGradGuard(());

impl NoGradGuard {
    /// Enters a no-grad scope until the guard is dropped.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        NO_GRAD_DEPTH.with(|d| d.set(d.get() + 1));
        NoGradGuard(())
    }
}

impl Drop for NoGradGuard {
    fn drop(&mut self) {
        NO_GRAD_DEPTH.with(|d| d.set(d.get() - 1));
    }
}

/// Runs `f` without recording a graph.
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    let _guard = NoGradGuard::new();
    f()
}

/// A value an op saved for its backward, with the version it had at the forward.
///
/// Ops that read an input's value at backward time (conv2d's weight, linear's input, ...)
/// hold it as `Saved` rather than as a bare `Var`: an update of that value between forward
/// and backward (an optimiser step, `set_value`) would otherwise give silently wrong
/// gradients. PyTorch raises "one of the variables needed for gradient computation has been
/// modified by an inplace operation" in the same place; so do we. (Copying every saved
/// value instead would double the memory of every weight for no benefit in the normal case.)
pub struct Saved<T: Real> {
    var: Var<T>,
    version: u64,
}

impl<T: Real> Saved<T> {
    /// The saved value, or an error naming `op` and `what` if it was written after the
    /// forward.
    pub fn value(&self, op: &'static str, what: &str) -> Result<Ref<'_, Tensor<T>>> {
        let now = self.var.version();
        if now != self.version {
            return Err(Error::arg(
                op,
                format!(
                    "the {what} needed for the gradient was modified after the forward \
                     (version {now}, saved at version {}); run the forward again after changing it",
                    self.version
                ),
            ));
        }
        Ok(self.var.value())
    }
}

/// What a backward closure receives.
pub struct BackwardCtx<'a, T: Real> {
    /// Gradient of the loss with respect to the op's output.
    pub grad_out: &'a Tensor<T>,
    /// The op's output value (saved for free: ops such as relu need it).
    pub output: &'a Tensor<T>,
    /// `needs[i]`: whether input `i` wants a gradient. Compute only those.
    pub needs: &'a [bool],
}

/// The gradients of an op's inputs, in input order; `None` where not needed.
pub type InputGrads<T> = Vec<Option<Tensor<T>>>;

type BackwardFn<T> = Box<dyn FnOnce(BackwardCtx<'_, T>) -> Result<InputGrads<T>>>;

/// What the backward of an op with several outputs receives.
pub struct MultiBackwardCtx<'a, T: Real> {
    /// Gradient of the loss with respect to each output, `None` where none flowed (an output
    /// that no later op used).
    pub grads_out: &'a [Option<Tensor<T>>],
    /// `needs[i]`: whether input `i` wants a gradient. Compute only those.
    pub needs: &'a [bool],
}

type MultiBackwardFn<T> = Box<dyn FnOnce(MultiBackwardCtx<'_, T>) -> Result<InputGrads<T>>>;

/// How a node back-propagates.
enum Backward<T: Real> {
    /// An op with one output: the closure gets that output's gradient.
    Single(BackwardFn<T>),
    /// The hidden node of an op with several outputs: the closure gets all their gradients.
    Multi(MultiBackwardFn<T>),
    /// Output `i` of an op with several outputs (its only parent is the op's hidden node):
    /// its gradient is handed to that node, slot `i`, and nothing is computed here.
    Output(usize),
}

struct Node<T: Real> {
    id: u64,
    op: &'static str,
    value: RefCell<Tensor<T>>,
    grad: RefCell<Option<Tensor<T>>>,
    requires_grad: bool,
    parents: RefCell<Vec<Var<T>>>,
    backward: RefCell<Option<Backward<T>>>,
    /// For the hidden node of an op with several outputs: each output's gradient, filled in
    /// by the output nodes during backward.
    output_grads: RefCell<Vec<Option<Tensor<T>>>>,
    /// Set when backward consumed this node's closure.
    released: Cell<bool>,
    /// Bumped by every write to `value` ([`Var::set_value`], [`Var::value_mut`]); a
    /// [`Saved`] value compares it at backward time.
    version: Cell<u64>,
    /// The profiling region in force when the node was recorded
    /// (`shiftgrad_tensor::opencl::region`), entered again while its backward runs.
    region: &'static str,
}

/// A value in the computation graph. Cloning a `Var` clones a reference, not the data.
pub struct Var<T: Real>(Rc<Node<T>>);

impl<T: Real> Clone for Var<T> {
    fn clone(&self) -> Self {
        Var(self.0.clone())
    }
}

impl<T: Real> std::fmt::Debug for Var<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Var({}, {:?}, requires_grad={})",
            self.0.op,
            self.0.value.borrow(),
            self.0.requires_grad
        )
    }
}

fn next_id() -> u64 {
    NEXT_ID.with(|n| {
        let id = n.get();
        n.set(id + 1);
        id
    })
}

impl<T: Real> Var<T> {
    fn make(
        op: &'static str,
        value: Tensor<T>,
        requires_grad: bool,
        parents: Vec<Var<T>>,
        backward: Option<Backward<T>>,
    ) -> Self {
        // Recorded outputs (the hidden node of a several-output op holds no value of its own).
        if matches!(backward, Some(Backward::Single(_) | Backward::Output(_))) {
            record_graph_output(op, value.nbytes() as u64);
        }
        Var(Rc::new(Node {
            id: next_id(),
            op,
            value: RefCell::new(value),
            grad: RefCell::new(None),
            requires_grad,
            parents: RefCell::new(parents),
            backward: RefCell::new(backward),
            output_grads: RefCell::new(Vec::new()),
            released: Cell::new(false),
            version: Cell::new(0),
            region: region::current(),
        }))
    }

    /// A leaf: an input or a parameter. Its gradient is kept after backward.
    pub fn leaf(value: Tensor<T>, requires_grad: bool) -> Self {
        Self::make("leaf", value, requires_grad, Vec::new(), None)
    }

    /// A leaf that requires a gradient (a trainable parameter).
    pub fn param(value: Tensor<T>) -> Self {
        Self::leaf(value, true)
    }

    /// A leaf that needs no gradient.
    pub fn constant(value: Tensor<T>) -> Self {
        Self::leaf(value, false)
    }

    /// The output of op `op` computed from `inputs`. If no input requires a gradient, or
    /// inside [`no_grad`], the result is a constant and `backward` is dropped unused.
    /// Otherwise `backward` is called once during [`Var::backward`] and must return one entry
    /// per input, each with the shape of that input (checked).
    pub fn from_op(
        op: &'static str,
        value: Tensor<T>,
        inputs: &[&Var<T>],
        backward: impl FnOnce(BackwardCtx<'_, T>) -> Result<InputGrads<T>> + 'static,
    ) -> Self {
        let record = is_grad_enabled() && inputs.iter().any(|v| v.requires_grad());
        if record {
            let parents = inputs.iter().map(|&v| v.clone()).collect();
            Self::make(
                op,
                value,
                true,
                parents,
                Some(Backward::Single(Box::new(backward))),
            )
        } else {
            Self::make(op, value, false, Vec::new(), None)
        }
    }

    /// The outputs of an op with several outputs, computed from `inputs` (one graph node
    /// for the op, whose `backward` runs once and receives every output's gradient, `None`
    /// for outputs nothing used). As [`Var::from_op`], it records nothing when no input
    /// requires a gradient or inside [`no_grad`].
    ///
    /// How: a hidden node holds the inputs and the closure; each output is a node whose only
    /// parent is the hidden one. The walk reaches every output before the hidden node (it is
    /// their parent), each output moves its gradient into the hidden node's slot, and then the
    /// hidden node's closure runs once. (The alternative, k single-output nodes, makes each
    /// backward write a full input gradient that the engine then adds up: the shift-add wrote
    /// `dY`, 2G + G times the size of its outputs, three times.)
    pub fn from_op_multi(
        op: &'static str,
        values: Vec<Tensor<T>>,
        inputs: &[&Var<T>],
        backward: impl FnOnce(MultiBackwardCtx<'_, T>) -> Result<InputGrads<T>> + 'static,
    ) -> Vec<Self> {
        let record = is_grad_enabled() && inputs.iter().any(|v| v.requires_grad());
        if !record {
            return values
                .into_iter()
                .map(|v| Self::make(op, v, false, Vec::new(), None))
                .collect();
        }
        let parents = inputs.iter().map(|&v| v.clone()).collect();
        let hub = Self::make(
            op,
            Tensor::zeros([0]),
            true,
            parents,
            Some(Backward::Multi(Box::new(backward))),
        );
        *hub.0.output_grads.borrow_mut() = vec![None; values.len()];
        values
            .into_iter()
            .enumerate()
            .map(|(i, v)| Self::make(op, v, true, vec![hub.clone()], Some(Backward::Output(i))))
            .collect()
    }

    /// Name of the op that made this value ("leaf" for inputs and parameters).
    pub fn op(&self) -> &'static str {
        self.0.op
    }
    /// Whether a gradient flows to this value.
    pub fn requires_grad(&self) -> bool {
        self.0.requires_grad
    }
    /// True for inputs and parameters.
    pub fn is_leaf(&self) -> bool {
        self.0.op == "leaf"
    }
    /// The value.
    pub fn value(&self) -> Ref<'_, Tensor<T>> {
        self.0.value.borrow()
    }
    /// The value, mutable (optimisers update parameters in place). Counts as a write: a
    /// graph that saved this value for its backward refuses to run on the new one.
    pub fn value_mut(&self) -> RefMut<'_, Tensor<T>> {
        self.bump_version();
        self.0.value.borrow_mut()
    }
    /// Replaces the value (same shape required); counts as a write, as [`Var::value_mut`].
    pub fn set_value(&self, value: Tensor<T>) -> Result<()> {
        self.value().check_same_shape(&value, "set_value")?;
        *self.0.value.borrow_mut() = value;
        self.bump_version();
        Ok(())
    }
    /// How many times the value was written since the `Var` was made.
    pub fn version(&self) -> u64 {
        self.0.version.get()
    }
    fn bump_version(&self) {
        self.0.version.set(self.0.version.get() + 1);
    }
    /// This value as an op saves it for its backward: the backward reads it through
    /// [`Saved::value`], which fails if the value was written in between.
    pub fn save(&self) -> Saved<T> {
        Saved {
            var: self.clone(),
            version: self.version(),
        }
    }
    /// The shape of the value.
    pub fn shape(&self) -> Shape {
        self.0.value.borrow().shape().clone()
    }
    /// The gradient accumulated by backward (leaves only), if any.
    pub fn grad(&self) -> Ref<'_, Option<Tensor<T>>> {
        self.0.grad.borrow()
    }
    /// Takes the gradient out, leaving none.
    pub fn take_grad(&self) -> Option<Tensor<T>> {
        self.0.grad.borrow_mut().take()
    }
    /// Replaces the gradient, e.g. by the sum over the processes of data-parallel training;
    /// it must have the value's shape.
    pub fn set_grad(&self, grad: Tensor<T>) -> Result<()> {
        self.value().check_same_shape(&grad, "set_grad")?;
        *self.0.grad.borrow_mut() = Some(grad);
        Ok(())
    }
    /// Forgets the gradient.
    pub fn zero_grad(&self) {
        *self.0.grad.borrow_mut() = None;
    }
    /// A constant with the same value (copies the data).
    pub fn detach(&self) -> Self {
        Self::constant(self.value().clone())
    }
    /// Same node (identity, not value equality).
    pub fn same(&self, other: &Var<T>) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }

    /// Back-propagates from a scalar (one-element) value with seed gradient 1.
    pub fn backward(&self) -> Result<()> {
        if self.value().numel() != 1 {
            return Err(Error::shape(
                "backward",
                format!("needs a scalar to start from, got shape {}", self.shape()),
            ));
        }
        let device = self.value().device();
        self.backward_with(Tensor::full_on(self.shape(), T::one(), &device)?)
    }

    /// Back-propagates with the given gradient of this value (a vector-Jacobian product).
    /// The seed is moved to this value's device if it is elsewhere.
    pub fn backward_with(&self, seed: Tensor<T>) -> Result<()> {
        self.value().check_same_shape(&seed, "backward")?;
        if !self.requires_grad() {
            return Err(Error::arg(
                "backward",
                "the value does not require a gradient (no input of its graph does)",
            ));
        }
        let device = self.value().device();
        let seed = if seed.device().same(&device) {
            seed
        } else {
            seed.to_device(&device)?
        };
        let mut order = self.topological_order();
        accumulate(&self.0, seed)?;
        // Children before parents. Popping (rather than iterating) drops this walk's handle on
        // each node as soon as its backward has run: with its closure (and the values it
        // saved) consumed and its parent list taken, the node's output is freed here unless
        // someone else still holds it, so activations are released while backward proceeds.
        while let Some(node) = order.pop() {
            let Some(backward) = node.backward.borrow_mut().take() else {
                if node.released.get() {
                    return Err(Error::Other(format!(
                        "backward: the graph through {} was already released by an earlier backward()",
                        node.op
                    )));
                }
                continue; // a leaf: keep its gradient
            };
            node.released.set(true);
            if node.version.get() != 0 {
                // Backward closures may read the node's own output (relu does).
                return Err(Error::arg(
                    node.op,
                    "its output was modified after the forward; the gradient would be wrong",
                ));
            }
            let _region = region::enter(node.region);
            let parents = std::mem::take(&mut *node.parents.borrow_mut());
            let needs: Vec<bool> = parents.iter().map(|p| p.requires_grad()).collect();
            let grads = match backward {
                Backward::Output(i) => {
                    // Hand the gradient to the op's hidden node (the only parent).
                    if let (Some(g), Some(hub)) = (node.grad.borrow_mut().take(), parents.first()) {
                        if let Some(slot) = hub.0.output_grads.borrow_mut().get_mut(i) {
                            *slot = Some(g);
                        }
                    }
                    continue;
                }
                Backward::Single(f) => {
                    let Some(grad_out) = node.grad.borrow_mut().take() else {
                        continue; // nothing flowed here
                    };
                    let output = node.value.borrow();
                    f(BackwardCtx {
                        grad_out: &grad_out,
                        output: &output,
                        needs: &needs,
                    })?
                }
                Backward::Multi(f) => {
                    let grads_out = std::mem::take(&mut *node.output_grads.borrow_mut());
                    if grads_out.iter().all(Option::is_none) {
                        continue; // no output was used
                    }
                    f(MultiBackwardCtx {
                        grads_out: &grads_out,
                        needs: &needs,
                    })?
                }
            };
            if grads.len() != parents.len() {
                return Err(Error::Other(format!(
                    "backward of {}: returned {} gradients for {} inputs",
                    node.op,
                    grads.len(),
                    parents.len()
                )));
            }
            for (parent, grad) in parents.iter().zip(grads) {
                if let (true, Some(g)) = (parent.requires_grad(), grad) {
                    if g.shape() != parent.value().shape() {
                        return Err(Error::Other(format!(
                            "backward of {}: gradient of shape {} for an input of shape {}",
                            node.op,
                            g.shape(),
                            parent.shape()
                        )));
                    }
                    accumulate(&parent.0, g)?;
                }
            }
        }
        Ok(())
    }

    /// Nodes that require a gradient, reachable from `self`, parents before children.
    fn topological_order(&self) -> Vec<Rc<Node<T>>> {
        let mut order = Vec::new();
        let mut seen = HashSet::new();
        // Iterative post-order DFS: deep networks must not overflow the stack.
        let mut stack: Vec<(Rc<Node<T>>, bool)> = vec![(self.0.clone(), false)];
        while let Some((node, expanded)) = stack.pop() {
            if expanded {
                order.push(node);
                continue;
            }
            if !seen.insert(node.id) {
                continue;
            }
            stack.push((node.clone(), true));
            for p in node.parents.borrow().iter() {
                if p.requires_grad() && !seen.contains(&p.0.id) {
                    stack.push((p.0.clone(), false));
                }
            }
        }
        order
    }
}

impl<T: Real> Drop for Node<T> {
    /// Releases a long chain iteratively: the default recursive drop would overflow the stack
    /// on a graph that was built but never back-propagated.
    fn drop(&mut self) {
        drop(self.backward.get_mut().take());
        let mut stack = std::mem::take(self.parents.get_mut());
        while let Some(var) = stack.pop() {
            if let Ok(mut node) = Rc::try_unwrap(var.0) {
                drop(node.backward.get_mut().take());
                stack.append(node.parents.get_mut());
            }
        }
    }
}

/// The profiling region of gradient accumulation: where a value feeds several ops, the
/// gradients its backward receives are summed here, counted as their own row (one addition
/// per element; reads both, writes one) rather than inside the op that happens to run.
pub const REGION_ACCUMULATE: &str = "gradient accumulation";

fn accumulate<T: Real>(node: &Node<T>, g: Tensor<T>) -> Result<()> {
    let mut slot = node.grad.borrow_mut();
    match slot.as_mut() {
        Some(acc) => {
            let _region = region::enter(REGION_ACCUMULATE);
            acc.add_assign(&g)?;
            let n = g.numel() as u64;
            shiftgrad_tensor::counters::record_op(n, 0, 3 * n * T::DTYPE.size() as u64);
            Ok(())
        }
        None => {
            *slot = Some(g);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
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
}
