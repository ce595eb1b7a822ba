//! Comparisons for evidence: the one place where a test (or `shiftgrad equiv`) decides that two
//! tensors agree.
//!
//! Every parity, golden, equivalence and module test goes through [`diff`] / [`check`], so
//! their failure modes are the same everywhere:
//!
//! * **NaN and Inf fail.** An element that is not finite in either tensor (or in the scale)
//!   is counted in [`Diff::non_finite`], and [`Diff::passes`] is false whenever that count is
//!   not zero. (The helper this replaces folded differences with `f64::max`, which drops a NaN
//!   difference, so an all-NaN result "matched".) Tests that want NaN check for it directly.
//! * **The scale is explicit.** An error is divided by a scale chosen by the caller:
//!   [`Scale::Global`] (the largest `|want|`: simple, but an error in a channel whose values
//!   are much smaller than the rest is hidden), [`Scale::PerChannel`] (the largest `|want|` of
//!   the element's slice along one axis), [`Scale::Terms`] (one scale per element, typically
//!   the same computation run on `|inputs|`: the sum of the absolute values of the terms that
//!   were added, the bound floating-point error actually scales with) or [`Scale::Absolute`].
//!   A non-zero error over a zero scale is infinite: it fails.
//!
//! Device tensors are read back to the host first.

use crate::{Error, Real, Result, Tensor};

/// What an element's error is divided by.
#[derive(Clone, Copy)]
pub enum Scale<'a, T: Real> {
    /// No scaling: absolute errors.
    Absolute,
    /// The largest `|want|` of the whole tensor.
    Global,
    /// The largest `|want|` of the element's slice along this axis (1 for NCHW channels, 0 for
    /// the output channels of a convolution weight).
    PerChannel(usize),
    /// One scale per element (same shape as the tensors), e.g. the computation run on
    /// absolute values: `sum |terms|`.
    Terms(&'a Tensor<T>),
}

/// The result of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Diff {
    /// Number of elements compared.
    pub len: usize,
    /// Largest `|got - want|` over the finite pairs.
    pub max_abs: f64,
    /// Largest scaled error over the finite pairs (`INFINITY` for a non-zero error over a zero
    /// scale).
    pub max_rel: f64,
    /// Flat index of the largest scaled error.
    pub worst: Option<usize>,
    /// `(got, want, scale)` at [`Diff::worst`].
    pub worst_values: Option<(f64, f64, f64)>,
    /// Elements where `got`, `want` or the scale is NaN or infinite.
    pub non_finite: usize,
    /// Flat index and `(got, want)` of the first such element.
    pub first_non_finite: Option<(usize, f64, f64)>,
}

impl Diff {
    /// True when every element is finite and the largest scaled error is at most `tol`.
    pub fn passes(&self, tol: f64) -> bool {
        self.non_finite == 0 && self.max_rel <= tol
    }
    /// The largest scaled error as one number: infinite when any element was not finite, so
    /// that `error() <= tol` is exactly [`Diff::passes`].
    pub fn error(&self) -> f64 {
        if self.non_finite > 0 {
            f64::INFINITY
        } else {
            self.max_rel
        }
    }
}

impl std::fmt::Display for Diff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "max scaled error {:.3e}, max abs error {:.3e}",
            self.max_rel, self.max_abs
        )?;
        if let (Some(i), Some((g, w, s))) = (self.worst, self.worst_values) {
            write!(f, " (element {i}: got {g:e}, want {w:e}, scale {s:e})")?;
        }
        if let Some((i, g, w)) = self.first_non_finite {
            write!(
                f,
                "; {} of {} elements not finite, first at element {i}: got {g}, want {w}",
                self.non_finite, self.len
            )?;
        }
        Ok(())
    }
}

/// The largest of `values` (0 for none), NaN as soon as one is NaN: `f64::max` drops a NaN,
/// which is how an all-NaN result once "matched". Used wherever errors are folded.
pub fn nan_max(values: impl Iterator<Item = f64>) -> f64 {
    values.fold(0.0, |m, v| {
        if v.is_nan() || m.is_nan() {
            f64::NAN
        } else {
            m.max(v)
        }
    })
}

