//! The device layer of a build without the `opencl` feature: the same types and functions,
//! where everything that would open a device returns [`Error::NotCompiled`]. The types hold
//! an uninhabited field, so their methods (which can never be called, since no value can be
//! made) need no bodies beyond `match`ing on it. The signatures mirror `cl/` exactly; the
//! `api_surface` test compiles the same calls against both.

use std::convert::Infallible;
use std::marker::PhantomData;

use crate::{Arg, DeviceInfo, Element, Error, KernelTime, PoolStats, Result, Transfers};

/// Every device of every platform; without OpenCL support, an error.
pub fn list_devices() -> Result<Vec<DeviceInfo>> {
    Err(Error::NotCompiled)
}

pub(crate) fn first_device() -> Result<Option<(usize, usize)>> {
    Err(Error::NotCompiled)
}

/// An opened OpenCL device (none can be opened in this build).
#[derive(Clone, Debug)]
pub struct Context {
    never: Infallible,
}

/// A compiled program (none can exist in this build).
#[derive(Clone, Debug)]
pub struct Program {
    never: Infallible,
}

/// A device buffer (none can exist in this build).
#[derive(Debug)]
pub struct Buffer<T: Element> {
    never: Infallible,
    _element: PhantomData<T>,
}

/// A buffer as a kernel argument (none can exist in this build).
#[derive(Clone, Copy)]
pub struct BufferArg<'a> {
    #[allow(dead_code)]
    never: Infallible,
    _borrow: PhantomData<&'a ()>,
}

impl<'a, T: Element> From<&'a Buffer<T>> for Arg<'a> {
    fn from(buffer: &'a Buffer<T>) -> Self {
        buffer.arg()
    }
}

impl Context {
    /// Opens a device; without OpenCL support, an error.
    pub fn new(_platform: usize, _device: usize) -> Result<Context> {
        Err(Error::NotCompiled)
    }
    /// What this device is.
    pub fn info(&self) -> &DeviceInfo {
        match self.never {}
    }
    /// Whether the device runs double-precision kernels (cl_khr_fp64).
    pub fn has_fp64(&self) -> bool {
        match self.never {}
    }
    /// Blocks until every enqueued command has finished, then reads the times of the launches
    /// recorded so far.
    pub fn finish(&self) -> Result<()> {
        match self.never {}
    }
    /// Turns the recording of launch events on or off (on by default). Launches are counted
    /// either way; only those made while it is on contribute device time.
    pub fn set_profiling(&self, _on: bool) {
        match self.never {}
    }
    /// Whether launches currently record their events.
    pub fn profiling(&self) -> bool {
        match self.never {}
    }
    /// The blocking host transfers counted since the last [`Context::reset_kernel_times`].
    pub fn transfers(&self) -> Transfers {
        match self.never {}
    }
    /// Per-kernel launch counts and device time, the most expensive first. Waits for the
    /// queue ([`Context::finish`]) so that every recorded launch is included.
    pub fn kernel_times(&self) -> Result<Vec<KernelTime>> {
        match self.never {}
    }
    /// Device time by profiling region ([`crate::region`]) since the last
    /// [`Context::reset_kernel_times`], largest first; launches outside every region are under
    /// the name "". Waits for the queue like [`Context::kernel_times`].
    pub fn region_times(&self) -> Result<Vec<crate::RegionTime>> {
        match self.never {}
    }
    /// Zeroes the kernel and transfer counters and forgets launches not yet read.
    pub fn reset_kernel_times(&self) {
        match self.never {}
    }
    /// The program `name` compiled from `source` with `defines` (`("real", "double".into())`
    /// becomes `-D real=double`). Compiled on the first call for each (name, defines) pair and
    /// cached for the life of the context; later calls return the same [`Program`]. A define
    /// valued `double` enables cl_khr_fp64 (an error on devices without it). A compiler error
    /// returns [`Error::Build`] with the build log.
    pub fn program(
        &self,
        _name: &str,
        _source: &str,
        _defines: &[(&str, String)],
    ) -> Result<Program> {
        match self.never {}
    }
    /// How many programs this context has compiled (cache misses of [`Context::program`]).
    pub fn compilations(&self) -> usize {
        match self.never {}
    }
    /// A buffer of `len` elements, from the pool when a freed buffer of the same byte size is
    /// there, else newly created (after releasing the pool's cache once if the device is out
    /// of memory). Its contents are undefined.
    pub fn alloc<T: Element>(&self, _len: usize) -> Result<Buffer<T>> {
        match self.never {}
    }
    /// A buffer holding a copy of `data`.
    pub fn upload<T: Element>(&self, _data: &[T]) -> Result<Buffer<T>> {
        match self.never {}
    }
    /// The pool's counters.
    pub fn pool_stats(&self) -> PoolStats {
        match self.never {}
    }
    /// Frees every cached (unused) buffer; live buffers are untouched.
    pub fn release_cached(&self) {
        match self.never {}
    }
    /// Sets the peak to the current live bytes, to measure the peak of one phase.
    pub fn reset_peak(&self) {
        match self.never {}
    }
    /// Enqueues `kernel` of `program` over `global` work-items (1 to 3 dimensions) in
    /// work-groups of `local` (`None` lets the driver choose), with `args` in the kernel's
    /// parameter order. Does not wait: call [`Context::finish`] or read a buffer to
    /// synchronise. A range with a zero extent enqueues nothing. Each launch is counted in
    /// [`Context::kernel_times`], and timed while profiling is on.
    pub fn launch<const N: usize>(
        &self,
        _program: &Program,
        _kernel: &str,
        _global: [usize; N],
        _local: Option<[usize; N]>,
        _args: &[Arg<'_>],
    ) -> Result<()> {
        match self.never {}
    }
}

impl Program {
    /// The name given to [`Context::program`].
    pub fn name(&self) -> &str {
        match self.never {}
    }
    /// The build options the defines became, e.g. "-D K=3 -D real=double".
    pub fn options(&self) -> &str {
        match self.never {}
    }
    /// Whether two handles are the same compiled program.
    pub fn ptr_eq(&self, _other: &Program) -> bool {
        match self.never {}
    }
}

impl<T: Element> Buffer<T> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self.never {}
    }
    /// Whether the buffer has no elements.
    pub fn is_empty(&self) -> bool {
        match self.never {}
    }
    /// Size of the device allocation in bytes.
    pub fn bytes(&self) -> usize {
        match self.never {}
    }
    /// The context that owns the buffer.
    pub fn context(&self) -> &Context {
        match self.never {}
    }
    /// This buffer as a kernel argument.
    pub fn arg(&self) -> Arg<'_> {
        match self.never {}
    }
    /// Copies `data` (exactly `len()` elements) to the device; returns once the copy is done.
    pub fn write(&self, _data: &[T]) -> Result<()> {
        match self.never {}
    }
    /// Copies the buffer to `dst` (exactly `len()` elements), after every command enqueued
    /// before it has run.
    pub fn read_into(&self, _dst: &mut [T]) -> Result<()> {
        match self.never {}
    }
    /// The buffer's contents on the host (see [`Buffer::read_into`]).
    pub fn read(&self) -> Result<Vec<T>> {
        match self.never {}
    }
    /// Enqueues setting every element to `value` (does not wait).
    pub fn fill(&self, _value: T) -> Result<()> {
        match self.never {}
    }
    /// Enqueues a device-to-device copy of `src` (same length, same context) into this
    /// buffer (does not wait).
    pub fn copy_from(&self, _src: &Buffer<T>) -> Result<()> {
        match self.never {}
    }
}
