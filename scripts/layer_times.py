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
weights (a 1 x (2r+1), a (2r+1) x 1 and a 1 x 1 kernel per rep), the faster of the two here
(the masked-slice form takes seconds: one product of the whole bank output per distinct shift).

    python3 scripts/layer_times.py [sw,sw-conv,slak,dense,small]      # needs torch and numpy
    python3 scripts/layer_times.py check      # sw-conv against sw: the same outputs
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
    """`sw-conv` against `sw` on one input in eval mode (the same weights and statistics):
    the largest difference and the largest output, and an exit code 1 above 1e-5 relative."""
    a, b = Sw().eval(), SwConv().eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(B, C, H, W)
    with torch.no_grad():
        ya, yb = a(x), b(x)
    diff, scale = (ya - yb).abs().max().item(), ya.abs().max().item()
    print(f"sw-conv against sw: largest difference {diff:.3g}, largest output {scale:.3g}")
    ok = torch.isfinite(ya).all() and torch.isfinite(yb).all() and diff <= 1e-5 * scale
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    if sys.argv[1:] == ["check"]:
        check()
    kinds = sys.argv[1].split(",") if len(sys.argv) > 1 else list(LAYERS)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; C={C} {H}x{W} batch {B} M={M} k={K} P={P} G={G}")
    for kind in kinds:
        fw, bw = times(LAYERS[kind]().train())
        print(f"{kind:6} fwd {fw * 1e3:8.2f} ms  bwd {bw * 1e3:8.2f} ms  total {(fw + bw) * 1e3:8.2f} ms")
