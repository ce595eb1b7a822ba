#!/usr/bin/env python3
# Regenerate with (from the repository root, with torch and numpy installed, e.g. in a venv:
# `python3 -m venv VENV && VENV/bin/pip install torch numpy`):
#
#     python3 tests/golden/network_generate.py
#
# Whole-network golden values from PyTorch (tier 3 of the gradient evidence, DESIGN.md), read
# by tests/golden_network.rs. For each spatial operator (SPEC 1.7) sw, slak, dense and small,
# a small SW-ResNet (SPEC 2) is written out as a shiftgrad checkpoint, then one training-mode
# step is taken in float64 in PyTorch: forward with batch statistics on a fixed batch, mean
# softmax cross-entropy against fixed labels, backward. The model is re-implemented here with
# torch.nn.functional, independently of the Rust code; the shift-add is the slicing
# implementation of shift_add_generate.py (imported from beside this file).
#
# The network (the Rust test builds the same ResNetConfig):
#   in_channels 1, classes 10, widths (4, 8), depths (1, 1), big kernels (7, 9), small kernel
#   3, ghost ratio 0.25, n_path 2, n_rep 2; input 4 x 1 x 12 x 12.
# Stage 0 has M = 7, k = 3 (M mod k != 0: an asymmetric dense equivalent, SPEC 1.4); stage 1
# works on 6 x 6 maps with M = 9, so its long-range taps reach past the map's edge. For sw the
# ghost ratio leaves 1 of 4 and 2 of 8 channels as ghosts, so the ghost split, the channel
# reorder of SPEC 1.5 and the concat are all exercised.
#
# Every table is in the checkpoint, so the Rust side is not needed here: the index tables
# (pad_hv, idx_identit; SPEC 1.2) and the channel split (ghost_idx, rep_idx; both sorted, as
# SPEC 1.5 fixes) are drawn here with numpy and stored as int32, exactly as
# ShiftWiseConv::save_state stores them; the Rust loader validates them and uses them in place
# of the ones its own seed drew. Parameters are non-trivial (batch-norm gamma around 1, beta
# around 0, running statistics away from 0 and 1), drawn from numpy's seeded generator.
#
# Files in tests/golden/network_<kind>/:
#   checkpoint.npz     every key of SwResNet::state_dict(), float64 (int32 for the tables)
#   x.npy              the batch, float64 (4, 1, 12, 12)
#   labels.npy         int64 (4,)
#   logits.npy         float64 (4, 10)
#   loss.npy           float64, 0-d: F.cross_entropy(logits, labels), the batch mean
#   grads.npz          d loss / d parameter, float64, keyed by named_parameters() names
#   running_after.npz  every batch-norm running_mean / running_var after the step (momentum
#                      0.1, unbiased variance, as torch.nn.BatchNorm2d; eps 1e-5)

import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from shift_add_generate import shift_add, tables  # noqa: E402

DT = torch.float64
MOMENTUM, EPS = 0.1, 1e-5

IN_CHANNELS = 1
CLASSES = 10
WIDTHS = (4, 8)
DEPTHS = (1, 1)
BIG_KERNELS = (7, 9)
SMALL = 3
GHOST_RATIO = 0.25
N_PATH = 2
N_REP = 2
BATCH, HEIGHT, WIDTH = 4, 12, 12

# kind: seed of its numpy generator
KINDS = {"sw": 11, "slak": 12, "dense": 13, "small": 14}


class Net:
    """Parameters (leaf tensors requiring grad), buffers (running statistics) and int tables,
    under the state-dict names of nn/src/resnet.rs, in the order named_parameters() lists them."""

    def __init__(self, rng):
        self.rng = rng
        self.params = {}  # name -> tensor (requires grad), insertion order = named_parameters()
        self.buffers = {}  # name -> float64 tensor (running statistics)
        self.ints = {}  # name -> int32 numpy array

    def uniform(self, name, shape, fan_in):
        bound = 1.0 / math.sqrt(fan_in)
        t = torch.tensor(self.rng.uniform(-bound, bound, shape), dtype=DT, requires_grad=True)
        self.params[name] = t
        return t

    def bn(self, prefix, c):
        rng = self.rng
        self.params[prefix + ".weight"] = torch.tensor(
            1.0 + 0.3 * rng.standard_normal(c), dtype=DT, requires_grad=True
        )
        self.params[prefix + ".bias"] = torch.tensor(
            0.3 * rng.standard_normal(c), dtype=DT, requires_grad=True
        )
        self.buffers[prefix + ".running_mean"] = torch.tensor(
            0.2 * rng.standard_normal(c), dtype=DT
        )
        self.buffers[prefix + ".running_var"] = torch.tensor(rng.uniform(0.5, 1.5, c), dtype=DT)

    def apply_bn(self, prefix, x):
        return F.batch_norm(
            x,
            self.buffers[prefix + ".running_mean"],
            self.buffers[prefix + ".running_var"],
            self.params[prefix + ".weight"],
            self.params[prefix + ".bias"],
            training=True,
            momentum=MOMENTUM,
            eps=EPS,
        )


