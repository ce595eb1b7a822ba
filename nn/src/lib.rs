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
//! * [`resnet`]: SW-ResNet (SPEC section 2), its presets and its reparameterisation.
//! * [`optim`]: SGD and AdamW over named parameters, with their checkpointable state.
//! * [`data`]: Fashion-MNIST from its IDX files (SPEC section 5), checked, with the training
//!   augmentation.
//! * [`cases`]: module-level gradient checks for `shiftgrad gradcheck`.
//!
//! Of the workspace, depends on shiftgrad-tensor, shiftgrad-autograd and shiftgrad-ops (the
//! device layer's profiling regions are reached through the tensor crate's `opencl`
//! re-export); must not depend on the root `shiftgrad` package (the command line, training
//! loop and reports build on this crate, not the reverse).

#![warn(missing_docs)]

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
pub use layers::{BatchNorm2d, Conv2d, ConvBn, Linear};
pub use module::{load_walk, save_walk, Mode, Module, ParamRef, StateDict};
pub use reparam::Folded;
pub use shiftwise::{ShiftWiseConv, SwConfig};
