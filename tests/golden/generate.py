#!/usr/bin/env python3
# Regenerate with (from the repository root, with torch and numpy installed):
#
#     python3 tests/golden/generate.py
#
# Tier 3 of the gradient evidence (DESIGN.md): golden values from PyTorch for the ops whose
# conventions we copy from it (conv2d, batch_norm2d train/eval, linear, global average pool,
# softmax cross-entropy). Every case is a directory tests/golden/<case>/ of small float64 .npy
# files (int64 for integer parameters and labels), read by tests/golden.rs.
#
# Each case draws its inputs from its own fixed torch seed, so adding a case does not change the
# others. Backward values are the gradients of sum(y * gy) for a random cotangent gy (for the
# scalar cross-entropy loss, of loss * gy with a scalar gy), so that every gradient formula is
# exercised with a non-uniform upstream gradient.
#
# conv2d params.npy (int64): [stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right, groups].
# Asymmetric padding is applied with F.pad before an unpadded convolution.
# batch_norm params.npy (float64): [momentum, eps].

import os

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.abspath(__file__))
DT = torch.float64


def save_case(name, arrays):
    d = os.path.join(ROOT, name)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):  # drop files of an earlier version of this case
        if f.endswith(".npy"):
            os.remove(os.path.join(d, f))
    for key, value in arrays.items():
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        value = np.array(value, order="C")  # (not ascontiguousarray: it makes 0-d arrays 1-d)
        assert value.dtype in (np.float64, np.int64), (name, key, value.dtype)
        np.save(os.path.join(d, key + ".npy"), value)


def randn(*shape, scale=1.0, shift=0.0):
    return (torch.randn(*shape, dtype=DT) * scale + shift).requires_grad_(True)


# name, C_in, C_out, (kh, kw), (sh, sw), (top, bottom, left, right), groups, bias
CONV_CASES = [
    ("conv2d_3x3_s1_p0", 3, 4, (3, 3), (1, 1), (0, 0, 0, 0), 1, True),
    ("conv2d_3x3_s2_p1", 3, 4, (3, 3), (2, 2), (1, 1, 1, 1), 1, True),
    ("conv2d_3x3_s1_asym_g2_nobias", 4, 6, (3, 3), (1, 1), (1, 0, 2, 1), 2, False),
    ("conv2d_3x3_s2_asym", 2, 3, (3, 3), (2, 2), (0, 1, 0, 1), 1, True),
    ("conv2d_3x3_depthwise_p1", 4, 4, (3, 3), (1, 1), (1, 1, 1, 1), 4, True),
    ("conv2d_3x3_mult5_g2", 2, 10, (3, 3), (1, 1), (1, 1, 1, 1), 2, True),
    ("conv2d_1x1_s1", 4, 3, (1, 1), (1, 1), (0, 0, 0, 0), 1, True),
    ("conv2d_1x1_s2_g2", 4, 6, (1, 1), (2, 2), (0, 0, 0, 0), 2, True),
    ("conv2d_5x1_depthwise", 3, 3, (5, 1), (1, 1), (2, 2, 0, 0), 3, True),
    ("conv2d_1x7_depthwise_s1x2", 3, 3, (1, 7), (1, 2), (0, 0, 3, 3), 3, True),
    ("conv2d_13x3_depthwise_nobias", 2, 2, (13, 3), (1, 1), (6, 6, 1, 1), 2, False),
    ("conv2d_13x3_asym_g1", 2, 3, (13, 3), (1, 1), (6, 5, 0, 2), 1, True),
]


