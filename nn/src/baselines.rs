//! The controlled spatial operators of SPEC 1.7, and [`Spatial`], which holds any of them.
//!
//! All map C channels to C channels, keep the identity residual, and put a batch-norm after
//! each depthwise convolution; only the spatial operator differs:
//! * `dense`: `Z = BN(dw_{MxM}(X)) + X`
//! * `slak`:  `Z = BN(dw_{Mxk}(X)) + BN(dw_{kxM}(X)) + BN(dw_{kxk}(X)) + X`
//! * `sw`:    [`ShiftWiseConv`]
//! * `small`: `Z = BN(dw_{kxk}(X)) + X`
//!
//! After [`crate::reparam`], any of them becomes a [`Folded`] layer (one depthwise kernel with a
//! bias, residual included).

use crate::layers::{bn_sum_forward, identity_channels, ConvBn};
use crate::module::{Mode, Module};
use crate::reparam::Folded;
use crate::shiftwise::{ShiftWiseConv, SwConfig};
use shiftgrad_autograd::Var;
use shiftgrad_ops::bn_sum::Residual;
use shiftgrad_ops::relu;
use shiftgrad_tensor::{init, Error, Real, Result};

/// Which spatial operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpatialKind {
    /// `sw`: the shift-wise layer, [`ShiftWiseConv`] (SPEC 1.5).
    Sw,
    /// `slak`: M x k, k x M and k x k depthwise branches, each with its batch-norm.
    Slak,
    /// `dense`: one M x M depthwise convolution and its batch-norm.
    Dense,
    /// `small`: one k x k depthwise convolution and its batch-norm.
    Small,
}

impl std::str::FromStr for SpatialKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "sw" => Ok(SpatialKind::Sw),
            "slak" => Ok(SpatialKind::Slak),
            "dense" => Ok(SpatialKind::Dense),
            "small" => Ok(SpatialKind::Small),
            _ => Err(Error::arg(
                "spatial",
                format!("unknown spatial operator {s:?}; expected sw, slak, dense or small"),
            )),
        }
    }
}

impl std::fmt::Display for SpatialKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SpatialKind::Sw => "sw",
            SpatialKind::Slak => "slak",
            SpatialKind::Dense => "dense",
            SpatialKind::Small => "small",
        })
    }
}

/// A spatial operator of any kind. State-dict names: sw as in [`ShiftWiseConv`]; dense and
/// small `conv.weight`, `bn.*`; slak `conv_tall` (M x k), `conv_wide` (k x M), `conv_small`
/// (k x k) with `bn_tall`, `bn_wide`, `bn_small`; folded `weight`, `bias`.
pub enum Spatial<T: Real> {
    /// The shift-wise layer (SPEC 1.5).
    Sw(ShiftWiseConv<T>),
    /// `BN(dw_{MxM}(X)) + X`.
    Dense(ConvBn<T>),
    /// `BN(dw_{Mxk}(X)) + BN(dw_{kxM}(X)) + BN(dw_{kxk}(X)) + X`.
    Slak {
        /// The M x k branch (`conv_tall`, `bn_tall`).
        tall: ConvBn<T>,
        /// The k x M branch (`conv_wide`, `bn_wide`).
        wide: ConvBn<T>,
        /// The k x k branch (`conv_small`, `bn_small`).
        small: ConvBn<T>,
    },
    /// `BN(dw_{kxk}(X)) + X`.
    Small(ConvBn<T>),
    /// Any of the above after [`crate::reparam`]: one depthwise kernel with a bias, the
    /// residual included.
    Folded(Folded<T>),
}

