#!/usr/bin/env python3
"""Checks a `shiftgrad equiv --out FILE.npz` file with NumPy alone, independently of shiftgrad.

    python3 scripts/verify_equiv.py FILE.npz

It recomputes the three SW outputs twice from the stored arrays:
  1. directly from SPEC 1.1/1.3: Y = depthwise bank convolution of x (padding k-1), then the
     shift-add with the tables pad_hv and idx_identit;
  2. as depthwise cross-correlations of x with dense_h (k x L), dense_v (L x k), dense_i (k x k)
     with the paddings of SPEC 1.4 (left/top M//2, right/bottom L-1-M//2 on the long axis),
and compares both with the stored h, v, i. M//2 is recovered from the tables: the largest shift
is s_0 = M//2 - (k-1).
"""
import sys

import numpy as np


def correlate_depthwise(x, w, pad):
    """x (B,C,H,W), w (C*m,1,kh,kw) with groups C; pad = (top, bottom, left, right)."""
    b, c, h, wd = x.shape
    oc, _, kh, kw = w.shape
    mult = oc // c
    xp = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[1]), (pad[2], pad[3])))
    ho, wo = xp.shape[2] - kh + 1, xp.shape[3] - kw + 1
    out = np.zeros((b, oc, ho, wo))
    for o in range(oc):
        src = xp[:, o // mult]
        for r in range(kh):
            for t in range(kw):
                out[:, o] += w[o, 0, r, t] * src[:, r:r + ho, t:t + wo]
    return out


def main(path):
    z = np.load(path)
    x, bank, pad_hv, idx = z["x"], z["bank"], z["pad_hv"], z["idx_identit"]
    B, R, H, W = x.shape
    k = bank.shape[-1]
    nk = pad_hv.shape[0] // R
    G = pad_hv.shape[1] // 2
    L, e, half = nk * k, k // 2, int(pad_hv.max()) + k - 1

    y = correlate_depthwise(x, bank, (k - 1,) * 4)
    h, v, i = (np.zeros((B, R, H, W)) for _ in range(3))
    for o in range(R):
        for g in range(G):
            for j in range(nk):
                c = o * nk + j
                sh, sv = pad_hv[c, g], pad_hv[c, G + g]
                for xx in range(W):
                    if 0 <= xx - sh < W + 2 * e:
                        h[:, o, :, xx] += y[:, c, e:e + H, xx - sh]
                for yy in range(H):
                    if 0 <= yy - sv < H + 2 * e:
                        v[:, o, yy, :] += y[:, c, yy - sv, e:e + W]
            i[:, o] += y[:, idx[o, g], e:e + H, e:e + W]

    dense = {
        "h": correlate_depthwise(x, z["dense_h"], (e, e, half, L - 1 - half)),
        "v": correlate_depthwise(x, z["dense_v"], (half, L - 1 - half, e, e)),
        "i": correlate_depthwise(x, z["dense_i"], (e,) * 4),
    }
    worst = 0.0
    for name, direct in (("h", h), ("v", v), ("i", i)):
        scale = np.abs(z[name]).max()
        d1 = np.abs(direct - z[name]).max() / scale
        d2 = np.abs(dense[name] - z[name]).max() / scale
        worst = max(worst, d1, d2)
        print(f"{name}: direct vs file {d1:.2e}, dense vs file {d2:.2e} (relative to max |{name}|)")
    tol = 1e-12 if z["x"].dtype == np.float64 else 1e-5
    print("equal" if worst <= tol else "DIFFERENT")
    return 0 if worst <= tol else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
