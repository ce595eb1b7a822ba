//! `ShiftWiseConv`: the shift-wise module of SPEC 1.5.
//!
//! ```text
//! X (C channels) --gather--> X_r (R channels) --P bank convs, summed--> Y (R*nk channels)
//!                                             --shift_add--> Hout, Vout, Iout (R channels each)
//! Z = BN_h(Hout) + BN_v(Vout) + BN_i(Iout) + X_r;   output = concat(Z, X_ghost)
//! ```
//! The ghost channels (`floor(C * ghost_ratio)` of them, chosen by the layer's RNG and sorted)
//! pass through untouched, after the R processed ones: the output channel order differs from
//! the input's. The layer's own seeded RNG draws, in this order: the ghost channels, the index
//! tables (`ShiftTables::random`), then the P bank weights. The tables and the channel split are
//! saved with the weights (`pad_hv`, `idx_identit`, `ghost_idx`, `rep_idx`) and restored from a
//! checkpoint, never regenerated.
//!
//! **Merged-bank training.** `sum_q conv2d(X_r, W_q) = conv2d(X_r, sum_q W_q)` and every
//! `W_q` receives the same gradient, so the forward adds the P small weight tensors (R*nk k x k
//! kernels each) and runs the bank convolution once, and the backward computes one weight
//! gradient that the sum hands to every path: the same values and gradients as the P
//! convolutions (up to rounding; `nn/tests/modules.rs` checks them against each other in f64)
//! for half the work at P = 2. The P weights stay separate parameters (`bank.{q}.weight` in
//! checkpoints), as the paper trains them. The P-convolution form (the cost SPEC 1.7 counts,
//! `P*nk*k^2` MACs per pixel and rep channel) is kept as the readable reference, chosen with
//! [`ShiftWiseConv::unmerged_banks`]; [`crate::reparam`] merges the banks for inference.
//!
//! **Sparse (SPEC 1.6).** [`ShiftWiseConv::set_mask`] prunes small kernels (one bit per
//! kernel, shared by the P paths): the forward then runs the sparse bank convolution
//! ([`bank_conv`]) and the sparse shift-add on the live kernels only, so a pruned kernel is
//! not computed, not stored in `Y`, and receives no gradient. Its weights in every bank are
//! set to zero when it is pruned and stay zero through SGD and AdamW steps (a zero weight with
//! a zero gradient and zero optimiser state does not move, weight decay included), so the
//! dense-equivalent folding gives zero blocks for it. The mask is saved as
//! `<layer>.mask` (int32 0/1, shape `(R*nk)`). Without a mask the layer is today's dense
//! layer, bit for bit.

use crate::layers::bn_sum_forward;
use crate::layers::BatchNorm2d;
use crate::module::{join, load_walk, save_walk, Mode, Module, StateDict};
use shiftgrad_autograd::Var;
use shiftgrad_ops::bank_conv::bank_conv;
use shiftgrad_ops::bn_sum::Residual;
use shiftgrad_ops::shift_add::{shift_add, shift_add_sparse, LiveChannels, ShiftTables};
use shiftgrad_ops::sw_fused::sw_fused;
use shiftgrad_ops::{add_n, conv2d, gather_channels, Conv2dParams};
use shiftgrad_tensor::opencl::region;
use shiftgrad_tensor::{init, Device, Error, Real, Result, Tensor};
use std::rc::Rc;

/// The profiling regions of the shift-wise layers (see `shiftgrad_tensor::opencl::region`).
pub use shiftgrad_ops::sw_fused::{REGION_BANK, REGION_FUSED, REGION_SHIFT_ADD};

/// Hyper-parameters of one shift-wise layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SwConfig {
    /// Channels in and out (C).
    pub channels: usize,
    /// Big kernel M (focus length); any value >= `small`.
    pub big_kernel: usize,
    /// Small kernel k (odd).
    pub small_kernel: usize,
    /// Fraction of channels passed through untouched, in [0, 1).
    pub ghost_ratio: f64,
    /// Number of parallel bank convolutions P (training only).
    pub n_path: usize,
    /// Number of shuffled index groups G.
    pub n_rep: usize,
    /// Seed of the layer's RNG.
    pub seed: u64,
}

