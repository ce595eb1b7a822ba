//! SW-ResNet (SPEC section 2): a ResNet whose spatial mixing is a depthwise spatial operator
//! (SPEC 1.7) followed by a pointwise 1x1 convolution, so that only the spatial operator
//! changes between variants.
//!
//! ```text
//! stem:    conv3x3(C_img -> C_1, stride 1, pad 1) -> BN -> ReLU
//! stage s: [s > 0: conv3x3(C_{s-1} -> C_s, stride 2, pad 1) -> BN -> ReLU]
//!          n_s blocks of width C_s with big kernel M_s
//! block:   h = Spatial(x) -> ReLU -> conv1x1 -> BN;  out = ReLU(x + h)
//! head:    global average pool -> linear(C_S -> classes)
//! ```
//! State-dict names: `stem.conv.weight`, `stem.bn.*`, `stages.{s}.down.conv.weight`,
//! `stages.{s}.down.bn.*`, `stages.{s}.blocks.{b}.spatial.*`, `stages.{s}.blocks.{b}.pw.weight`,
//! `stages.{s}.blocks.{b}.bn.*`, `head.weight`, `head.bias` (stages and blocks count from 0).
//! Every layer draws from its own RNG, seeded from the model seed in construction order.

use crate::baselines::{Spatial, SpatialKind};
pub use crate::layers::ConvBn;
use crate::layers::{bn_sum_forward, identity_channels, BatchNorm2d, Conv2d, Linear};
use crate::module::{Mode, Module, ParamRef, StateDict};
use crate::reparam::{fold_spatial, merge_paths};
use crate::shiftwise::{ShiftWiseConv, SwConfig};
use rand::Rng as _;
use shiftgrad_autograd::Var;
use shiftgrad_ops::bn_sum::Residual;
use shiftgrad_ops::pool::global_avg_pool;
use shiftgrad_ops::Conv2dParams;
use shiftgrad_tensor::{init, Error, Real, Result};

/// The architecture and its hyper-parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct ResNetConfig {
    /// Channels of the input images, C_img (1 for Fashion-MNIST).
    pub in_channels: usize,
    /// Number of classes: the outputs of the head.
    pub classes: usize,
    /// Width C_s of each stage, one entry per stage; the stem outputs `widths[0]`.
    pub widths: Vec<usize>,
    /// Number of blocks n_s of each stage.
    pub depths: Vec<usize>,
    /// Big kernel M_s of each stage's spatial operators.
    pub big_kernels: Vec<usize>,
    /// Small kernel k of every spatial operator (odd).
    pub small_kernel: usize,
    /// Ghost ratio of every shift-wise layer ([`SwConfig::ghost_ratio`]; unused by the
    /// baselines).
    pub ghost_ratio: f64,
    /// Parallel bank convolutions P of every shift-wise layer ([`SwConfig::n_path`]).
    pub n_path: usize,
    /// Shuffled index groups G of every shift-wise layer ([`SwConfig::n_rep`]).
    pub n_rep: usize,
    /// The spatial operator of every block.
    pub spatial: SpatialKind,
    /// The model seed: every layer's RNG is seeded from it, in construction order.
    pub seed: u64,
}

/// The named presets.
pub const PRESETS: [&str; 2] = ["sw-resnet-tiny", "sw-resnet-20"];

impl ResNetConfig {
    /// A named preset for 1-channel images and 10 classes, spatial operator `sw`.
    pub fn preset(name: &str) -> Result<Self> {
        let depths = match name {
            "sw-resnet-tiny" => vec![2, 2, 2],
            "sw-resnet-20" => vec![3, 3, 3],
            _ => {
                return Err(Error::arg(
                    "preset",
                    format!("unknown preset {name:?}; known: {}", PRESETS.join(", ")),
                ))
            }
        };
        Ok(ResNetConfig {
            in_channels: 1,
            classes: 10,
            widths: vec![32, 64, 128],
            depths,
            big_kernels: vec![13, 13, 7],
            small_kernel: 3,
            ghost_ratio: 0.23,
            n_path: 2,
            n_rep: 4,
            spatial: SpatialKind::Sw,
            seed: 0,
        })
    }

