//! Global measurement counters: every op adds what it executed (FLOPs, MACs, bytes, launches),
//! and allocators record live and peak bytes. `shiftgrad profile` and the benches read them;
//! nothing is estimated twice. Counters are process-wide atomics, so they are cheap to bump
//! from anywhere and can be reset around the region being measured.
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
    pub region: &'static str,
    pub flops: u64,
    pub macs: u64,
}

/// This thread's FLOPs by region, in order of first appearance.
pub fn region_flops() -> Vec<RegionFlops> {
    BY_REGION.with(|r| r.borrow().clone())
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
static LAUNCHES: AtomicU64 = AtomicU64::new(0);
static LIVE_BYTES: AtomicU64 = AtomicU64::new(0);
static PEAK_BYTES: AtomicU64 = AtomicU64::new(0);

/// A snapshot of the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub flops: u64,
    pub macs: u64,
    pub bytes: u64,
    pub launches: u64,
    pub live_bytes: u64,
    pub peak_bytes: u64,
}

/// Records one executed op (or kernel) with its cost.
pub fn record_op(flops: u64, macs: u64, bytes: u64) {
    FLOPS.fetch_add(flops, Relaxed);
    MACS.fetch_add(macs, Relaxed);
    BYTES.fetch_add(bytes, Relaxed);
    LAUNCHES.fetch_add(1, Relaxed);
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

/// Records an allocation of `bytes` on the device being measured.
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
        launches: LAUNCHES.load(Relaxed),
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
    LAUNCHES.store(0, Relaxed);
    PEAK_BYTES.store(LIVE_BYTES.load(Relaxed), Relaxed);
}
