//! CPU reference for conv2d: three direct kernels (forward, data gradient, weight gradient) and
//! the bias-gradient sum.
//!
//! All three walk the same index map `iy = oy*sh + ky - top`, `ix = ox*sw + kx - left`. For
//! every kernel tap `(ky, kx)` the output rows and columns that read inside the input are two
//! ranges ([`valid_outputs`]), so a tap is a list of [`Segment`]s: runs of consecutive output
//! columns of one row, with the input position of the first. [`taps`] computes them once per
//! call; the kernels then loop `tap -> segment -> column`, the innermost loop a plain slice
//! over contiguous output columns (stride 1: an axpy or dot the compiler vectorises). Padding is
//! never materialised and never tested per element, and a kernel larger than the map (13x3 on a
//! 6x6 map) just has shorter or no segments for its outer taps. With stride 1, when a tap
//! covers whole rows and the output is as wide as the input (every tap of a 1x1 convolution or
//! of a KHx1 one without width padding, the centre column of a "same" 3x3), its rows are
//! contiguous in both input and output and merge into one segment over the whole block, so a
//! pointwise convolution runs one long axpy per channel pair.
//!
//! Each kernel writes disjoint items of its output (forward: an output plane `(n, co)`; data
//! gradient: an input plane `(n, ci)`; weight gradient: the filter of one output channel), so
//! items are split between threads with `std::thread::scope`, and every element is computed by
//! one thread in a fixed order: the result does not depend on the number of threads.
//!
//! We rejected the per-output-row order `oy -> ky -> kx -> ox` (it recomputes the valid taps
//! for every row and cannot merge rows) and per-element bounds checks (a branch in the
//! innermost loop defeats vectorisation).

use super::Geometry;
use shiftgrad_tensor::{Real, Tensor};
use std::ops::Range;

/// Below this many multiply-accumulates a kernel runs on the calling thread: spawning costs
/// more than it saves.
const PARALLEL_MIN_MACS: u64 = 1 << 18;
/// At most this many threads per kernel (the training loop has its own parallelism budget).
const MAX_THREADS: usize = 2;

/// The number of threads for a kernel of `macs` multiply-accumulates.
pub fn threads_for(macs: u64) -> usize {
    if macs < PARALLEL_MIN_MACS {
        return 1;
    }
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_THREADS)
}

/// The outputs `o < out_len` whose input index `o*stride + k - pad` lies in `0..in_len`.
fn valid_outputs(
    out_len: usize,
    in_len: usize,
    stride: usize,
    pad: usize,
    k: usize,
) -> Range<usize> {
    let lo = if k >= pad {
        0
    } else {
        (pad - k).div_ceil(stride)
    };
    let hi = if in_len + pad > k {
        (in_len + pad - k).div_ceil(stride).min(out_len)
    } else {
        0
    };
    lo..hi.max(lo)
}

/// `len` consecutive output columns starting at flat index `out` of an output plane, reading
/// the input plane from flat index `inp` every `sw` elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    out: usize,
    inp: usize,
    len: usize,
}

/// One kernel tap: its flat index `ky*KW + kx` in a filter and the segments it touches.
struct Tap {
    k: usize,
    segments: Vec<Segment>,
}

/// The taps that read inside the input at all, with their segments.
fn taps(g: &Geometry) -> Vec<Tap> {
    let (sh, sw) = g.p.stride;
    let (top, left) = (g.p.pad[0], g.p.pad[2]);
    let mut taps = Vec::with_capacity(g.kh * g.kw);
    for ky in 0..g.kh {
        let rows = valid_outputs(g.ho, g.h, sh, top, ky);
        for kx in 0..g.kw {
            let cols = valid_outputs(g.wo, g.w, sw, left, kx);
            if rows.is_empty() || cols.is_empty() {
                continue;
            }
            // Both subtractions are exact: the ranges start inside the input.
            let input = |oy: usize| (oy * sh + ky - top) * g.w + cols.start * sw + kx - left;
            let output = |oy: usize| oy * g.wo + cols.start;
            let full_rows = sh == 1 && sw == 1 && g.w == g.wo && cols.len() == g.wo;
            let segments = if full_rows {
                vec![Segment {
                    out: output(rows.start),
                    inp: input(rows.start),
                    len: rows.len() * g.wo,
                }]
            } else {
                rows.clone()
                    .map(|oy| Segment {
                        out: output(oy),
                        inp: input(oy),
                        len: cols.len(),
                    })
                    .collect()
            };
            taps.push(Tap {
                k: ky * g.kw + kx,
                segments,
            });
        }
    }
    taps
}

