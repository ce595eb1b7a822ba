//! shiftgrad-nn: modules built from the ops, and what training needs around them.
//!
//! * [`module`]: the [`Module`] trait, train/eval [`Mode`], named parameters and the
//!   [`StateDict`] (PyTorch state-dict naming, saved as `.npz`).
//! * [`layers`]: `Conv2d`, `BatchNorm2d`, `Linear`.
//! * [`shiftwise`]: `ShiftWiseConv` (SPEC 1.5).
//! * [`baselines`]: the controlled spatial operators `dense`, `slak`, `small` (SPEC 1.7) and the
//!   [`Spatial`] enum that holds any of them.
//! * [`synthetic`]: a seeded, learnable stand-in for Fashion-MNIST in the same IDX files.
//! * [`reparam`]: merging the P banks and folding batch-norms and the residual into one
//!   depthwise kernel with a bias (SPEC 1.4).
//! * [`sparsity`]: the host side of sparse group convolution (SPEC 1.6): masks of the bank's
//!   small kernels, their SNIP/uniform initialisation, the cosine prune schedule and
//!   prune/regrow.

pub mod baselines;
pub mod cases;
pub mod data;
pub mod layers;
pub mod module;
pub mod optim;
pub mod reparam;
pub mod resnet;
pub mod shiftwise;
pub mod sparsity;
pub mod synthetic;

pub use baselines::{Spatial, SpatialKind};
pub use layers::{BatchNorm2d, Conv2d, Linear};
pub use module::{Mode, Module, ParamRef, StateDict};
pub use reparam::Folded;
pub use shiftwise::{ShiftWiseConv, SwConfig};
