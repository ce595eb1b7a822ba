"""PyTorch (oneDNN, CPU) training-step times of sw-resnet-tiny (SPEC 2) with the small, slak
and dense spatial operators (SPEC 1.7), batch 64 on 1 x 28 x 28 inputs, 2 threads: the twin
of `shiftgrad profile --device opencl --spatial KIND` (median step, images/s). A step is the
forward, the mean cross-entropy, the backward and an SGD step (momentum 0.9, Nesterov), as in
`shiftgrad train`. The shift-wise operator is left out: PyTorch has no fused form of it.

    python3 scripts/network_times.py [small,slak,dense] [steps]   # needs torch
"""
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)
torch.set_num_threads(2)

WIDTHS, DEPTHS, BIG, SMALL = (32, 64, 128), (2, 2, 2), (13, 13, 7), 3


class Spatial(nn.Module):
    def __init__(self, kind, c, big, k):
        super().__init__()
        shapes = {"small": [(k, k)], "slak": [(big, k), (k, big), (k, k)], "dense": [(big, big)]}[kind]
        self.convs = nn.ModuleList(
            nn.Conv2d(c, c, s, padding=(s[0] // 2, s[1] // 2), groups=c, bias=False) for s in shapes
        )
        self.bns = nn.ModuleList(nn.BatchNorm2d(c) for _ in shapes)

    def forward(self, x):
        return sum(bn(conv(x)) for conv, bn in zip(self.convs, self.bns)) + x


class Block(nn.Module):
    def __init__(self, kind, c, big):
        super().__init__()
        self.spatial = Spatial(kind, c, big, SMALL)
        self.pw = nn.Conv2d(c, c, 1, bias=False)
        self.bn = nn.BatchNorm2d(c)

    def forward(self, x):
        return F.relu(x + self.bn(self.pw(F.relu(self.spatial(x)))))


def conv_bn(cin, cout, stride):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()
    )


def network(kind):
    layers = [conv_bn(1, WIDTHS[0], 1)]
    for s, (c, depth, big) in enumerate(zip(WIDTHS, DEPTHS, BIG)):
        if s > 0:
            layers.append(conv_bn(WIDTHS[s - 1], c, 2))
        layers += [Block(kind, c, big) for _ in range(depth)]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(WIDTHS[-1], 10)]
    return nn.Sequential(*layers)


def step_times(kind, steps, batch=64):
    net = network(kind).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    x = torch.randn(batch, 1, 28, 28)
    y = torch.randint(0, 10, (batch,))
    times = []
    for i in range(steps + 2):
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
        opt.step()
        if i >= 2:  # two warm-up steps
            times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


if __name__ == "__main__":
    kinds = sys.argv[1].split(",") if len(sys.argv) > 1 else ["small", "slak", "dense"]
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 9
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch 64")
    for kind in kinds:
        t = step_times(kind, steps)
        print(f"{kind:6} median step {t:.4f} s ({64 / t:.1f} images/s) over {steps} steps")
