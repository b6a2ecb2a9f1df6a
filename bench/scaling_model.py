#!/usr/bin/env python3
"""bench/scaling_model.py: projects data-parallel step and run times for 1 to 64 nodes from
measured single-node step times and a stated interconnect (docs/scaling.md).

Model, per step, for P nodes each as fast as the measured one (the batch split evenly):
    T(P) = T1 / P + C(P)
    C(P) = allreduce(gradients) + allgather(features, relationnet only) + 2 small BN reductions
           per BN layer (sum, sum of squares; forward and backward)
    allreduce(n bytes): reduction to rank 0 then broadcast, each a pipelined binomial tree:
           2 * (ceil(log2 P) * alpha + n / bandwidth)
    allgather(n bytes per node): ring, (P - 1) * (alpha + n / bandwidth)
    small reductions: 2 * ceil(log2 P) * alpha each (latency only)
Compute is assumed to split perfectly (T1 / P); the batch per node shrinks with P, which in
practice lowers efficiency further at large P, so the projections are upper bounds on speed.
Usage: python3 bench/scaling_model.py  (no arguments; edit the measured inputs below)."""
import math

# Measured on the benchmark machine (docs/benchmarks.md, 2026-12-05; 2 cores, 2 threads).
CASES = [
    # name, seconds per step on one node, gradient floats (backbone + relation head: Linear 128-256,
    # BN1d 256, Linear 256-1 = 33,793), gathered floats per step (K*B rows of 64), BN layers, steps/epoch
    ("relationnet conv4 K=32 B=64 (headline)", 0.240, 24648 + 33793, 32 * 64 * 64, 5, 781),
    ("relationnet resnet32 K=32 B=64 (paper)", 1.166 * 8, 466256 + 33793, 32 * 64 * 64, 34, 781),
]
LINKS = [("10 Gb/s Ethernet (TCP)", 1.25e9, 30e-6), ("100 Gb/s InfiniBand", 12.5e9, 2e-6)]
NODES = [1, 2, 4, 8, 16, 32, 64]
EPOCHS = 200


def comm(p, grad_bytes, gather_bytes, bn_layers, bw, alpha):
    if p == 1:
        return 0.0
    lg = math.ceil(math.log2(p))
    t = 2 * (lg * alpha + grad_bytes / bw)
    if gather_bytes:
        t += (p - 1) * (alpha + gather_bytes / p / bw)
    t += bn_layers * 2 * 2 * lg * alpha  # forward and backward, sum and sum of squares together
    return t


for name, t1, grads, gathered, bn, steps in CASES:
    print(f"\n{name}: {t1:.3f} s/step on one node, {grads * 4 / 1e6:.2f} MB of gradients")
    for link, bw, alpha in LINKS:
        print(f"  {link}, alpha {alpha * 1e6:.0f} us:")
        print("    nodes  s/step  comm s  speed-up  efficiency  200 epochs (h)")
        for p in NODES:
            c = comm(p, grads * 4, gathered * 4, bn, bw, alpha)
            t = t1 / p + c
            print(f"    {p:5d}  {t:6.3f}  {c:6.4f}  {t1 / t:8.1f}  {t1 / t / p:10.0%}  {t * steps * EPOCHS / 3600:14.1f}")
