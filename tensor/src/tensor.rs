//! Contiguous, row-major tensors in host memory or in an OpenCL buffer.
//!
//! A tensor owns its elements and a [`Shape`]; element `(n, c, h, w)` of an NCHW tensor is at
//! `((n*C + c)*H + h)*W + w`, on the host and on the device alike. There are no strides and no
//! views: every op writes a fresh contiguous output, which keeps the reference kernels readable
//! and the memory accounting exact (we rejected strided views: they make "bytes read" depend on
//! history).
//!
//! Host tensors hold a `Vec<T>`; every allocation and release is recorded in
//! [`crate::counters`]. Device tensors hold a pooled [`opencl::Buffer`] (the pool counts live
//! and peak device bytes). Data crosses between the two only through [`Tensor::to_host`] and
//! [`Tensor::to_device`]. The element accessors ([`Tensor::data`], [`Tensor::data_mut`],
//! [`Tensor::map`], [`Tensor::zip_map`]) are the CPU reference's and panic on a device tensor,
//! a programming error: ops dispatch on [`Tensor::device`] first. Inspection helpers
//! (`item`, `sum_all`, `max_abs_diff`, equality, `Debug`) read a device tensor back.

use crate::compare::nan_max;
use crate::{counters, Error, Real, Result, Shape};
use shiftgrad_opencl as opencl;
use std::borrow::Cow;

/// Where a tensor lives.
#[derive(Clone, Debug, Default)]
pub enum Device {
    /// Host memory; ops run the CPU reference.
    #[default]
    Cpu,
    /// An OpenCL device.
    OpenCl(opencl::Context),
}

impl Device {
    /// True for the host.
    pub fn is_cpu(&self) -> bool {
        matches!(self, Device::Cpu)
    }
    /// A short name for messages ("cpu" or the OpenCL device's name).
    pub fn name(&self) -> String {
        match self {
            Device::Cpu => "cpu".into(),
            Device::OpenCl(ctx) => format!(
                "opencl:{}:{} ({})",
                ctx.info().platform,
                ctx.info().device,
                ctx.info().name
            ),
        }
    }
    /// Opens the device a spec names (`cpu`, `opencl`, `opencl:P:D`, `auto`; `None` reads
    /// `$SHIFTGRAD_DEVICE`, else the CPU).
    pub fn open(spec: Option<&str>) -> Result<Device> {
        match opencl::resolve(spec).map_err(|e| Error::Device(e.to_string()))? {
            opencl::Backend::Cpu => Ok(Device::Cpu),
            opencl::Backend::OpenCl(ctx) => Ok(Device::OpenCl(ctx)),
        }
    }
    /// Waits until everything queued on the device has run (nothing to wait for on the host).
    /// Not a transfer: used to time host-side work apart from the kernels queued before it.
    pub fn wait(&self) -> Result<()> {
        match self {
            Device::Cpu => Ok(()),
            Device::OpenCl(ctx) => ctx.finish().map_err(dev_err),
        }
    }
    /// Whether two devices are the same (same OpenCL context).
    pub fn same(&self, other: &Device) -> bool {
        match (self, other) {
            (Device::Cpu, Device::Cpu) => true,
            (Device::OpenCl(a), Device::OpenCl(b)) => {
                a.info().platform == b.info().platform && a.info().device == b.info().device
            }
            _ => false,
        }
    }
}

fn dev_err(e: opencl::Error) -> Error {
    Error::Device(e.to_string())
}

enum Storage<T: Real> {
    Host(Vec<T>),
    Device(opencl::Buffer<T>),
}

/// A dense tensor, on the host or on an OpenCL device.
pub struct Tensor<T: Real> {
    shape: Shape,
    storage: Storage<T>,
}

/// The OpenCL source of the few kernels the tensor type itself needs (gradient accumulation).
const TENSOR_CL: &str = include_str!("tensor.cl");

