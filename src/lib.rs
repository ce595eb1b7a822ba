//! shiftgrad: a small, auditable tensor library and reverse-mode autodiff engine that
//! implements exactly the operators needed to train shift-wise ResNets.
//!
//! This facade re-exports the workspace crates; the `shiftgrad` binary (src/main.rs) is the
//! command-line tool.

pub use shiftgrad_autograd as autograd;
pub use shiftgrad_nn as nn;
pub use shiftgrad_opencl as opencl;
pub use shiftgrad_ops as ops;
pub use shiftgrad_tensor as tensor;

pub mod cli;
pub mod dist;
pub mod train;