/// Per-element scales for `want` under `scale`.
fn scales<T: Real>(want: &[T], dims: &[usize], scale: Scale<'_, T>) -> Result<Vec<f64>> {
    let n = want.len();
    Ok(match scale {
        Scale::Absolute => vec![1.0; n],
        Scale::Global => {
            // NaN-propagating maximum: a NaN in `want` makes the scale NaN (counted below).
            vec![nan_max(want.iter().map(|v| v.as_f64().abs())); n]
        }
        Scale::PerChannel(axis) => {
            let Some(&channels) = dims.get(axis) else {
                return Err(Error::arg(
                    "compare",
                    format!("axis {axis} of a tensor with dims {dims:?}"),
                ));
            };
            let inner: usize = dims[axis + 1..].iter().product();
            let channel = |i: usize| (i / inner.max(1)) % channels.max(1);
            let mut m = vec![0.0f64; channels];
            for (i, v) in want.iter().enumerate() {
                let a = v.as_f64().abs();
                let c = &mut m[channel(i)];
                if a.is_nan() || a > *c {
                    *c = a;
                }
            }
            (0..n).map(|i| m[channel(i)]).collect()
        }
        Scale::Terms(t) => {
            let v = t.to_vec()?;
            if v.len() != n {
                return Err(Error::shape(
                    "compare",
                    format!("scale has {} elements, the tensors {n}", v.len()),
                ));
            }
            v.iter().map(|s| s.as_f64().abs()).collect()
        }
    })
}

/// Compares `got` with `want` (same shape) under `scale`.
pub fn diff<T: Real>(got: &Tensor<T>, want: &Tensor<T>, scale: Scale<'_, T>) -> Result<Diff> {
    got.check_same_shape(want, "compare")?;
    let (g, w) = (got.to_vec()?, want.to_vec()?);
    let s = scales(&w, want.dims(), scale)?;
    let mut d = Diff {
        len: g.len(),
        max_abs: 0.0,
        max_rel: 0.0,
        worst: None,
        worst_values: None,
        non_finite: 0,
        first_non_finite: None,
    };
    for (i, ((g, w), s)) in g.iter().zip(&w).zip(&s).enumerate() {
        let (g, w) = (g.as_f64(), w.as_f64());
        if !(g.is_finite() && w.is_finite() && s.is_finite()) {
            d.non_finite += 1;
            d.first_non_finite.get_or_insert((i, g, w));
            continue;
        }
        let err = (g - w).abs();
        d.max_abs = d.max_abs.max(err);
        let rel = if err == 0.0 { 0.0 } else { err / s };
        if rel > d.max_rel || (d.worst.is_none() && rel > 0.0) {
            d.max_rel = rel;
            d.worst = Some(i);
            d.worst_values = Some((g, w, *s));
        }
    }
    Ok(d)
}

/// `Ok` with the comparison when it passes at `tol`, else an error message naming `what`,
/// the tolerance and the worst (or first non-finite) element.
pub fn check<T: Real>(
    what: &str,
    got: &Tensor<T>,
    want: &Tensor<T>,
    scale: Scale<'_, T>,
    tol: f64,
) -> std::result::Result<Diff, String> {
    let d = diff(got, want, scale).map_err(|e| format!("{what}: {e}"))?;
    if d.passes(tol) {
        Ok(d)
    } else {
        Err(format!("{what}: {d} (tolerance {tol:.0e})"))
    }
}

