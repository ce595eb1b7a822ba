//! Optimisers and the learning-rate schedule.
//!
//! * SGD with momentum, optional Nesterov, and weight decay (L2 added to the gradient), exactly
//!   as `torch.optim.SGD`: `b = mu*b + g` (b = g on the first step), step `g + mu*b` (Nesterov)
//!   or `b`.
//! * AdamW as `torch.optim.AdamW`: decoupled weight decay `p -= lr*wd*p`, then Adam with bias
//!   correction.
//!
//! The update arithmetic lives in `shiftgrad_ops::optim_step` (one generic rule per optimiser,
//! run on the host or as an OpenCL kernel where the parameter lives), in the parameter's
//! element type.
//!
//! Weight decay applies only to parameters whose [`ParamRef::decay`] is set (not batch-norm
//! parameters or biases). The per-parameter state is saved under `optim.<param name>.<slot>`
//! so that a resumed run continues exactly.

use crate::module::{ParamRef, StateDict};
use shiftgrad_autograd::no_grad;
use shiftgrad_ops::{adamw_step, sgd_step};
use shiftgrad_tensor::{Error, Real, Result, Tensor};

/// The profiling region of [`Optimizer::step`].
pub const REGION_OPTIM: &str = "optimiser step";

/// Which optimiser, with its hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OptimKind {
    /// SGD with momentum as `torch.optim.SGD`.
    Sgd {
        /// Momentum factor `mu` of the buffer `b = mu*b + g`.
        momentum: f64,
        /// Whether the step is `g + mu*b` (Nesterov) rather than `b`.
        nesterov: bool,
        /// L2 coefficient: `weight_decay * p` is added to the gradient of decayed parameters.
        weight_decay: f64,
    },
    /// AdamW as `torch.optim.AdamW`.
    AdamW {
        /// Decay rate of the first moment (the gradient's running mean).
        beta1: f64,
        /// Decay rate of the second moment (the squared gradient's running mean).
        beta2: f64,
        /// Added to the square root of the bias-corrected second moment.
        eps: f64,
        /// Decoupled decay: decayed parameters are multiplied by `1 - lr*weight_decay` first.
        weight_decay: f64,
    },
}

/// An optimiser over a fixed list of parameters.
pub struct Optimizer<T: Real> {
    /// The optimiser and its hyper-parameters (the learning rate is given to each step).
    pub kind: OptimKind,
    params: Vec<ParamRef<T>>,
    /// SGD: momentum buffer; AdamW: first moment.
    slot1: Vec<Option<Tensor<T>>>,
    /// AdamW: second moment.
    slot2: Vec<Option<Tensor<T>>>,
    /// Steps taken.
    pub steps: u64,
}

impl<T: Real> Optimizer<T> {
    /// An optimiser for `params`.
    pub fn new(kind: OptimKind, params: Vec<ParamRef<T>>) -> Self {
        let n = params.len();
        Optimizer {
            kind,
            params,
            slot1: vec![None; n],
            slot2: vec![None; n],
            steps: 0,
        }
    }

    /// Bytes of optimiser state held (momentum buffers, Adam moments).
    pub fn state_bytes(&self) -> u64 {
        self.slot1
            .iter()
            .chain(&self.slot2)
            .flatten()
            .map(|t| t.nbytes() as u64)
            .sum()
    }

    /// The parameters.
    pub fn params(&self) -> &[ParamRef<T>] {
        &self.params
    }

    /// Sets to zero the optimiser state (momentum; both AdamW moments) of the elements of
    /// parameter `name` for which `zero(i)` holds (`i`: the element's flat index), so that a
    /// pruned or regrown kernel starts from no state (SPEC 1.6). Reads the state to the host
    /// and back: for occasional use (a prune step), not every step. An unknown name is an
    /// error; a parameter without state yet has nothing to zero.
    pub fn zero_state_where(&mut self, name: &str, zero: impl Fn(usize) -> bool) -> Result<()> {
        let Some(i) = self.params.iter().position(|p| p.name == name) else {
            return Err(Error::arg(
                "optimizer",
                format!("no parameter named {name:?}"),
            ));
        };
        for slot in [&mut self.slot1[i], &mut self.slot2[i]]
            .into_iter()
            .flatten()
        {
            let device = slot.device();
            let mut host = slot.to_host()?;
            for (j, v) in host.data_mut().iter_mut().enumerate() {
                if zero(j) {
                    *v = T::zero();
                }
            }
            *slot = host.to_device(&device)?;
        }
        Ok(())
    }

