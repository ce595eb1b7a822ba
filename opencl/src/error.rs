//! The error type of the device layer. Every message says what failed and, where the fix is
//! known, how to fix it. `ocl`'s own error types never leave this crate: they are rendered into
//! [`Error::Api`] together with the call that produced them.

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong in the OpenCL device layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The crate was built without the `opencl` cargo feature.
    #[error("this build has no OpenCL support; rebuild with --features opencl")]
    NotCompiled,
    /// The ICD loader is there but lists no platform.
    #[error(
        "no OpenCL platform found; on Debian/Ubuntu: apt-get install pocl-opencl-icd ocl-icd-opencl-dev"
    )]
    NoPlatform,
    /// A device spec string ("cpu", "auto", "opencl", "opencl:P:D") that does not parse.
    #[error(
        "bad device spec {spec:?}: {reason}; expected cpu, auto, opencl or opencl:PLATFORM:DEVICE"
    )]
    BadSpec {
        /// The string as given (before trimming and lower-casing).
        spec: String,
        /// Why it does not parse (and, for `$SHIFTGRAD_DEVICE`, that it came from there).
        reason: String,
    },
    /// A platform index past the end of the platform list.
    #[error("OpenCL platform {platform} does not exist ({count} platform(s) found; `shiftgrad devices` lists them)")]
    NoSuchPlatform {
        /// The platform index asked for.
        platform: usize,
        /// Number of platforms the ICD loader lists.
        count: usize,
    },
    /// A device index past the end of a platform's device list.
    #[error("OpenCL platform {platform} has no device {device} ({count} device(s) found; `shiftgrad devices` lists them)")]
    NoSuchDevice {
        /// The platform index (which exists).
        platform: usize,
        /// The device index asked for.
        device: usize,
        /// Number of devices on that platform.
        count: usize,
    },
    /// A program asked for double precision on a device without `cl_khr_fp64`.
    #[error("program '{program}': device '{device}' has no double precision (cl_khr_fp64); use f32 or another device")]
    NoFp64 {
        /// The program's name, as given to `Context::program`.
        program: String,
        /// The device's name, as the platform reports it.
        device: String,
    },
    /// The OpenCL C compiler rejected a program; `log` is its build log, verbatim.
    #[error(
        "building OpenCL program '{program}' with options '{options}' failed; build log:\n{log}"
    )]
    Build {
        /// The program's name, as given to `Context::program`.
        program: String,
        /// The build options passed to the compiler (`-D name=value ...`, sorted by name).
        options: String,
        /// The compiler's build log, verbatim (the API error's text when the log is empty).
        log: String,
    },
    /// An OpenCL call failed; `what` names the call and its purpose.
    #[error("OpenCL: {what} failed: {message}")]
    Api {
        /// The call and its purpose (`"creating program 'conv2d'"`).
        what: String,
        /// The OpenCL error as `ocl` renders it, trimmed.
        message: String,
    },
    /// A caller error detected before reaching OpenCL (lengths, work sizes, argument counts).
    #[error("OpenCL: {0}")]
    Invalid(String),
}

impl Error {
    /// Wraps an error from an OpenCL call, naming the call.
    #[cfg_attr(not(feature = "opencl"), allow(dead_code))]
    pub(crate) fn api(what: impl Into<String>, err: impl std::fmt::Display) -> Self {
        Error::Api {
            what: what.into(),
            message: err.to_string().trim().to_string(),
        }
    }
}
