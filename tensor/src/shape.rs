//! Tensor shapes. Four dimensions or fewer (NCHW) live inline, without allocation.
//!
//! The element count is a product of dimensions, and a product of numbers read from a file can
//! exceed `usize`: `(2^31, 2^31, 4)` wraps to 0 on a 64-bit machine, so a "valid" empty buffer
//! would match it. Shapes that come from outside the program (npy headers, checkpoints) are
//! therefore built with [`Shape::try_new`], which refuses a product that does not fit, and
//! [`Shape::numel`] panics (with the same message) rather than wrap, so a shape that escaped the
//! check fails loudly instead of silently describing a small tensor. Saturating at `usize::MAX`
//! was the alternative: it never wraps either, but turns the bug into odd lengths far from its
//! cause.

use smallvec::SmallVec;
use std::fmt;

/// The dimensions of a tensor, outermost first (row-major).
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Shape(SmallVec<[usize; 4]>);

impl Shape {
    /// A shape from its dimensions.
    pub fn new(dims: &[usize]) -> Self {
        Shape(SmallVec::from_slice(dims))
    }
    /// A shape from dimensions that come from outside the program (a file header): an error
    /// if the number of elements does not fit in `usize`.
    pub fn try_new(dims: &[usize]) -> crate::Result<Self> {
        let shape = Shape::new(dims);
        shape.try_numel()?;
        Ok(shape)
    }
    /// The product of `dims`, or `None` if it does not fit in `usize` (a zero dimension makes
    /// it 0 whatever the others are).
    pub fn checked_numel(dims: &[usize]) -> Option<usize> {
        if dims.contains(&0) {
            return Some(0);
        }
        dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
    }
    /// The shape of a scalar (no dimensions, one element).
    pub fn scalar() -> Self {
        Shape(SmallVec::new())
    }
    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        &self.0
    }
    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.0.len()
    }
    /// Number of elements (1 for a scalar), or an error if the product of the dimensions
    /// does not fit in `usize`.
    pub fn try_numel(&self) -> crate::Result<usize> {
        Shape::checked_numel(&self.0).ok_or_else(|| {
            crate::Error::shape(
                "shape",
                format!("{self} has more elements than fit in usize (the product overflows)"),
            )
        })
    }
    /// Number of elements (1 for a scalar).
    ///
    /// # Panics
    /// If the product overflows `usize` (never for a shape built with [`Shape::try_new`]).
    pub fn numel(&self) -> usize {
        match self.try_numel() {
            Ok(n) => n,
            Err(e) => panic!("{e}"),
        }
    }
    /// Dimension `i`.
    pub fn dim(&self, i: usize) -> usize {
        self.0[i]
    }
    /// The four dimensions of an NCHW shape, or an error naming `op` and `what`.
    pub fn nchw(&self, op: &'static str, what: &str) -> crate::Result<[usize; 4]> {
        match self.0.as_slice() {
            &[n, c, h, w] => Ok([n, c, h, w]),
            _ => Err(crate::Error::shape(
                op,
                format!("{what} must have 4 dimensions (N, C, H, W), got {self}"),
            )),
        }
    }
}

impl From<&[usize]> for Shape {
    fn from(d: &[usize]) -> Self {
        Shape::new(d)
    }
}

impl<const N: usize> From<[usize; N]> for Shape {
    fn from(d: [usize; N]) -> Self {
        Shape::new(&d)
    }
}

impl From<Vec<usize>> for Shape {
    fn from(d: Vec<usize>) -> Self {
        Shape::new(&d)
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{d}")?;
        }
        write!(f, "]")
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numel_is_checked() {
        assert_eq!(Shape::new(&[2, 3, 4]).numel(), 24);
        assert_eq!(Shape::scalar().try_numel().unwrap(), 1);
        // 2^31 * 2^31 * 4 = 2^64 wraps to 0 in an unchecked product.
        let big = [1usize << 31, 1 << 31, 4];
        assert_eq!(Shape::checked_numel(&big), None);
        let e = Shape::try_new(&big).unwrap_err().to_string();
        assert!(
            e.contains("overflows") && e.contains("[2147483648, 2147483648, 4]"),
            "{e}"
        );
        assert!(Shape::new(&big).try_numel().is_err());
        assert_eq!(Shape::checked_numel(&[usize::MAX, 2, 0]), Some(0));
    }

    #[test]
    #[should_panic(expected = "overflows")]
    fn numel_panics_instead_of_wrapping() {
        Shape::new(&[usize::MAX, 2]).numel();
    }
}
