//! shiftgrad-autograd: reverse-mode automatic differentiation.
//!
//! A [`Var`] is a node of the computation graph: its value, its gradient, and, if an op made
//! it, the op's backward closure and the op's inputs. Recording is implicit: an op that sees an
//! input requiring a gradient (and no [`no_grad`] scope) attaches a backward closure to its
//! output; otherwise it returns a constant and the closure (with whatever it saved) is dropped
//! at once. The graph is therefore the tape, in creation order; [`Var::backward`] walks it in
//! reverse topological order, calls each closure once with the gradient of its output and a
//! mask of which inputs need a gradient, accumulates into the inputs, and then releases every
//! closure and edge it visited, so saved activations are freed as soon as backward is done.
//!
//! We chose a graph of reference-counted nodes over a global array tape (as in tinygrad's early
//! `Function`) because it needs no global state, handles several independent graphs, and frees
//! a graph simply by dropping its root.
//!
//! [`gradcheck`] compares the analytic gradients with central finite differences in f64.
//!
//! Of the workspace, depends on shiftgrad-tensor only (the device layer's profiling regions are
//! reached through its `opencl` re-export); must not depend on shiftgrad-ops, shiftgrad-nn or
//! the root `shiftgrad` package: the ops build on the graph, not the reverse.

#![warn(missing_docs)]

mod gradcheck;
mod var;

pub use gradcheck::{gradcheck, gradcheck_on, CheckedFn, GradcheckReport, InputReport, Tolerance};
pub use var::{
    graph_outputs, is_grad_enabled, no_grad, reset_graph_outputs, BackwardCtx, GraphOutputs,
    MultiBackwardCtx, NoGradGuard, Saved, Var, REGION_ACCUMULATE,
};
