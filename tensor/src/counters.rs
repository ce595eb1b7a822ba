//! Global measurement counters: every op adds what it executed (FLOPs, MACs, bytes, and one
//! op record per forward or backward pass; kernel launches are the OpenCL context's count),
//! and host tensors record live and peak host bytes (device bytes are counted by the OpenCL
//! buffer pool). `shiftgrad profile` and the benches read them; nothing is estimated twice.
//! Counters are process-wide atomics, so they are cheap to bump from anywhere and can be reset
//! around the region being measured.
//!
//! Beside them, per thread, the FLOPs and MACs of the ops recorded under each profiling region
//! (`shiftgrad_opencl::region`, the label the device time is split by): [`region_flops`]. Being
//! per thread, these are exact even while other threads (parallel tests) record ops.

use shiftgrad_opencl::region;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

thread_local! {
    static BY_REGION: RefCell<Vec<RegionFlops>> = const { RefCell::new(Vec::new()) };
}

/// FLOPs and MACs of the ops recorded on this thread under one profiling region ("" outside
/// every region) since [`reset_region_flops`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegionFlops {
    /// The region's label, as `shiftgrad_opencl::region::current` returned it ("" outside
    /// every region).
    pub region: &'static str,
    /// FLOPs recorded under it (a multiply-accumulate counts 2).
    pub flops: u64,
    /// Multiply-accumulates recorded under it (already included in `flops`).
    pub macs: u64,
}

/// This thread's FLOPs by region, in order of first appearance.
pub fn region_flops() -> Vec<RegionFlops> {
    BY_REGION.with(|r| r.borrow().clone())
}

/// This thread's FLOPs and MACs since [`reset_region_flops`], every region together. Exact
/// while other threads record ops (parallel tests), which the process-wide [`snapshot`] is
/// not: measure one computation of this thread with it.
pub fn thread_totals() -> (u64, u64) {
    BY_REGION.with(|r| {
        r.borrow()
            .iter()
            .fold((0, 0), |(f, m), e| (f + e.flops, m + e.macs))
    })
}

/// The FLOPs recorded on this thread under `name` (0 if none).
pub fn flops_in(name: &str) -> u64 {
    BY_REGION.with(|r| {
        r.borrow()
            .iter()
            .find(|e| e.region == name)
            .map_or(0, |e| e.flops)
    })
}

/// Starts a new count for [`region_flops`] on this thread.
pub fn reset_region_flops() {
    BY_REGION.with(|r| r.borrow_mut().clear());
}

static FLOPS: AtomicU64 = AtomicU64::new(0);
static MACS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
static OP_RECORDS: AtomicU64 = AtomicU64::new(0);
static LIVE_BYTES: AtomicU64 = AtomicU64::new(0);
static PEAK_BYTES: AtomicU64 = AtomicU64::new(0);

/// A snapshot of the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// FLOPs of the ops recorded since the last [`reset`] (a multiply-accumulate counts 2).
    pub flops: u64,
    /// Multiply-accumulates among those FLOPs.
    pub macs: u64,
    /// Minimum memory traffic of those ops in bytes, as their cost models state it.
    pub bytes: u64,
    /// Number of [`record_op`] calls since the last [`reset`]: op passes (a forward, a
    /// backward, a gradient sum, an optimiser update), not kernel launches (one pass may
    /// launch several kernels; the OpenCL context counts those, `Context::kernel_times`).
    pub op_records: u64,
    /// Host bytes allocated by [`record_alloc`] and not yet released by [`record_free`].
    pub live_bytes: u64,
    /// The largest `live_bytes` since the last [`reset`] or [`reset_peak`].
    pub peak_bytes: u64,
}

/// Records one executed op pass (a forward, a backward, ...) with its cost.
pub fn record_op(flops: u64, macs: u64, bytes: u64) {
    FLOPS.fetch_add(flops, Relaxed);
    MACS.fetch_add(macs, Relaxed);
    BYTES.fetch_add(bytes, Relaxed);
    OP_RECORDS.fetch_add(1, Relaxed);
    let name = region::current();
    BY_REGION.with(|r| {
        let mut r = r.borrow_mut();
        match r.iter_mut().find(|e| e.region == name) {
            Some(e) => {
                e.flops += flops;
                e.macs += macs;
            }
            None => r.push(RegionFlops {
                region: name,
                flops,
                macs,
            }),
        }
    });
}

/// Records an allocation of `bytes` of host memory (host tensors call it when they are made;
/// device buffers are counted by the OpenCL pool instead, `Context::pool_stats`).
pub fn record_alloc(bytes: u64) {
    let live = LIVE_BYTES.fetch_add(bytes, Relaxed) + bytes;
    PEAK_BYTES.fetch_max(live, Relaxed);
}

/// Records the release of `bytes`.
pub fn record_free(bytes: u64) {
    let _ = LIVE_BYTES.fetch_update(Relaxed, Relaxed, |v| Some(v.saturating_sub(bytes)));
}

/// Reads every counter.
pub fn snapshot() -> Snapshot {
    Snapshot {
        flops: FLOPS.load(Relaxed),
        macs: MACS.load(Relaxed),
        bytes: BYTES.load(Relaxed),
        op_records: OP_RECORDS.load(Relaxed),
        live_bytes: LIVE_BYTES.load(Relaxed),
        peak_bytes: PEAK_BYTES.load(Relaxed),
    }
}

/// Sets the peak to the current live bytes (the op counters are left alone), to measure the
/// peak of one phase.
pub fn reset_peak() {
    PEAK_BYTES.store(LIVE_BYTES.load(Relaxed), Relaxed);
}

/// Zeroes the op counters and sets the peak to the current live bytes.
pub fn reset() {
    FLOPS.store(0, Relaxed);
    MACS.store(0, Relaxed);
    BYTES.store(0, Relaxed);
    OP_RECORDS.store(0, Relaxed);
    PEAK_BYTES.store(LIVE_BYTES.load(Relaxed), Relaxed);
}
