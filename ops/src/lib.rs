//! shiftgrad-ops: the differentiable ops of SPEC section 3, one directory each.
//!
//! Every op directory holds `mod.rs` (the public function: shape checks, the output-shape
//! formula, the cost model and the registration of the backward on the graph), `cpu.rs` (the
//! reference forward and backward, generic over f32/f64, written to be read), `cl.rs` with its
//! `.cl` kernels (the OpenCL forward and backward: launch code in Rust, kernels embedded with
//! `include_str!`), `cases.rs` (its configurations for the gradcheck suite) and `tests.rs`.
//! Someone auditing an op reads one folder. A fused op (`sw_fused`) sits in its own folder
//! beside the ops it equals.
//!
//! Every public op returns `Result`: a shape or argument mismatch is an [`Error`] naming the op
//! and the shapes, never a panic from an index.
//!
//! Depends on shiftgrad-tensor (tensors, devices, errors, counters; its re-export of
//! shiftgrad-opencl for the kernels) and shiftgrad-autograd (the graph the ops record on).
//! Must not depend on shiftgrad-nn or the `shiftgrad` package: an op knows nothing of layers,
//! networks or training.
//!
//! Test support, public because the integration tests and `shiftgrad gradcheck` use it, not
//! part of the op API: [`parity`] (CPU-against-OpenCL comparison and loud skips) and [`suite`]
//! (the gradcheck cases of every op).

#![warn(missing_docs)]

pub mod cost;
pub mod device;
pub mod parity;
pub mod peaks;
pub mod suite;
pub mod sw_fused;

pub mod bank_conv;
pub mod batch_norm;
pub mod bn_sum;
pub mod channels;
pub mod conv2d;
pub mod cross_entropy;
pub mod elementwise;
pub mod linear;
pub mod optim_step;
pub mod pool;
pub mod reduce;
pub mod relu;
pub mod reshape;
pub mod shift_add;

pub use batch_norm::{batch_norm2d_eval, batch_norm2d_train};
pub use bn_sum::{bn_sum, BnMode, BnTerm, Residual};
pub use channels::{concat_channels, gather_channels};
pub use conv2d::{conv2d, Conv2dParams};
pub use cost::{Cost, Work};
pub use cross_entropy::cross_entropy;
pub use elementwise::{add, add_n, mul};
pub use linear::linear;
pub use optim_step::{adamw_step, sgd_step};
pub use pool::global_avg_pool;
pub use reduce::{mean, sum};
pub use relu::{add_relu, relu};
pub use reshape::reshape;
pub use shift_add::{shift_add, ShiftTables};
pub use shiftgrad_autograd::{no_grad, Var};
pub use shiftgrad_tensor::{Error, Real, Result, Shape, Tensor};
