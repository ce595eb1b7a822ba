//! The element types shiftgrad computes in.

use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{AddAssign, DivAssign, MulAssign, SubAssign};

/// The data type of a tensor, as a value (for messages, files and kernel builds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit IEEE float (`f32`, OpenCL `float`, NumPy `<f4`).
    F32,
    /// 64-bit IEEE float (`f64`, OpenCL `double`, NumPy `<f8`).
    F64,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F64 => 8,
        }
    }
    /// The OpenCL C type name (`float` / `double`), used for `-D real=...`.
    pub fn cl_name(self) -> &'static str {
        match self {
            DType::F32 => "float",
            DType::F64 => "double",
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
        })
    }
}

/// A real scalar type: f32 or f64. All CPU reference code is generic over it.
pub trait Real:
    num_traits::Float
    + Sum
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Default
    + Debug
    + Display
    + Send
    + Sync
    + 'static
    + npyz::Deserialize
    + npyz::AutoSerialize
    + shiftgrad_opencl::Element
{
    /// This type as a [`DType`] value.
    const DTYPE: DType;
    /// Converts from f64 (rounding for f32).
    fn of_f64(x: f64) -> Self;
    /// Converts to f64 (exact).
    fn as_f64(self) -> f64;
    /// Converts from usize (exact for the sizes we use).
    fn of_usize(n: usize) -> Self {
        Self::of_f64(n as f64)
    }
}

impl Real for f32 {
    const DTYPE: DType = DType::F32;
    fn of_f64(x: f64) -> Self {
        x as f32
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
}

impl Real for f64 {
    const DTYPE: DType = DType::F64;
    fn of_f64(x: f64) -> Self {
        x
    }
    fn as_f64(self) -> f64 {
        self
    }
}
