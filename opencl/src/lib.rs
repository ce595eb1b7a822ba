//! shiftgrad-opencl: the OpenCL device layer.
//!
//! A device offers six things (DESIGN.md, "A thin device surface"): allocate
//! ([`Context::alloc`]), free to a pool (dropping a [`Buffer`]), copy in ([`Buffer::write`]),
//! copy out ([`Buffer::read`]), launch ([`Context::launch`]) and synchronise
//! ([`Context::finish`]). Around them:
//!
//! * [`DeviceSpec`] and [`resolve`]: which device a run uses (`cpu`, `opencl`, `opencl:P:D`,
//!   `auto`; the command line, then `$SHIFTGRAD_DEVICE`, then the CPU).
//! * [`list_devices`] and [`DeviceTable`]: what `shiftgrad devices` prints.
//! * [`Context::program`]: the program cache, one compilation per (name, defines); f64 is the
//!   same source built with `-D real=double`; build failures carry the compiler's log.
//! * [`Context::pool_stats`], [`Context::kernel_times`]: live/peak device bytes and per-kernel
//!   device time from profiling events, the numbers the measurement code reads.
//!
//! The crate is standalone (the tensor crate depends on it, not the reverse) and has its own
//! [`Error`]. OpenCL itself is behind the `opencl` cargo feature, which pulls in `ocl` and so
//! links libOpenCL; without it the crate exposes the same types and functions, every
//! constructor returns [`Error::NotCompiled`], and a machine without an ICD loader still builds
//! and runs the CPU backend. The alternative, loading libOpenCL at run time (dlopen), would
//! make one binary serve both cases but puts every OpenCL call behind hand-written FFI, which
//! is more unsafe code than this project wants to audit.
//!
//! Everything runs on one in-order queue per [`Context`] (see its docs for why), and a
//! context is single-threaded (`Rc`-shared, not `Send`).
//!
//! Depends on no other workspace crate (only `thiserror`, and `ocl` with the `opencl`
//! feature); must not depend on shiftgrad-tensor, shiftgrad-autograd, shiftgrad-ops,
//! shiftgrad-nn or the root `shiftgrad` package. The tensor crate uses it for device buffers
//! and re-exports it as `shiftgrad_tensor::opencl`, through which the ops launch their kernels
//! and the crates above enter profiling regions.

#![warn(missing_docs)]

mod arg;
mod error;
mod info;
pub mod region;
pub mod require;
mod spec;

#[cfg(feature = "opencl")]
mod cl;
#[cfg(feature = "opencl")]
use cl as backend;

#[cfg(not(feature = "opencl"))]
mod stub;
#[cfg(not(feature = "opencl"))]
use stub as backend;

pub use arg::{
    Arg, BufferArg, Element, KernelParams, KernelTime, ParamsArg, PoolStats, RegionTime, Transfers,
};
pub(crate) use backend::first_device;
pub use backend::{list_devices, Buffer, Context, Program};
pub use error::{Error, Result};
pub use info::{human_bytes, DeviceInfo, DeviceTable};
pub use require::{required, skip};
pub use spec::{resolve, spec_from, Backend, DeviceSpec, DEVICE_ENV};

/// Whether this build has OpenCL support (the `opencl` feature).
pub const OPENCL_COMPILED: bool = cfg!(feature = "opencl");