/// `dst[i] += a * src[i*stride]`.
#[inline]
fn axpy_gather<T: Real>(dst: &mut [T], a: T, src: &[T], stride: usize) {
    if stride == 1 {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d += a * s;
        }
    } else {
        for (d, &s) in dst.iter_mut().zip(src.iter().step_by(stride)) {
            *d += a * s;
        }
    }
}

/// `dst[i*stride] += a * src[i]`.
#[inline]
fn axpy_scatter<T: Real>(dst: &mut [T], stride: usize, a: T, src: &[T]) {
    if stride == 1 {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d += a * s;
        }
    } else {
        for (d, &s) in dst.iter_mut().step_by(stride).zip(src) {
            *d += a * s;
        }
    }
}

/// `sum_i a[i] * b[i*stride]`, with four partial sums so that stride 1 vectorises.
#[inline]
fn dot<T: Real>(a: &[T], b: &[T], stride: usize) -> T {
    if stride != 1 {
        return a
            .iter()
            .zip(b.iter().step_by(stride))
            .fold(T::zero(), |s, (&p, &q)| s + p * q);
    }
    let b = &b[..a.len()];
    let mut lanes = [T::zero(); 4];
    let (a4, b4) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: T = a4
        .remainder()
        .iter()
        .zip(b4.remainder())
        .map(|(&p, &q)| p * q)
        .sum();
    for (p, q) in a4.zip(b4) {
        for l in 0..4 {
            lanes[l] += p[l] * q[l];
        }
    }
    (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]) + tail
}

/// Calls `f(first_item, items)` on `out` cut into items of `item_len` elements, the items split
/// into `threads` contiguous runs processed in parallel.
fn for_items<T: Real>(
    out: &mut [T],
    item_len: usize,
    threads: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    let items = out.len().checked_div(item_len).unwrap_or(0);
    if threads <= 1 || items <= 1 {
        f(0, out);
        return;
    }
    let per_thread = items.div_ceil(threads);
    std::thread::scope(|s| {
        for (t, run) in out.chunks_mut(per_thread * item_len).enumerate() {
            let f = &f;
            s.spawn(move || f(t * per_thread, run));
        }
    });
}

/// `y = conv(x, w) + b`.
pub fn forward<T: Real>(
    g: &Geometry,
    x: &Tensor<T>,
    w: &Tensor<T>,
    b: Option<&Tensor<T>>,
    threads: usize,
) -> Tensor<T> {
    let (x, w) = (x.data(), w.data());
    let b = b.map(|b| b.data());
    let (cig, cog) = (g.cig(), g.cog());
    let (plane_in, plane_out, filter_taps) = (g.h * g.w, g.ho * g.wo, g.kh * g.kw);
    let sw = g.p.stride.1;
    let taps = taps(g);
    let mut y = Tensor::zeros(g.y_shape());
    for_items(y.data_mut(), plane_out, threads, |first, planes| {
        for (i, y_plane) in planes.chunks_mut(plane_out).enumerate() {
            let (n, co) = ((first + i) / g.c_out, (first + i) % g.c_out);
            y_plane.fill(b.map_or(T::zero(), |b| b[co]));
            let group = co / cog;
            for ci in 0..cig {
                let x_plane = &x[(n * g.c_in + group * cig + ci) * plane_in..][..plane_in];
                let kernel = &w[(co * cig + ci) * filter_taps..][..filter_taps];
                for tap in &taps {
                    let wv = kernel[tap.k];
                    for s in &tap.segments {
                        axpy_gather(&mut y_plane[s.out..][..s.len], wv, &x_plane[s.inp..], sw);
                    }
                }
            }
        }
    });
    y
}

