//! The index tables of the shift-add (SPEC 1.2), stored exactly as the reference implementation
//! stores them so that tables can be exchanged with it:
//!
//! * `pad_hv`, int32, shape `(R*nk, 2G)`: column `g` holds the horizontal shift of bank channel
//!   `c` in group `g` (`pad_hv[o*nk + rh[g][o][i], g] = s_i`), column `G + g` the vertical one;
//! * `idx_identit`, int32, shape `(R, G)`: `idx_identit[o, g] = o*nk + u[g][o]`.
//!
//! The permutations `rh`, `rv` are not stored: they are recovered from `pad_hv` by inverting
//! `s_i` (the shifts are distinct, `s_i = M/2 - i*k - p`, so `i = (M/2 - p - s) / k`).
//! A table is only ever built through [`ShiftTables::random`] or [`ShiftTables::from_arrays`],
//! both of which validate it; the fields are public for reading (checkpoints, the dense
//! equivalent), and [`crate::shift_add::shift_add`] re-validates before indexing, so a table
//! edited by hand is an error, never an index out of bounds.

use rand::Rng as _;
use shiftgrad_tensor::{init, Error, Result};

const OP: &str = "shift_add";

/// SPEC 1.2. Geometry + the two int32 tables exactly as stored by the reference implementation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShiftTables {
    /// M, the big kernel ("focus length"); `M >= k`, any value, may exceed the feature map.
    pub big: usize,
    /// k, the small kernel (odd, >= 1).
    pub small: usize,
    /// R, the number of rep channels.
    pub reps: usize,
    /// G = n_rep, the number of shuffled index groups (>= 1).
    pub groups: usize,
    /// Shape `(R*nk, 2G)`, row-major.
    pub pad_hv: Vec<i32>,
    /// Shape `(R, G)`, row-major.
    pub idx_identit: Vec<i32>,
}

impl ShiftTables {
    /// `nk = ceil(M / k)`: number of small kernels tiling the long side.
    pub fn nk(&self) -> usize {
        self.big.div_ceil(self.small)
    }

    /// `e = p - k/2 = k/2` (integer division, k odd): the margin of the bank output.
    pub fn extra(&self) -> usize {
        self.small / 2
    }

    /// The shifts `s_i = M/2 - i*k - p`, `p = k - 1`, for `i < nk` (integer division M/2).
    /// Call only with a geometry accepted by [`ShiftTables::check_geometry`] (k >= 1).
    pub fn shifts(big: usize, small: usize) -> Vec<i32> {
        let nk = big.div_ceil(small.max(1));
        let p = small as i64 - 1;
        (0..nk)
            .map(|i| (big as i64 / 2 - i as i64 * small as i64 - p) as i32)
            .collect()
    }

    /// Bad hyper-parameters are errors: `k` even or 0, `M < k`, `R == 0`, `G == 0`.
    pub fn check_geometry(big: usize, small: usize, reps: usize, groups: usize) -> Result<()> {
        if small == 0 {
            return Err(Error::arg(OP, "small kernel must be at least 1, got 0"));
        }
        if small % 2 != 1 {
            return Err(Error::arg(
                OP,
                format!("small kernel must be odd, got {small}"),
            ));
        }
        if big < small {
            return Err(Error::arg(
                OP,
                format!(
                    "big kernel must be at least the small kernel, got big {big} < small {small}"
                ),
            ));
        }
        if reps == 0 {
            return Err(Error::arg(OP, "need at least one rep channel, got 0"));
        }
        if groups == 0 {
            return Err(Error::arg(OP, "need at least one index group, got 0"));
        }
        // The shifts and indices are int32 in the stored tables.
        let nk = big.div_ceil(small);
        if big > i32::MAX as usize / 2 || reps.saturating_mul(nk) > i32::MAX as usize {
            return Err(Error::arg(
                OP,
                format!("big kernel {big} with {reps} rep channels does not fit int32 tables"),
            ));
        }
        Ok(())
    }

    /// Draws random tables from `rng`, in this exact order:
    /// `for g in 0..G { for o in 0..R { rh = permutation(nk); rv = permutation(nk); u = uniform in 0..nk } }`.
    pub fn random(
        big: usize,
        small: usize,
        reps: usize,
        groups: usize,
        rng: &mut init::Rng,
    ) -> Result<Self> {
        Self::check_geometry(big, small, reps, groups)?;
        let nk = big.div_ceil(small);
        let s = Self::shifts(big, small);
        let cols = 2 * groups;
        let mut pad_hv = vec![0i32; reps * nk * cols];
        let mut idx_identit = vec![0i32; reps * groups];
        for g in 0..groups {
            for o in 0..reps {
                let rh = init::permutation(nk, rng);
                let rv = init::permutation(nk, rng);
                let u = rng.gen_range(0..nk);
                for i in 0..nk {
                    pad_hv[(o * nk + rh[i]) * cols + g] = s[i];
                    pad_hv[(o * nk + rv[i]) * cols + groups + g] = s[i];
                }
                idx_identit[o * groups + g] = (o * nk + u) as i32;
            }
        }
        Ok(ShiftTables {
            big,
            small,
            reps,
            groups,
            pad_hv,
            idx_identit,
        })
    }

