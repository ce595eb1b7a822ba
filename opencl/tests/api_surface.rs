//! Pins the public signatures, compiled with and without the `opencl` feature, so that the
//! stub of a build without OpenCL cannot drift from the real backend. Each line fails to
//! compile if a signature changes.

// Spelling the function types out in full is the point of this file.
#![allow(clippy::type_complexity)]

use shiftgrad_opencl::{
    list_devices, resolve, spec_from, Arg, Backend, Buffer, Context, DeviceInfo, DeviceSpec,
    KernelTime, PoolStats, Program, Result, Transfers,
};

#[test]
fn signatures_match_in_both_builds() {
    let _: fn() -> Result<Vec<DeviceInfo>> = list_devices;
    let _: fn(Option<&str>) -> Result<Backend> = resolve;
    let _: fn(Option<&str>, Option<&str>) -> Result<DeviceSpec> = spec_from;
    let _: fn(DeviceSpec) -> Result<Backend> = DeviceSpec::open;
    let _: fn(usize, usize) -> Result<Context> = Context::new;
    let _: fn(&Context) -> &DeviceInfo = Context::info;
    let _: fn(&Context) -> bool = Context::has_fp64;
    let _: fn(&Context) -> Result<()> = Context::finish;
    let _: fn(&Context, bool) = Context::set_profiling;
    let _: fn(&Context) -> bool = Context::profiling;
    let _: fn(&Context) -> Result<Vec<KernelTime>> = Context::kernel_times;
    let _: fn(&Context) = Context::reset_kernel_times;
    let _: fn(&Context) -> Result<Vec<shiftgrad_opencl::RegionTime>> = Context::region_times;
    let _: fn(&'static str) -> shiftgrad_opencl::region::RegionGuard =
        shiftgrad_opencl::region::enter;
    let _: fn(&Context) -> Transfers = Context::transfers;
    let _: fn(&Context, &str, &str, &[(&str, String)]) -> Result<Program> = Context::program;
    let _: fn(&Context) -> usize = Context::compilations;
    let _: fn(&Context, usize) -> Result<Buffer<f32>> = Context::alloc::<f32>;
    let _: fn(&Context, &[f64]) -> Result<Buffer<f64>> = Context::upload::<f64>;
    let _: fn(&Context) -> PoolStats = Context::pool_stats;
    let _: fn(&Context) = Context::release_cached;
    let _: fn(&Context) = Context::reset_peak;
    let _: fn(&Context, &Program, &str, [usize; 2], Option<[usize; 2]>, &[Arg<'_>]) -> Result<()> =
        Context::launch::<2>;
    let _: fn(&Program) -> &str = Program::name;
    let _: fn(&Program) -> &str = Program::options;
    let _: fn(&Program, &Program) -> bool = Program::ptr_eq;
    let _: fn(&Buffer<i32>) -> usize = Buffer::len;
    let _: fn(&Buffer<i32>) -> bool = Buffer::is_empty;
    let _: fn(&Buffer<i32>) -> usize = Buffer::bytes;
    let _: fn(&Buffer<i32>) -> &Context = Buffer::context;
    let _: fn(&Buffer<i32>) -> Arg<'_> = Buffer::arg;
    let _: fn(&Buffer<i32>, &[i32]) -> Result<()> = Buffer::write;
    let _: fn(&Buffer<i32>, &mut [i32]) -> Result<()> = Buffer::read_into;
    let _: fn(&Buffer<i32>) -> Result<Vec<i32>> = Buffer::read;
    let _: fn(&Buffer<i32>, i32) -> Result<()> = Buffer::fill;
    let _: fn(&Buffer<i32>, &Buffer<i32>) -> Result<()> = Buffer::copy_from;
}