impl<T: Real> Spatial<T> {
    /// A spatial operator of `kind` for `config` (the SW fields are ignored by the baselines,
    /// which draw their weights from `config.seed` too).
    pub fn new(kind: SpatialKind, config: SwConfig) -> Result<Self> {
        let (c, m, k) = (config.channels, config.big_kernel, config.small_kernel);
        if k % 2 == 0 || k == 0 {
            return Err(Error::arg(
                "spatial",
                format!("small kernel must be odd, got {k}"),
            ));
        }
        if matches!(kind, SpatialKind::Dense | SpatialKind::Slak) && m % 2 == 0 {
            return Err(Error::arg(
                "spatial",
                format!("{kind} needs an odd big kernel, got {m}"),
            ));
        }
        if m < k {
            return Err(Error::arg(
                "spatial",
                format!("big kernel {m} is smaller than small kernel {k}"),
            ));
        }
        let mut rng = init::rng(config.seed);
        Ok(match kind {
            SpatialKind::Sw => Spatial::Sw(ShiftWiseConv::new(config)?),
            SpatialKind::Dense => Spatial::Dense(ConvBn::depthwise(c, (m, m), "", &mut rng)?),
            SpatialKind::Slak => Spatial::Slak {
                tall: ConvBn::depthwise(c, (m, k), "_tall", &mut rng)?,
                wide: ConvBn::depthwise(c, (k, m), "_wide", &mut rng)?,
                small: ConvBn::depthwise(c, (k, k), "_small", &mut rng)?,
            },
            SpatialKind::Small => Spatial::Small(ConvBn::depthwise(c, (k, k), "", &mut rng)?),
        })
    }
}

impl<T: Real> Spatial<T> {
    /// `relu(self.forward(x))`, the relu fused with the operator's batch-norms and final sum
    /// (the identity path included) into one op (`ops::bn_sum`) where there is one: what
    /// SW-ResNet blocks apply.
    pub fn forward_relu(&mut self, x: &Var<T>, mode: Mode) -> Result<Var<T>> {
        self.forward_act(x, mode, true)
    }

    /// The forward, activated (relu) where `activate`.
    /// The batch-norms, the identity path and the relu run as one op (`ops::bn_sum`).
    fn forward_act(&mut self, x: &Var<T>, mode: Mode, activate: bool) -> Result<Var<T>> {
        let channels = identity_channels(x.shape().dim(1));
        let residual = Some(Residual {
            x,
            channels: &channels,
        });
        match self {
            Spatial::Sw(sw) if activate => sw.forward_relu(x, mode),
            Spatial::Sw(sw) => sw.forward(x, mode),
            Spatial::Dense(d) | Spatial::Small(d) => {
                let y = d.conv.forward(x, mode)?;
                bn_sum_forward(vec![(&mut d.bn, &y)], residual, mode, activate)
            }
            Spatial::Slak { tall, wide, small } => {
                let a = tall.conv.forward(x, mode)?;
                let b = wide.conv.forward(x, mode)?;
                let c = small.conv.forward(x, mode)?;
                let parts = vec![(&mut tall.bn, &a), (&mut wide.bn, &b), (&mut small.bn, &c)];
                bn_sum_forward(parts, residual, mode, activate)
            }
            Spatial::Folded(f) if activate => relu(&f.forward(x, mode)?),
            Spatial::Folded(f) => f.forward(x, mode),
        }
    }
}

impl<T: Real> Module<T> for Spatial<T> {
    fn forward(&mut self, x: &Var<T>, mode: Mode) -> Result<Var<T>> {
        self.forward_act(x, mode, false)
    }
    // Every kind's modules share the spatial operator's prefix: the shift-wise layer and
    // the single depthwise pairs directly, slak's three pairs by their suffixes.
    fn children(&self) -> Vec<(String, &dyn Module<T>)> {
        let list: Vec<&dyn Module<T>> = match self {
            Spatial::Sw(sw) => vec![sw],
            Spatial::Dense(d) | Spatial::Small(d) => vec![d],
            Spatial::Slak { tall, wide, small } => vec![tall, wide, small],
            Spatial::Folded(f) => vec![f],
        };
        list.into_iter().map(|m| (String::new(), m)).collect()
    }
    fn children_mut(&mut self) -> Vec<(String, &mut dyn Module<T>)> {
        let list: Vec<&mut dyn Module<T>> = match self {
            Spatial::Sw(sw) => vec![sw],
            Spatial::Dense(d) | Spatial::Small(d) => vec![d],
            Spatial::Slak { tall, wide, small } => vec![tall, wide, small],
            Spatial::Folded(f) => vec![f],
        };
        list.into_iter().map(|m| (String::new(), m)).collect()
    }
}
