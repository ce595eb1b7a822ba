//! Device buffers and the pool they come from and return to.
//!
//! Allocation is the slow, fragmenting part of device memory management, and a training step
//! allocates the same sizes every iteration; so a dropped [`Buffer`] does not free its memory
//! but files it under its exact byte size, and the next request for that size takes it back.
//! Exact sizes rather than power-of-two buckets: an eager engine's sizes repeat exactly from
//! step to step, and rounding up would inflate the live/peak bytes this pool reports (which
//! are the numbers `shiftgrad profile` prints). The pool stores untyped memory objects, so an
//! f32 buffer of 2n elements can come back as an f64 buffer of n.
//!
//! Reuse is safe without events because the context has a single in-order queue: any command
//! that touches the reused memory is enqueued after every command that touched it before.
//! A fresh buffer's contents are undefined (a reused one holds old data): write or fill it.
//! OpenCL cannot create zero-byte buffers, so a zero-length buffer holds one element that is
//! never read or written.

use std::marker::PhantomData;

use ocl::core::{self, MemFlags};

use super::context::Context;
use crate::{Arg, Element, Error, PoolStats, Result};

/// A device buffer of `len` elements of `T`, returned to its context's pool on drop.
///
/// Methods take `&self`: device memory is written by kernels through shared references
/// anyway, and the in-order queue orders every access.
pub struct Buffer<T: Element> {
    ctx: Context,
    mem: Option<core::Mem>,
    len: usize,
    bytes: usize,
    _element: PhantomData<T>,
}

/// A buffer as a kernel argument (see [`Buffer::arg`]).
#[derive(Clone, Copy)]
pub struct BufferArg<'a> {
    pub(super) mem: &'a core::Mem,
    pub(super) context_id: u64,
}

impl<'a, T: Element> From<&'a Buffer<T>> for Arg<'a> {
    fn from(buffer: &'a Buffer<T>) -> Self {
        buffer.arg()
    }
}

impl<T: Element> Buffer<T> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Size of the device allocation in bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The context that owns the buffer.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// The underlying OpenCL memory object, for code that calls `ocl` directly. (The pool
    /// keeps untyped memory, so there is no `ocl::Buffer<T>` to hand out.)
    pub fn as_core(&self) -> &core::Mem {
        self.mem.as_ref().expect("a live buffer holds its memory")
    }

    /// This buffer as a kernel argument.
    pub fn arg(&self) -> Arg<'_> {
        Arg::Buffer(BufferArg {
            mem: self.as_core(),
            context_id: self.ctx.inner.id,
        })
    }

    fn check_len(&self, what: &str, other: usize) -> Result<()> {
        if other != self.len {
            return Err(Error::Invalid(format!(
                "{what}: buffer holds {} {} elements, host slice has {other}",
                self.len,
                T::CL_TYPE
            )));
        }
        Ok(())
    }

    /// Copies `data` (exactly `len()` elements) to the device; returns once the copy is done.
    pub fn write(&self, data: &[T]) -> Result<()> {
        self.check_len("write", data.len())?;
        if self.len == 0 {
            return Ok(());
        }
        {
            let mut profiler = self.ctx.inner.profiler.borrow_mut();
            profiler.transfers.writes += 1;
            profiler.transfers.write_bytes += (self.len * size_of::<T>()) as u64;
        }
        // SAFETY: blocking write of `len` elements into a buffer of at least that many bytes,
        // from a slice that outlives the call.
        unsafe {
            core::enqueue_write_buffer(
                &self.ctx.inner.queue,
                self.as_core(),
                true,
                0,
                data,
                None::<&core::Event>,
                None::<&mut core::Event>,
            )
        }
        .map_err(|e| {
            Error::api(
                format!("writing {} bytes to the device", self.len * size_of::<T>()),
                e,
            )
        })
    }

    /// Copies the buffer to `dst` (exactly `len()` elements), after every command enqueued
    /// before it has run.
    pub fn read_into(&self, dst: &mut [T]) -> Result<()> {
        self.check_len("read", dst.len())?;
        if self.len == 0 {
            return Ok(());
        }
        {
            let mut profiler = self.ctx.inner.profiler.borrow_mut();
            profiler.transfers.reads += 1;
            profiler.transfers.read_bytes += (self.len * size_of::<T>()) as u64;
        }
        // SAFETY: blocking read of `len` elements into a slice of that length.
        unsafe {
            core::enqueue_read_buffer(
                &self.ctx.inner.queue,
                self.as_core(),
                true,
                0,
                dst,
                None::<&core::Event>,
                None::<&mut core::Event>,
            )
        }
        .map_err(|e| {
            Error::api(
                format!(
                    "reading {} bytes from the device",
                    self.len * size_of::<T>()
                ),
                e,
            )
        })?;
        // A blocking read on an in-order queue completes everything before it.
        self.ctx.harvest_events()
    }

    /// The buffer's contents on the host (see [`Buffer::read_into`]).
    pub fn read(&self) -> Result<Vec<T>> {
        let mut out = vec![T::default(); self.len];
        self.read_into(&mut out)?;
        Ok(out)
    }

    /// Enqueues setting every element to `value` (does not wait).
    pub fn fill(&self, value: T) -> Result<()> {
        if self.len == 0 {
            return Ok(());
        }
        core::enqueue_fill_buffer(
            &self.ctx.inner.queue,
            self.as_core(),
            value,
            0,
            self.len,
            None::<&core::Event>,
            None::<&mut core::Event>,
            None,
        )
        .map_err(|e| Error::api("filling a buffer", e))
    }

    /// Enqueues a device-to-device copy of `src` (same length, same context) into this
    /// buffer (does not wait).
    pub fn copy_from(&self, src: &Buffer<T>) -> Result<()> {
        if src.len != self.len {
            return Err(Error::Invalid(format!(
                "copy: source has {} elements, destination {}",
                src.len, self.len
            )));
        }
        if src.ctx.inner.id != self.ctx.inner.id {
            return Err(Error::Invalid(
                "copy: buffers belong to different contexts".into(),
            ));
        }
        if self.len == 0 {
            return Ok(());
        }
        core::enqueue_copy_buffer::<T, _, _, _>(
            &self.ctx.inner.queue,
            src.as_core(),
            self.as_core(),
            0,
            0,
            self.len,
            None::<&core::Event>,
            None::<&mut core::Event>,
        )
        .map_err(|e| Error::api("copying a buffer on the device", e))
    }
}

