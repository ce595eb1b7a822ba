//! shiftgrad-ops: the differentiable ops of SPEC section 3, one directory each.
//!
//! Every op directory holds `mod.rs` (the public function: shape checks, the output-shape
//! formula, the cost model and the registration of the backward on the graph), `cpu.rs` (the
//! reference forward and backward, generic over f32/f64, written to be read), `cases.rs` (its
//! configurations for the gradcheck suite) and `tests.rs`. Someone auditing an op reads one
//! folder.
//!
//! Every public op returns `Result`: a shape or argument mismatch is an [`Error`] naming the op
//! and the shapes, never a panic from an index.

pub mod cost;
pub mod suite;

pub mod reduce;
pub mod relu;
pub mod shift_add;

pub use cost::{Cost, Work};
pub use reduce::{mean, sum};
pub use relu::relu;
pub use shift_add::{shift_add, ShiftTables};
pub use shiftgrad_autograd::{no_grad, Var};
pub use shiftgrad_tensor::{Error, Real, Result, Shape, Tensor};
