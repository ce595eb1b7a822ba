//! The gradcheck suite: every op's configurations, run through [`gradcheck_on`] in f64. Test
//! support (public for the integration tests and `shiftgrad gradcheck`), not part of the op API.
//!
//! Each op directory contributes a `cases()` list. `shiftgrad gradcheck` and the integration
//! test `tests/gradcheck.rs` run the same list, so the table a user sees is the test.

use shiftgrad_autograd::{gradcheck_on, GradcheckReport, Tolerance, Var};
use shiftgrad_tensor::{init, Device, Result, Shape, Tensor};

/// The function under test: inputs to one output (any shape).
pub type CaseFn = Box<dyn Fn(&[Var<f64>]) -> Result<Var<f64>>>;

/// One configuration of one op.
pub struct GradCase {
    /// Op name as given to `--op`.
    pub op: &'static str,
    /// A short description of the configuration ("3x3 s2 pad(1,1,1,1) g2").
    pub config: String,
    /// The inputs, in f64.
    pub inputs: Vec<Tensor<f64>>,
    /// Which inputs are checked.
    pub wrt: Vec<bool>,
    /// The computation.
    pub f: CaseFn,
    /// Tolerances (the default unless the case says why not).
    pub tol: Tolerance,
}

impl GradCase {
    /// A case checking every input, default tolerance.
    pub fn new(
        op: &'static str,
        config: impl Into<String>,
        inputs: Vec<Tensor<f64>>,
        f: CaseFn,
    ) -> Self {
        let wrt = vec![true; inputs.len()];
        GradCase {
            op,
            config: config.into(),
            inputs,
            wrt,
            f,
            tol: Tolerance::default(),
        }
    }

    /// Runs the check on the CPU (cotangent seeded from the config text, so each case is
    /// reproducible).
    pub fn run(&self) -> Result<GradcheckReport> {
        self.run_on(&Device::Cpu)
    }

    /// Runs the check with every evaluation on `device`.
    pub fn run_on(&self, device: &Device) -> Result<GradcheckReport> {
        let seed = self.config.bytes().fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100000001b3)
        });
        gradcheck_on(device, &*self.f, &self.inputs, &self.wrt, self.tol, seed)
    }
}

/// Seeded random input in [-1, 1) for a case.
pub fn input(shape: impl Into<Shape>, seed: u64) -> Tensor<f64> {
    init::uniform(shape, -1.0, 1.0, &mut init::rng(seed))
}

/// Every op's cases, in a stable order.
pub fn all_cases() -> Vec<GradCase> {
    let mut cases = Vec::new();
    cases.extend(crate::relu::cases::cases());
    cases.extend(crate::reduce::cases::cases());
    cases.extend(crate::elementwise::cases::cases());
    cases.extend(crate::channels::cases::cases());
    cases.extend(crate::reshape::cases::cases());
    cases.extend(crate::batch_norm::cases::cases());
    cases.extend(crate::bn_sum::cases::cases());
    cases.extend(crate::linear::cases::cases());
    cases.extend(crate::pool::cases::cases());
    cases.extend(crate::cross_entropy::cases::cases());
    cases.extend(crate::conv2d::cases::cases());
    cases.extend(crate::shift_add::cases::cases());
    cases.extend(crate::bank_conv::cases::cases());
    cases.extend(crate::sw_fused::cases::cases());
    cases
}

/// The op names present in the suite, in order, without repeats.
pub fn op_names(cases: &[GradCase]) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Vec::new();
    for c in cases {
        if !names.contains(&c.op) {
            names.push(c.op);
        }
    }
    names
}