impl<T: Element> Drop for Buffer<T> {
    fn drop(&mut self) {
        if let Some(mem) = self.mem.take() {
            let mut pool = self.ctx.inner.pool.borrow_mut();
            pool.free.entry(self.bytes).or_default().push(mem);
            pool.stats.live_bytes -= self.bytes as u64;
            pool.stats.cached_bytes += self.bytes as u64;
        }
    }
}

impl<T: Element> std::fmt::Debug for Buffer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Buffer<{}>[{}]", T::CL_TYPE, self.len)
    }
}

impl Context {
    /// A buffer of `len` elements, from the pool when a freed buffer of the same byte size is
    /// there, else newly created (after releasing the pool's cache once if the device is out
    /// of memory). Its contents are undefined.
    pub fn alloc<T: Element>(&self, len: usize) -> Result<Buffer<T>> {
        let bytes = len.max(1).checked_mul(size_of::<T>()).ok_or_else(|| {
            Error::Invalid(format!(
                "alloc: {len} {} elements overflow usize",
                T::CL_TYPE
            ))
        })?;
        if bytes as u64 > self.inner.info.max_alloc_bytes {
            return Err(Error::Invalid(format!(
                "alloc: {bytes} bytes exceed the device's largest allocation ({} bytes)",
                self.inner.info.max_alloc_bytes
            )));
        }
        let reused = {
            let mut pool = self.inner.pool.borrow_mut();
            let mem = pool.free.get_mut(&bytes).and_then(Vec::pop);
            if mem.is_some() {
                pool.stats.reuses += 1;
                pool.stats.cached_bytes -= bytes as u64;
            }
            mem
        };
        let mem = match reused {
            Some(mem) => mem,
            None => {
                let create = || {
                    // SAFETY: no host pointer is passed, so READ_WRITE alone is valid.
                    unsafe {
                        core::create_buffer::<_, u8>(
                            &self.inner.context,
                            MemFlags::READ_WRITE,
                            bytes,
                            None,
                        )
                    }
                };
                let mem = match create() {
                    Ok(mem) => mem,
                    Err(_) if self.pool_stats().cached_bytes > 0 => {
                        self.release_cached();
                        create().map_err(|e| Error::api(format!("allocating {bytes} bytes"), e))?
                    }
                    Err(e) => return Err(Error::api(format!("allocating {bytes} bytes"), e)),
                };
                self.inner.pool.borrow_mut().stats.fresh_allocations += 1;
                mem
            }
        };
        let mut pool = self.inner.pool.borrow_mut();
        pool.stats.live_bytes += bytes as u64;
        pool.stats.peak_bytes = pool.stats.peak_bytes.max(pool.stats.live_bytes);
        Ok(Buffer {
            ctx: self.clone(),
            mem: Some(mem),
            len,
            bytes,
            _element: PhantomData,
        })
    }

    /// A buffer holding a copy of `data`.
    pub fn upload<T: Element>(&self, data: &[T]) -> Result<Buffer<T>> {
        let buffer = self.alloc(data.len())?;
        buffer.write(data)?;
        Ok(buffer)
    }

    /// The pool's counters.
    pub fn pool_stats(&self) -> PoolStats {
        self.inner.pool.borrow().stats
    }

    /// Frees every cached (unused) buffer; live buffers are untouched.
    pub fn release_cached(&self) {
        let mut pool = self.inner.pool.borrow_mut();
        pool.free.clear();
        pool.stats.cached_bytes = 0;
    }

    /// Sets the peak to the current live bytes, to measure the peak of one phase.
    pub fn reset_peak(&self) {
        let mut pool = self.inner.pool.borrow_mut();
        pool.stats.peak_bytes = pool.stats.live_bytes;
    }
}