/// `dx = conv^T(dy, w)`: every output gradient scattered back through the kernel.
pub fn data_grad<T: Real>(
    g: &Geometry,
    dy: &Tensor<T>,
    w: &Tensor<T>,
    threads: usize,
) -> Tensor<T> {
    let (dy, w) = (dy.data(), w.data());
    let (cig, cog) = (g.cig(), g.cog());
    let (plane_in, plane_out, filter_taps) = (g.h * g.w, g.ho * g.wo, g.kh * g.kw);
    let sw = g.p.stride.1;
    let taps = taps(g);
    let mut dx = Tensor::zeros([g.n, g.c_in, g.h, g.w]);
    for_items(dx.data_mut(), plane_in, threads, |first, planes| {
        for (i, dx_plane) in planes.chunks_mut(plane_in).enumerate() {
            let (n, c) = ((first + i) / g.c_in, (first + i) % g.c_in);
            let (group, ci) = (c / cig, c % cig);
            for co in group * cog..(group + 1) * cog {
                let dy_plane = &dy[(n * g.c_out + co) * plane_out..][..plane_out];
                let kernel = &w[(co * cig + ci) * filter_taps..][..filter_taps];
                for tap in &taps {
                    let wv = kernel[tap.k];
                    for s in &tap.segments {
                        axpy_scatter(&mut dx_plane[s.inp..], sw, wv, &dy_plane[s.out..][..s.len]);
                    }
                }
            }
        }
    });
    dx
}

/// `dw[co, ci, ky, kx] = sum_{n, oy, ox} dy[n, co, oy, ox] * x[n, ci', iy, ix]`.
pub fn weight_grad<T: Real>(
    g: &Geometry,
    dy: &Tensor<T>,
    x: &Tensor<T>,
    threads: usize,
) -> Tensor<T> {
    let (dy, x) = (dy.data(), x.data());
    let (cig, cog) = (g.cig(), g.cog());
    let (plane_in, plane_out, filter_taps) = (g.h * g.w, g.ho * g.wo, g.kh * g.kw);
    let sw = g.p.stride.1;
    let taps = taps(g);
    let filter = cig * filter_taps;
    let mut dw = Tensor::zeros([g.c_out, cig, g.kh, g.kw]);
    if filter == 0 {
        return dw; // no input channels: an empty weight
    }
    for_items(dw.data_mut(), filter, threads, |first, filters| {
        for (i, dw_filter) in filters.chunks_mut(filter).enumerate() {
            let co = first + i;
            let group = co / cog;
            for (ci, dw_kernel) in dw_filter.chunks_mut(filter_taps).enumerate() {
                for n in 0..g.n {
                    let x_plane = &x[(n * g.c_in + group * cig + ci) * plane_in..][..plane_in];
                    let dy_plane = &dy[(n * g.c_out + co) * plane_out..][..plane_out];
                    for tap in &taps {
                        dw_kernel[tap.k] += tap
                            .segments
                            .iter()
                            .map(|s| dot(&dy_plane[s.out..][..s.len], &x_plane[s.inp..], sw))
                            .fold(T::zero(), |acc, d| acc + d);
                    }
                }
            }
        }
    });
    dw
}

/// `db[co] = sum_{n, oy, ox} dy[n, co, oy, ox]`.
pub fn bias_grad<T: Real>(g: &Geometry, dy: &Tensor<T>) -> Tensor<T> {
    let plane_out = g.ho * g.wo;
    let mut db = Tensor::zeros([g.c_out]);
    if plane_out > 0 {
        for (i, dy_plane) in dy.data().chunks(plane_out).enumerate() {
            db.data_mut()[i % g.c_out] += dy_plane.iter().copied().sum::<T>();
        }
    }
    db
}
