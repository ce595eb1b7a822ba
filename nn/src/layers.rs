//! The plain layers: `Conv2d`, `BatchNorm2d`, `Linear`, and `ConvBn` (a convolution and its
//! batch-norm).
//!
//! Initialisation follows PyTorch's defaults where a ReLU network does not care otherwise:
//! convolution and linear weights uniform in `±1/sqrt(fan_in)` (PyTorch's Kaiming-uniform with
//! a = sqrt(5)), biases likewise; batch-norm gamma 1, beta 0, running mean 0, running var 1.

use crate::module::{join, load_walk, save_walk, Mode, Module, StateDict};
use shiftgrad_autograd::Var;
use shiftgrad_ops::batch_norm::{batch_norm2d_eval, batch_norm2d_train};
use shiftgrad_ops::bn_sum::{bn_sum, BnMode, BnTerm, Residual};
use shiftgrad_ops::{conv2d, linear::linear, Conv2dParams};
use shiftgrad_tensor::{init, Error, Real, Result, Tensor};

fn default_uniform<T: Real>(shape: &[usize], fan_in: usize, rng: &mut init::Rng) -> Tensor<T> {
    let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
    init::uniform(shape, -bound, bound, rng)
}

/// A 2-D convolution layer.
pub struct Conv2d<T: Real> {
    /// The kernel, `(C_out, C_in/G, KH, KW)`; state-dict name `weight`, weight-decayed.
    pub weight: Var<T>,
    /// The bias, `(C_out)`, state-dict name `bias`, not decayed; `None` for a layer without
    /// one.
    pub bias: Option<Var<T>>,
    /// Stride, padding per side and groups (G), as given to `ops::conv2d`.
    pub params: Conv2dParams,
}

impl<T: Real> Conv2d<T> {
    /// `c_in -> c_out` with a `kh x kw` kernel; weights drawn from `rng`.
    pub fn new(
        c_in: usize,
        c_out: usize,
        (kh, kw): (usize, usize),
        params: Conv2dParams,
        bias: bool,
        rng: &mut init::Rng,
    ) -> Result<Self> {
        if params.groups == 0
            || !c_in.is_multiple_of(params.groups)
            || !c_out.is_multiple_of(params.groups)
        {
            return Err(Error::arg(
                "conv2d",
                format!(
                    "groups {} must divide input channels {c_in} and output channels {c_out}",
                    params.groups
                ),
            ));
        }
        let fan_in = c_in / params.groups * kh * kw;
        let weight = Var::param(default_uniform(
            &[c_out, c_in / params.groups, kh, kw],
            fan_in,
            rng,
        ));
        let bias = bias.then(|| Var::param(default_uniform(&[c_out], fan_in, rng)));
        Ok(Conv2d {
            weight,
            bias,
            params,
        })
    }

    /// A depthwise convolution (groups = channels) with a `kh x kw` kernel and "same" padding
    /// `(kh/2, kw/2)` on each side; no bias.
    pub fn depthwise(
        channels: usize,
        (kh, kw): (usize, usize),
        rng: &mut init::Rng,
    ) -> Result<Self> {
        let p = Conv2dParams::new().pad(kh / 2, kw / 2).groups(channels);
        Self::new(channels, channels, (kh, kw), p, false, rng)
    }
}

impl<T: Real> Module<T> for Conv2d<T> {
    fn forward(&mut self, x: &Var<T>, _mode: Mode) -> Result<Var<T>> {
        conv2d(x, &self.weight, self.bias.as_ref(), self.params)
    }
    fn own_parameters(&self) -> Vec<(String, &Var<T>, bool)> {
        let mut own = vec![("weight".into(), &self.weight, true)];
        own.extend(self.bias.iter().map(|b| ("bias".into(), b, false)));
        own
    }
}

/// Batch normalisation over (N, H, W) per channel, PyTorch semantics (momentum 0.1, eps 1e-5).
pub struct BatchNorm2d<T: Real> {
    /// Gamma, the per-channel scale, `(C)`; state-dict name `weight`, not decayed.
    pub weight: Var<T>,
    /// Beta, the per-channel shift, `(C)`; state-dict name `bias`, not decayed.
    pub bias: Var<T>,
    /// Running mean per channel, `(C)`, updated by training-mode forwards and used in eval
    /// mode; not a parameter.
    pub running_mean: Tensor<T>,
    /// Running variance per channel, `(C)`, fed the unbiased batch variance as PyTorch does;
    /// not a parameter.
    pub running_var: Tensor<T>,
    /// Training-mode forwards so far (PyTorch's `num_batches_tracked`: saved as an int64
    /// scalar so that a checkpoint is a complete PyTorch state dict; with momentum set, as
    /// here, PyTorch only counts with it).
    pub num_batches_tracked: i64,
    /// Weight of the batch statistic in each running-statistics update (0.1).
    pub momentum: f64,
    /// Added to the variance before the square root (1e-5).
    pub eps: f64,
}

