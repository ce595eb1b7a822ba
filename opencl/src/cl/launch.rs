//! Launching kernels.
//!
//! [`Context::launch`] is the one place where arguments are set and a kernel is enqueued.
//! It checks what OpenCL would otherwise report as a bare status code (argument count, work
//! sizes, buffers of another context), enqueues without waiting, and hands the launch's event
//! to the profiler. Kernel objects are cached per program and name; reusing one is sound
//! because arguments are set and the kernel enqueued within one call on one thread, and
//! OpenCL captures argument values at enqueue time.

use ocl::core::{self, ArgVal};

use super::context::Context;
use super::program::Program;
use crate::{Arg, Error, Result};

impl Context {
    /// Enqueues `kernel` of `program` over `global` work-items (1 to 3 dimensions) in
    /// work-groups of `local` (`None` lets the driver choose), with `args` in the kernel's
    /// parameter order. Does not wait: call [`Context::finish`] or read a buffer to
    /// synchronise. A range with a zero extent enqueues nothing. Each launch is counted in
    /// [`Context::kernel_times`], and timed while profiling is on.
    pub fn launch<const N: usize>(
        &self,
        program: &Program,
        kernel: &str,
        global: [usize; N],
        local: Option<[usize; N]>,
        args: &[Arg<'_>],
    ) -> Result<()> {
        const { assert!(N >= 1 && N <= 3, "a launch has 1 to 3 dimensions") };
        let what = || format!("launch of {}::{kernel}", program.name());
        let k = program.kernel(self, kernel)?;
        if args.len() != k.num_args as usize {
            return Err(Error::Invalid(format!(
                "{}: the kernel takes {} arguments, {} given",
                what(),
                k.num_args,
                args.len()
            )));
        }
        if let Some(local) = local {
            let ok = global
                .iter()
                .zip(&local)
                .all(|(&g, &l)| l > 0 && g % l == 0);
            if !ok {
                return Err(Error::Invalid(format!(
                    "{}: local size {local:?} does not divide global size {global:?}",
                    what()
                )));
            }
            let group: usize = local.iter().product();
            if group > self.inner.info.max_work_group_size {
                return Err(Error::Invalid(format!(
                    "{}: work-group of {group} items exceeds the device maximum {}",
                    what(),
                    self.inner.info.max_work_group_size
                )));
            }
        }
        if global.contains(&0) {
            return Ok(());
        }
        for (i, arg) in args.iter().enumerate() {
            let set = |val: ArgVal| {
                core::set_kernel_arg(&k.kernel, i as u32, val).map_err(|e| {
                    Error::api(
                        format!("{}: setting argument {i} ({})", what(), arg.kind()),
                        e,
                    )
                })
            };
            match arg {
                Arg::Buffer(b) => {
                    if b.context_id != self.inner.id {
                        return Err(Error::Invalid(format!(
                            "{}: argument {i} is a buffer of another context",
                            what()
                        )));
                    }
                    set(ArgVal::mem(b.mem))?
                }
                Arg::I32(v) => set(ArgVal::scalar(v))?,
                Arg::U32(v) => set(ArgVal::scalar(v))?,
                Arg::F32(v) => set(ArgVal::scalar(v))?,
                Arg::F64(v) => set(ArgVal::scalar(v))?,
                // SAFETY: `ptr` points at a live `KernelParams` value of `size` bytes (the
                // borrow in `ParamsArg` outlives this call); OpenCL copies it.
                Arg::Params(p) => set(unsafe { ArgVal::from_raw(p.size, p.ptr, false) })?,
                Arg::Local { bytes } => {
                    if *bytes == 0 {
                        return Err(Error::Invalid(format!(
                            "{}: argument {i}: __local scratch of 0 bytes",
                            what()
                        )));
                    }
                    set(ArgVal::local::<u8>(bytes))?
                }
            }
        }
        let mut gws = [1usize; 3];
        gws[..N].copy_from_slice(&global);
        let lws = local.map(|l| {
            let mut lws = [1usize; 3];
            lws[..N].copy_from_slice(&l);
            lws
        });
        let mut event = self.profiling().then(core::Event::null);
        // SAFETY: every argument the kernel declares has been set above, buffers belong to
        // this context and are kept alive by the pool's in-order reuse; the work sizes were
        // checked against the device.
        unsafe {
            core::enqueue_kernel(
                &self.inner.queue,
                &k.kernel,
                N as u32,
                None,
                &gws,
                lws,
                None::<&core::Event>,
                event.as_mut(),
            )
        }
        .map_err(|e| Error::api(format!("{}: enqueue over {global:?}", what()), e))?;
        self.record_launch(k.stat, event)
    }
}
