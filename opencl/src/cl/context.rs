//! [`Context`]: one device, one OpenCL context, one in-order command queue.
//!
//! One in-order queue is what makes the rest simple and safe: commands run in the order they
//! were enqueued, so a launch never needs a wait list, a buffer returned to the pool can be
//! handed out again at once (any later use is enqueued after every earlier one), and a
//! blocking read is a synchronisation point for everything before it. Out-of-order queues or
//! several queues would buy overlap this engine cannot use (each op consumes the previous
//! one's output) at the price of event bookkeeping on every buffer.
//!
//! The queue is always created with profiling enabled; whether launches keep their events for
//! timing is switched by [`Context::set_profiling`] (on by default).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use ocl::core::{self, CommandQueueProperties, ContextProperties, ProfilingInfo};

use super::program::Program;
use crate::{DeviceInfo, Error, KernelTime, PoolStats, RegionTime, Result, Transfers};

/// Events kept before the queue is drained to read their times, bounding memory.
const MAX_PENDING_EVENTS: usize = 4096;

/// An opened OpenCL device. Cloning is cheap (an `Rc`); clones share the queue, the program
/// cache, the buffer pool and the profiler. Not `Send`: a context belongs to one thread.
#[derive(Clone)]
pub struct Context {
    pub(super) inner: Rc<Inner>,
}

pub(super) struct Inner {
    /// Distinguishes contexts, so that a program is never launched on a foreign one.
    pub(super) id: u64,
    pub(super) info: DeviceInfo,
    pub(super) device: core::DeviceId,
    pub(super) context: core::Context,
    pub(super) queue: core::CommandQueue,
    pub(super) programs: RefCell<HashMap<(String, String), Program>>,
    pub(super) compilations: Cell<usize>,
    pub(super) pool: RefCell<Pool>,
    pub(super) profiler: RefCell<Profiler>,
}

/// Freed device buffers by exact byte size, and the pool's counters.
#[derive(Default)]
pub(super) struct Pool {
    pub(super) free: HashMap<usize, Vec<core::Mem>>,
    pub(super) stats: PoolStats,
}

