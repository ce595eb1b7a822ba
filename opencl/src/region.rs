//! Profiling regions: a label, per thread, that every kernel launch made under it carries into
//! [`crate::Context::region_times`]. A region answers "how much device time did this part of
//! the model take", which per-kernel rows cannot when one kernel (conv2d, say) serves several
//! parts. The autograd engine captures the region in force when a node is recorded and enters
//! it again while that node's backward runs, so a region covers its forward and backward.
//!
//! Regions do not nest into paths: entering one replaces the label until the guard drops.

use std::cell::Cell;

thread_local! {
    static CURRENT: Cell<&'static str> = const { Cell::new("") };
}

/// The region in force on this thread ("" outside every region).
pub fn current() -> &'static str {
    CURRENT.with(Cell::get)
}

/// Makes `name` the region until the returned guard drops (then the previous one is back).
#[must_use = "the region ends when the guard drops"]
pub fn enter(name: &'static str) -> RegionGuard {
    RegionGuard {
        previous: CURRENT.with(|c| c.replace(name)),
    }
}

/// Restores the previous region when dropped (see [`enter`]).
pub struct RegionGuard {
    previous: &'static str,
}

impl Drop for RegionGuard {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.previous));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_restore_the_previous_region() {
        assert_eq!(current(), "");
        {
            let _a = enter("a");
            assert_eq!(current(), "a");
            {
                let _b = enter("b");
                assert_eq!(current(), "b");
            }
            assert_eq!(current(), "a");
        }
        assert_eq!(current(), "");
    }
}