impl<T: Real> BatchNorm2d<T> {
    /// A batch-norm over `channels` with gamma 1, beta 0 and fresh running statistics.
    pub fn new(channels: usize) -> Self {
        BatchNorm2d {
            weight: Var::param(Tensor::ones([channels])),
            bias: Var::param(Tensor::zeros([channels])),
            running_mean: Tensor::zeros([channels]),
            running_var: Tensor::ones([channels]),
            num_batches_tracked: 0,
            momentum: 0.1,
            eps: 1e-5,
        }
    }

    /// The eval-mode affine map per channel, `y = scale * x + shift`. A failed device
    /// read-back, or statistics whose length differs from gamma's (the fields are public), is
    /// an error.
    pub fn eval_affine(&self) -> Result<(Vec<f64>, Vec<f64>)> {
        let read = |t: &Tensor<T>, what: &str| {
            t.to_host()
                .map_err(|e| Error::Other(format!("batch-norm: reading {what} back failed: {e}")))
        };
        let g = read(&self.weight.value(), "gamma")?;
        let b = read(&self.bias.value(), "beta")?;
        let running_mean = read(&self.running_mean, "running mean")?;
        let running_var = read(&self.running_var, "running var")?;
        let n = g.numel();
        if [b.numel(), running_mean.numel(), running_var.numel()] != [n; 3] {
            return Err(Error::shape(
                "batch-norm",
                format!(
                    "gamma has {n} channels, beta {}, running mean {}, running var {}",
                    b.numel(),
                    running_mean.numel(),
                    running_var.numel()
                ),
            ));
        }
        let mut scale = Vec::with_capacity(n);
        let mut shift = Vec::with_capacity(n);
        for (((g, b), m), v) in g
            .data()
            .iter()
            .zip(b.data())
            .zip(running_mean.data())
            .zip(running_var.data())
        {
            let s = g.as_f64() / (v.as_f64() + self.eps).sqrt();
            scale.push(s);
            shift.push(b.as_f64() - s * m.as_f64());
        }
        Ok((scale, shift))
    }
}

impl<T: Real> Module<T> for BatchNorm2d<T> {
    fn forward(&mut self, x: &Var<T>, mode: Mode) -> Result<Var<T>> {
        match mode {
            Mode::Train => {
                let y = batch_norm2d_train(
                    x,
                    &self.weight,
                    &self.bias,
                    &mut self.running_mean,
                    &mut self.running_var,
                    self.momentum,
                    self.eps,
                )?;
                self.num_batches_tracked += 1;
                Ok(y)
            }
            Mode::Eval => batch_norm2d_eval(
                x,
                &self.weight,
                &self.bias,
                &self.running_mean,
                &self.running_var,
                self.eps,
            ),
        }
    }
    fn own_parameters(&self) -> Vec<(String, &Var<T>, bool)> {
        vec![
            ("weight".into(), &self.weight, false),
            ("bias".into(), &self.bias, false),
        ]
    }
    fn own_buffers(&self) -> Vec<(&'static str, &Tensor<T>)> {
        vec![
            ("running_mean", &self.running_mean),
            ("running_var", &self.running_var),
        ]
    }
    fn own_buffers_mut(&mut self) -> Vec<(&'static str, &mut Tensor<T>)> {
        vec![
            ("running_mean", &mut self.running_mean),
            ("running_var", &mut self.running_var),
        ]
    }
    /// The walk, then the step counter (an int64, as PyTorch's).
    fn save_state(&self, prefix: &str, sd: &mut StateDict<T>) -> Result<()> {
        save_walk(self, prefix, sd)?;
        sd.insert_int64(
            join(prefix, "num_batches_tracked"),
            &[],
            vec![self.num_batches_tracked],
        );
        Ok(())
    }
    fn load_state(&mut self, prefix: &str, sd: &StateDict<T>) -> Result<()> {
        load_walk(self, prefix, sd)?;
        // Checkpoints written before the counter was saved have none: it restarts at 0.
        let counter = join(prefix, "num_batches_tracked");
        self.num_batches_tracked = match sd.names().any(|n| n == counter) {
            true => sd.count(&counter)?,
            false => 0,
        };
        Ok(())
    }
}

/// A convolution followed by a batch-norm over its output channels, no activation: SW-ResNet's
/// stem and down-sampling layers (3x3), and each depthwise branch of the dense, slak and small
/// spatial operators (SPEC 1.7). State-dict names `conv<suffix>.*` and `bn<suffix>.*` under the
/// prefix (`stem.conv.weight`; slak's `spatial.conv_tall.weight`, `spatial.bn_tall.*`).
pub struct ConvBn<T: Real> {
    /// The convolution (no bias: the batch-norm's beta plays its part).
    pub conv: Conv2d<T>,
    /// The batch-norm over the convolution's output channels.
    pub bn: BatchNorm2d<T>,
    /// Appended to `conv` and `bn` in the state-dict names ("" or, for slak's branches,
    /// "_tall", "_wide", "_small").
    pub suffix: &'static str,
}

