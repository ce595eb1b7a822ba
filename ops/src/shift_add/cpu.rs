//! CPU reference for the shift-add: forward and backward, all written as gathers.
//!
//! Every loop nest is `(b, owner channel, row)` outside, `(g, j)` in the middle and `x`
//! innermost (contiguous). The valid range of the innermost loop (or of the row loop, for the
//! vertical path) depends only on the shift of one (channel, group) pair, so it is computed
//! once per pair ([`Span`]) and the inner loops carry no bounds checks.
//!
//! `Y` holds the live bank channels only ([`LiveChannels`], SPEC 1.6): the loops over "the
//! channels of rep o" visit its live channels in increasing order, and `Y`'s channel index is
//! the compact one. With every kernel live the compact index is the bank channel.

use super::{Dims, LiveChannels, ShiftTables};
use shiftgrad_tensor::{Real, Tensor};

/// The half-open range `lo..hi` of a destination index `d` for which the source index
/// `d - shift` lies in `0..src_len`, with `d` in `0..dst_len`; empty when none does.
fn valid(shift: i64, dst_len: usize, src_len: usize) -> (usize, usize) {
    let lo = shift.max(0);
    let hi = (dst_len as i64).min(src_len as i64 + shift);
    if hi <= lo {
        (0, 0)
    } else {
        (lo as usize, hi as usize)
    }
}

/// For one (channel, group) pair: the shift and the valid destination range.
#[derive(Debug, Clone, Copy)]
struct Span {
    shift: i64,
    lo: usize,
    hi: usize,
}

impl Span {
    fn new(shift: i64, dst_len: usize, src_len: usize) -> Self {
        let (lo, hi) = valid(shift, dst_len, src_len);
        Span { shift, lo, hi }
    }
    /// Source index of destination `d` (only for `d` in `lo..hi`).
    fn src(&self, d: usize) -> usize {
        (d as i64 - self.shift) as usize
    }
}

/// Spans for column `col0 + g` of `pad_hv` (g < G), indexed `[c * G + g]`, where the
/// destination index is `d = src + shift * sign`.
fn spans(t: &ShiftTables, col0: usize, sign: i64, dst_len: usize, src_len: usize) -> Vec<Span> {
    let cols = 2 * t.groups;
    let rows = t.pad_hv.len() / cols;
    let mut out = Vec::with_capacity(rows * t.groups);
    for c in 0..rows {
        for g in 0..t.groups {
            let s = t.pad_hv[c * cols + col0 + g] as i64;
            out.push(Span::new(sign * s, dst_len, src_len));
        }
    }
    out
}

/// Adds `src[span.src(d)]` to `dst[d]` for `d` in the span's range.
fn add_shifted<T: Real>(dst: &mut [T], src: &[T], span: &Span) {
    if span.lo >= span.hi {
        return;
    }
    let s0 = span.src(span.lo);
    for (d, &v) in dst[span.lo..span.hi]
        .iter_mut()
        .zip(&src[s0..s0 + (span.hi - span.lo)])
    {
        *d += v;
    }
}

fn add_row<T: Real>(dst: &mut [T], src: &[T]) {
    for (d, &v) in dst.iter_mut().zip(src) {
        *d += v;
    }
}

/// Forward, horizontal path: `Hout[b,o,y,x] = sum_g sum_j Y[b, o*nk+j, y+e, x - pad_hv[c,g]]`.
pub fn forward_h<T: Real>(
    y: &Tensor<T>,
    t: &ShiftTables,
    live: &LiveChannels,
    d: Dims,
) -> Tensor<T> {
    let (hp, wp, e) = (d.hp(), d.wp(), d.extra);
    // Destination x, source x - s: valid x in max(0, s)..min(W, Wp + s).
    let sp = spans(t, 0, 1, d.w, wp);
    let mut out = Tensor::zeros([d.batch, d.reps, d.h, d.w]);
    let (ydata, odata) = (y.data(), out.data_mut());
    for b in 0..d.batch {
        for o in 0..d.reps {
            for row in 0..d.h {
                let dst = &mut odata[((b * d.reps + o) * d.h + row) * d.w..][..d.w];
                for (l, c) in live.of_rep(o) {
                    let src = &ydata[((b * d.channels() + l) * hp + row + e) * wp..][..wp];
                    for g in 0..d.groups {
                        add_shifted(dst, src, &sp[c * d.groups + g]);
                    }
                }
            }
        }
    }
    out
}