    /// Checks that the per-stage lists agree and the numbers are usable.
    pub fn validate(&self) -> Result<()> {
        let n = self.widths.len();
        if n == 0 || self.depths.len() != n || self.big_kernels.len() != n {
            return Err(Error::arg(
                "sw-resnet",
                format!(
                    "widths ({}), depths ({}) and big kernels ({}) must list the same number of stages (at least 1)",
                    n,
                    self.depths.len(),
                    self.big_kernels.len()
                ),
            ));
        }
        if self.widths.contains(&0) || self.in_channels == 0 || self.classes == 0 {
            return Err(Error::arg(
                "sw-resnet",
                "widths, input channels and classes must be positive",
            ));
        }
        Ok(())
    }
}

/// One residual block.
pub struct Block<T: Real> {
    /// The spatial operator, C_s to C_s channels (`spatial.*`).
    pub spatial: Spatial<T>,
    /// The pointwise 1x1 convolution C_s -> C_s after it, no bias (`pw.weight`).
    pub pw: Conv2d<T>,
    /// The batch-norm after the pointwise convolution (`bn.*`).
    pub bn: BatchNorm2d<T>,
}

/// One stage: an optional downsampling conv and its blocks.
pub struct Stage<T: Real> {
    /// The stride-2 3x3 convolution C_{s-1} -> C_s (`down.*`); `None` for stage 0.
    pub down: Option<ConvBn<T>>,
    /// The n_s blocks of width C_s (`blocks.{b}.*`).
    pub blocks: Vec<Block<T>>,
}

/// `out = relu(h + bn(pw(relu(spatial(h)))))` (SPEC 2); relu(spatial(h)) runs as one op with
/// the operator's final sum, and the batch-norm, the residual sum and its relu as one more
/// (`ops::bn_sum`).
impl<T: Real> Module<T> for Block<T> {
    fn forward(&mut self, h: &Var<T>, mode: Mode) -> Result<Var<T>> {
        let s = self.spatial.forward_relu(h, mode)?;
        let s = self.pw.forward(&s, mode)?;
        let channels = identity_channels(h.shape().dim(1));
        let residual = Residual {
            x: h,
            channels: &channels,
        };
        bn_sum_forward(vec![(&mut self.bn, &s)], Some(residual), mode, true)
    }
    crate::children!(|this| "spatial" => spatial, "pw" => pw, "bn" => bn);
}

/// The down-sampling convolution (with its relu) where there is one, then the blocks.
impl<T: Real> Module<T> for Stage<T> {
    fn forward(&mut self, h: &Var<T>, mode: Mode) -> Result<Var<T>> {
        let h = match &mut self.down {
            Some(down) => down.forward_relu(h, mode)?,
            None => h.clone(),
        };
        self.blocks.forward(&h, mode)
    }
    crate::children!(|this| "down" => down, "blocks" => blocks);
}

/// The network.
pub struct SwResNet<T: Real> {
    /// The configuration the network was built from.
    pub config: ResNetConfig,
    /// The stem, a stride-1 3x3 convolution C_img -> C_1 with its batch-norm (`stem.*`).
    pub stem: ConvBn<T>,
    /// The stages, in network order (`stages.{s}.*`).
    pub stages: Vec<Stage<T>>,
    /// The classifier after the global average pool, C_S -> classes (`head.*`).
    pub head: Linear<T>,
}

impl<T: Real> SwResNet<T> {
    /// The shift-wise layers with their parameter prefixes
    /// (`stages.{s}.blocks.{b}.spatial`), in network order; empty for other spatial kinds.
    pub fn sw_layers_mut(&mut self) -> Vec<(String, &mut ShiftWiseConv<T>)> {
        let mut out = Vec::new();
        for (s, stage) in self.stages.iter_mut().enumerate() {
            for (b, block) in stage.blocks.iter_mut().enumerate() {
                if let Spatial::Sw(layer) = &mut block.spatial {
                    out.push((format!("stages.{s}.blocks.{b}.spatial"), layer));
                }
            }
        }
        out
    }