impl SwConfig {
    /// The paper's defaults (ghost 0.23, P = 2, G = 4) for `channels`, `big` and `small`.
    pub fn new(channels: usize, big_kernel: usize, small_kernel: usize, seed: u64) -> Self {
        SwConfig {
            channels,
            big_kernel,
            small_kernel,
            ghost_ratio: 0.23,
            n_path: 2,
            n_rep: 4,
            seed,
        }
    }

    /// Number of ghost channels, `floor(C * ghost_ratio)`.
    pub fn ghost_channels(&self) -> usize {
        (self.channels as f64 * self.ghost_ratio).floor() as usize
    }

    /// Checks every hyper-parameter; the error names the layer and the value.
    pub fn validate(&self) -> Result<()> {
        const OP: &str = "ShiftWiseConv";
        if !(0.0..1.0).contains(&self.ghost_ratio) {
            return Err(Error::arg(
                OP,
                format!("ghost ratio must be in [0, 1), got {}", self.ghost_ratio),
            ));
        }
        if self.n_path == 0 {
            return Err(Error::arg(OP, "n_path must be at least 1"));
        }
        if self.channels == 0 || self.channels == self.ghost_channels() {
            return Err(Error::arg(
                OP,
                format!(
                    "{} channels with ghost ratio {} leave no channel to process",
                    self.channels, self.ghost_ratio
                ),
            ));
        }
        let reps = self.channels - self.ghost_channels();
        ShiftTables::check_geometry(self.big_kernel, self.small_kernel, reps, self.n_rep)
    }
}

/// The shift-wise spatial operator.
pub struct ShiftWiseConv<T: Real> {
    /// The hyper-parameters the layer was built from (`n_path` is 1 after
    /// [`crate::reparam::merge_paths`]).
    pub config: SwConfig,
    /// Sorted indices of the ghost channels (pass through).
    pub ghost_idx: Vec<usize>,
    /// Sorted indices of the R processed channels.
    pub rep_idx: Vec<usize>,
    /// The shift-add index tables (`pad_hv`, `idx_identit`) drawn for this layer, shared with
    /// the ops that read them.
    pub tables: Rc<ShiftTables>,
    /// The P bank weights, each (R*nk, 1, k, k).
    pub banks: Vec<Var<T>>,
    /// Batch-norm of the horizontal shift-add output `Hout` (R channels).
    pub bn_h: BatchNorm2d<T>,
    /// Batch-norm of the vertical shift-add output `Vout` (R channels).
    pub bn_v: BatchNorm2d<T>,
    /// Batch-norm of the identity-path shift-add output `Iout` (R channels).
    pub bn_i: BatchNorm2d<T>,
    /// Compute the P bank convolutions separately and add their outputs (the reference form)
    /// instead of one convolution with the summed weights (the default).
    pub unmerged_banks: bool,
    /// The live kernels where a mask prunes some (SPEC 1.6); `None`: dense.
    pub live: Option<Rc<LiveChannels>>,
    /// Every kernel live: what the fused op runs with for a dense layer on OpenCL (one object
    /// for the layer's life, so that its device copy is uploaded once).
    all_live: Rc<LiveChannels>,
}

impl<T: Real> ShiftWiseConv<T> {
    /// A layer with tables, channel split and weights drawn from `config.seed`.
    pub fn new(config: SwConfig) -> Result<Self> {
        config.validate()?;
        let mut rng = init::rng(config.seed);
        let c = config.channels;
        let perm = init::permutation(c, &mut rng);
        let mut ghost_idx: Vec<usize> = perm[..config.ghost_channels()].to_vec();
        ghost_idx.sort_unstable();
        let rep_idx: Vec<usize> = (0..c).filter(|i| !ghost_idx.contains(i)).collect();
        let reps = rep_idx.len();
        let tables = ShiftTables::random(
            config.big_kernel,
            config.small_kernel,
            reps,
            config.n_rep,
            &mut rng,
        )?;
        let k = config.small_kernel;
        let bound = 1.0 / k as f64; // 1/sqrt(fan_in), fan_in = k*k
        let banks = (0..config.n_path)
            .map(|_| {
                Var::param(init::uniform(
                    &[reps * tables.nk(), 1, k, k][..],
                    -bound,
                    bound,
                    &mut rng,
                ))
            })
            .collect();
        let all_live = Rc::new(LiveChannels::all(reps, tables.nk()));
        Ok(ShiftWiseConv {
            config,
            ghost_idx,
            rep_idx,
            tables: Rc::new(tables),
            banks,
            bn_h: BatchNorm2d::new(reps),
            bn_v: BatchNorm2d::new(reps),
            bn_i: BatchNorm2d::new(reps),
            unmerged_banks: false,
            live: None,
            all_live,
        })
    }

