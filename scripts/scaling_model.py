"""The data-parallel step-time model of docs/SCALING.md: per node, compute for its share of the
global batch (measured images/s of one 2-core node), plus a ring allreduce of the gradients,
2(K−1)/K · bytes / bandwidth + 2(K−1) · latency — with and without overlapping it with the
backward pass (about 2/3 of the step's compute) — plus the synchronised BatchNorm's small
reductions, three per BatchNorm layer (Σx, Σ(x−μ)², the backward's sums) of a few KB each,
each 2·log2(K) latencies (recursive doubling), which sit on the critical path.

Usage: python scaling_model.py   (prints the tables of docs/SCALING.md)
"""
import math

MODELS = [
    # name, gradient bytes, measured images/s of one node (2 threads), BatchNorm layers, global batch per node count
    ("ResNet-32 (CIFAR), batch 128·max(1, K/8)", 464_154 * 4, 307.0, 31, lambda k: 128 * max(1, k // 8)),
    ("ResNet-50 (224²), batch 32·K", 25_557_032 * 4, 2.7, 53, lambda k: 32 * k),
]
NETWORKS = [("10 Gb/s", 10e9 / 8, 30e-6), ("100 Gb/s", 100e9 / 8, 5e-6)]
NODES = [2, 4, 8, 16, 32, 64, 128, 256]


def step(bytes_, rate, layers, batch, k, bandwidth, latency):
    compute = batch / k / rate
    ring = 2 * (k - 1) / k * bytes_ / bandwidth + 2 * (k - 1) * latency
    batchnorm = 3 * layers * 2 * math.log2(k) * latency
    # Overlap: the allreduce runs during the backward (≈ 2/3 of the compute); what is left waits.
    overlapped = compute + batchnorm + max(0.0, ring - 2 / 3 * compute)
    return compute, batchnorm, ring, compute + batchnorm + ring, overlapped


for name, bytes_, rate, layers, batch_of in MODELS:
    print(f"\n{name}: {bytes_ / 1e6:.1f} MB of gradients, {rate} images/s per node")
    for net, bandwidth, latency in NETWORKS:
        print(f"\n  {net} (latency {latency * 1e6:.0f} µs per ring step)")
        print("  | nodes | global batch | compute ms | BatchNorm sync ms | gradient allreduce ms | step ms | step ms, overlapped | images/s | efficiency |")
        print("  |---|---|---|---|---|---|---|---|---|")
        for k in NODES:
            b = batch_of(k)
            compute, batchnorm, ring, plain, overlapped = step(bytes_, rate, layers, b, k, bandwidth, latency)
            speed = b / overlapped
            print(f"  | {k} | {b} | {compute * 1e3:.1f} | {batchnorm * 1e3:.2f} | {ring * 1e3:.2f} | {plain * 1e3:.1f} | {overlapped * 1e3:.1f} | "
                  f"{speed:,.0f} | {speed / (k * rate):.2f} |")
