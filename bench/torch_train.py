"""PyTorch's ResNet-32 training step as the anchor of `kiln bench --train --compare-torch`.

Usage: python torch_train.py --batch B --threads T --loss ldam|ce|focal --classes C

Builds ResNet-32 for CIFAR (option-A shortcuts, as in Cao et al. 2019 and He et al. 2016)
three ways — eager NCHW, channels_last, torch.compile — each with the step Kiln compiles:
forward, loss (LDAM on a cosine head, or cross-entropy / focal on a Linear head, with
class-balanced weights of the exp ratio-100 profile), backward, SGD (momentum 0.9, weight
decay 2e-4). Speaks line by line on stdin/stdout:
  ready:           {"modes": [...], "load_seconds": {mode: s}}
  "warmup N":      N steps per mode (torch.compile compiles here) → {"load_seconds": {...}}
  "run MODE N":    N timed steps → {"seconds": [...], "peak_rss_bytes": VmHWM}
  "quit"
A mode that cannot run here (torch.compile without a C++ compiler, say) is dropped and named
on stderr. Peak RSS is the process's, so it covers every mode built so far.
"""
import argparse
import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class NormedLinear(nn.Module):
    def __init__(self, features, classes):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(features, classes).uniform_(-1, 1).renorm_(2, 1, 1e-5).mul_(1e5))

    def forward(self, x):
        return F.normalize(x, dim=1).mm(F.normalize(self.weight, dim=0))


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.pad = (cout - cin) // 2 if stride != 1 or cin != cout else None

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        short = x if self.pad is None else F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(out + short)


class ResNet32(nn.Module):
    def __init__(self, classes, cosine):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers, cin = [], 16
        for cout, stride in [(16, 1), (32, 2), (64, 2)]:
            for i in range(5):
                layers.append(Block(cin, cout, stride if i == 0 else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.head = NormedLinear(64, classes) if cosine else nn.Linear(64, classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layers(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.head(x)


def class_counts(classes, n_max=5000, ratio=100.0):
    return [int(n_max * (1 / ratio) ** (i / (classes - 1))) for i in range(classes)]


def make_loss(kind, counts, weights):
    if kind == "ldam":
        m = torch.tensor([n ** -0.25 for n in counts])
        m = m * (0.5 / m.max())

        def ldam(logits, target):
            margin = m[target].unsqueeze(1) * F.one_hot(target, logits.shape[1])
            return F.cross_entropy(30 * (logits - margin), target, weight=weights)
        return ldam
    if kind == "focal":
        def focal(logits, target):
            ce = F.cross_entropy(logits, target, weight=weights, reduction="none")
            return ((1 - torch.exp(-ce)).clamp(min=0) * ce).mean()
        return focal
    return lambda logits, target: F.cross_entropy(logits, target, weight=weights)


def peak_rss():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) * 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--loss", default="ldam")
    ap.add_argument("--classes", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    counts = class_counts(args.classes)
    beta = 0.9999
    w = [(1 - beta) / (1 - beta ** n) for n in counts]
    weights = torch.tensor([v * len(w) / sum(w) for v in w])
    loss_fn = make_loss(args.loss, counts, weights)
    x = torch.randn(args.batch, 3, 32, 32)
    y = torch.randint(0, args.classes, (args.batch,))

    steps, load = {}, {}
    for mode in ["eager", "channels_last", "compile"]:
        start = time.perf_counter()
        model = ResNet32(args.classes, cosine=args.loss == "ldam")
        xm = x
        if mode == "channels_last":
            model = model.to(memory_format=torch.channels_last)
            xm = x.contiguous(memory_format=torch.channels_last)
        net = torch.compile(model) if mode == "compile" else model
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=2e-4)

        def step(net=net, opt=opt, xm=xm):
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(xm), y)
            loss.backward()
            opt.step()
            return loss.item()
        steps[mode] = step
        load[mode] = time.perf_counter() - start
    print(json.dumps({"modes": list(steps), "load_seconds": load}), flush=True)

    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        if cmd[0] == "warmup":
            for mode in list(steps):
                start = time.perf_counter()
                try:
                    for _ in range(max(1, int(cmd[1]))):
                        if not math.isfinite(steps[mode]()):
                            raise RuntimeError("loss is not finite")
                except Exception as e:  # a mode this machine cannot run
                    print(f"torch_train: dropping mode {mode}: {e}".splitlines()[0], file=sys.stderr)
                    del steps[mode]
                    continue
                load[mode] += time.perf_counter() - start
            print(json.dumps({"load_seconds": {m: load[m] for m in steps}}), flush=True)
        elif cmd[0] == "run":
            mode, n = cmd[1], int(cmd[2])
            if mode not in steps:
                print(json.dumps({"seconds": [], "peak_rss_bytes": peak_rss()}), flush=True)
                continue
            times = []
            for _ in range(n):
                t = time.perf_counter()
                steps[mode]()
                times.append(time.perf_counter() - t)
            print(json.dumps({"seconds": times, "peak_rss_bytes": peak_rss()}), flush=True)


if __name__ == "__main__":
    main()