/// Forward, vertical path: `Vout[b,o,y,x] = sum_g sum_j Y[b, o*nk+j, y - pad_hv[c,G+g], x+e]`.
pub fn forward_v<T: Real>(
    y: &Tensor<T>,
    t: &ShiftTables,
    live: &LiveChannels,
    d: Dims,
) -> Tensor<T> {
    let (hp, wp, e) = (d.hp(), d.wp(), d.extra);
    // Destination row y, source row y - s: valid y in max(0, s)..min(H, Hp + s).
    let sp = spans(t, t.groups, 1, d.h, hp);
    let mut out = Tensor::zeros([d.batch, d.reps, d.h, d.w]);
    let (ydata, odata) = (y.data(), out.data_mut());
    for b in 0..d.batch {
        for o in 0..d.reps {
            for row in 0..d.h {
                let dst = &mut odata[((b * d.reps + o) * d.h + row) * d.w..][..d.w];
                for (l, c) in live.of_rep(o) {
                    for g in 0..d.groups {
                        let span = &sp[c * d.groups + g];
                        if (span.lo..span.hi).contains(&row) {
                            let r = span.src(row);
                            let src = &ydata[((b * d.channels() + l) * hp + r) * wp + e..][..d.w];
                            add_row(dst, src);
                        }
                    }
                }
            }
        }
    }
    out
}

/// Forward, identity path: `Iout[b,o,y,x] = sum_g Y[b, idx_identit[o,g], y+e, x+e]` (a
/// pruned choice contributes nothing).
pub fn forward_i<T: Real>(
    y: &Tensor<T>,
    t: &ShiftTables,
    live: &LiveChannels,
    d: Dims,
) -> Tensor<T> {
    let (hp, wp, e) = (d.hp(), d.wp(), d.extra);
    let mut out = Tensor::zeros([d.batch, d.reps, d.h, d.w]);
    let (ydata, odata) = (y.data(), out.data_mut());
    for b in 0..d.batch {
        for o in 0..d.reps {
            for row in 0..d.h {
                let dst = &mut odata[((b * d.reps + o) * d.h + row) * d.w..][..d.w];
                for g in 0..d.groups {
                    let c = t.idx_identit[o * d.groups + g] as usize;
                    if let Some(l) = live.compact_of(c) {
                        let src = &ydata[((b * d.channels() + l) * hp + row + e) * wp + e..][..d.w];
                        add_row(dst, src);
                    }
                }
            }
        }
    }
    out
}

/// The backward of the whole op: `dY` from the output gradients that exist (`None`: that
/// output was not used), written once. Every element receives its horizontal terms, then its
/// vertical ones, then its identity ones, each in group order: the order of the OpenCL
/// kernel, so both backends give bitwise the same `dY`.
pub fn backward<T: Real>(
    [dh, dv, di]: [Option<&Tensor<T>>; 3],
    t: &ShiftTables,
    live: &LiveChannels,
    d: Dims,
) -> Tensor<T> {
    let mut dy = Tensor::zeros([d.batch, d.channels(), d.hp(), d.wp()]);
    if let Some(dh) = dh {
        add_backward_h(&mut dy, dh, t, live, d);
    }
    if let Some(dv) = dv {
        add_backward_v(&mut dy, dv, t, live, d);
    }
    if let Some(di) = di {
        add_backward_i(&mut dy, di, t, live, d);
    }
    dy
}

