//! Contiguous, row-major host tensors.
//!
//! A tensor owns a `Vec<T>` and a [`Shape`]; element `(n, c, h, w)` of an NCHW tensor is at
//! `((n*C + c)*H + h)*W + w`. There are no strides and no views: every op writes a fresh
//! contiguous output, which keeps the reference kernels readable and the memory accounting
//! exact (we rejected strided views: they make "bytes read" depend on history).
//! Every allocation and release is recorded in [`crate::counters`].

use crate::{counters, Error, Real, Result, Shape};

/// A dense tensor in host memory.
pub struct Tensor<T: Real> {
    shape: Shape,
    data: Vec<T>,
}

impl<T: Real> Tensor<T> {
    fn from_parts(shape: Shape, data: Vec<T>) -> Self {
        counters::record_alloc((data.len() * T::DTYPE.size()) as u64);
        Tensor { shape, data }
    }

    /// A tensor from a shape and row-major data; the lengths must agree.
    pub fn new(shape: impl Into<Shape>, data: Vec<T>) -> Result<Self> {
        let shape = shape.into();
        if shape.numel() != data.len() {
            return Err(Error::shape(
                "tensor",
                format!(
                    "shape {shape} needs {} elements, got {}",
                    shape.numel(),
                    data.len()
                ),
            ));
        }
        Ok(Self::from_parts(shape, data))
    }

    /// A tensor filled with `value`.
    pub fn full(shape: impl Into<Shape>, value: T) -> Self {
        let shape = shape.into();
        let n = shape.numel();
        Self::from_parts(shape, vec![value; n])
    }

    /// A tensor of zeros.
    pub fn zeros(shape: impl Into<Shape>) -> Self {
        Self::full(shape, T::zero())
    }

    /// A tensor of ones.
    pub fn ones(shape: impl Into<Shape>) -> Self {
        Self::full(shape, T::one())
    }

    /// A zero-dimensional tensor holding `value`.
    pub fn scalar(value: T) -> Self {
        Self::from_parts(Shape::scalar(), vec![value])
    }

    /// A tensor whose element `i` (flat, row-major) is `f(i)`.
    pub fn from_fn(shape: impl Into<Shape>, f: impl FnMut(usize) -> T) -> Self {
        let shape = shape.into();
        let data = (0..shape.numel()).map(f).collect();
        Self::from_parts(shape, data)
    }

