"""bench_kmeans_torch: a plain PyTorch k-means of the same work as relate's (bench_kmeans.c): greedy k-means++
(2 + log k trials per centre), Lloyd with torch.cdist + argmin, at most 30 iterations, tol 1e-4 relative to the mean
feature variance, 5 restarts keeping the lowest inertia, on the features bench_kmeans.c dumped.
Not scikit-learn (not installable here) and not relate's exact algorithm: empty clusters keep their old centre
instead of sklearn's relocation, which changes nothing on this data.

usage: /usr/bin/python3 bench/bench_kmeans_torch.py FEATURES.f32 [N [D [K [THREADS]]]]
   (FEATURES.f32 from: build/bench/relate_bench_kmeans N D K FEATURES.f32)
"""
import math
import sys
import time

import numpy as np
import torch


def kmeans_pp(x, k, gen):
    n = x.shape[0]
    trials = 2 + int(math.log(k))
    first = int(torch.randint(n, (1,), generator=gen))
    idx = [first]
    closest = torch.cdist(x[first:first + 1], x)[0] ** 2
    pot = float(closest.sum())
    for _ in range(1, k):
        r = torch.rand(trials, generator=gen, dtype=torch.float64) * pot
        cum = torch.cumsum(closest.double(), 0)
        cand = torch.searchsorted(cum, r).clamp(max=n - 1)
        d = torch.minimum(torch.cdist(x[cand], x) ** 2, closest)
        pots = d.sum(1)
        b = int(torch.argmin(pots))
        pot = float(pots[b])
        closest = d[b]
        idx.append(int(cand[b]))
    return x[idx].clone()


def lloyd(x, centers, max_iter, tol):
    k = centers.shape[0]
    old = None
    strict = False
    it = 0
    for it in range(1, max_iter + 1):
        labels = torch.cdist(x, centers).argmin(1)
        sums = torch.zeros_like(centers).index_add_(0, labels, x)
        counts = torch.bincount(labels, minlength=k)
        new = torch.where((counts > 0)[:, None], sums / counts.clamp(min=1)[:, None].to(x.dtype), centers)
        shift = float(((new - centers) ** 2).sum())
        centers = new
        if old is not None and torch.equal(labels, old):
            strict = True
            break
        if shift <= tol:
            break
        old = labels
    if not strict:
        labels = torch.cdist(x, centers).argmin(1)
    inertia = float(((x - centers[labels]) ** 2).sum(dtype=torch.float64))
    return labels, centers, inertia, it


def main():
    path = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 50000
    d = int(sys.argv[3]) if len(sys.argv) > 3 else 64
    k = int(sys.argv[4]) if len(sys.argv) > 4 else 100
    threads = int(sys.argv[5]) if len(sys.argv) > 5 else 2
    torch.set_num_threads(threads)
    x = torch.from_numpy(np.fromfile(path, dtype=np.float32).reshape(n, d))
    xc = x - x.mean(0)
    tol = float(x.double().var(0, unbiased=False).mean()) * 1e-4
    gen = torch.Generator().manual_seed(1)
    print("torch %s k-means bench: N=%d d=%d k=%d, %d threads" % (torch.__version__, n, d, k, threads))
    t0 = time.perf_counter()
    c0 = kmeans_pp(xc, k, gen)
    t_pp = time.perf_counter() - t0
    t0 = time.perf_counter()
    _, _, _, it = lloyd(xc, c0, 30, tol)
    t_l = time.perf_counter() - t0
    print("one restart: k-means++ %.3f s, Lloyd %.3f s for %d iterations (%.1f ms/iteration)"
          % (t_pp, t_l, it, 1e3 * t_l / it))
    t0 = time.perf_counter()
    best = None
    inertias = []
    for _ in range(5):
        labels, centers, inertia, it = lloyd(xc, kmeans_pp(xc, k, gen), 30, tol)
        inertias.append(inertia)
        if best is None or inertia < best[0]:
            best = (inertia, it)
    t_fit = time.perf_counter() - t0
    print("k-means fit (5 restarts): %.3f s; best inertia %.4f, %d iterations; restarts: %s"
          % (t_fit, best[0], best[1], " ".join("%.4f" % v for v in inertias)))


if __name__ == "__main__":
    main()
