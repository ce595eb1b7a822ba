//! Choosing the device a run computes on.
//!
//! A device is named by a short string so that it fits a command line and an environment
//! variable alike:
//!
//! | spec          | meaning                                                              |
//! |---------------|----------------------------------------------------------------------|
//! | `cpu`         | the CPU reference backend                                            |
//! | `opencl`      | OpenCL platform 0, device 0 (same as `opencl:0:0`)                   |
//! | `opencl:P:D`  | OpenCL platform `P`, device `D`, as numbered by `shiftgrad devices`  |
//! | `auto`        | the first OpenCL device if any platform has one, else the CPU        |
//!
//! Parsing is case-insensitive and ignores surrounding blanks. [`resolve`] applies the order
//! of precedence: the command line, then the `SHIFTGRAD_DEVICE` environment variable, then
//! `cpu`. The default is the CPU rather than `auto` because the CPU backend is the reference
//! oracle and gives the same bits on every machine; a run goes to an accelerator only when
//! someone asks for it. `auto` falls back to the CPU, with a one-line notice on stderr, only
//! when there is nothing to fall back from (no OpenCL support compiled in, or no platform
//! installed); any other failure (a platform whose context cannot be created, say) is an
//! error, because silently computing elsewhere would corrupt timings and comparisons.

use std::fmt;
use std::str::FromStr;

use crate::{Context, Error, Result};

/// The environment variable read by [`resolve`] when the command line names no device.
pub const DEVICE_ENV: &str = "SHIFTGRAD_DEVICE";

/// A parsed device spec (see the module docs for the strings).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DeviceSpec {
    /// The CPU reference backend.
    #[default]
    Cpu,
    /// OpenCL device `device` of platform `platform` (indices as listed by [`crate::list_devices`]).
    OpenCl {
        /// Platform index, from 0.
        platform: usize,
        /// Device index within the platform, from 0.
        device: usize,
    },
    /// OpenCL when a platform with a device exists, else the CPU (with a notice on stderr).
    Auto,
}

impl FromStr for DeviceSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason: String| Error::BadSpec {
            spec: s.to_string(),
            reason,
        };
        let lower = s.trim().to_ascii_lowercase();
        match lower.as_str() {
            "" => return Err(bad("it is empty".into())),
            "cpu" => return Ok(DeviceSpec::Cpu),
            "auto" => return Ok(DeviceSpec::Auto),
            "opencl" => {
                return Ok(DeviceSpec::OpenCl {
                    platform: 0,
                    device: 0,
                })
            }
            _ => {}
        }
        let Some(rest) = lower.strip_prefix("opencl:") else {
            return Err(bad(format!("unknown device kind {:?}", lower)));
        };
        let parts: Vec<&str> = rest.split(':').collect();
        let index = |what: &str, text: &str| -> Result<usize> {
            text.parse::<usize>().map_err(|_| {
                bad(format!(
                    "{what} index {text:?} is not a non-negative integer"
                ))
            })
        };
        match parts.as_slice() {
            [p, d] => Ok(DeviceSpec::OpenCl {
                platform: index("platform", p)?,
                device: index("device", d)?,
            }),
            [p] => {
                // Validate the platform first so that "opencl:x" names the real problem.
                index("platform", p)?;
                Err(bad("a device index is missing after the platform".into()))
            }
            _ => Err(bad(format!(
                "{} indices given, expected two (platform and device)",
                parts.len()
            ))),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Auto => write!(f, "auto"),
            DeviceSpec::OpenCl { platform, device } => write!(f, "opencl:{platform}:{device}"),
        }
    }
}

/// Where a run computes, once its spec has been resolved.
#[derive(Clone)]
pub enum Backend {
    /// The CPU reference backend.
    Cpu,
    /// An opened OpenCL device.
    OpenCl(Context),
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backend::Cpu => write!(f, "Cpu"),
            Backend::OpenCl(ctx) => write!(f, "OpenCl({})", ctx.info().spec()),
        }
    }
}

/// The spec in force given the command line's value and the environment's: the command line
/// wins, then [`DEVICE_ENV`], then [`DeviceSpec::Cpu`]. Blank values count as absent. Pure (it
/// does not read the environment itself), so that the precedence is testable.
pub fn spec_from(cli: Option<&str>, env: Option<&str>) -> Result<DeviceSpec> {
    if let Some(s) = cli.filter(|s| !s.trim().is_empty()) {
        return s.parse();
    }
    if let Some(s) = env.filter(|s| !s.trim().is_empty()) {
        return s.parse().map_err(|e| match e {
            Error::BadSpec { spec, reason } => Error::BadSpec {
                spec,
                reason: format!("{reason} (from the {DEVICE_ENV} environment variable)"),
            },
            other => other,
        });
    }
    Ok(DeviceSpec::Cpu)
}

/// Resolves the device for a run: the spec is `cli` if given, else `$SHIFTGRAD_DEVICE`, else
/// `cpu` (see [`spec_from`]); it is then opened with [`DeviceSpec::open`].
pub fn resolve(cli: Option<&str>) -> Result<Backend> {
    let env = std::env::var(DEVICE_ENV).ok();
    spec_from(cli, env.as_deref())?.open()
}

impl DeviceSpec {
    /// Opens the device this spec names. `Cpu` opens nothing; `OpenCl` creates a [`Context`]
    /// (an error if there is no such device); `Auto` takes the first device of the first
    /// platform that has one, and falls back to the CPU with a one-line notice on stderr only
    /// when OpenCL is not compiled in or no platform/device exists.
    pub fn open(self) -> Result<Backend> {
        match self {
            DeviceSpec::Cpu => Ok(Backend::Cpu),
            DeviceSpec::OpenCl { platform, device } => {
                Ok(Backend::OpenCl(Context::new(platform, device)?))
            }
            DeviceSpec::Auto => match crate::first_device() {
                Ok(Some((platform, device))) => {
                    Ok(Backend::OpenCl(Context::new(platform, device)?))
                }
                Ok(None) => {
                    eprintln!("shiftgrad: device auto: OpenCL platforms have no device; running on the CPU");
                    Ok(Backend::Cpu)
                }
                Err(e @ (Error::NotCompiled | Error::NoPlatform)) => {
                    eprintln!("shiftgrad: device auto: {e}; running on the CPU");
                    Ok(Backend::Cpu)
                }
                Err(e) => Err(e),
            },
        }
    }
}