    /// The shape.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }
    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.data.len()
    }
    /// Size of the data in bytes.
    pub fn nbytes(&self) -> usize {
        self.data.len() * T::DTYPE.size()
    }
    /// The elements, row-major.
    pub fn data(&self) -> &[T] {
        &self.data
    }
    /// The elements, row-major, mutable.
    pub fn data_mut(&mut self) -> &mut [T] {
        &mut self.data
    }
    /// Takes the elements out.
    pub fn into_vec(mut self) -> Vec<T> {
        counters::record_free(self.nbytes() as u64);
        std::mem::take(&mut self.data)
    }

    /// The single value of a one-element tensor.
    pub fn item(&self) -> Result<T> {
        if self.data.len() != 1 {
            return Err(Error::shape(
                "item",
                format!("expected one element, got shape {}", self.shape),
            ));
        }
        Ok(self.data[0])
    }

    /// The same data under another shape with as many elements.
    pub fn reshape(mut self, shape: impl Into<Shape>) -> Result<Self> {
        let shape = shape.into();
        if shape.numel() != self.data.len() {
            return Err(Error::shape(
                "reshape",
                format!(
                    "cannot view {} elements of shape {} as {shape}",
                    self.data.len(),
                    self.shape
                ),
            ));
        }
        self.shape = shape;
        Ok(self)
    }

    /// Applies `f` to every element.
    pub fn map(&self, f: impl Fn(T) -> T) -> Self {
        Self::from_parts(
            self.shape.clone(),
            self.data.iter().map(|&x| f(x)).collect(),
        )
    }

    /// Combines two tensors of the same shape element by element.
    pub fn zip_map(&self, other: &Self, op: &'static str, f: impl Fn(T, T) -> T) -> Result<Self> {
        self.check_same_shape(other, op)?;
        let data = self
            .data
            .iter()
            .zip(&other.data)
            .map(|(&a, &b)| f(a, b))
            .collect();
        Ok(Self::from_parts(self.shape.clone(), data))
    }

    /// `self += other` (same shape). Used to accumulate gradients.
    pub fn add_assign(&mut self, other: &Self) -> Result<()> {
        self.check_same_shape(other, "add_assign")?;
        for (a, &b) in self.data.iter_mut().zip(&other.data) {
            *a += b;
        }
        Ok(())
    }

    /// Sum of all elements (accumulated in f64, returned as `T`).
    pub fn sum_all(&self) -> T {
        T::of_f64(self.data.iter().map(|x| x.as_f64()).sum())
    }

    /// Element-wise conversion to another real type.
    pub fn cast<U: Real>(&self) -> Tensor<U> {
        Tensor::from_parts(
            self.shape.clone(),
            self.data.iter().map(|x| U::of_f64(x.as_f64())).collect(),
        )
    }

    /// An error naming `op` unless `other` has this tensor's shape.
    pub fn check_same_shape(&self, other: &Self, op: &'static str) -> Result<()> {
        if self.shape != other.shape {
            return Err(Error::shape(
                op,
                format!("shapes {} and {} differ", self.shape, other.shape),
            ));
        }
        Ok(())
    }

    /// Largest absolute element-wise difference (shapes must agree).
    pub fn max_abs_diff(&self, other: &Self) -> Result<f64> {
        self.check_same_shape(other, "max_abs_diff")?;
        Ok(self
            .data
            .iter()
            .zip(&other.data)
            .map(|(a, b)| (a.as_f64() - b.as_f64()).abs())
            .fold(0.0, f64::max))
    }

    /// Largest absolute element.
    pub fn max_abs(&self) -> f64 {
        self.data
            .iter()
            .map(|a| a.as_f64().abs())
            .fold(0.0, f64::max)
    }

    /// True when every element is finite.
    pub fn all_finite(&self) -> bool {
        self.data.iter().all(|x| x.is_finite())
    }
}

impl<T: Real> Clone for Tensor<T> {
    fn clone(&self) -> Self {
        Self::from_parts(self.shape.clone(), self.data.clone())
    }
}

impl<T: Real> Drop for Tensor<T> {
    fn drop(&mut self) {
        counters::record_free(self.nbytes() as u64);
    }
}

impl<T: Real> std::fmt::Debug for Tensor<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor<{}>{} ", T::DTYPE, self.shape)?;
        if self.data.len() <= 16 {
            write!(f, "{:?}", self.data)
        } else {
            write!(f, "{:?} ...", &self.data[..16])
        }
    }
}

impl<T: Real> PartialEq for Tensor<T> {
    fn eq(&self, other: &Self) -> bool {
        self.shape == other.shape && self.data == other.data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_checks_length() {
        let e = Tensor::<f32>::new([2, 3], vec![0.0; 5]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "tensor: shape [2, 3] needs 6 elements, got 5"
        );
    }

    #[test]
    fn reshape_and_item() {
        let t = Tensor::<f64>::from_fn([2, 3], |i| i as f64);
        let t = t.reshape([3, 2]).unwrap();
        assert_eq!(t.dims(), &[3, 2]);
        assert!(t.clone().reshape([4]).is_err());
        assert_eq!(Tensor::scalar(2.5f64).item().unwrap(), 2.5);
        assert!(t.item().is_err());
        assert_eq!(t.sum_all(), 15.0);
    }

    #[test]
    fn add_assign_checks_shape() {
        let mut a = Tensor::<f32>::ones([2, 2]);
        a.add_assign(&Tensor::ones([2, 2])).unwrap();
        assert_eq!(a.data(), &[2.0; 4]);
        assert!(a.add_assign(&Tensor::ones([4])).is_err());
    }
}