    /// Forgets every gradient.
    pub fn zero_grad(&self) {
        for p in &self.params {
            p.var.zero_grad();
        }
    }

    /// One update with learning rate `lr`, from the gradients accumulated by backward.
    /// Parameters without a gradient are left alone. The update runs where the parameter
    /// lives ([`shiftgrad_ops::sgd_step`], [`shiftgrad_ops::adamw_step`]); optimiser state
    /// found on another device (a state dict loaded on the host for a model on a device) is
    /// moved to the parameter's device first, once.
    pub fn step(&mut self, lr: f64) -> Result<()> {
        // Its kernels' device time and FLOPs are their own row of `profile` and summary.json.
        let _region = shiftgrad_tensor::opencl::region::enter(REGION_OPTIM);
        self.steps += 1;
        let t = self.steps;
        no_grad(|| {
            for (i, p) in self.params.iter().enumerate() {
                let Some(g) = p.var.take_grad() else { continue };
                let mut w = p.var.value_mut();
                let here = w.device();
                for s in [&mut self.slot1[i], &mut self.slot2[i]]
                    .into_iter()
                    .flatten()
                {
                    if !s.device().same(&here) {
                        *s = s.to_device(&here)?;
                    }
                }
                match self.kind {
                    OptimKind::Sgd {
                        momentum,
                        nesterov,
                        weight_decay,
                    } => {
                        let wd = if p.decay { weight_decay } else { 0.0 };
                        sgd_step(&mut w, &g, &mut self.slot1[i], lr, momentum, nesterov, wd)?;
                    }
                    OptimKind::AdamW {
                        beta1,
                        beta2,
                        eps,
                        weight_decay,
                    } => {
                        let wd = if p.decay { weight_decay } else { 0.0 };
                        let (m, v) = (&mut self.slot1[i], &mut self.slot2[i]);
                        adamw_step(&mut w, &g, m, v, t, lr, beta1, beta2, eps, wd)?;
                    }
                }
            }
            Ok(())
        })
    }

    /// Writes the optimiser state (step count and every slot) into `sd`.
    pub fn save_state(&self, sd: &mut StateDict<T>) -> Result<()> {
        sd.insert_int(
            "optim.steps".into(),
            &[2],
            vec![(self.steps >> 32) as i32, self.steps as u32 as i32],
        );
        for (i, p) in self.params.iter().enumerate() {
            if let Some(s) = &self.slot1[i] {
                sd.insert(format!("optim.{}.slot1", p.name), s.clone())?;
            }
            if let Some(s) = &self.slot2[i] {
                sd.insert(format!("optim.{}.slot2", p.name), s.clone())?;
            }
        }
        Ok(())
    }

    /// Reads the state written by [`Optimizer::save_state`].
    pub fn load_state(&mut self, sd: &StateDict<T>) -> Result<()> {
        let (_, steps) = sd.int("optim.steps")?;
        if steps.len() != 2 {
            return Err(Error::Other(
                "state dict: optim.steps must hold 2 values".into(),
            ));
        }
        self.steps = ((steps[0] as u32 as u64) << 32) | steps[1] as u32 as u64;
        let names: Vec<String> = sd.names().map(str::to_string).collect();
        for (i, p) in self.params.iter().enumerate() {
            let shape = p.var.shape();
            for (slot, key) in [(&mut self.slot1[i], "slot1"), (&mut self.slot2[i], "slot2")] {
                let name = format!("optim.{}.{key}", p.name);
                *slot = if names.contains(&name) {
                    Some(sd.tensor_shaped(&name, &shape)?.clone())
                } else {
                    None
                };
            }
        }
        Ok(())
    }
}

/// Linear warm-up from 0 to `base` over `warmup` steps, then cosine decay to 0 at `total`.
pub fn lr_at(step: u64, base: f64, warmup: u64, total: u64) -> f64 {
    if step < warmup {
        return base * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1) as f64;
    let progress = ((step - warmup) as f64 / span).min(1.0);
    0.5 * base * (1.0 + (std::f64::consts::PI * progress).cos())
}

