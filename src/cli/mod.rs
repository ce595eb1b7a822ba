//! The subcommands of the `shiftgrad` binary, one module each.

pub mod compare;
pub mod equiv;
pub mod gradcheck;
pub mod profile;
