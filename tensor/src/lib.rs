//! shiftgrad-tensor: the bottom of the stack, the values every other crate computes with and
//! the checks and measurements around them.
//!
//! * [`Shape`]: the dimensions of a tensor, a `SmallVec` so that NCHW shapes never allocate.
//! * [`Real`]: the element types we compute in (f32 and f64), with their [`DType`].
//! * [`Tensor`]: contiguous, row-major (NCHW) storage, in host memory (the CPU reference's
//!   representation) or in an OpenCL buffer on a [`Device`].
//! * [`Error`]: the one error enum of the project; every message names the op.
//! * [`init`]: seeded initialisers (normal, uniform, Kaiming).
//! * [`io`]: `.npy` / `.npz` read (a checked reader of its own) and write (npyz).
//! * [`counters`]: the global measurement counters (FLOPs, bytes, op records, host memory).
//! * [`compare`]: the NaN-proof tensor comparison every test and `shiftgrad equiv` uses.
//! * [`opencl`]: the device layer, re-exported so that the crates above reach device contexts,
//!   buffers and profiling regions through this one.
//!
//! Depends on shiftgrad-opencl (device buffers and contexts) and on no other workspace crate;
//! must not depend on shiftgrad-autograd, shiftgrad-ops, shiftgrad-nn or the root `shiftgrad`
//! package: they build on this one, not the reverse.

#![warn(missing_docs)]

pub mod compare;
pub mod counters;
mod error;
pub mod init;
pub mod io;
mod real;
mod shape;
mod tensor;

pub use error::{Error, Result};
pub use real::{DType, Real};
pub use shape::Shape;
pub use shiftgrad_opencl as opencl;
pub use tensor::{Device, Tensor};