impl<T: Real> Tensor<T> {
    fn from_parts(shape: Shape, data: Vec<T>) -> Self {
        counters::record_alloc((data.len() * T::DTYPE.size()) as u64);
        Tensor {
            shape,
            storage: Storage::Host(data),
        }
    }

    /// A tensor over a device buffer holding `shape.numel()` elements.
    pub fn from_buffer(shape: impl Into<Shape>, buffer: opencl::Buffer<T>) -> Result<Self> {
        let shape = shape.into();
        if shape.numel() != buffer.len() {
            return Err(Error::shape(
                "tensor",
                format!(
                    "shape {shape} needs {} elements, the buffer holds {}",
                    shape.numel(),
                    buffer.len()
                ),
            ));
        }
        Ok(Tensor {
            shape,
            storage: Storage::Device(buffer),
        })
    }

    /// An uninitialised device tensor (for kernel outputs), or zeros on the host.
    pub fn alloc_on(shape: impl Into<Shape>, device: &Device) -> Result<Self> {
        let shape = shape.into();
        match device {
            Device::Cpu => Ok(Self::zeros(shape)),
            Device::OpenCl(ctx) => {
                let buf = ctx.alloc::<T>(shape.numel()).map_err(dev_err)?;
                Ok(Tensor {
                    shape,
                    storage: Storage::Device(buf),
                })
            }
        }
    }

    /// A tensor filled with `value` on `device`.
    pub fn full_on(shape: impl Into<Shape>, value: T, device: &Device) -> Result<Self> {
        let t = Self::alloc_on(shape, device)?;
        match &t.storage {
            Storage::Host(_) => Ok(Self::full(t.shape.clone(), value)),
            Storage::Device(b) => {
                b.fill(value).map_err(dev_err)?;
                Ok(t)
            }
        }
    }

    /// Zeros on `device`.
    pub fn zeros_on(shape: impl Into<Shape>, device: &Device) -> Result<Self> {
        Self::full_on(shape, T::zero(), device)
    }

    /// Where the tensor lives.
    pub fn device(&self) -> Device {
        match &self.storage {
            Storage::Host(_) => Device::Cpu,
            Storage::Device(b) => Device::OpenCl(b.context().clone()),
        }
    }

    /// True for a host tensor.
    pub fn is_host(&self) -> bool {
        matches!(self.storage, Storage::Host(_))
    }

    /// The device buffer, for kernel arguments (`None` on the host).
    pub fn buffer(&self) -> Option<&opencl::Buffer<T>> {
        match &self.storage {
            Storage::Host(_) => None,
            Storage::Device(b) => Some(b),
        }
    }

    /// A host copy (a plain clone for a host tensor; a blocking read for a device one).
    pub fn to_host(&self) -> Result<Tensor<T>> {
        match &self.storage {
            Storage::Host(_) => Ok(self.clone()),
            Storage::Device(b) => Ok(Self::from_parts(
                self.shape.clone(),
                b.read().map_err(dev_err)?,
            )),
        }
    }

    /// A copy on `device`.
    pub fn to_device(&self, device: &Device) -> Result<Tensor<T>> {
        match device {
            Device::Cpu => self.to_host(),
            Device::OpenCl(ctx) => {
                let buf = match &self.storage {
                    Storage::Host(v) => ctx.upload(v).map_err(dev_err)?,
                    Storage::Device(b) => {
                        let host = b.read().map_err(dev_err)?;
                        ctx.upload(&host).map_err(dev_err)?
                    }
                };
                Ok(Tensor {
                    shape: self.shape.clone(),
                    storage: Storage::Device(buf),
                })
            }
        }
    }

    /// A copy that reports a device failure instead of panicking.
    pub fn try_clone(&self) -> Result<Self> {
        match &self.storage {
            Storage::Host(v) => Ok(Self::from_parts(self.shape.clone(), v.clone())),
            Storage::Device(b) => {
                let out = b.context().alloc::<T>(b.len()).map_err(dev_err)?;
                out.copy_from(b).map_err(dev_err)?;
                Ok(Tensor {
                    shape: self.shape.clone(),
                    storage: Storage::Device(out),
                })
            }
        }
    }

