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
}

mod backward;
pub use backward::REGION_ACCUMULATE;

#[cfg(test)]
mod tests;