    /// Builds the network with weights and tables drawn from `config.seed`.
    pub fn new(config: ResNetConfig) -> Result<Self> {
        config.validate()?;
        let mut seeds = init::rng(config.seed);
        let mut next = move || init::rng(seeds.gen::<u64>());
        let conv3 =
            |cin: usize, cout: usize, stride: usize, rng: &mut init::Rng| -> Result<ConvBn<T>> {
                let p = Conv2dParams::new().stride(stride).pad(1, 1);
                Ok(ConvBn::new(
                    Conv2d::new(cin, cout, (3, 3), p, false, rng)?,
                    "",
                ))
            };
        let stem = conv3(config.in_channels, config.widths[0], 1, &mut next())?;
        let mut stages = Vec::new();
        for s in 0..config.widths.len() {
            let c = config.widths[s];
            let down = if s > 0 {
                Some(conv3(config.widths[s - 1], c, 2, &mut next())?)
            } else {
                None
            };
            let mut blocks = Vec::new();
            for _ in 0..config.depths[s] {
                let sw = SwConfig {
                    channels: c,
                    big_kernel: config.big_kernels[s],
                    small_kernel: config.small_kernel,
                    ghost_ratio: config.ghost_ratio,
                    n_path: config.n_path,
                    n_rep: config.n_rep,
                    seed: next().gen::<u64>(),
                };
                let spatial = Spatial::new(config.spatial, sw)?;
                let pw = Conv2d::new(c, c, (1, 1), Conv2dParams::new(), false, &mut next())?;
                blocks.push(Block {
                    spatial,
                    pw,
                    bn: BatchNorm2d::new(c),
                });
            }
            stages.push(Stage { down, blocks });
        }
        let last = *config
            .widths
            .last()
            .ok_or_else(|| Error::arg("sw-resnet", "at least one stage is needed"))?;
        let head = Linear::new(last, config.classes, &mut next());
        Ok(SwResNet {
            config,
            stem,
            stages,
            head,
        })
    }

    /// All trainable parameters with their names.
    pub fn named_parameters(&self) -> Vec<ParamRef<T>> {
        let mut out = Vec::new();
        self.parameters("", &mut out);
        out
    }

    /// Number of trainable scalars.
    pub fn parameter_count(&self) -> usize {
        self.named_parameters()
            .iter()
            .map(|p| p.var.value().numel())
            .sum()
    }

    /// The whole state (parameters, running statistics, index tables); reading device
    /// tensors back can fail.
    pub fn state_dict(&self) -> Result<StateDict<T>> {
        let mut sd = StateDict::new();
        self.save_state("", &mut sd)?;
        Ok(sd)
    }

    /// Folds every spatial operator into one depthwise kernel with a bias (SPEC 1.4); the
    /// eval-mode outputs are unchanged. SW layers first merge their P banks.
    pub fn reparameterize(&mut self) -> Result<()> {
        let device = self.head.weight.value().device();
        for stage in &mut self.stages {
            for block in &mut stage.blocks {
                if let Spatial::Sw(sw) = &mut block.spatial {
                    merge_paths(sw)?;
                }
                fold_spatial(&mut block.spatial)?;
                block.spatial.move_to(&device)?;
            }
        }
        Ok(())
    }
}

impl<T: Real> SwResNet<T> {
    /// The last stage's feature map (N, C_S, H/4, W/4 for three stages), before the global
    /// average pool: what [`Module::forward`] pools and classifies, and what the effective
    /// receptive field (SPEC 6) differentiates.
    pub fn features(&mut self, x: &Var<T>, mode: Mode) -> Result<Var<T>> {
        let dims = x.shape().nchw("sw-resnet", "input")?;
        if dims[1] != self.config.in_channels {
            return Err(Error::shape(
                "sw-resnet",
                format!(
                    "input has {} channels, the network expects {}",
                    dims[1], self.config.in_channels
                ),
            ));
        }
        let h = self.stem.forward_relu(x, mode)?;
        self.stages.forward(&h, mode)
    }
}

impl<T: Real> Module<T> for SwResNet<T> {
    fn forward(&mut self, x: &Var<T>, mode: Mode) -> Result<Var<T>> {
        let h = self.features(x, mode)?;
        let pooled = global_avg_pool(&h)?;
        self.head.forward(&pooled, mode)
    }

    crate::children!(|this| "stem" => stem, "stages" => stages, "head" => head);
}