    /// The elements, host or device (read back), for inspection.
    fn host_elements(&self) -> Result<Cow<'_, [T]>> {
        match &self.storage {
            Storage::Host(v) => Ok(Cow::Borrowed(v)),
            Storage::Device(b) => Ok(Cow::Owned(b.read().map_err(dev_err)?)),
        }
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
        self.shape.numel()
    }
    /// Size of the data in bytes.
    pub fn nbytes(&self) -> usize {
        self.numel() * T::DTYPE.size()
    }
    /// The elements, row-major (host tensors only: the CPU reference's accessor).
    pub fn data(&self) -> &[T] {
        match &self.storage {
            Storage::Host(v) => v,
            Storage::Device(_) => {
                panic!("tensor: data() on a tensor in OpenCL memory; call to_host() first")
            }
        }
    }
    /// The elements, row-major, mutable (host tensors only).
    pub fn data_mut(&mut self) -> &mut [T] {
        match &mut self.storage {
            Storage::Host(v) => v,
            Storage::Device(_) => {
                panic!("tensor: data_mut() on a tensor in OpenCL memory; call to_host() first")
            }
        }
    }
    /// Takes the elements out (reading a device tensor back).
    pub fn into_vec(mut self) -> Result<Vec<T>> {
        match &mut self.storage {
            Storage::Host(v) => {
                counters::record_free((v.len() * T::DTYPE.size()) as u64);
                Ok(std::mem::take(v))
            }
            Storage::Device(b) => b.read().map_err(dev_err),
        }
    }
    /// The elements as a host vector (reading a device tensor back).
    pub fn to_vec(&self) -> Result<Vec<T>> {
        Ok(self.host_elements()?.into_owned())
    }

    /// The single value of a one-element tensor.
    pub fn item(&self) -> Result<T> {
        if self.numel() != 1 {
            return Err(Error::shape(
                "item",
                format!("expected one element, got shape {}", self.shape),
            ));
        }
        Ok(self.host_elements()?[0])
    }

    /// The same data under another shape with as many elements.
    pub fn reshape(mut self, shape: impl Into<Shape>) -> Result<Self> {
        let shape = shape.into();
        if shape.numel() != self.numel() {
            return Err(Error::shape(
                "reshape",
                format!(
                    "cannot view {} elements of shape {} as {shape}",
                    self.numel(),
                    self.shape
                ),
            ));
        }
        self.shape = shape;
        Ok(self)
    }

    /// Applies `f` to every element (host tensors only).
    pub fn map(&self, f: impl Fn(T) -> T) -> Self {
        Self::from_parts(
            self.shape.clone(),
            self.data().iter().map(|&x| f(x)).collect(),
        )
    }

    /// Combines two tensors of the same shape element by element (host tensors only).
    pub fn zip_map(&self, other: &Self, op: &'static str, f: impl Fn(T, T) -> T) -> Result<Self> {
        self.check_same_shape(other, op)?;
        let data = self
            .data()
            .iter()
            .zip(other.data())
            .map(|(&a, &b)| f(a, b))
            .collect();
        Ok(Self::from_parts(self.shape.clone(), data))
    }

    /// `self += other` (same shape, same device). Used to accumulate gradients; on a device it
    /// is one kernel, without leaving the device.
    pub fn add_assign(&mut self, other: &Self) -> Result<()> {
        self.check_same_shape(other, "add_assign")?;
        match (&mut self.storage, &other.storage) {
            (Storage::Host(a), Storage::Host(b)) => {
                for (a, &b) in a.iter_mut().zip(b) {
                    *a += b;
                }
                Ok(())
            }
            (Storage::Device(a), Storage::Device(b)) => {
                let ctx = a.context().clone();
                let program = ctx
                    .program(
                        "tensor",
                        TENSOR_CL,
                        &[("real", T::DTYPE.cl_name().to_string())],
                    )
                    .map_err(dev_err)?;
                let n = a.len();
                ctx.launch(
                    &program,
                    "accumulate",
                    [n],
                    None,
                    &[a.arg(), b.arg(), opencl::Arg::U32(n as u32)],
                )
                .map_err(dev_err)
            }
            _ => Err(Error::arg(
                "add_assign",
                "the two tensors are on different devices",
            )),
        }
    }

    /// Sum of all elements (accumulated in f64, returned as `T`; reads a device tensor back).
    pub fn sum_all(&self) -> Result<T> {
        let v = self.host_elements()?;
        Ok(T::of_f64(v.iter().map(|x| x.as_f64()).sum()))
    }

    /// Element-wise conversion to another real type (the result is on the host).
    pub fn cast<U: Real>(&self) -> Result<Tensor<U>> {
        let v = self.host_elements()?;
        Ok(Tensor::from_parts(
            self.shape.clone(),
            v.iter().map(|x| U::of_f64(x.as_f64())).collect(),
        ))
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

    /// Largest absolute element-wise difference (shapes must agree; device tensors are read
    /// back). NaN when any element of either tensor is NaN and infinite when any is infinite,
    /// so that `max_abs_diff(..) < tol` fails on them; tests compare through
    /// [`crate::compare`], which also reports where.
    pub fn max_abs_diff(&self, other: &Self) -> Result<f64> {
        self.check_same_shape(other, "max_abs_diff")?;
        let (a, b) = (self.host_elements()?, other.host_elements()?);
        Ok(nan_max(a.iter().zip(b.iter()).map(|(a, b)| {
            let (a, b) = (a.as_f64(), b.as_f64());
            if a.is_finite() && b.is_finite() {
                (a - b).abs()
            } else if a.is_nan() || b.is_nan() {
                f64::NAN
            } else {
                f64::INFINITY
            }
        })))
    }

    /// Largest absolute element, NaN if any element is NaN (reads a device tensor back).
    pub fn max_abs(&self) -> Result<f64> {
        let v = self.host_elements()?;
        Ok(nan_max(v.iter().map(|a| a.as_f64().abs())))
    }

    /// True when every element is finite (reads a device tensor back).
    pub fn all_finite(&self) -> Result<bool> {
        Ok(self.host_elements()?.iter().all(|x| x.is_finite()))
    }
}

