"""PyTorch (CPU, 2 threads) times of one spatial layer of each kind in training mode, forward
and backward separately, median of 5 steps after one warm-up: the twin of `shiftgrad bench
--device opencl` at its default shape (C = 64, 56x56, batch 8, M = 51, k = 5, P = 2, G = 4,
ghost 0). Each layer is SPEC 1.7's: the spatial operator, a batch-norm after each of its
outputs, the identity residual.

The shift-wise layer is written the fastest way found in plain PyTorch: the P bank
convolutions as one grouped convolution, then the shift-add (SPEC 1.3) as one slice of the
zero-padded Y per distinct shift (nk of them per direction and group) for all channels at once,
weighted by a 0/1 mask of the channels that take that shift and summed over each rep's
kernels. The tables are drawn as SPEC 1.2 (`tables` of tests/golden/shift_add_generate.py).
`sw-conv` is the same layer with the shift-add as three grouped convolutions with fixed 0/1
weights (a 1 x (2r+1), a (2r+1) x 1 and a 1 x 1 kernel per rep), faster than the first (the
masked-slice form takes seconds: one product of the whole bank output per distinct shift).
`sw-folded` folds each path into one large depthwise kernel per rep, rebuilt from the bank
weights every step (SPEC 1.4's dense equivalent): the fastest form found, a SLaK-like cost.

    python3 scripts/layer_times.py [sw,sw-conv,sw-folded,slak,dense,small]   # needs torch, numpy
    python3 scripts/layer_times.py check      # sw-conv and sw-folded against sw: the same outputs
"""
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden"))
from shift_add_generate import shifts, tables  # noqa: E402

torch.manual_seed(0)
torch.set_num_threads(2)
B, C, H, W, M, K, P, G = 8, 64, 56, 56, 51, 5, 2, 4


def bn(c):
    return torch.nn.BatchNorm2d(c)