/// Per-kernel counters and the events of launches whose times have not been read yet.
pub(super) struct Profiler {
    pub(super) enabled: bool,
    /// (kernel counter index, region, event) of launches not read yet.
    pub(super) pending: Vec<(usize, &'static str, core::Event)>,
    pub(super) stats: Vec<KernelTime>,
    /// Device time by [`crate::region`], in order of first appearance.
    pub(super) regions: Vec<RegionTime>,
    pub(super) transfers: Transfers,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

impl Context {
    /// Opens device `device` of platform `platform` (the `opencl:P:D` numbering of
    /// [`crate::list_devices`]).
    pub fn new(platform: usize, device: usize) -> Result<Context> {
        let (pid, did, info) = {
            let _guard = super::enumeration_lock();
            let (pid, did) = super::locate(platform, device)?;
            (pid, did, super::describe(platform, &pid, device, &did)?)
        };
        let what = |step: &str| format!("{step} for device {}", info.spec());
        let props = ContextProperties::new().platform(pid);
        let context = core::create_context(Some(&props), &[did], None, None)
            .map_err(|e| Error::api(what("creating a context"), e))?;
        let queue = core::create_command_queue(
            &context,
            did,
            Some(CommandQueueProperties::PROFILING_ENABLE),
        )
        .map_err(|e| Error::api(what("creating a command queue"), e))?;
        Ok(Context {
            inner: Rc::new(Inner {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                info,
                device: did,
                context,
                queue,
                programs: RefCell::new(HashMap::new()),
                compilations: Cell::new(0),
                pool: RefCell::new(Pool::default()),
                profiler: RefCell::new(Profiler {
                    enabled: true,
                    pending: Vec::new(),
                    stats: Vec::new(),
                    regions: Vec::new(),
                    transfers: Transfers::default(),
                }),
            }),
        })
    }

    /// What this device is.
    pub fn info(&self) -> &DeviceInfo {
        &self.inner.info
    }

    /// Whether the device runs double-precision kernels (cl_khr_fp64).
    pub fn has_fp64(&self) -> bool {
        self.inner.info.fp64
    }

    /// Blocks until every enqueued command has finished, then reads the times of the launches
    /// recorded so far.
    pub fn finish(&self) -> Result<()> {
        core::finish(&self.inner.queue).map_err(|e| Error::api("waiting for the queue", e))?;
        self.harvest_events()
    }

    /// Turns the recording of launch events on or off (on by default). Launches are counted
    /// either way; only those made while it is on contribute device time.
    pub fn set_profiling(&self, on: bool) {
        self.inner.profiler.borrow_mut().enabled = on;
    }

    /// Whether launches currently record their events.
    pub fn profiling(&self) -> bool {
        self.inner.profiler.borrow().enabled
    }

    /// Per-kernel launch counts and device time, the most expensive first. Waits for the
    /// queue ([`Context::finish`]) so that every recorded launch is included.
    pub fn kernel_times(&self) -> Result<Vec<KernelTime>> {
        self.finish()?;
        let mut times: Vec<KernelTime> = self
            .inner
            .profiler
            .borrow()
            .stats
            .iter()
            .filter(|t| t.launches > 0)
            .cloned()
            .collect();
        times.sort_by(|a, b| {
            b.device_ns
                .cmp(&a.device_ns)
                .then_with(|| (&a.program, &a.kernel).cmp(&(&b.program, &b.kernel)))
        });
        Ok(times)
    }

    /// Device time by profiling region ([`crate::region`]) since the last
    /// [`Context::reset_kernel_times`], largest first; launches outside every region are under
    /// the name "". Waits for the queue like [`Context::kernel_times`].
    pub fn region_times(&self) -> Result<Vec<RegionTime>> {
        self.finish()?;
        let mut times: Vec<RegionTime> = self.inner.profiler.borrow().regions.clone();
        times.retain(|r| r.launches > 0);
        times.sort_by(|a, b| b.device_ns.cmp(&a.device_ns).then(a.region.cmp(b.region)));
        Ok(times)
    }

    /// The blocking host transfers counted since the last [`Context::reset_kernel_times`].
    pub fn transfers(&self) -> Transfers {
        self.inner.profiler.borrow().transfers
    }

    /// Zeroes the kernel and transfer counters and forgets launches not yet read.
    pub fn reset_kernel_times(&self) {
        let mut profiler = self.inner.profiler.borrow_mut();
        profiler.pending.clear();
        profiler.transfers = Transfers::default();
        profiler.regions.clear();
        for t in &mut profiler.stats {
            t.launches = 0;
            t.timed_launches = 0;
            t.device_ns = 0;
        }
    }

    /// Records a launch of the kernel with counter index `stat`, keeping its event if any.
    pub(super) fn record_launch(&self, stat: usize, event: Option<core::Event>) -> Result<()> {
        let drain = {
            let mut profiler = self.inner.profiler.borrow_mut();
            profiler.stats[stat].launches += 1;
            let region = crate::region::current();
            region_entry(&mut profiler.regions, region).launches += 1;
            if let Some(event) = event {
                profiler.pending.push((stat, region, event));
            }
            profiler.pending.len() >= MAX_PENDING_EVENTS
        };
        if drain {
            self.finish()?;
        }
        Ok(())
    }

    /// Adds the times of recorded launches to their kernels. Call only once the queue has
    /// drained (after `finish` or a blocking read), when every event is complete.
    pub(super) fn harvest_events(&self) -> Result<()> {
        let mut profiler = self.inner.profiler.borrow_mut();
        let pending = std::mem::take(&mut profiler.pending);
        for (stat, region, event) in pending {
            let at = |which: ProfilingInfo| -> Result<u64> {
                match core::get_event_profiling_info(&event, which) {
                    Ok(core::ProfilingInfoResult::Start(t) | core::ProfilingInfoResult::End(t)) => {
                        Ok(t)
                    }
                    Ok(other) => Err(Error::Invalid(format!(
                        "unexpected profiling answer {other:?}"
                    ))),
                    Err(e) => Err(Error::api("reading a kernel's profiling times", e)),
                }
            };
            let (start, end) = (at(ProfilingInfo::Start)?, at(ProfilingInfo::End)?);
            let t = &mut profiler.stats[stat];
            t.timed_launches += 1;
            t.device_ns += end.saturating_sub(start);
            let r = region_entry(&mut profiler.regions, region);
            r.timed_launches += 1;
            r.device_ns += end.saturating_sub(start);
        }
        Ok(())
    }
}

/// The counters of `region`, created at first use (a handful of regions: a linear search).
fn region_entry<'a>(regions: &'a mut Vec<RegionTime>, region: &'static str) -> &'a mut RegionTime {
    let at = match regions.iter().position(|r| r.region == region) {
        Some(i) => i,
        None => {
            regions.push(RegionTime {
                region,
                ..RegionTime::default()
            });
            regions.len() - 1
        }
    };
    &mut regions[at]
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Context({})", self.inner.info)
    }
}
