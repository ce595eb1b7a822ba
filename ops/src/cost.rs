//! The cost model (SPEC section 4).
//!
//! FLOPs count every multiply and every add separately (one multiply-accumulate = 2 FLOPs);
//! MACs are reported beside them, labelled as MACs; a comparison, max or exp counts 1.
//! Bytes are the minimum traffic of the op's definition: every input element read once and
//! every output element written once, at the element size of the dtype.
//! Each op has a pure `cost(...)` function of its shapes, checked by a unit test against the
//! hand formula, and records the same numbers in [`shiftgrad_tensor::counters`] when it runs.

use shiftgrad_tensor::counters;

/// The work of one pass (forward, or backward).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Work {
    /// Floating-point operations, every multiply and every add counted (a multiply-accumulate
    /// is 2).
    pub flops: u64,
    /// Multiply-accumulates among them, reported beside the FLOPs.
    pub macs: u64,
    /// Minimum memory traffic in bytes: every input element read once, every output written
    /// once.
    pub bytes: u64,
}

impl Work {
    /// Work with no multiply-accumulates.
    pub fn new(flops: u64, bytes: u64) -> Self {
        Work {
            flops,
            macs: 0,
            bytes,
        }
    }
    /// Work made of `macs` multiply-accumulates (2 FLOPs each) plus `extra_flops`.
    pub fn with_macs(macs: u64, extra_flops: u64, bytes: u64) -> Self {
        Work {
            flops: 2 * macs + extra_flops,
            macs,
            bytes,
        }
    }
    /// Adds this work to the global counters (one launch).
    pub fn record(self) {
        counters::record_op(self.flops, self.macs, self.bytes);
    }
}

impl std::ops::Add for Work {
    type Output = Work;
    fn add(self, o: Work) -> Work {
        Work {
            flops: self.flops + o.flops,
            macs: self.macs + o.macs,
            bytes: self.bytes + o.bytes,
        }
    }
}

/// Forward and backward work of one op application.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cost {
    /// The forward pass.
    pub forward: Work,
    /// Backward with every input's gradient computed.
    pub backward: Work,
}

/// Bytes of `n` elements of `T`.
pub fn bytes<T: shiftgrad_tensor::Real>(n: usize) -> u64 {
    (n * T::DTYPE.size()) as u64
}
