//! The one error type of shiftgrad. Every variant names the op or the file involved, so that a
//! message read on its own says what was wrong ("conv2d: input has 3 channels, weight expects 4").

use std::path::PathBuf;

/// Result with the project's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The error of every fallible function in shiftgrad; its message starts with the op, the file
/// or "device", so it reads on its own.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Shapes that do not fit together.
    #[error("{op}: {msg}")]
    Shape {
        /// The op that checked the shapes (`"conv2d"`), the start of the message.
        op: &'static str,
        /// What did not fit, with the shapes involved.
        msg: String,
    },
    /// A hyper-parameter or argument outside its domain.
    #[error("{op}: {msg}")]
    Arg {
        /// The op or function that refused the argument, the start of the message.
        op: &'static str,
        /// Which argument, its value and the domain it is outside.
        msg: String,
    },
    /// A file that could not be read or written.
    #[error("{}: {msg}", path.display())]
    File {
        /// The file (or directory) involved, the start of the message.
        path: PathBuf,
        /// What went wrong with it (the I/O error, or the array and the defect found in it).
        msg: String,
    },
    /// Something about a device (OpenCL platform, build log, allocation).
    #[error("device: {0}")]
    Device(String),
    /// Anything else, with its context already in the message.
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// A shape error for `op`.
    pub fn shape(op: &'static str, msg: impl Into<String>) -> Self {
        Error::Shape {
            op,
            msg: msg.into(),
        }
    }
    /// An argument error for `op`.
    pub fn arg(op: &'static str, msg: impl Into<String>) -> Self {
        Error::Arg {
            op,
            msg: msg.into(),
        }
    }
    /// A file error for `path`.
    pub fn file(path: impl Into<PathBuf>, msg: impl std::fmt::Display) -> Self {
        Error::File {
            path: path.into(),
            msg: msg.to_string(),
        }
    }
}
