//! Tensor shapes. Four dimensions or fewer (NCHW) live inline, without allocation.

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
    /// Number of elements (1 for a scalar).
    pub fn numel(&self) -> usize {
        self.0.iter().product()
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
