//! shiftgrad-tensor: the bottom of the stack.
//!
//! * [`Shape`]: the dimensions of a tensor, a `SmallVec` so that NCHW shapes never allocate.
//! * [`Real`]: the element types we compute in (f32 and f64), with their [`DType`].
//! * [`Tensor`]: contiguous, row-major (NCHW) host storage. The OpenCL backend adds device
//!   storage in its own issue; everything here is the CPU reference representation.
//! * [`Error`]: the one error enum of the project; every message names the op.
//! * [`init`]: seeded initialisers (normal, uniform, Kaiming).
//! * [`io`]: `.npy` / `.npz` read (a checked reader of its own) and write (npyz).
//! * [`counters`]: the global measurement counters (FLOPs, bytes, launches, memory).
//! * [`compare`]: the NaN-proof tensor comparison every test and `shiftgrad equiv` uses.

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