def build(kind, rng):
    """Draws every parameter, buffer and table of the network, in state-dict naming."""
    net = Net(rng)
    k = SMALL

    def conv_bn(prefix, cin, cout):
        net.uniform(prefix + ".conv.weight", (cout, cin, 3, 3), cin * 9)
        net.bn(prefix + ".bn", cout)

    def dw_bn(prefix, suffix, c, kh, kw):
        net.uniform(f"{prefix}.conv{suffix}.weight", (c, 1, kh, kw), kh * kw)
        net.bn(f"{prefix}.bn{suffix}", c)

    conv_bn("stem", IN_CHANNELS, WIDTHS[0])
    for s, (c, depth, big) in enumerate(zip(WIDTHS, DEPTHS, BIG_KERNELS)):
        if s > 0:
            conv_bn(f"stages.{s}.down", WIDTHS[s - 1], c)
        for b in range(depth):
            p = f"stages.{s}.blocks.{b}"
            sp = p + ".spatial"
            if kind == "sw":
                ghosts = int(math.floor(c * GHOST_RATIO))
                ghost_idx = np.sort(rng.permutation(c)[:ghosts])
                rep_idx = np.array([i for i in range(c) if i not in ghost_idx])
                reps = len(rep_idx)
                nk = math.ceil(big / k)
                for q in range(N_PATH):
                    net.uniform(f"{sp}.bank.{q}.weight", (reps * nk, 1, k, k), k * k)
                for name in ("bn_h", "bn_v", "bn_i"):
                    net.bn(f"{sp}.{name}", reps)
                pad_hv, idx_identit = tables(big, k, reps, N_REP, rng)
                net.ints[sp + ".pad_hv"] = pad_hv.astype(np.int32)
                net.ints[sp + ".idx_identit"] = idx_identit.astype(np.int32)
                net.ints[sp + ".ghost_idx"] = ghost_idx.astype(np.int32)
                net.ints[sp + ".rep_idx"] = rep_idx.astype(np.int32)
            elif kind == "slak":
                dw_bn(sp, "_tall", c, big, k)
                dw_bn(sp, "_wide", c, k, big)
                dw_bn(sp, "_small", c, k, k)
            elif kind == "dense":
                dw_bn(sp, "", c, big, big)
            elif kind == "small":
                dw_bn(sp, "", c, k, k)
            else:
                raise ValueError(kind)
            net.uniform(p + ".pw.weight", (c, c, 1, 1), c)
            net.bn(p + ".bn", c)
    c_last = WIDTHS[-1]
    net.uniform("head.weight", (CLASSES, c_last), c_last)
    net.uniform("head.bias", (CLASSES,), c_last)
    return net


