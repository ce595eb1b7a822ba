//! The live bank channels of a sparse shift-wise layer (SPEC 1.6): which of the `R*nk` small
//! kernels survive the layer's mask, and the compact layout of `Y` that holds only them.
//!
//! A pruned kernel costs nothing because it is not in `Y` at all: the bank convolution
//! produces `Y` with one channel per *live* kernel, `(B, L, Hp, Wp)`, compact channel `l`
//! holding bank channel `channels[l]`, in increasing order (so the kernels of one rep channel
//! stay adjacent, `rep_start[o] .. rep_start[o + 1]`). The shift-add then visits exactly the
//! live channels of each rep: a pruned slot contributes nothing to the horizontal and vertical
//! paths, and an identity choice `idx_identit[o, g]` that lands on a pruned kernel contributes
//! zero (`compact[c] == -1`). The index tables themselves ([`super::ShiftTables`]) are not
//! changed by a mask: they stay the layer's, indexed by bank channel.
//!
//! Because the live channels are visited in increasing bank order, the sparse shift-add adds
//! the same terms in the same order as the dense one applied to a `Y` whose pruned channels
//! are zero: the two agree bit for bit (tested), up to the sign of a zero.

use shiftgrad_tensor::{Error, Result};

const OP: &str = "shift_add";

/// The live bank channels of one layer and the compact layout of its bank output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveChannels {
    /// R, the rep channels.
    pub reps: usize,
    /// nk, the small kernels per rep channel.
    pub nk: usize,
    /// The live bank channels in increasing order: compact channel `l` is bank channel
    /// `channels[l]`.
    pub channels: Vec<i32>,
    /// `R + 1` offsets: the compact channels of rep `o` are `rep_start[o] .. rep_start[o+1]`.
    pub rep_start: Vec<i32>,
    /// `R * nk` entries: the compact channel of bank channel `c`, or -1 where it is pruned.
    pub compact: Vec<i32>,
}

impl LiveChannels {
    /// Every channel live: the dense layout (`l == c`).
    pub fn all(reps: usize, nk: usize) -> LiveChannels {
        let mask = vec![true; reps * nk];
        Self::build(reps, nk, &mask)
    }

    /// The live channels of `mask` (`R*nk` entries, `true` = live). A mask of another length,
    /// or a layer so large that its channel numbers do not fit the kernels' 32-bit indices,
    /// is an error.
    pub fn from_mask(reps: usize, nk: usize, mask: &[bool]) -> Result<LiveChannels> {
        if mask.len() != reps * nk {
            return Err(Error::shape(
                OP,
                format!(
                    "the mask has {} entries, expected one per small kernel, R*nk = {reps}*{nk} = {}",
                    mask.len(),
                    reps * nk
                ),
            ));
        }
        if reps * nk > i32::MAX as usize {
            return Err(Error::arg(
                OP,
                format!("{} bank channels do not fit in int32", reps * nk),
            ));
        }
        Ok(Self::build(reps, nk, mask))
    }

    fn build(reps: usize, nk: usize, mask: &[bool]) -> LiveChannels {
        let mut channels = Vec::new();
        let mut rep_start = Vec::with_capacity(reps + 1);
        let mut compact = vec![-1i32; reps * nk];
        for o in 0..reps {
            rep_start.push(channels.len() as i32);
            for c in o * nk..(o + 1) * nk {
                if mask[c] {
                    compact[c] = channels.len() as i32;
                    channels.push(c as i32);
                }
            }
        }
        rep_start.push(channels.len() as i32);
        LiveChannels {
            reps,
            nk,
            channels,
            rep_start,
            compact,
        }
    }

    /// L, the number of live channels (the channels of the compact `Y`).
    pub fn len(&self) -> usize {
        self.channels.len()
    }

    /// Whether every kernel is pruned.
    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }

    /// Whether every kernel is live (the compact layout is the dense one).
    pub fn is_dense(&self) -> bool {
        self.len() == self.reps * self.nk
    }

    /// The mask this layout was built from.
    pub fn mask(&self) -> Vec<bool> {
        self.compact.iter().map(|&l| l >= 0).collect()
    }

    /// `(l, c)` for the live channels of rep `o`, in increasing order.
    pub fn of_rep(&self, o: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
        let (a, b) = (self.rep_start[o] as usize, self.rep_start[o + 1] as usize);
        (a..b).map(move |l| (l, self.channels[l] as usize))
    }

    /// The compact channel of bank channel `c`, `None` where it is pruned.
    pub fn compact_of(&self, c: usize) -> Option<usize> {
        usize::try_from(self.compact[c]).ok()
    }

    /// Checks the layout against a layer of `reps` rep channels of `nk` kernels: sizes, and
    /// that the three arrays describe the same increasing set (a layout edited by hand is an
    /// error, never an index out of bounds in a kernel).
    pub fn validate(&self, reps: usize, nk: usize) -> Result<()> {
        let bad = |what: String| Err(Error::arg(OP, format!("invalid live channels: {what}")));
        if self.reps != reps || self.nk != nk {
            return bad(format!(
                "built for R = {}, nk = {}, used with R = {reps}, nk = {nk}",
                self.reps, self.nk
            ));
        }
        if self.compact.len() != reps * nk || self.rep_start.len() != reps + 1 {
            return bad("array lengths do not match R and nk".into());
        }
        if *self != Self::build(reps, nk, &self.mask()) {
            return bad("channels, rep_start and compact disagree".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_layout_of_a_mask() {
        let mask = [true, false, true, false, false, false, true, true, false];
        let l = LiveChannels::from_mask(3, 3, &mask).unwrap();
        assert_eq!(l.channels, [0, 2, 6, 7]);
        assert_eq!(l.rep_start, [0, 2, 2, 4]);
        assert_eq!(l.compact, [0, -1, 1, -1, -1, -1, 2, 3, -1]);
        assert_eq!(l.of_rep(2).collect::<Vec<_>>(), [(2, 6), (3, 7)]);
        assert_eq!(l.of_rep(1).count(), 0);
        assert_eq!((l.compact_of(6), l.compact_of(1)), (Some(2), None));
        assert_eq!(l.mask(), mask);
        assert!(!l.is_dense() && !l.is_empty());
        l.validate(3, 3).unwrap();
        assert!(l.validate(3, 2).is_err());
        let all = LiveChannels::all(2, 3);
        assert!(all.is_dense());
        assert_eq!(all.channels, [0, 1, 2, 3, 4, 5]);
        assert!(LiveChannels::from_mask(2, 3, &[true; 5]).is_err());
        let mut edited = l.clone();
        edited.channels[1] = 1;
        assert!(edited.validate(3, 3).is_err());
        let none = LiveChannels::from_mask(2, 2, &[false; 4]).unwrap();
        assert!(none.is_empty());
        assert_eq!(none.rep_start, [0, 0, 0]);
    }
}