class Sw(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.nk = math.ceil(M / K)
        self.bank = torch.nn.Conv2d(C, C * self.nk * P, K, padding=K - 1, groups=C, bias=False)
        self.bns = torch.nn.ModuleList(bn(C) for _ in range(3))
        pad_hv, idx = tables(M, K, C, G, np.random.default_rng(0))
        self.pad_hv, self.idx = pad_hv, idx
        e = K // 2
        self.e = e
        self.reach = int(np.abs(pad_hv).max())
        # For each direction, group and distinct shift: the (C, nk) 0/1 mask of the kernels
        # that take it. The identity path: the kernel each (rep, group) takes.
        s = shifts(M, K)
        self.shifts = s
        self.masks = {}
        for d in range(2):
            for g in range(G):
                for v in s:
                    m = (pad_hv[:, d * G + g] == v).reshape(C, self.nk).astype(np.float32)
                    self.masks[(d, g, v)] = torch.tensor(m)[None, :, :, None, None]
        ident = np.zeros((C, self.nk), dtype=np.float32)
        for o in range(C):
            for g in range(G):
                ident[o, idx[o, g] - o * self.nk] += 1
        self.ident = torch.tensor(ident)[None, :, :, None, None]

    def forward(self, x):
        y = self.bank(x)  # (B, C*nk*P, Hp, Wp): sum the P paths
        y = y.view(B, C, P, self.nk, H + K - 1, W + K - 1).sum(2)
        e, r = self.e, self.reach
        yp = F.pad(y, (r, r, r, r))  # (B, C, nk, Hp + 2r, Wp + 2r)
        h = v = 0
        for g in range(G):
            for s in self.shifts:
                # Hout[y, x] += Y[y + e, x - s]; Vout[y, x] += Y[y - s, x + e]
                hs = yp[..., r + e : r + e + H, r - s : r - s + W]
                vs = yp[..., r - s : r - s + H, r + e : r + e + W]
                h = h + (hs * self.masks[(0, g, s)]).sum(2)
                v = v + (vs * self.masks[(1, g, s)]).sum(2)
        i = (yp[..., r + e : r + e + H, r + e : r + e + W] * self.ident).sum(2)
        return self.bns[0](h) + self.bns[1](v) + self.bns[2](i) + x


class SwConv(Sw):
    """The same layer with the shift-add as three convolutions of the bank output with fixed
    0/1 weights (one per rep: a 1 x (2r+1) kernel for the horizontal path, (2r+1) x 1 for the
    vertical, 1 x 1 for the identity, each tap counting the groups that take that shift), so
    oneDNN does the shifting and summing. Same outputs as `Sw` up to the order of the sums."""

    def __init__(self):
        super().__init__()
        pad_hv, idx = self.pad_hv, self.idx
        r, nk = self.reach, self.nk
        wh = np.zeros((C, nk, 1, 2 * r + 1), dtype=np.float32)
        wv = np.zeros((C, nk, 2 * r + 1, 1), dtype=np.float32)
        wi = np.zeros((C, nk, 1, 1), dtype=np.float32)
        for c in range(C * nk):
            o, j = divmod(c, nk)
            for g in range(G):
                # Hout[y, x] += Y[y + e, x - s]: tap r - s of a cross-correlation.
                wh[o, j, 0, r - pad_hv[c, g]] += 1
                # Vout[y, x] += Y[y - s, x + e]
                wv[o, j, r - pad_hv[c, G + g], 0] += 1
        for o in range(C):
            for g in range(G):
                wi[o, idx[o, g] - o * nk, 0, 0] += 1
        self.wh, self.wv, self.wi = (torch.tensor(a) for a in (wh, wv, wi))

    def forward(self, x):
        y = self.bank(x)
        y = y.view(B, C, P, self.nk, H + K - 1, W + K - 1).sum(2).view(B, C * self.nk, H + K - 1, W + K - 1)
        e, r = self.e, self.reach
        h = F.conv2d(y[:, :, e : e + H, :], self.wh, padding=(0, r), groups=C)[..., :W]
        v = F.conv2d(y[:, :, :, e : e + W], self.wv, padding=(r, 0), groups=C)[:, :, :H, :]
        i = F.conv2d(y[:, :, e : e + H, e : e + W], self.wi, groups=C)
        return self.bns[0](h) + self.bns[1](v) + self.bns[2](i) + x


class SwFolded(Sw):
    """The same layer with each path folded into one large depthwise kernel per rep (SPEC 1.4,
    the dense equivalent): Hout is x cross-correlated with a K x (2r + K) kernel that holds every
    small kernel of the rep at its horizontal shifts, Vout with a (2r + K) x K one, Iout with
    the K x K sum of the identity choices. The folded kernels are built from the summed bank
    weights in every step (an index_add, differentiable), so the bank still trains. Same
    outputs as `Sw` up to the order of the sums; the cost of a SLaK-like layer."""

    def __init__(self):
        super().__init__()
        pad_hv, idx = self.pad_hv, self.idx
        r, nk, e = self.reach, self.nk, self.e
        kw = 2 * r + K
        ih = np.zeros((C, nk, G, K, K), dtype=np.int64)
        iv = np.zeros((C, nk, G, K, K), dtype=np.int64)
        a, b = np.meshgrid(np.arange(K), np.arange(K), indexing="ij")
        for o in range(C):
            for j in range(nk):
                for g in range(G):
                    # Hout[y, x] += W[a, b] x[y + a - e, x + b - (K - 1) - s]: column b - s + r.
                    s_h = pad_hv[o * nk + j, g]
                    ih[o, j, g] = o * K * kw + a * kw + (b - s_h + r)
                    # Vout[y, x] += W[a, b] x[y + a - (K - 1) - s, x + b - e]: row a - s + r.
                    s_v = pad_hv[o * nk + j, G + g]
                    iv[o, j, g] = o * kw * K + (a - s_v + r) * K + b
        # Iout[y, x] += W[a, b] x[y + a - e, x + b - e] for the kernel each group chose.
        sel = np.zeros((C, nk, G, 1, 1), dtype=np.float32)
        for o in range(C):
            for g in range(G):
                sel[o, idx[o, g] - o * nk, g] = 1
        self.ih, self.iv = torch.tensor(ih.reshape(-1)), torch.tensor(iv.reshape(-1))
        self.sel = torch.tensor(sel)
        self.kw = kw

    def forward(self, x):
        r, e, kw, nk = self.reach, self.e, self.kw, self.nk
        w = self.bank.weight.view(C, P, nk, K, K).sum(1)  # the merged bank
        wg = w[:, :, None].expand(C, nk, G, K, K)
        fh = torch.zeros(C * K * kw).index_add(0, self.ih, wg.reshape(-1)).view(C, 1, K, kw)
        fv = torch.zeros(C * kw * K).index_add(0, self.iv, wg.reshape(-1)).view(C, 1, kw, K)
        fi = (wg * self.sel).sum((1, 2)).view(C, 1, K, K)
        h = F.conv2d(F.pad(x, (K - 1 + r, r, e, e)), fh, groups=C)
        v = F.conv2d(F.pad(x, (e, e, K - 1 + r, r)), fv, groups=C)
        i = F.conv2d(x, fi, padding=e, groups=C)
        return self.bns[0](h) + self.bns[1](v) + self.bns[2](i) + x


class Dw(torch.nn.Module):
    def __init__(self, shapes):
        super().__init__()
        self.convs = torch.nn.ModuleList(
            torch.nn.Conv2d(C, C, s, padding=(s[0] // 2, s[1] // 2), groups=C, bias=False) for s in shapes
        )
        self.bns = torch.nn.ModuleList(bn(C) for _ in shapes)

    def forward(self, x):
        return sum(b(c(x)) for c, b in zip(self.convs, self.bns)) + x


LAYERS = {
    "sw": Sw,
    "sw-conv": SwConv,
    "sw-folded": SwFolded,
    "slak": lambda: Dw([(M, K), (K, M), (K, K)]),
    "dense": lambda: Dw([(M, M)]),
    "small": lambda: Dw([(K, K)]),
}


def times(layer, steps=5):
    x = torch.randn(B, C, H, W)
    dy = torch.randn(B, C, H, W)
    f, b = [], []
    for i in range(steps + 1):
        xr = x.clone().requires_grad_(True)
        t0 = time.perf_counter()
        y = layer(xr)
        t1 = time.perf_counter()
        y.backward(dy)
        t2 = time.perf_counter()
        if i > 0:
            f.append(t1 - t0)
            b.append(t2 - t1)
    med = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
    return med(f), med(b)


def check():
    """`sw-conv` and `sw-folded` against `sw` on one input in eval mode (the same weights and
    statistics): the largest difference and the largest output, and an exit code 1 above 1e-5
    relative (or on a non-finite output) for either. Measured: 3e-7 (sw-conv) and 6e-7
    (sw-folded) relative on outputs of magnitude 43."""
    a = Sw().eval()
    x = torch.randn(B, C, H, W)
    with torch.no_grad():
        ya = a(x)
    ok = bool(torch.isfinite(ya).all())
    for name, cls in (("sw-conv", SwConv), ("sw-folded", SwFolded)):
        b = cls().eval()
        b.load_state_dict(a.state_dict())
        with torch.no_grad():
            yb = b(x)
        diff, scale = (ya - yb).abs().max().item(), ya.abs().max().item()
        print(f"{name} against sw: largest difference {diff:.3g}, largest output {scale:.3g}")
        ok = ok and bool(torch.isfinite(yb).all()) and diff <= 1e-5 * scale
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    if sys.argv[1:] == ["check"]:
        check()
    kinds = sys.argv[1].split(",") if len(sys.argv) > 1 else list(LAYERS)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; C={C} {H}x{W} batch {B} M={M} k={K} P={P} G={G}")
    for kind in kinds:
        fw, bw = times(LAYERS[kind]().train())
        print(f"{kind:6} fwd {fw * 1e3:8.2f} ms  bwd {bw * 1e3:8.2f} ms  total {(fw + bw) * 1e3:8.2f} ms")
