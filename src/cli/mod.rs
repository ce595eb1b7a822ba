//! The subcommands of the `shiftgrad` binary, one module each.

pub mod bench;
pub mod compare;
pub mod equiv;
pub mod erf;
pub mod experiment;
pub mod gradcheck;
pub mod profile;

use shiftgrad_nn::sparsity::{init_masks, SparseConfig, SparseInit};
use shiftgrad_tensor::{init, Error, Result};

/// The uniform random mask of `n` kernels at `sparsity` (exactly `round((1 - sparsity) n)`
/// live), drawn from `rng`; all live (and nothing drawn) at sparsity 0.
pub fn uniform_mask(n: usize, sparsity: f64, rng: &mut init::Rng) -> Vec<bool> {
    let cfg = SparseConfig {
        sparsity,
        init: SparseInit::Uniform,
        ..SparseConfig::default()
    };
    init_masks(&[vec![0.0; n]], &cfg, rng).remove(0)
}

/// Checks a `--sparsity` value: in `[0, 1)`, not NaN.
pub fn check_sparsity(op: &'static str, sparsity: f64) -> Result<()> {
    if (0.0..1.0).contains(&sparsity) {
        Ok(())
    } else {
        Err(Error::arg(
            op,
            format!("--sparsity must be in [0, 1), got {sparsity}"),
        ))
    }
}
