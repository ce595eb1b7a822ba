//! Element types and kernel arguments: what may cross the Rust/OpenCL border.
//!
//! [`Element`] is sealed and implemented for exactly `f32`, `f64` and `i32`, the types whose
//! layout OpenCL C shares with Rust (`float`, `double`, `int`). [`Arg`] is a closed list of
//! what a kernel can take: a buffer, a scalar of one of four types, a `#[repr(C)]` parameter
//! struct passed by value, or a `__local` scratch size. A closed enum, rather than ocl's
//! generic `KernelBuilder::arg`, keeps every argument's size visible at the call site and lets
//! [`crate::Context::launch`] set arguments without any generic code per op.

use std::ffi::c_void;
use std::fmt;
use std::marker::PhantomData;

pub use crate::backend::BufferArg;

mod sealed {
    /// With the `opencl` feature the element types are also ocl primitives.
    #[cfg(feature = "opencl")]
    pub trait Sealed: ocl::OclPrm {}
    #[cfg(not(feature = "opencl"))]
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
    impl Sealed for i32 {}
}

/// A type that device buffers can hold: `f32`, `f64` or `i32`.
pub trait Element:
    sealed::Sealed + Copy + Default + fmt::Debug + PartialEq + Send + Sync + 'static
{
    /// The OpenCL C spelling of the type, for `-D real=...` style defines.
    const CL_TYPE: &'static str;
    /// This value as a scalar kernel argument.
    fn arg(self) -> Arg<'static>;
}

impl Element for f32 {
    const CL_TYPE: &'static str = "float";
    fn arg(self) -> Arg<'static> {
        Arg::F32(self)
    }
}

impl Element for f64 {
    const CL_TYPE: &'static str = "double";
    fn arg(self) -> Arg<'static> {
        Arg::F64(self)
    }
}

impl Element for i32 {
    const CL_TYPE: &'static str = "int";
    fn arg(self) -> Arg<'static> {
        Arg::I32(self)
    }
}

/// A parameter struct that is passed to a kernel by value, byte for byte.
///
/// # Safety
/// The implementing type must be `#[repr(C)]`, contain no padding bytes (order fields from the
/// widest down, or pad explicitly), no pointers or references, and be mirrored field for field
/// by a `typedef struct` in the OpenCL source. The device reads its bytes as that struct.
pub unsafe trait KernelParams: Copy + 'static {}

/// A borrowed [`KernelParams`] value: its address and size.
#[derive(Clone, Copy)]
pub struct ParamsArg<'a> {
    #[cfg_attr(not(feature = "opencl"), allow(dead_code))]
    pub(crate) ptr: *const c_void,
    pub(crate) size: usize,
    _borrow: PhantomData<&'a ()>,
}

/// One kernel argument, in the order of the kernel's parameter list.
#[derive(Clone, Copy)]
pub enum Arg<'a> {
    /// A `__global T*` (or `__constant T*`) buffer.
    Buffer(BufferArg<'a>),
    /// An `int`.
    I32(i32),
    /// A `uint`.
    U32(u32),
    /// A `float`.
    F32(f32),
    /// A `double` (the device needs cl_khr_fp64).
    F64(f64),
    /// A `#[repr(C)]` struct passed by value (see [`KernelParams`]).
    Params(ParamsArg<'a>),
    /// A `__local` pointer: scratch memory of this many bytes per work-group.
    Local {
        /// Size of the scratch buffer in bytes, per work-group.
        bytes: usize,
    },
}

impl<'a> Arg<'a> {
    /// A parameter struct passed by value.
    pub fn params<P: KernelParams>(params: &'a P) -> Arg<'a> {
        Arg::Params(ParamsArg {
            ptr: params as *const P as *const c_void,
            size: std::mem::size_of::<P>(),
            _borrow: PhantomData,
        })
    }

    /// What kind of argument this is, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Arg::Buffer(_) => "buffer",
            Arg::I32(_) => "int",
            Arg::U32(_) => "uint",
            Arg::F32(_) => "float",
            Arg::F64(_) => "double",
            Arg::Params(_) => "params struct",
            Arg::Local { .. } => "__local scratch",
        }
    }
}

impl fmt::Debug for Arg<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arg::I32(v) => write!(f, "I32({v})"),
            Arg::U32(v) => write!(f, "U32({v})"),
            Arg::F32(v) => write!(f, "F32({v})"),
            Arg::F64(v) => write!(f, "F64({v})"),
            Arg::Local { bytes } => write!(f, "Local {{ bytes: {bytes} }}"),
            Arg::Params(p) => write!(f, "Params({} bytes)", p.size),
            Arg::Buffer(_) => write!(f, "Buffer"),
        }
    }
}

impl From<i32> for Arg<'_> {
    fn from(v: i32) -> Self {
        Arg::I32(v)
    }
}

impl From<u32> for Arg<'_> {
    fn from(v: u32) -> Self {
        Arg::U32(v)
    }
}

impl From<f32> for Arg<'_> {
    fn from(v: f32) -> Self {
        Arg::F32(v)
    }
}

impl From<f64> for Arg<'_> {
    fn from(v: f64) -> Self {
        Arg::F64(v)
    }
}

/// Counters of the buffer pool (see [`crate::Context::pool_stats`]). Bytes are the sizes of
/// the device allocations, so a zero-length buffer counts as one element.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Bytes held by live [`crate::Buffer`]s.
    pub live_bytes: u64,
    /// The most `live_bytes` ever reached (since creation or [`crate::Context::reset_peak`]).
    pub peak_bytes: u64,
    /// Bytes of freed buffers the pool keeps for reuse.
    pub cached_bytes: u64,
    /// Allocations served by creating a new device buffer.
    pub fresh_allocations: u64,
    /// Allocations served from the pool.
    pub reuses: u64,
}

/// Blocking copies between the host and the device since the last
/// [`crate::Context::reset_kernel_times`]: what keeps the host in the hot path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Transfers {
    /// Device-to-host reads.
    pub reads: u64,
    /// Bytes read.
    pub read_bytes: u64,
    /// Host-to-device writes (uploads).
    pub writes: u64,
    /// Bytes written.
    pub write_bytes: u64,
}

/// Accumulated device time of one kernel (see [`crate::Context::kernel_times`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelTime {
    /// The program's name as given to [`crate::Context::program`].
    pub program: String,
    /// The kernel's function name.
    pub kernel: String,
    /// Launches enqueued.
    pub launches: u64,
    /// Launches whose time was measured (those made while profiling was on).
    pub timed_launches: u64,
    /// Sum of CL_PROFILING_COMMAND_END - CL_PROFILING_COMMAND_START over the timed launches.
    pub device_ns: u64,
}

/// Accumulated device time of the launches made under one profiling region (see
/// [`crate::region`] and [`crate::Context::region_times`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegionTime {
    /// The region's name; "" for launches outside every region.
    pub region: &'static str,
    /// Launches enqueued under it.
    pub launches: u64,
    /// Those whose time was measured.
    pub timed_launches: u64,
    /// Their summed device time.
    pub device_ns: u64,
}