impl<T: Real> ConvBn<T> {
    /// `conv` with a fresh batch-norm over its output channels.
    pub fn new(conv: Conv2d<T>, suffix: &'static str) -> Self {
        let channels = conv.weight.shape().dim(0);
        ConvBn {
            conv,
            bn: BatchNorm2d::new(channels),
            suffix,
        }
    }

    /// A depthwise `kh x kw` convolution with "same" padding ([`Conv2d::depthwise`]) and its
    /// batch-norm.
    pub fn depthwise(
        channels: usize,
        kernel: (usize, usize),
        suffix: &'static str,
        rng: &mut init::Rng,
    ) -> Result<Self> {
        Ok(Self::new(Conv2d::depthwise(channels, kernel, rng)?, suffix))
    }
}

/// `act(bn_0(z_0) + ... [+ residual])` as one op (`ops::bn_sum`: on OpenCL one output pass,
/// and the batch-norms' statistics kernels), each batch-norm's training forward counted as
/// [`BatchNorm2d::forward`] counts it. `act` is relu where `relu`. The residual's channel map
/// is a permutation of its channels (output channel j adds, or beyond the terms' channels is,
/// residual channel `channels[j]`).
pub fn bn_sum_forward<T: Real>(
    parts: Vec<(&mut BatchNorm2d<T>, &Var<T>)>,
    residual: Option<Residual<'_, T>>,
    mode: Mode,
    relu: bool,
) -> Result<Var<T>> {
    let mut terms = Vec::with_capacity(parts.len());
    let mut counters = Vec::with_capacity(parts.len());
    for (bn, z) in parts {
        terms.push(BnTerm {
            x: z,
            gamma: &bn.weight,
            beta: &bn.bias,
            running_mean: &mut bn.running_mean,
            running_var: &mut bn.running_var,
            momentum: bn.momentum,
            eps: bn.eps,
        });
        counters.push(&mut bn.num_batches_tracked);
    }
    let bn_mode = match mode {
        Mode::Train => BnMode::Train,
        Mode::Eval => BnMode::Eval,
    };
    let y = bn_sum(&mut terms, residual, bn_mode, relu)?;
    if mode == Mode::Train {
        for c in counters {
            *c += 1;
        }
    }
    Ok(y)
}

/// `0..c`: the channel map of a residual added channel for channel.
pub fn identity_channels(c: usize) -> Vec<usize> {
    (0..c).collect()
}

impl<T: Real> ConvBn<T> {
    /// `relu(self.forward(x))`, the batch-norm and the relu as one op ([`bn_sum_forward`]).
    pub fn forward_relu(&mut self, x: &Var<T>, mode: Mode) -> Result<Var<T>> {
        let y = self.conv.forward(x, mode)?;
        bn_sum_forward(vec![(&mut self.bn, &y)], None, mode, true)
    }
}

impl<T: Real> Module<T> for ConvBn<T> {
    fn forward(&mut self, x: &Var<T>, mode: Mode) -> Result<Var<T>> {
        let y = self.conv.forward(x, mode)?;
        self.bn.forward(&y, mode)
    }
    crate::children!(|this| format!("conv{}", this.suffix) => conv, format!("bn{}", this.suffix) => bn);
}

/// A fully connected layer, `y = x W^T + b`.
pub struct Linear<T: Real> {
    /// W, `(outputs, inputs)`; state-dict name `weight`, weight-decayed.
    pub weight: Var<T>,
    /// b, `(outputs)`; state-dict name `bias`, not decayed.
    pub bias: Var<T>,
}

impl<T: Real> Linear<T> {
    /// `inputs -> outputs` features.
    pub fn new(inputs: usize, outputs: usize, rng: &mut init::Rng) -> Self {
        Linear {
            weight: Var::param(default_uniform(&[outputs, inputs], inputs, rng)),
            bias: Var::param(default_uniform(&[outputs], inputs, rng)),
        }
    }
}

impl<T: Real> Module<T> for Linear<T> {
    fn forward(&mut self, x: &Var<T>, _mode: Mode) -> Result<Var<T>> {
        linear(x, &self.weight, Some(&self.bias))
    }
    fn own_parameters(&self) -> Vec<(String, &Var<T>, bool)> {
        vec![
            ("weight".into(), &self.weight, true),
            ("bias".into(), &self.bias, false),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eval_affine_checks_lengths() {
        let mut bn = BatchNorm2d::<f64>::new(3);
        let (scale, shift) = bn.eval_affine().unwrap();
        assert_eq!((scale.len(), shift.len()), (3, 3));
        bn.running_var = Tensor::ones([2]);
        let e = bn.eval_affine().unwrap_err().to_string();
        assert!(
            e.contains("gamma has 3 channels") && e.contains("running var 2"),
            "{e}"
        );
    }
}
