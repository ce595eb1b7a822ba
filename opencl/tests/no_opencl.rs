//! Without the `opencl` feature every constructor says how to get OpenCL support, and `auto`
//! falls back to the CPU.
#![cfg(not(feature = "opencl"))]

use shiftgrad_opencl::{list_devices, Backend, Context, DeviceSpec, Error, OPENCL_COMPILED};

const MSG: &str = "this build has no OpenCL support; rebuild with --features opencl";

#[test]
fn constructors_say_how_to_rebuild() {
    const { assert!(!OPENCL_COMPILED) };
    let err = Context::new(0, 0).unwrap_err();
    assert!(matches!(err, Error::NotCompiled));
    assert_eq!(err.to_string(), MSG);
    assert_eq!(list_devices().unwrap_err().to_string(), MSG);
    let spec = DeviceSpec::OpenCl {
        platform: 0,
        device: 0,
    };
    assert_eq!(spec.open().unwrap_err().to_string(), MSG);
}

#[test]
fn auto_falls_back_to_cpu() {
    assert!(matches!(DeviceSpec::Auto.open().unwrap(), Backend::Cpu));
}