impl<T: Real> Clone for Tensor<T> {
    /// Copies the data on the tensor's own device (panics if the device fails; see
    /// [`Tensor::try_clone`]).
    fn clone(&self) -> Self {
        self.try_clone()
            .expect("tensor: copying a device buffer failed")
    }
}

impl<T: Real> Drop for Tensor<T> {
    fn drop(&mut self) {
        if let Storage::Host(v) = &self.storage {
            counters::record_free((v.len() * T::DTYPE.size()) as u64);
        }
    }
}

impl<T: Real> std::fmt::Debug for Tensor<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor<{}>{} ", T::DTYPE, self.shape)?;
        if !self.is_host() {
            write!(f, "on {} ", self.device().name())?;
        }
        match self.host_elements() {
            Ok(v) if v.len() <= 16 => write!(f, "{:?}", &v[..]),
            Ok(v) => write!(f, "{:?} ...", &v[..16]),
            Err(e) => write!(f, "<unreadable: {e}>"),
        }
    }
}

impl<T: Real> PartialEq for Tensor<T> {
    /// Same shape and bitwise-equal elements, wherever they live.
    fn eq(&self, other: &Self) -> bool {
        self.shape == other.shape
            && match (self.host_elements(), other.host_elements()) {
                (Ok(a), Ok(b)) => a == b,
                _ => false,
            }
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
        assert_eq!(t.sum_all().unwrap(), 15.0);
    }

    #[test]
    fn add_assign_checks_shape() {
        let mut a = Tensor::<f32>::ones([2, 2]);
        a.add_assign(&Tensor::ones([2, 2])).unwrap();
        assert_eq!(a.data(), &[2.0; 4]);
        assert!(a.add_assign(&Tensor::ones([4])).is_err());
    }
}
