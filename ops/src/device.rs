//! What every op's OpenCL path shares: choosing the device of the inputs, building the op's
//! program for `T` (`-D real=float` or `-D real=double`, compiled once per device and cached by
//! the context), allocating outputs from the pool, and launching with errors mapped to the
//! project's [`Error`]. Kernels are enqueued without waiting; data comes back to the host only
//! when someone reads it.

use shiftgrad_tensor::opencl::{self, Arg, Context, Program};
use shiftgrad_tensor::{Device, Error, Real, Result, Shape, Tensor};

/// Maps a device-layer error.
pub fn dev_err(e: opencl::Error) -> Error {
    Error::Device(e.to_string())
}

/// The device all of `tensors` live on; an error naming `op` if they differ.
pub fn common_device<T: Real>(op: &'static str, tensors: &[&Tensor<T>]) -> Result<Device> {
    let first = tensors.first().map(|t| t.device()).unwrap_or_default();
    for t in &tensors[1.min(tensors.len())..] {
        if !t.device().same(&first) {
            return Err(Error::arg(
                op,
                format!(
                    "inputs are on different devices ({} and {})",
                    first.name(),
                    t.device().name()
                ),
            ));
        }
    }
    Ok(first)
}

/// The program `name` built from `source` for element type `T`.
pub fn program<T: Real>(ctx: &Context, name: &str, source: &str) -> Result<Program> {
    ctx.program(name, source, &[("real", T::DTYPE.cl_name().to_string())])
        .map_err(dev_err)
}

/// The program `name` built from `source` for element type `T`, with `ireal` defined as the
/// integer type of the same width (the lane masks of vector kernels) and the `extra` defines.
pub fn vector_program<T: Real>(
    ctx: &Context,
    name: &str,
    source: &str,
    extra: &[(&str, String)],
) -> Result<Program> {
    let ireal = match T::DTYPE {
        shiftgrad_tensor::DType::F32 => "int",
        shiftgrad_tensor::DType::F64 => "long",
    };
    let mut defines = vec![
        ("real", T::DTYPE.cl_name().to_string()),
        ("ireal", ireal.to_string()),
    ];
    defines.extend(extra.iter().cloned());
    ctx.program(name, source, &defines).map_err(dev_err)
}

/// Enqueues `kernel` over `global` work-items (no wait).
pub fn launch<const N: usize>(
    ctx: &Context,
    program: &Program,
    kernel: &str,
    global: [usize; N],
    local: Option<[usize; N]>,
    args: &[Arg<'_>],
) -> Result<()> {
    ctx.launch(program, kernel, global, local, args)
        .map_err(dev_err)
}

/// Launches the form of a kernel pair that suits the device ([`gpu_shaped`]): `name` over
/// `rows.0` work-items in groups of `rows.1` (the CPU form: each work-item owns a row, a plane
/// or a block of rows), or `name_items` over `elements.0` work-items in groups of `elements.1`
/// (the GPU form: one output element each, consecutive work-items on consecutive elements).
/// The range is rounded up to whole groups; the kernels skip the work-items past the end.
pub fn launch_shaped(
    ctx: &Context,
    program: &Program,
    name: &str,
    rows: (usize, usize),
    elements: (usize, usize),
    args: &[Arg<'_>],
) -> Result<()> {
    if gpu_shaped(ctx) {
        let (n, group) = elements;
        let kernel = format!("{name}_items");
        launch(
            ctx,
            program,
            &kernel,
            [round_up(n, group)],
            Some([group]),
            args,
        )
    } else {
        let (n, group) = rows;
        launch(
            ctx,
            program,
            name,
            [round_up(n, group)],
            Some([group]),
            args,
        )
    }
}

/// An uninitialised output tensor on `ctx`.
pub fn output<T: Real>(ctx: &Context, shape: impl Into<Shape>) -> Result<Tensor<T>> {
    Tensor::alloc_on(shape, &Device::OpenCl(ctx.clone()))
}

/// A zero-filled output tensor on `ctx` (for kernels that accumulate).
pub fn zeros<T: Real>(ctx: &Context, shape: impl Into<Shape>) -> Result<Tensor<T>> {
    Tensor::zeros_on(shape, &Device::OpenCl(ctx.clone()))
}

/// The kernel argument of a device tensor. Ops call this only after dispatching on the
/// device, so a host tensor here is a bug in the op.
pub fn buf<T: Real>(t: &Tensor<T>) -> Arg<'_> {
    t.buffer().expect("ops::device::buf on a host tensor").arg()
}

/// A `u32` kernel argument from a size, checked.
pub fn u32_arg(op: &'static str, n: usize) -> Result<Arg<'static>> {
    u32::try_from(n).map(Arg::U32).map_err(|_| {
        Error::arg(
            op,
            format!("size {n} is too large for a 32-bit kernel index"),
        )
    })
}

/// Checks that every element count in `sizes` (the tensors a kernel indexes) fits the
/// kernels' 32-bit `int` indices.
pub fn check_i32_indices(op: &'static str, sizes: &[u128]) -> Result<()> {
    let largest = sizes.iter().copied().max().unwrap_or(0);
    if largest > i32::MAX as u128 {
        return Err(Error::arg(
            op,
            format!(
                "a tensor of {largest} elements is too large for the OpenCL kernels' 32-bit indices"
            ),
        ));
    }
    Ok(())
}

/// Rounds `n` up to a multiple of `m` (global sizes for fixed work-groups).
pub fn round_up(n: usize, m: usize) -> usize {
    n.div_ceil(m) * m
}

/// Set (to anything) to run the GPU-shaped kernel variants (one work-item per output element)
/// on any device: on PoCL, to test them (`tests/parity_shift_add.rs` compares both forms).
pub const GPU_KERNELS_ENV: &str = "SHIFTGRAD_GPU_KERNELS";

thread_local! {
    static GPU_SHAPED: std::cell::Cell<Option<bool>> = const { std::cell::Cell::new(None) };
}

/// Whether the kernels that have a GPU-shaped variant use it on `ctx`: a thread's
/// [`with_gpu_shaped`] choice, else a GPU device or [`GPU_KERNELS_ENV`] set.
pub fn gpu_shaped(ctx: &Context) -> bool {
    GPU_SHAPED
        .with(|g| g.get())
        .unwrap_or_else(|| ctx.info().gpu || std::env::var_os(GPU_KERNELS_ENV).is_some())
}

/// Runs `f` with the GPU-shaped variants forced on or off on this thread (tests compare the
/// two forms in one process this way).
pub fn with_gpu_shaped<R>(on: bool, f: impl FnOnce() -> R) -> R {
    let before = GPU_SHAPED.with(|g| g.replace(Some(on)));
    let r = f();
    GPU_SHAPED.with(|g| g.set(before));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_check_refuses_counts_past_i32() {
        let max = i32::MAX as u128;
        assert!(check_i32_indices("op", &[0, max]).is_ok());
        let e = check_i32_indices("op", &[1, max + 1])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("op") && e.contains(&format!("{}", max + 1)),
            "{e}"
        );
    }
}