#[cfg(test)]
mod tests {
    use super::*;
    use shiftgrad_autograd::Var;

    fn param(v: Vec<f64>, decay: bool) -> ParamRef<f64> {
        ParamRef {
            name: "p".into(),
            var: Var::param(Tensor::new([v.len()], v).unwrap()),
            decay,
        }
    }

    fn set_grad(p: &ParamRef<f64>, g: Vec<f64>) {
        let t = Tensor::new([g.len()], g).unwrap();
        let seed = Var::leaf(t, false);
        // Route a gradient into the leaf through a tiny graph: y = p * 1, backward with g.
        let one = Tensor::ones(p.var.shape());
        let y = Var::from_op("scale", p.var.value().clone(), &[&p.var], move |ctx| {
            Ok(vec![Some(ctx.grad_out.zip_map(
                &one,
                "scale",
                |a, b| a * b,
            )?)])
        });
        y.backward_with(seed.value().clone()).unwrap();
    }

    #[test]
    fn sgd_momentum_matches_torch_formula() {
        let p = param(vec![1.0, -2.0], true);
        let mut opt = Optimizer::new(
            OptimKind::Sgd {
                momentum: 0.9,
                nesterov: false,
                weight_decay: 0.1,
            },
            vec![p.clone()],
        );
        set_grad(&p, vec![0.5, 0.5]);
        opt.step(0.1).unwrap();
        // d = g + wd*w = [0.6, 0.3]; buf = d; w -= 0.1*d
        assert!((p.var.value().data()[0] - 0.94).abs() < 1e-12);
        set_grad(&p, vec![0.5, 0.5]);
        opt.step(0.1).unwrap();
        // d = [0.5 + 0.094, 0.5 - 0.203]; buf = 0.9*[0.6,0.3] + d
        let b0 = 0.9 * 0.6 + 0.594;
        assert!((p.var.value().data()[0] - (0.94 - 0.1 * b0)).abs() < 1e-12);
    }

    #[test]
    fn nesterov_and_no_decay() {
        let p = param(vec![1.0], false);
        let mut opt = Optimizer::new(
            OptimKind::Sgd {
                momentum: 0.5,
                nesterov: true,
                weight_decay: 10.0,
            },
            vec![p.clone()],
        );
        set_grad(&p, vec![1.0]);
        opt.step(1.0).unwrap();
        // no decay: d = 1; buf = 1; step = d + 0.5*buf = 1.5
        assert!((p.var.value().data()[0] + 0.5).abs() < 1e-12);
    }

    #[test]
    fn adamw_first_step_is_lr_sized() {
        let p = param(vec![1.0], true);
        let mut opt = Optimizer::new(
            OptimKind::AdamW {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.01,
            },
            vec![p.clone()],
        );
        set_grad(&p, vec![3.0]);
        opt.step(0.1).unwrap();
        // w = 1*(1 - 0.1*0.01) - 0.1 * sign(g)
        assert!((p.var.value().data()[0] - (0.999 - 0.1)).abs() < 1e-6);
    }

    #[test]
    fn state_round_trips() {
        let p = param(vec![1.0, 2.0], true);
        let kind = OptimKind::AdamW {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        };
        let mut a = Optimizer::new(kind, vec![p.clone()]);
        set_grad(&p, vec![1.0, -1.0]);
        a.step(0.01).unwrap();
        let mut sd = StateDict::new();
        a.save_state(&mut sd).unwrap();
        let mut b = Optimizer::new(kind, vec![p.clone()]);
        b.load_state(&sd).unwrap();
        assert_eq!(b.steps, 1);
        assert_eq!(b.slot1[0], a.slot1[0]);
        assert_eq!(b.slot2[0], a.slot2[0]);
    }

    #[test]
    fn schedule_warms_up_then_decays() {
        assert!((lr_at(0, 1.0, 10, 100) - 0.1).abs() < 1e-12);
        assert!((lr_at(9, 1.0, 10, 100) - 1.0).abs() < 1e-12);
        assert!((lr_at(10, 1.0, 10, 100) - 1.0).abs() < 1e-12);
        assert!((lr_at(55, 1.0, 10, 100) - 0.5).abs() < 1e-12);
        assert!(lr_at(100, 1.0, 10, 100).abs() < 1e-12);
    }
}
