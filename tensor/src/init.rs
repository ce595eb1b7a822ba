//! Seeded initialisers. Every random draw in shiftgrad comes from an [`Rng`] seeded by the
//! caller, so a run is reproducible from its command line. The generator is ChaCha8: portable
//! (the same stream on every platform) and its position can be saved and restored.

use crate::{Real, Shape, Tensor};
use rand::{Rng as _, SeedableRng};

/// The project's random number generator.
pub type Rng = rand_chacha::ChaCha8Rng;

/// A generator seeded with `seed`.
pub fn rng(seed: u64) -> Rng {
    Rng::seed_from_u64(seed)
}

/// One standard normal draw (Box-Muller; we do not depend on rand_distr for one formula).
pub fn standard_normal(rng: &mut Rng) -> f64 {
    // u1 in (0, 1] so that ln(u1) is finite.
    let u1: f64 = 1.0 - rng.gen::<f64>();
    let u2: f64 = rng.gen::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Normal(mean, std) elements.
pub fn normal<T: Real>(shape: impl Into<Shape>, mean: f64, std: f64, rng: &mut Rng) -> Tensor<T> {
    Tensor::from_fn(shape, |_| T::of_f64(mean + std * standard_normal(rng)))
}

/// Uniform elements in `[lo, hi)`.
pub fn uniform<T: Real>(shape: impl Into<Shape>, lo: f64, hi: f64, rng: &mut Rng) -> Tensor<T> {
    Tensor::from_fn(shape, |_| T::of_f64(lo + (hi - lo) * rng.gen::<f64>()))
}

/// Kaiming (He) normal for a ReLU network: std = sqrt(2 / fan_in).
pub fn kaiming_normal<T: Real>(shape: impl Into<Shape>, fan_in: usize, rng: &mut Rng) -> Tensor<T> {
    normal(shape, 0.0, (2.0 / fan_in.max(1) as f64).sqrt(), rng)
}

/// Kaiming (He) uniform for a ReLU network: bound = sqrt(6 / fan_in).
pub fn kaiming_uniform<T: Real>(
    shape: impl Into<Shape>,
    fan_in: usize,
    rng: &mut Rng,
) -> Tensor<T> {
    let bound = (6.0 / fan_in.max(1) as f64).sqrt();
    uniform(shape, -bound, bound, rng)
}

/// A uniformly random permutation of `0..n` (Fisher-Yates).
pub fn permutation(n: usize, rng: &mut Rng) -> Vec<usize> {
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.gen_range(0..=i);
        p.swap(i, j);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_draws_repeat() {
        let a: Tensor<f64> = normal([100], 0.0, 1.0, &mut rng(7));
        let b: Tensor<f64> = normal([100], 0.0, 1.0, &mut rng(7));
        let c: Tensor<f64> = normal([100], 0.0, 1.0, &mut rng(8));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn moments_are_plausible() {
        let t: Tensor<f64> = normal([20000], 1.0, 2.0, &mut rng(1));
        let mean = t.sum_all().unwrap() / 20000.0;
        let var = t
            .data()
            .iter()
            .map(|x| (x - mean) * (x - mean))
            .sum::<f64>()
            / 20000.0;
        assert!((mean - 1.0).abs() < 0.05, "{mean}");
        assert!((var.sqrt() - 2.0).abs() < 0.05, "{var}");
        let k: Tensor<f32> = kaiming_uniform([1000], 6, &mut rng(2));
        assert!(k.max_abs().unwrap() <= 1.0);
        assert!(k.max_abs().unwrap() > 0.9);
    }

    #[test]
    fn permutation_is_a_permutation() {
        let mut p = permutation(17, &mut rng(3));
        p.sort();
        assert_eq!(p, (0..17).collect::<Vec<_>>());
    }
}
