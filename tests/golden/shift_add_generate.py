# Golden values for the shift-add (SPEC 1.2, 1.3), computed in PyTorch by slicing.
#
#   python tests/golden/shift_add_generate.py      (from the repository root; needs torch, numpy)
#
# Independent of the Rust code: Y is zero-padded generously, and every term of SPEC 1.3 is the
# addition of one shifted slice, one per (rep channel o, bank channel j, group g). The gradient
# of Y comes from torch autograd of sum(h*gh + v*gv + i*gi). Writes float64 (int32 for the
# tables, int64 for params) .npy files into tests/golden/shift_add_<name>/:
#   y, pad_hv, idx_identit, params (big, small, reps, groups), h, v, i, gh, gv, gi, gy.
# The tables are drawn with numpy's seeded generator following SPEC 1.2 (the Rust test reads
# them through ShiftTables::from_arrays, which validates them).

import math
import os

import numpy as np
import torch

OUT = os.path.join("tests", "golden")

# name: (big M, small k, reps R, groups G, batch B, H, W, seed)
CONFIGS = {
    "m13_k3": (13, 3, 2, 2, 2, 5, 6, 1),
    "m51_k5": (51, 5, 2, 4, 1, 14, 9, 2),
    "m10_k3": (10, 3, 3, 3, 1, 4, 7, 3),
    "m49_k3": (49, 3, 1, 1, 1, 6, 30, 4),
    "m7_k1": (7, 1, 2, 2, 1, 3, 5, 5),
}


def shifts(big, small):
    nk = math.ceil(big / small)
    p = small - 1
    return [big // 2 - i * small - p for i in range(nk)]


def tables(big, small, reps, groups, rng):
    """SPEC 1.2: pad_hv[o*nk + rh[g][o][i], g] = s_i (column G+g for rv), idx_identit[o, g] = o*nk + u."""
    nk = math.ceil(big / small)
    s = shifts(big, small)
    pad_hv = np.zeros((reps * nk, 2 * groups), dtype=np.int32)
    idx_identit = np.zeros((reps, groups), dtype=np.int32)
    for g in range(groups):
        for o in range(reps):
            rh = rng.permutation(nk)
            rv = rng.permutation(nk)
            u = rng.integers(nk)
            for i in range(nk):
                pad_hv[o * nk + rh[i], g] = s[i]
                pad_hv[o * nk + rv[i], groups + g] = s[i]
            idx_identit[o, g] = o * nk + u
    return pad_hv, idx_identit


def shift_add(y, pad_hv, idx_identit, big, small, reps, groups):
    """SPEC 1.3 by slicing a zero-padded Y."""
    nk = math.ceil(big / small)
    e = small // 2
    _, _, hp, wp = y.shape
    h, w = hp - 2 * e, wp - 2 * e
    big_pad = int(np.abs(pad_hv).max()) + hp + wp
    yp = torch.nn.functional.pad(y, (big_pad,) * 4)
    P = big_pad
    hs, vs, ids = [], [], []
    for o in range(reps):
        hsum = torch.zeros(y.shape[0], h, w, dtype=y.dtype)
        vsum = torch.zeros(y.shape[0], h, w, dtype=y.dtype)
        isum = torch.zeros(y.shape[0], h, w, dtype=y.dtype)
        for g in range(groups):
            for j in range(nk):
                c = o * nk + j
                sh = int(pad_hv[c, g])
                sv = int(pad_hv[c, groups + g])
                # Hout[y, x] += Y[c, y + e, x - sh]
                hsum = hsum + yp[:, c, P + e : P + e + h, P - sh : P - sh + w]
                # Vout[y, x] += Y[c, y - sv, x + e]
                vsum = vsum + yp[:, c, P - sv : P - sv + h, P + e : P + e + w]
            c = int(idx_identit[o, g])
            isum = isum + yp[:, c, P + e : P + e + h, P + e : P + e + w]
        hs.append(hsum)
        vs.append(vsum)
        ids.append(isum)
    return torch.stack(hs, 1), torch.stack(vs, 1), torch.stack(ids, 1)


def main():
    for name, (big, small, reps, groups, batch, h, w, seed) in CONFIGS.items():
        rng = np.random.default_rng(seed)
        nk = math.ceil(big / small)
        e = small // 2
        pad_hv, idx_identit = tables(big, small, reps, groups, rng)
        y_np = rng.standard_normal((batch, reps * nk, h + 2 * e, w + 2 * e))
        cot = [rng.standard_normal((batch, reps, h, w)) for _ in range(3)]
        y = torch.tensor(y_np, dtype=torch.float64, requires_grad=True)
        hout, vout, iout = shift_add(y, pad_hv, idx_identit, big, small, reps, groups)
        gh, gv, gi = (torch.tensor(c, dtype=torch.float64) for c in cot)
        loss = (hout * gh).sum() + (vout * gv).sum() + (iout * gi).sum()
        (gy,) = torch.autograd.grad(loss, y)
        d = os.path.join(OUT, "shift_add_" + name)
        os.makedirs(d, exist_ok=True)
        arrays = {
            "y": y_np,
            "pad_hv": pad_hv,
            "idx_identit": idx_identit,
            "params": np.array([big, small, reps, groups], dtype=np.int64),
            "h": hout.detach().numpy(),
            "v": vout.detach().numpy(),
            "i": iout.detach().numpy(),
            "gh": cot[0],
            "gv": cot[1],
            "gi": cot[2],
            "gy": gy.numpy(),
        }
        for key, a in arrays.items():
            if a.dtype.kind == "f":
                a = a.astype(np.float64)
            np.save(os.path.join(d, key + ".npy"), np.ascontiguousarray(a))
        print(name, "y", y_np.shape, "out", tuple(hout.shape))


if __name__ == "__main__":
    main()