    /// Number of small kernels in the bank, `R*nk` (the length of a mask).
    pub fn kernels(&self) -> usize {
        self.reps() * self.tables.nk()
    }

    /// The mask (`true` = live), all live without one.
    pub fn mask(&self) -> Vec<bool> {
        match &self.live {
            Some(l) => l.mask(),
            None => vec![true; self.kernels()],
        }
    }

    /// Prunes the kernels whose mask entry is `false` (SPEC 1.6) and zeroes their weights in
    /// every bank. The mask has one entry per small kernel (`R*nk`); another length is an
    /// error. The caller zeroes the pruned kernels' optimiser state (see
    /// `Optimizer::zero_state_where`).
    pub fn set_mask(&mut self, mask: &[bool]) -> Result<()> {
        let live = LiveChannels::from_mask(self.reps(), self.tables.nk(), mask)?;
        let k2 = self.config.small_kernel * self.config.small_kernel;
        for b in &self.banks {
            let mut host = b.value().to_host()?;
            for (i, v) in host.data_mut().iter_mut().enumerate() {
                if !mask[i / k2] {
                    *v = T::zero();
                }
            }
            let device = b.value().device();
            b.set_value(host.to_device(&device)?)?;
        }
        self.live = Some(Rc::new(live));
        Ok(())
    }

    /// The live kernels when a mask prunes at least one (the sparse path's layout).
    fn sparse_live(&self) -> Option<&Rc<LiveChannels>> {
        self.live.as_ref().filter(|l| !l.is_dense())
    }

    /// Number of processed channels R.
    pub fn reps(&self) -> usize {
        self.rep_idx.len()
    }

    /// The parameters of the bank convolution (stride 1, zero padding k-1, groups R).
    pub fn bank_params(&self) -> Conv2dParams {
        let p = self.config.small_kernel - 1;
        Conv2dParams::new().pad(p, p).groups(self.reps())
    }

    /// The sum of the P banks (the merged bank of SPEC 1.1).
    pub fn merged_bank(&self) -> Result<Tensor<T>> {
        let mut acc = self.banks[0].value().clone();
        for b in &self.banks[1..] {
            acc.add_assign(&b.value())?;
        }
        Ok(acc)
    }

    /// The processed channels `X_r` of `x` (its ghost channels join the output in
    /// [`Self::finish`]).
    pub fn processed(&self, x: &Var<T>) -> Result<Var<T>> {
        let dims = x.shape().nchw("ShiftWiseConv", "input")?;
        if dims[1] != self.config.channels {
            return Err(Error::shape(
                "ShiftWiseConv",
                format!(
                    "input has {} channels, the layer expects {}",
                    dims[1], self.config.channels
                ),
            ));
        }
        // Where `rep_idx` is 0..C in order (no ghost channels: SPEC 1.5 sorts it), X_r is x
        // itself, and no copy is made.
        let identity =
            self.rep_idx.len() == dims[1] && self.rep_idx.iter().enumerate().all(|(i, &c)| i == c);
        match identity {
            true => Ok(x.clone()),
            false => gather_channels(x, &self.rep_idx),
        }
    }
}

