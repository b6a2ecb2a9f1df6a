"""bench_backbones_torch: PyTorch's forward+backward throughput of one backbone in training mode,
the same work as bench_backbones.c (loss = sum(features * r)).
Not a training run. Modules come from tools/golden_backbones.py (spec section 2).

usage: /usr/bin/python3 bench/bench_backbones_torch.py BACKBONE BATCH IMAGE_SIZE STEPS
prints: torch name batch size median_ms min_ms max_ms images_per_s - max_rss_mib (2^20 bytes)
"""
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import golden_backbones  # noqa: E402


def main():
    name, n, s, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(2)
    torch.manual_seed(1)
    model, d = golden_backbones.build(name)
    model.train()
    x = torch.randn(n, 3, s, s)
    r = torch.rand(n, d)
    times = []
    for it in range(2 + steps):
        t0 = time.perf_counter()
        y = model(x)
        (y * r).sum().backward()
        model.zero_grad(set_to_none=True)
        if it >= 2:
            times.append(time.perf_counter() - t0)
    times.sort()
    med = times[len(times) // 2]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print("torch %s %d %d %.2f %.2f %.2f %.1f - %.0f" % (name, n, s, med * 1e3, times[0] * 1e3,
                                                         times[-1] * 1e3, n / med, rss))


if __name__ == "__main__":
    main()