    /// Tables from stored arrays (a checkpoint, the reference implementation), validated.
    pub fn from_arrays(
        big: usize,
        small: usize,
        reps: usize,
        groups: usize,
        pad_hv: Vec<i32>,
        idx_identit: Vec<i32>,
    ) -> Result<Self> {
        let t = ShiftTables {
            big,
            small,
            reps,
            groups,
            pad_hv,
            idx_identit,
        };
        t.validate()?;
        Ok(t)
    }

    /// Checks the geometry, the table shapes, that within every rep block each column of
    /// `pad_hv` is a permutation of [`ShiftTables::shifts`], and that every identity index lies
    /// in its rep's own block.
    pub fn validate(&self) -> Result<()> {
        let (big, small, reps, groups) = (self.big, self.small, self.reps, self.groups);
        Self::check_geometry(big, small, reps, groups)?;
        let nk = self.nk();
        let cols = 2 * groups;
        if self.pad_hv.len() != reps * nk * cols {
            return Err(Error::shape(
                OP,
                format!(
                    "pad_hv must have shape ({reps}*{nk}, 2*{groups}) = {} elements, got {}",
                    reps * nk * cols,
                    self.pad_hv.len()
                ),
            ));
        }
        if self.idx_identit.len() != reps * groups {
            return Err(Error::shape(
                OP,
                format!(
                    "idx_identit must have shape ({reps}, {groups}) = {} elements, got {}",
                    reps * groups,
                    self.idx_identit.len()
                ),
            ));
        }
        for o in 0..reps {
            for col in 0..cols {
                let mut seen = vec![false; nk];
                for j in 0..nk {
                    let c = o * nk + j;
                    let s = self.pad_hv[c * cols + col];
                    let slot = self.slot_of(s).filter(|&i| !seen[i]).ok_or_else(|| {
                        Error::arg(
                            OP,
                            format!(
                                "pad_hv[{c}, {col}] = {s}: column {col} of rep block {o} is not a \
                                 permutation of the shifts {:?} (M = {big}, k = {small})",
                                Self::shifts(big, small)
                            ),
                        )
                    })?;
                    seen[slot] = true;
                }
            }
            for g in 0..groups {
                let idx = self.idx_identit[o * groups + g];
                let lo = (o * nk) as i64;
                if !(lo..lo + nk as i64).contains(&(idx as i64)) {
                    return Err(Error::arg(
                        OP,
                        format!(
                            "idx_identit[{o}, {g}] = {idx} is outside rep {o}'s bank channels {}..{}",
                            lo,
                            lo + nk as i64
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The slot `i` whose shift is `s`, if `s` is one of the shifts.
    fn slot_of(&self, s: i32) -> Option<usize> {
        let s0 = self.big as i64 / 2 - (self.small as i64 - 1);
        let d = s0 - s as i64;
        let k = self.small as i64;
        (d >= 0 && d % k == 0 && d / k < self.nk() as i64).then(|| (d / k) as usize)
    }

    /// `rh[g][o]` recovered from `pad_hv`: slot `i` -> `j` (bank channel `o*nk + j`).
    /// Panics if `g >= G` or `o >= R`, or on tables that bypassed validation.
    pub fn rh(&self, g: usize, o: usize) -> Vec<usize> {
        self.permutation(g, o)
    }

    /// `rv[g][o]` recovered from `pad_hv`: slot `i` -> `j` (bank channel `o*nk + j`).
    /// Panics if `g >= G` or `o >= R`, or on tables that bypassed validation.
    pub fn rv(&self, g: usize, o: usize) -> Vec<usize> {
        self.permutation(self.groups + g, o)
    }

    fn permutation(&self, col: usize, o: usize) -> Vec<usize> {
        assert!(
            o < self.reps && col < 2 * self.groups,
            "rep or group out of range"
        );
        let nk = self.nk();
        let mut r = vec![0usize; nk];
        for j in 0..nk {
            let s = self.pad_hv[(o * nk + j) * 2 * self.groups + col];
            let i = self
                .slot_of(s)
                .expect("pad_hv holds a value that is not a shift");
            r[i] = j;
        }
        r
    }
}