impl<T: Real> ShiftWiseConv<T> {
    /// Steps 4-5 of SPEC 1.5: the three batch-norms, the residual `X_r` and the ghost
    /// channels, `concat(bn_h(H) + bn_v(V) + bn_i(I) + X_r, X_g)`, relu'd where `activate`,
    /// as one op (`ops::bn_sum`, its channel map the rep channels then the ghost channels;
    /// on the CPU the composed batch-norms, gathers, add_n, concat and relu).
    fn finish(
        &mut self,
        (h, v, i): (Var<T>, Var<T>, Var<T>),
        x: &Var<T>,
        mode: Mode,
        activate: bool,
    ) -> Result<Var<T>> {
        let channels: Vec<usize> = self
            .rep_idx
            .iter()
            .chain(&self.ghost_idx)
            .copied()
            .collect();
        let parts = vec![
            (&mut self.bn_h, &h),
            (&mut self.bn_v, &v),
            (&mut self.bn_i, &i),
        ];
        let residual = Residual {
            x,
            channels: &channels,
        };
        bn_sum_forward(parts, Some(residual), mode, activate)
    }
}

impl<T: Real> ShiftWiseConv<T> {
    /// `relu(self.forward(x))`, the relu fused with the layer's batch-norms, final sum and
    /// ghost channels (`ops::bn_sum`): what SW-ResNet blocks apply.
    pub fn forward_relu(&mut self, x: &Var<T>, mode: Mode) -> Result<Var<T>> {
        self.forward_act(x, mode, true)
    }

    /// The forward, activated (relu) where `activate`.
    fn forward_act(&mut self, x: &Var<T>, mode: Mode, activate: bool) -> Result<Var<T>> {
        let x_r = self.processed(x)?;
        let p = self.bank_params();
        // Profiling regions (`shiftgrad profile`): the bank convolution, then the shift-add.
        // The fused op (the merged bank's convolution and the shift-add in one, `Y` kept in
        // local memory on OpenCL, `ops::sw_fused`) for a sparse layer, and for a dense one on
        // OpenCL; a dense layer on the CPU runs conv2d and shift_add, the readable reference.
        let on_opencl = matches!(x_r.value().device(), Device::OpenCl(_));
        let fused_live = match self.sparse_live() {
            Some(l) => Some(l.clone()),
            None => on_opencl.then(|| self.all_live.clone()),
        };
        if let (Some(live), false) = (fused_live, self.unmerged_banks) {
            let merged = match self.banks.len() {
                1 => self.banks[0].clone(),
                _ => {
                    let _r = region::enter(REGION_BANK);
                    add_n(&self.banks.iter().collect::<Vec<_>>())?
                }
            };
            let fused = region::enter(REGION_FUSED);
            let (h, v, i) = sw_fused(&x_r, &merged, &self.tables, &live)?;
            drop(fused);
            return self.finish((h, v, i), x, mode, activate);
        }
        let bank = region::enter(REGION_BANK);
        if let Some(live) = self.sparse_live().cloned() {
            let y = if self.unmerged_banks {
                let paths = self
                    .banks
                    .iter()
                    .map(|w| bank_conv(&x_r, w, &live))
                    .collect::<Result<Vec<_>>>()?;
                add_n(&paths.iter().collect::<Vec<_>>())?
            } else if self.banks.len() == 1 {
                bank_conv(&x_r, &self.banks[0], &live)?
            } else {
                let merged = add_n(&self.banks.iter().collect::<Vec<_>>())?;
                bank_conv(&x_r, &merged, &live)?
            };
            drop(bank);
            let shift = region::enter(REGION_SHIFT_ADD);
            let (h, v, i) = shift_add_sparse(&y, &self.tables, &live)?;
            drop(shift);
            return self.finish((h, v, i), x, mode, activate);
        }
        let y = if self.banks.len() == 1 {
            conv2d(&x_r, &self.banks[0], None, p)?
        } else if self.unmerged_banks {
            let paths = self
                .banks
                .iter()
                .map(|w| conv2d(&x_r, w, None, p))
                .collect::<Result<Vec<_>>>()?;
            add_n(&paths.iter().collect::<Vec<_>>())?
        } else {
            let merged = add_n(&self.banks.iter().collect::<Vec<_>>())?;
            conv2d(&x_r, &merged, None, p)?
        };
        drop(bank);
        let shift = region::enter(REGION_SHIFT_ADD);
        let (h, v, i) = shift_add(&y, &self.tables)?;
        drop(shift);
        self.finish((h, v, i), x, mode, activate)
    }
}

impl<T: Real> Module<T> for ShiftWiseConv<T> {
    fn forward(&mut self, x: &Var<T>, mode: Mode) -> Result<Var<T>> {
        self.forward_act(x, mode, false)
    }