/// Panics with [`check`]'s message unless `got` matches `want`; returns the comparison.
#[track_caller]
pub fn assert_close<T: Real>(
    what: &str,
    got: &Tensor<T>,
    want: &Tensor<T>,
    scale: Scale<'_, T>,
    tol: f64,
) -> Diff {
    match check(what, got, want, scale, tol) {
        Ok(d) => d,
        Err(msg) => panic!("{msg}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f64]) -> Tensor<f64> {
        Tensor::new([v.len()], v.to_vec()).unwrap()
    }

    #[test]
    fn equal_tensors_pass() {
        let a = t(&[1.0, -2.0, 0.0]);
        let d = diff(&a, &a, Scale::Global).unwrap();
        assert!(d.passes(0.0), "{d}");
        assert_eq!(d.worst, None);
    }

    #[test]
    fn nan_anywhere_fails() {
        let want = t(&[1.0, 2.0, 3.0]);
        for scale in [Scale::Absolute, Scale::Global, Scale::PerChannel(0)] {
            let d = diff(&t(&[1.0, f64::NAN, 3.0]), &want, scale).unwrap();
            assert!(!d.passes(f64::INFINITY), "NaN in got passed: {d}");
            assert!(d.error().is_infinite());
            assert_eq!(d.non_finite, 1);
            assert_eq!(d.first_non_finite.map(|f| f.0), Some(1));
            let d = diff(&want, &t(&[f64::NAN, 2.0, 3.0]), scale).unwrap();
            assert!(!d.passes(f64::INFINITY), "NaN in want passed: {d}");
        }
        // All NaN on both sides: the case the old helper reported as a perfect match.
        let nan = t(&[f64::NAN; 4]);
        assert!(!diff(&nan, &nan, Scale::Global).unwrap().passes(1.0));
        let msg = check("out", &nan, &nan, Scale::Global, 1e-6).unwrap_err();
        assert!(msg.contains("4 of 4 elements not finite"), "{msg}");
    }

    #[test]
    fn inf_fails_even_when_equal() {
        let a = t(&[f64::INFINITY, 1.0]);
        let d = diff(&a, &a, Scale::Absolute).unwrap();
        assert!(!d.passes(1.0));
        let d = diff(
            &t(&[f64::NEG_INFINITY, 1.0]),
            &t(&[0.0, 1.0]),
            Scale::Absolute,
        )
        .unwrap();
        assert!(!d.passes(1.0));
        // A non-finite scale fails too.
        let s = t(&[f64::NAN, 1.0]);
        let d = diff(&t(&[0.0, 1.0]), &t(&[0.0, 1.0]), Scale::Terms(&s)).unwrap();
        assert!(!d.passes(1.0));
    }

    #[test]
    fn error_over_zero_scale_fails() {
        let d = diff(&t(&[1e-30, 0.0]), &t(&[0.0, 0.0]), Scale::Global).unwrap();
        assert!(d.max_rel.is_infinite() && !d.passes(1e300));
    }

    /// One bad element in a channel whose values are 1e-6 of the others': a global scale hides
    /// it, a per-channel or per-term scale catches it.
    #[test]
    fn single_bad_element_in_small_channel() {
        // (N=1, C=2, H=2, W=2): channel 0 is of order 1, channel 1 of order 1e-6.
        let want = Tensor::new(
            [1, 2, 2, 2],
            vec![1.0, -0.5, 0.8, 0.3, 1e-6, 2e-6, -1e-6, 3e-6],
        )
        .unwrap();
        let mut g = want.to_vec().unwrap();
        g[6] = 1e-6; // sign flipped: 100 % wrong in its channel
        let got = Tensor::new([1, 2, 2, 2], g).unwrap();
        let global = diff(&got, &want, Scale::Global).unwrap();
        assert!(
            global.passes(1e-5),
            "the global scale should hide it: {global}"
        );
        let per_channel = diff(&got, &want, Scale::PerChannel(1)).unwrap();
        assert!(!per_channel.passes(1e-5), "{per_channel}");
        assert_eq!(per_channel.worst, Some(6));
        let terms = want.map(|v: f64| v.abs());
        let d = diff(&got, &want, Scale::Terms(&terms)).unwrap();
        assert!(!d.passes(1e-5) && d.worst == Some(6), "{d}");
    }

    #[test]
    fn shapes_and_axes_are_checked() {
        assert!(diff(&t(&[1.0]), &t(&[1.0, 2.0]), Scale::Global).is_err());
        assert!(diff(&t(&[1.0]), &t(&[1.0]), Scale::PerChannel(3)).is_err());
        let s = t(&[1.0]);
        assert!(diff(&t(&[1.0, 2.0]), &t(&[1.0, 2.0]), Scale::Terms(&s)).is_err());
    }
}
