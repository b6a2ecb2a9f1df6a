"""golden_tsne: the input affinities of t-SNE computed by numpy in float64, for tests/eval/test_tsne.c.

Row i of the conditional P is p_j|i = exp(-beta_i |x_i - x_j|^2) / sum_k!=i exp(-beta_i |x_i - x_k|^2)
with beta_i found so that the row's entropy is log(perplexity) nats; the joint P is
(P + P^T) / 2N. Dense: over every other point (relate's exact t-SNE). Sparse: over each point's k
nearest neighbours only (Barnes-Hut; ties to the lower index), stored here as a dense [N, N]
matrix with zeros elsewhere. Not relate's algorithm: beta is found by bisection on log(beta) for
all rows at once, 200 halvings of [-60, 60] (relate brackets beta from 1 / mean distance with
doubling and stops at an entropy error of 1e-10).

Writes tsne.safetensors: per case c, c/x [N, d], c/params [perplexity, k], c/p_dense [N, N],
c/p_sparse [N, N] (float32).
"""
import os

import numpy as np
import torch

from golden_common import save_safetensors

CASES = [  # name, N, d, perplexity, k (= floor(3 perplexity), at most N - 1), clusters, separation
    ("clusters", 80, 8, 10.0, 30, 4, 4.0),
    ("small_perp", 50, 16, 3.5, 10, 1, 0.0),
]


def conditional(dist, target):
    """dist: [N, m] squared distances to the others; returns the rows of the conditional P."""
    shifted = dist - dist.min(axis=1, keepdims=True)
    lo = np.full(dist.shape[0], -60.0)
    hi = np.full(dist.shape[0], 60.0)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        beta = np.exp(mid)[:, None]
        e = np.exp(-beta * shifted)
        s = e.sum(axis=1, keepdims=True)
        p = e / s
        h = -(p * np.log(np.where(p > 0, p, 1.0))).sum(axis=1)
        # entropy falls as beta grows: too high -> larger beta
        lo = np.where(h > target, mid, lo)
        hi = np.where(h > target, hi, mid)
    beta = np.exp(0.5 * (lo + hi))[:, None]
    e = np.exp(-beta * shifted)
    return e / e.sum(axis=1, keepdims=True)


def affinities(x, perplexity, k=None):
    n = x.shape[0]
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=2)
    cond = np.zeros((n, n))
    if k is None:
        others = np.array([[j for j in range(n) if j != i] for i in range(n)])
    else:
        rows = []
        for i in range(n):
            order = [j for j in np.lexsort((np.arange(n), d2[i])) if j != i]
            rows.append(order[:k])
        others = np.array(rows)
    dist = np.take_along_axis(d2, others, axis=1)
    pr = conditional(dist, np.log(perplexity))
    np.put_along_axis(cond, others, pr, axis=1)
    return (cond + cond.T) / (2.0 * n)


def make(out_dir):
    tensors = {}
    for i, (name, n, d, perp, k, clusters, sep) in enumerate(CASES):
        rng = np.random.default_rng(1400 + i)
        centres = rng.standard_normal((clusters, d)) * sep
        x = (centres[rng.integers(0, clusters, n)] + rng.standard_normal((n, d))).astype(np.float32)
        xd = x.astype(np.float64)  # relate reads the same float32 features
        tensors[name + "/x"] = torch.from_numpy(x)
        tensors[name + "/params"] = torch.tensor([perp, float(k)], dtype=torch.float32)
        tensors[name + "/p_dense"] = torch.from_numpy(affinities(xd, perp).astype(np.float32))
        tensors[name + "/p_sparse"] = torch.from_numpy(affinities(xd, perp, k).astype(np.float32))
    save_safetensors(os.path.join(out_dir, "tsne.safetensors"), tensors)


if __name__ == "__main__":
    make(os.path.join(os.path.dirname(__file__), "..", "tests", "golden"))