/// Adds the horizontal path's terms to `dy`: `dY[b,c,u,v] += sum_g dHout[b,o,u-e, v + pad_hv[c,g]]`.
fn add_backward_h<T: Real>(
    dy: &mut Tensor<T>,
    dh: &Tensor<T>,
    t: &ShiftTables,
    live: &LiveChannels,
    d: Dims,
) {
    let (hp, wp, e) = (d.hp(), d.wp(), d.extra);
    // Destination v, source v + s: valid v in max(0, -s)..min(Wp, W - s).
    let sp = spans(t, 0, -1, wp, d.w);
    let (gdata, ydata) = (dh.data(), dy.data_mut());
    for b in 0..d.batch {
        for (l, &c) in live.channels.iter().enumerate() {
            let (c, o) = (c as usize, c as usize / d.nk);
            // Rows u with u - e in 0..H; the others stay zero.
            for u in e..e + d.h {
                let dst = &mut ydata[((b * d.channels() + l) * hp + u) * wp..][..wp];
                let src = &gdata[((b * d.reps + o) * d.h + u - e) * d.w..][..d.w];
                for g in 0..d.groups {
                    add_shifted(dst, src, &sp[c * d.groups + g]);
                }
            }
        }
    }
}

/// Adds the vertical path's terms: `dY[b,c,u,v] += sum_g dVout[b,o, u + pad_hv[c,G+g], v-e]`.
fn add_backward_v<T: Real>(
    dy: &mut Tensor<T>,
    dv: &Tensor<T>,
    t: &ShiftTables,
    live: &LiveChannels,
    d: Dims,
) {
    let (hp, wp, e) = (d.hp(), d.wp(), d.extra);
    // Destination row u, source row u + s: valid u in max(0, -s)..min(Hp, H - s).
    let sp = spans(t, t.groups, -1, hp, d.h);
    let (gdata, ydata) = (dv.data(), dy.data_mut());
    for b in 0..d.batch {
        for (l, &c) in live.channels.iter().enumerate() {
            let (c, o) = (c as usize, c as usize / d.nk);
            for u in 0..hp {
                let dst = &mut ydata[((b * d.channels() + l) * hp + u) * wp + e..][..d.w];
                for g in 0..d.groups {
                    let span = &sp[c * d.groups + g];
                    if (span.lo..span.hi).contains(&u) {
                        let r = span.src(u);
                        let src = &gdata[((b * d.reps + o) * d.h + r) * d.w..][..d.w];
                        add_row(dst, src);
                    }
                }
            }
        }
    }
}

/// Adds the identity path's terms: `dY[b,c,u,v] += sum_g [c == idx_identit[o,g]] dIout[b,o,u-e,v-e]`.
fn add_backward_i<T: Real>(
    dy: &mut Tensor<T>,
    di: &Tensor<T>,
    t: &ShiftTables,
    live: &LiveChannels,
    d: Dims,
) {
    let (hp, wp, e) = (d.hp(), d.wp(), d.extra);
    let (gdata, ydata) = (di.data(), dy.data_mut());
    for b in 0..d.batch {
        for (l, &c) in live.channels.iter().enumerate() {
            let (c, o) = (c as usize, c as usize / d.nk);
            for u in e..e + d.h {
                let dst = &mut ydata[((b * d.channels() + l) * hp + u) * wp + e..][..d.w];
                let src = &gdata[((b * d.reps + o) * d.h + u - e) * d.w..][..d.w];
                for g in 0..d.groups {
                    if t.idx_identit[o * d.groups + g] as usize == c {
                        add_row(dst, src);
                    }
                }
            }
        }
    }
}

/// Number of in-bounds terms of the horizontal and vertical paths (the additions each
/// performs, forward or backward), for one batch element: the live channels' terms only.
pub fn terms_hv(t: &ShiftTables, live: &LiveChannels, d: Dims) -> (u64, u64) {
    let live_terms = |sp: Vec<Span>| -> usize {
        live.channels
            .iter()
            .flat_map(|&c| &sp[c as usize * t.groups..(c as usize + 1) * t.groups])
            .map(|s| s.hi - s.lo)
            .sum()
    };
    let h = live_terms(spans(t, 0, 1, d.w, d.wp()));
    let v = live_terms(spans(t, t.groups, 1, d.h, d.hp()));
    ((h * d.h) as u64, (v * d.w) as u64)
}
