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
    pub fn info(&self) -> &DeviceInfo {
        match self.never {}
    }
    pub fn has_fp64(&self) -> bool {
        match self.never {}
    }
    pub fn finish(&self) -> Result<()> {
        match self.never {}
    }
    pub fn set_profiling(&self, _on: bool) {
        match self.never {}
    }
    pub fn profiling(&self) -> bool {
        match self.never {}
    }
    pub fn transfers(&self) -> Transfers {
        match self.never {}
    }
    pub fn kernel_times(&self) -> Result<Vec<KernelTime>> {
        match self.never {}
    }
    pub fn region_times(&self) -> Result<Vec<crate::RegionTime>> {
        match self.never {}
    }
    pub fn reset_kernel_times(&self) {
        match self.never {}
    }
    pub fn program(
        &self,
        _name: &str,
        _source: &str,
        _defines: &[(&str, String)],
    ) -> Result<Program> {
        match self.never {}
    }
    pub fn compilations(&self) -> usize {
        match self.never {}
    }
    pub fn alloc<T: Element>(&self, _len: usize) -> Result<Buffer<T>> {
        match self.never {}
    }
    pub fn upload<T: Element>(&self, _data: &[T]) -> Result<Buffer<T>> {
        match self.never {}
    }
    pub fn pool_stats(&self) -> PoolStats {
        match self.never {}
    }
    pub fn release_cached(&self) {
        match self.never {}
    }
    pub fn reset_peak(&self) {
        match self.never {}
    }
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
    pub fn name(&self) -> &str {
        match self.never {}
    }
    pub fn options(&self) -> &str {
        match self.never {}
    }
    pub fn ptr_eq(&self, _other: &Program) -> bool {
        match self.never {}
    }
}

impl<T: Element> Buffer<T> {
    pub fn len(&self) -> usize {
        match self.never {}
    }
    pub fn is_empty(&self) -> bool {
        match self.never {}
    }
    pub fn bytes(&self) -> usize {
        match self.never {}
    }
    pub fn context(&self) -> &Context {
        match self.never {}
    }
    pub fn arg(&self) -> Arg<'_> {
        match self.never {}
    }
    pub fn write(&self, _data: &[T]) -> Result<()> {
        match self.never {}
    }
    pub fn read_into(&self, _dst: &mut [T]) -> Result<()> {
        match self.never {}
    }
    pub fn read(&self) -> Result<Vec<T>> {
        match self.never {}
    }
    pub fn fill(&self, _value: T) -> Result<()> {
        match self.never {}
    }
    pub fn copy_from(&self, _src: &Buffer<T>) -> Result<()> {
        match self.never {}
    }
}
