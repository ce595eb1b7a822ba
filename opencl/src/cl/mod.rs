//! The OpenCL backend, built on `ocl`'s thin `core` layer (one function per OpenCL call) rather
//! than its high-level `ProQue`/`Buffer<T>`/`Kernel` wrappers: the pool stores untyped memory
//! objects shared across element types, and kernel objects are cached per program, neither of
//! which the high-level types allow.

mod buffer;
mod context;
mod launch;
mod program;

pub use buffer::{Buffer, BufferArg};
pub use context::Context;
pub use program::Program;

use ocl::core::{self, DeviceInfo as Info, DeviceInfoResult as R, DeviceType, Status};
use ocl::ffi;

use crate::{DeviceInfo, Error, Result};

/// Serialises platform and device enumeration across threads. PoCL initialises its devices
/// inside the first clGetDeviceIDs; a second thread querying a device meanwhile reads it
/// half-built (seen as "0 devices" and as a segfault in clGetDeviceInfo when tests open
/// contexts in parallel). Enumeration is rare, so one process-wide lock costs nothing.
static ENUMERATION: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Holds [`ENUMERATION`] (a panic while holding it leaves nothing inconsistent).
pub(crate) fn enumeration_lock() -> std::sync::MutexGuard<'static, ()> {
    ENUMERATION
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// All platform ids. `Error::NoPlatform` when the ICD loader finds none.
///
/// The count is asked of the loader directly: `ocl`'s `get_platform_ids` retries for ten
/// seconds on CL_PLATFORM_NOT_FOUND_KHR, the loader's answer when no ICD is installed, which
/// would make `auto` on a machine without OpenCL stall before falling back.
pub(crate) fn platform_ids() -> Result<Vec<core::PlatformId>> {
    let mut count: ffi::cl_uint = 0;
    // SAFETY: asks only for the count, into a valid `cl_uint`; no list pointer is passed.
    let status = unsafe { ffi::clGetPlatformIDs(0, std::ptr::null_mut(), &mut count) };
    if status == Status::CL_PLATFORM_NOT_FOUND_KHR as i32 || (status == 0 && count == 0) {
        return Err(Error::NoPlatform);
    }
    if status != 0 {
        return Err(Error::api(
            "listing platforms (clGetPlatformIDs)",
            format!("status {status}"),
        ));
    }
    core::get_platform_ids().map_err(|e| Error::api("listing platforms", e))
}

/// The devices of one platform (all types); empty when it has none.
pub(crate) fn device_ids(platform: &core::PlatformId) -> Result<Vec<core::DeviceId>> {
    match core::get_device_ids(platform, Some(DeviceType::ALL), None) {
        Ok(ids) => Ok(ids),
        Err(e) if e.api_status() == Some(Status::CL_DEVICE_NOT_FOUND) => Ok(Vec::new()),
        Err(e) => Err(Error::api("listing devices", e)),
    }
}

/// Platform and device ids for `opencl:P:D`, with errors naming what does not exist.
pub(crate) fn locate(platform: usize, device: usize) -> Result<(core::PlatformId, core::DeviceId)> {
    let platforms = platform_ids()?;
    let &pid = platforms.get(platform).ok_or(Error::NoSuchPlatform {
        platform,
        count: platforms.len(),
    })?;
    let devices = device_ids(&pid)?;
    let &did = devices.get(device).ok_or(Error::NoSuchDevice {
        platform,
        device,
        count: devices.len(),
    })?;
    Ok((pid, did))
}

/// Describes one device.
pub(crate) fn describe(
    platform: usize,
    pid: &core::PlatformId,
    device: usize,
    did: &core::DeviceId,
) -> Result<DeviceInfo> {
    let query = |kind: Info| {
        core::get_device_info(did, kind)
            .map_err(|e| Error::api(format!("querying device {platform}:{device} ({kind:?})"), e))
    };
    let unexpected =
        |kind: &str| Error::Invalid(format!("device {platform}:{device}: odd answer for {kind}"));
    let platform_name = core::get_platform_info(pid, core::PlatformInfo::Name)
        .map_err(|e| Error::api(format!("querying platform {platform} name"), e))?
        .to_string();
    let R::Name(name) = query(Info::Name)? else {
        return Err(unexpected("Name"));
    };
    let R::MaxComputeUnits(compute_units) = query(Info::MaxComputeUnits)? else {
        return Err(unexpected("MaxComputeUnits"));
    };
    let R::GlobalMemSize(global_mem_bytes) = query(Info::GlobalMemSize)? else {
        return Err(unexpected("GlobalMemSize"));
    };
    let R::MaxMemAllocSize(max_alloc_bytes) = query(Info::MaxMemAllocSize)? else {
        return Err(unexpected("MaxMemAllocSize"));
    };
    let R::MaxWorkGroupSize(max_work_group_size) = query(Info::MaxWorkGroupSize)? else {
        return Err(unexpected("MaxWorkGroupSize"));
    };
    let R::LocalMemSize(local_mem_bytes) = query(Info::LocalMemSize)? else {
        return Err(unexpected("LocalMemSize"));
    };
    let R::Extensions(extensions) = query(Info::Extensions)? else {
        return Err(unexpected("Extensions"));
    };
    let R::Version(version) = query(Info::Version)? else {
        return Err(unexpected("Version"));
    };
    let R::Type(kind) = query(Info::Type)? else {
        return Err(unexpected("Type"));
    };
    Ok(DeviceInfo {
        platform,
        platform_name: platform_name.trim().to_string(),
        device,
        name: name.trim().to_string(),
        compute_units,
        global_mem_bytes,
        max_alloc_bytes,
        max_work_group_size,
        local_mem_bytes,
        fp64: extensions.split_whitespace().any(|x| x == "cl_khr_fp64"),
        opencl_version: version.to_string(),
        gpu: kind.contains(core::DeviceType::GPU),
    })
}

/// Every device of every platform, in loader order.
pub fn list_devices() -> Result<Vec<DeviceInfo>> {
    let _guard = enumeration_lock();
    let mut out = Vec::new();
    for (p, pid) in platform_ids()?.iter().enumerate() {
        for (d, did) in device_ids(pid)?.iter().enumerate() {
            out.push(describe(p, pid, d, did)?);
        }
    }
    Ok(out)
}

/// The first (platform, device) pair that exists, `None` when platforms have no devices.
pub(crate) fn first_device() -> Result<Option<(usize, usize)>> {
    let _guard = enumeration_lock();
    for (p, pid) in platform_ids()?.iter().enumerate() {
        if !device_ids(pid)?.is_empty() {
            return Ok(Some((p, 0)));
        }
    }
    Ok(None)
}