def spatial(net, kind, sp, x, big):
    """SPEC 1.5 (sw) and 1.7 (baselines): C channels in, C channels out."""
    k = SMALL
    P = net.params
    if kind == "sw":
        rep_idx = torch.tensor(net.ints[sp + ".rep_idx"], dtype=torch.long)
        ghost_idx = torch.tensor(net.ints[sp + ".ghost_idx"], dtype=torch.long)
        x_r = x.index_select(1, rep_idx)
        x_g = x.index_select(1, ghost_idx)
        reps = x_r.shape[1]
        # SPEC 1.1: sum of the P bank convolutions, zero padding k - 1, groups R.
        y = sum(
            F.conv2d(x_r, P[f"{sp}.bank.{q}.weight"], padding=k - 1, groups=reps)
            for q in range(N_PATH)
        )
        h, v, i = shift_add(
            y, net.ints[sp + ".pad_hv"], net.ints[sp + ".idx_identit"], big, k, reps, N_REP
        )
        z = (
            net.apply_bn(sp + ".bn_h", h)
            + net.apply_bn(sp + ".bn_v", v)
            + net.apply_bn(sp + ".bn_i", i)
            + x_r
        )
        return torch.cat([z, x_g], 1)  # processed channels first, then the ghosts

    c = x.shape[1]

    def dw(suffix, kh, kw):
        w = P[f"{sp}.conv{suffix}.weight"]
        y = F.conv2d(x, w, padding=(kh // 2, kw // 2), groups=c)
        return net.apply_bn(f"{sp}.bn{suffix}", y)

    if kind == "slak":
        return dw("_tall", big, k) + dw("_wide", k, big) + dw("_small", k, k) + x
    if kind == "dense":
        return dw("", big, big) + x
    if kind == "small":
        return dw("", k, k) + x
    raise ValueError(kind)


def forward(net, kind, x):
    """SPEC 2, training mode (batch statistics; running statistics updated in place)."""
    P = net.params

    def conv_bn_relu(prefix, h, stride):
        y = F.conv2d(h, P[prefix + ".conv.weight"], stride=stride, padding=1)
        return F.relu(net.apply_bn(prefix + ".bn", y))

    h = conv_bn_relu("stem", x, 1)
    for s, (depth, big) in enumerate(zip(DEPTHS, BIG_KERNELS)):
        if s > 0:
            h = conv_bn_relu(f"stages.{s}.down", h, 2)
        for b in range(depth):
            p = f"stages.{s}.blocks.{b}"
            t = F.relu(spatial(net, kind, p + ".spatial", h, big))
            t = net.apply_bn(p + ".bn", F.conv2d(t, P[p + ".pw.weight"]))
            h = F.relu(h + t)
    pooled = h.mean(dim=(2, 3))
    return F.linear(pooled, P["head.weight"], P["head.bias"])


def npy(t):
    if isinstance(t, torch.Tensor):
        t = t.detach().cpu().numpy()
    return np.array(t, order="C")  # (not ascontiguousarray: it makes 0-d arrays 1-d)


def main():
    total = 0
    for kind, seed in KINDS.items():
        rng = np.random.default_rng(seed)
        net = build(kind, rng)
        x = torch.tensor(rng.standard_normal((BATCH, IN_CHANNELS, HEIGHT, WIDTH)), dtype=DT)
        labels = torch.tensor(rng.integers(0, CLASSES, BATCH), dtype=torch.long)

        # The checkpoint holds the state before the step.
        checkpoint = {name: npy(t) for name, t in net.params.items()}
        checkpoint.update({name: npy(t) for name, t in net.buffers.items()})
        checkpoint.update(net.ints)

        logits = forward(net, kind, x)
        loss = F.cross_entropy(logits, labels)
        names = list(net.params)
        grads = torch.autograd.grad(loss, [net.params[n] for n in names])

        d = os.path.join(HERE, "network_" + kind)
        os.makedirs(d, exist_ok=True)
        for f in os.listdir(d):  # drop files of an earlier version
            os.remove(os.path.join(d, f))
        for key, value in checkpoint.items():
            assert value.dtype in (np.float64, np.int32), (kind, key, value.dtype)
        np.savez_compressed(os.path.join(d, "checkpoint.npz"), **checkpoint)
        np.savez_compressed(
            os.path.join(d, "grads.npz"), **{n: npy(g) for n, g in zip(names, grads)}
        )
        np.savez_compressed(
            os.path.join(d, "running_after.npz"),
            **{n: npy(t) for n, t in net.buffers.items()},
        )
        np.save(os.path.join(d, "x.npy"), npy(x))
        np.save(os.path.join(d, "labels.npy"), npy(labels).astype(np.int64))
        np.save(os.path.join(d, "logits.npy"), npy(logits))
        np.save(os.path.join(d, "loss.npy"), npy(loss))
        size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
        total += size
        print(
            f"{kind}: {len(names)} parameters, {sum(g.numel() for g in grads)} scalars, "
            f"loss {loss.item():.6f}, {size} bytes"
        )
    print(f"total {total} bytes")


if __name__ == "__main__":
    main()