def conv_case(seed, name, cin, cout, k, stride, pad, groups, bias):
    torch.manual_seed(seed)
    n, h, w = 2, 6, 6
    x = randn(n, cin, h, w)
    wt = randn(cout, cin // groups, k[0], k[1], scale=0.5)
    b = randn(cout) if bias else None
    top, bottom, left, right = pad
    y = F.conv2d(F.pad(x, (left, right, top, bottom)), wt, b, stride=stride, groups=groups)
    gy = torch.randn(y.shape, dtype=DT)
    grads = torch.autograd.grad((y * gy).sum(), [x, wt] + ([b] if bias else []))
    arrays = {
        "x": x,
        "w": wt,
        "params": np.array([stride[0], stride[1], top, bottom, left, right, groups], dtype=np.int64),
        "y": y,
        "gy": gy,
        "gx": grads[0],
        "gw": grads[1],
    }
    if bias:
        arrays["b"] = b
        arrays["gb"] = grads[2]
    save_case(name, arrays)


def batch_norm_case(seed, name, training):
    torch.manual_seed(seed)
    c = 3
    x = randn(3, c, 3, 3, scale=2.0, shift=0.5)
    gamma = randn(c, scale=0.5, shift=1.0)
    beta = randn(c, scale=0.5)
    running_mean = torch.randn(c, dtype=DT)
    running_var = torch.rand(c, dtype=DT) + 0.5
    momentum, eps = 0.1, 1e-5
    rm, rv = running_mean.clone(), running_var.clone()
    y = F.batch_norm(x, rm, rv, gamma, beta, training=training, momentum=momentum, eps=eps)
    gy = torch.randn(y.shape, dtype=DT)
    gx, ggamma, gbeta = torch.autograd.grad((y * gy).sum(), [x, gamma, beta])
    arrays = {
        "x": x,
        "gamma": gamma,
        "beta": beta,
        "running_mean": running_mean,
        "running_var": running_var,
        "params": np.array([momentum, eps], dtype=np.float64),
        "y": y,
        "gy": gy,
        "gx": gx,
        "ggamma": ggamma,
        "gbeta": gbeta,
    }
    if training:
        arrays["running_mean_after"] = rm
        arrays["running_var_after"] = rv
    save_case(name, arrays)


def linear_case(seed):
    torch.manual_seed(seed)
    x = randn(3, 5)
    w = randn(4, 5, scale=0.5)  # (out, in), PyTorch's layout
    b = randn(4)
    y = F.linear(x, w, b)
    gy = torch.randn(y.shape, dtype=DT)
    gx, gw, gb = torch.autograd.grad((y * gy).sum(), [x, w, b])
    save_case("linear", {"x": x, "w": w, "b": b, "y": y, "gy": gy, "gx": gx, "gw": gw, "gb": gb})


def pool_case(seed):
    torch.manual_seed(seed)
    x = randn(2, 3, 4, 5)
    y = x.mean(dim=(2, 3))  # (N, C)
    gy = torch.randn(y.shape, dtype=DT)
    (gx,) = torch.autograd.grad((y * gy).sum(), [x])
    save_case("global_avg_pool", {"x": x, "y": y, "gy": gy, "gx": gx})


def cross_entropy_case(seed):
    torch.manual_seed(seed)
    # Rows of very different scales: near-uniform, ordinary, confident, and confidently wrong.
    row_scale = torch.tensor([0.01, 1.0, 8.0, 40.0], dtype=DT).unsqueeze(1)
    logits = (torch.randn(4, 5, dtype=DT) * row_scale).requires_grad_(True)
    labels = torch.tensor([2, 0, 4, int(logits[3].argmin())], dtype=torch.int64)
    loss = F.cross_entropy(logits, labels)
    gy = torch.tensor(0.7, dtype=DT)
    (glogits,) = torch.autograd.grad(loss * gy, [logits])
    save_case(
        "cross_entropy",
        {"logits": logits, "labels": labels.numpy(), "loss": loss, "gy": gy, "glogits": glogits},
    )


def main():
    for i, case in enumerate(CONV_CASES):
        conv_case(100 + i, *case)
    batch_norm_case(200, "batch_norm2d_train", True)
    batch_norm_case(201, "batch_norm2d_eval", False)
    linear_case(300)
    pool_case(400)
    cross_entropy_case(500)
    total = sum(
        os.path.getsize(os.path.join(dp, f))
        for dp, _, fs in os.walk(ROOT)
        for f in fs
        if f.endswith(".npy")
    )
    print(f"wrote golden cases under {ROOT} ({total} bytes of .npy)")


if __name__ == "__main__":
    main()