    fn own_parameters(&self) -> Vec<(String, &Var<T>, bool)> {
        let banks = self.banks.iter().enumerate();
        banks
            .map(|(q, b)| (format!("bank.{q}.weight"), b, true))
            .collect()
    }

    crate::children!(|this| "bn_h" => bn_h, "bn_v" => bn_v, "bn_i" => bn_i);

    /// The mask (where the layer is sparse), the walk, then the index tables.
    fn save_state(&self, prefix: &str, sd: &mut StateDict<T>) -> Result<()> {
        if let Some(live) = &self.live {
            sd.insert_int(
                join(prefix, "mask"),
                &[live.compact.len()],
                live.compact.iter().map(|&l| i32::from(l >= 0)).collect(),
            );
        }
        save_walk(self, prefix, sd)?;
        let t = &self.tables;
        sd.insert_int(
            join(prefix, "pad_hv"),
            &[t.reps * t.nk(), 2 * t.groups],
            t.pad_hv.clone(),
        );
        sd.insert_int(
            join(prefix, "idx_identit"),
            &[t.reps, t.groups],
            t.idx_identit.clone(),
        );
        let as_i32 = |v: &[usize]| v.iter().map(|&i| i as i32).collect::<Vec<_>>();
        sd.insert_int(
            join(prefix, "ghost_idx"),
            &[self.ghost_idx.len()],
            as_i32(&self.ghost_idx),
        );
        sd.insert_int(
            join(prefix, "rep_idx"),
            &[self.rep_idx.len()],
            as_i32(&self.rep_idx),
        );
        Ok(())
    }

    fn load_state(&mut self, prefix: &str, sd: &StateDict<T>) -> Result<()> {
        load_walk(self, prefix, sd)?;
        let t = &self.tables;
        let pad_hv = sd.int_shaped(&join(prefix, "pad_hv"), &[t.reps * t.nk(), 2 * t.groups])?;
        let idx = sd.int_shaped(&join(prefix, "idx_identit"), &[t.reps, t.groups])?;
        // The tables from the file are validated before use (permutations of the shifts,
        // identity indices inside their rep block); the error names the layer.
        let tables = ShiftTables::from_arrays(
            t.big,
            t.small,
            t.reps,
            t.groups,
            pad_hv.to_vec(),
            idx.to_vec(),
        )
        .map_err(|e| Error::Other(format!("state dict: {prefix}: {e}")))?;
        let read_idx = |name: &str, expected_len: usize| -> Result<Vec<usize>> {
            let (_, d) = sd.int(&join(prefix, name))?;
            if d.len() != expected_len
                || d.iter()
                    .any(|&i| i < 0 || i as usize >= self.config.channels)
            {
                return Err(Error::Other(format!(
                    "state dict: {} is not a valid channel list",
                    join(prefix, name)
                )));
            }
            Ok(d.iter().map(|&i| i as usize).collect())
        };
        let ghost_idx = read_idx("ghost_idx", self.ghost_idx.len())?;
        let rep_idx = read_idx("rep_idx", self.rep_idx.len())?;
        let mut all: Vec<usize> = ghost_idx.iter().chain(&rep_idx).copied().collect();
        all.sort_unstable();
        if all != (0..self.config.channels).collect::<Vec<_>>() {
            return Err(Error::Other(format!(
                "state dict: {} ghost/rep channels do not partition the input",
                prefix
            )));
        }
        // The mask, where the file has one (a dense checkpoint has none).
        let mask_key = join(prefix, "mask");
        let mask = match sd.names().any(|n| n == mask_key) {
            true => {
                let (_, values) = sd.int(&mask_key)?;
                Some(crate::sparsity::mask_from_i32(
                    &mask_key,
                    values,
                    self.kernels(),
                )?)
            }
            false => None,
        };
        self.tables = Rc::new(tables);
        self.ghost_idx = ghost_idx;
        self.rep_idx = rep_idx;
        match mask {
            // Zeroes the pruned kernels' weights, should the file hold anything else there.
            Some(m) => self.set_mask(&m),
            None => {
                self.live = None;
                Ok(())
            }
        }
    }
}
