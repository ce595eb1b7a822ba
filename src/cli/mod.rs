//! The subcommands of the `shiftgrad` binary, one module each.

pub mod gradcheck;
