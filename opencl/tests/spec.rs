//! Device spec parsing and the precedence of command line, environment and default. These run
//! with and without the `opencl` feature.

use shiftgrad_opencl::{resolve, spec_from, Backend, DeviceSpec, Error};

fn parse(s: &str) -> Result<DeviceSpec, Error> {
    s.parse()
}

#[test]
fn parses_every_form() {
    assert_eq!(parse("cpu").unwrap(), DeviceSpec::Cpu);
    assert_eq!(parse(" CPU ").unwrap(), DeviceSpec::Cpu);
    assert_eq!(parse("auto").unwrap(), DeviceSpec::Auto);
    assert_eq!(
        parse("opencl").unwrap(),
        DeviceSpec::OpenCl {
            platform: 0,
            device: 0
        }
    );
    assert_eq!(
        parse("OpenCL:2:13").unwrap(),
        DeviceSpec::OpenCl {
            platform: 2,
            device: 13
        }
    );
}

#[test]
fn display_round_trips() {
    for spec in [
        DeviceSpec::Cpu,
        DeviceSpec::Auto,
        DeviceSpec::OpenCl {
            platform: 1,
            device: 3,
        },
    ] {
        assert_eq!(parse(&spec.to_string()).unwrap(), spec);
    }
    assert_eq!(parse("opencl").unwrap().to_string(), "opencl:0:0");
}

fn bad(s: &str) -> String {
    match parse(s) {
        Err(e @ Error::BadSpec { .. }) => e.to_string(),
        other => panic!("{s:?} parsed as {other:?}"),
    }
}

#[test]
fn bad_specs_say_what_is_wrong() {
    assert_eq!(
        bad("opencl:x"),
        "bad device spec \"opencl:x\": platform index \"x\" is not a non-negative integer; \
         expected cpu, auto, opencl or opencl:PLATFORM:DEVICE"
    );
    assert!(bad("opencl:0:y").contains("device index \"y\" is not a non-negative integer"));
    assert!(bad("opencl:-1:0").contains("platform index \"-1\""));
    assert!(bad("opencl:0").contains("a device index is missing"));
    assert!(bad("opencl:0:0:0").contains("3 indices given, expected two"));
    assert!(bad("opencl:").contains("platform index \"\""));
    assert!(bad("gpu").contains("unknown device kind \"gpu\""));
    assert!(bad("").contains("it is empty"));
    assert!(bad("cuda:0").contains("expected cpu, auto, opencl or opencl:PLATFORM:DEVICE"));
}

#[test]
fn command_line_wins_then_environment_then_cpu() {
    let ocl = |p, d| DeviceSpec::OpenCl {
        platform: p,
        device: d,
    };
    assert_eq!(
        spec_from(Some("opencl:1:0"), Some("cpu")).unwrap(),
        ocl(1, 0)
    );
    assert_eq!(spec_from(None, Some("opencl:0:2")).unwrap(), ocl(0, 2));
    assert_eq!(
        spec_from(Some("  "), Some("auto")).unwrap(),
        DeviceSpec::Auto
    );
    assert_eq!(spec_from(None, Some("")).unwrap(), DeviceSpec::Cpu);
    assert_eq!(spec_from(None, None).unwrap(), DeviceSpec::Cpu);
    // The command line is not checked against a bad environment value it overrides.
    assert_eq!(
        spec_from(Some("cpu"), Some("nonsense")).unwrap(),
        DeviceSpec::Cpu
    );
}

#[test]
fn bad_environment_value_names_the_variable() {
    let msg = spec_from(None, Some("opencl:a:b")).unwrap_err().to_string();
    assert!(msg.contains("SHIFTGRAD_DEVICE"), "{msg}");
    assert!(msg.contains("platform index \"a\""), "{msg}");
}

#[test]
fn cpu_resolves_without_touching_opencl() {
    assert!(matches!(resolve(Some("cpu")).unwrap(), Backend::Cpu));
    assert!(matches!(DeviceSpec::Cpu.open().unwrap(), Backend::Cpu));
    assert!(resolve(Some("opencl:x")).is_err());
}
