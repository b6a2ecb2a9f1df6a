"""golden_deepcluster: writes tests/golden/deepcluster.safetensors, deepcluster's pieces (spec 3.5) computed the
reference's way, for relate to match.
Not a test: tests/deepcluster/test_deepcluster.c compares. scikit-learn is not installed here, so its formulas
are written out with numpy (float64) below.

pca.x [N, D], pca.out [N, D], pca.ev [D]              PCA(n_components=D, whiten=True).fit_transform: centre,
                                                      SVD, svd_flip (u-based), U * sqrt(N - 1); ev = S^2 / (N - 1)
pcar.x [N, E], pcar.out [N, D], pcar.ev [D]           the same with fewer components than features (D < E)
km<c>.x [n, f], km<c>.init [k, f]                     Lloyd from given centres, sklearn's _kmeans_single_lloyd:
km<c>.labels [n] (I32), km<c>.centers [k, f],         E-step argmin(||c||^2 - 2 x.c), M-step means, empty clusters
km<c>.inertia [1] (F64), km<c>.n_iter [1] (I32),      relocated to the farthest rows, strict / tol convergence,
km<c>.tol [1] (F64)                                   final E-step; c = 1 (plain), 2 (an empty cluster at start)
head.features [B, d], head.<param>                    classifier head (torch default init) on fixed features
head.pseudo [N] (I32), head.indices [B] (I32)         pseudo-labels of the "dataset" and the batch's indices
head.weights [k], head.logits [B, k], head.loss [1]   the reference's weight code and CrossEntropyLoss(weight)
head.grad.features, head.grad.<param>                 gradients; head.bn1.running_mean / running_var after it
wrap.x [3, S, S], wrap.img [S, S, 3] (U8)             to_pil_image of a normalised tensor with values beyond [0, 1]
wrap.v [M], wrap.b [M] (U8)                           v.mul(255).byte() on edge values
"""
import os

import numpy as np
import torch
import torch.nn as nn
from torchvision.transforms.functional import to_pil_image

from golden_common import save_safetensors


def pca_whiten(x, n_comp):
    """sklearn PCA(n_components, whiten=True, svd_solver='full').fit_transform(x) in float64."""
    x = x.astype(np.float64)
    n = x.shape[0]
    xc = x - x.mean(axis=0)
    u, s, vt = np.linalg.svd(xc, full_matrices=False)
    # svd_flip(u, v), u_based_decision=True: the largest |u| of each column becomes positive
    cols = np.argmax(np.abs(u), axis=0)
    signs = np.sign(u[cols, range(u.shape[1])])
    u *= signs
    ev = s ** 2 / (n - 1)
    return (u[:, :n_comp] * np.sqrt(n - 1)), ev[:n_comp]


def lloyd(x, init, max_iter, tol):
    """sklearn's _kmeans_single_lloyd (unit weights) in float64, with _relocate_empty_clusters_dense."""
    x = x.astype(np.float64)
    centers = init.astype(np.float64).copy()
    n, k = x.shape[0], centers.shape[0]
    labels_old = np.full(n, -1, dtype=np.int64)
    strict = False
    margins = []

    def assign(c):
        dist = (c ** 2).sum(1)[None, :] - 2.0 * x @ c.T
        srt = np.sort(dist, axis=1)
        margins.append((srt[:, 1] - srt[:, 0]).min())
        return np.argmin(dist, axis=1)

    it = 0
    while it < max_iter:
        labels = assign(centers)
        sums = np.zeros_like(centers)
        weight = np.zeros(k)
        for i in range(n):
            sums[labels[i]] += x[i]
            weight[labels[i]] += 1
        empty = np.where(weight == 0)[0]
        if len(empty):
            d = ((x - centers[labels]) ** 2).sum(1)
            far = np.argsort(-d, kind="stable")[:len(empty)]
            for e, fi in zip(empty, far):
                old = labels[fi]
                sums[old] -= x[fi]
                sums[e] = x[fi]
                weight[e] = 1
                weight[old] -= 1
        new = sums / weight[:, None]
        shift = ((new - centers) ** 2).sum()
        centers = new
        it += 1
        if np.array_equal(labels, labels_old):
            strict = True
            break
        if shift <= tol:
            break
        labels_old = labels.copy()
    if not strict:
        labels = assign(centers)
    inertia = ((x - centers[labels]) ** 2).sum()
    return labels, centers, inertia, it, min(margins)


def make(out_dir):
    t = {}
    rng = np.random.RandomState(2020)

    # ---- PCA whitening
    n, d = 160, 16
    mix = rng.randn(d, d) * np.linspace(0.2, 3.0, d)[None, :]
    x = (rng.randn(n, d) @ mix + rng.randn(d) * 2).astype(np.float32)
    out, ev = pca_whiten(x, d)
    t["pca.x"] = torch.from_numpy(x)
    t["pca.out"] = torch.from_numpy(out.astype(np.float32))
    t["pca.ev"] = torch.from_numpy(ev.astype(np.float32))
    e = 24
    mix = rng.randn(e, e) * np.linspace(0.1, 2.0, e)[None, :]
    xr = (rng.randn(n, e) @ mix).astype(np.float32)
    outr, evr = pca_whiten(xr, 12)
    t["pcar.x"] = torch.from_numpy(xr)
    t["pcar.out"] = torch.from_numpy(outr.astype(np.float32))
    t["pcar.ev"] = torch.from_numpy(evr.astype(np.float32))

    # ---- k-means (Lloyd from given centres); data redrawn until no label is a near tie
    for case, (nk, k, f, empty) in {"km1": (400, 6, 8, False), "km2": (300, 5, 6, True)}.items():
        while True:
            blobs = rng.randn(k, f) * 2.0
            xk = (blobs[rng.randint(0, k, nk)] + rng.randn(nk, f) * 1.2).astype(np.float32)
            init = xk[rng.choice(nk, k, replace=False)].copy()
            if empty:
                init[2] = np.float32(40.0)  # far from every row: cluster 2 starts empty
            xv = xk.astype(np.float64)
            tol = np.mean(np.var(xv, axis=0)) * 1e-4
            labels, centers, inertia, it, margin = lloyd(xk, init, 30, tol)
            if margin > 1e-3 and it >= 3:
                break
        t[case + ".x"] = torch.from_numpy(xk)
        t[case + ".init"] = torch.from_numpy(init)
        t[case + ".labels"] = torch.from_numpy(labels.astype(np.int32))
        t[case + ".centers"] = torch.from_numpy(centers.astype(np.float32))
        t[case + ".inertia"] = torch.tensor([inertia], dtype=torch.float64)
        t[case + ".n_iter"] = torch.tensor([it], dtype=torch.int32)
        t[case + ".tol"] = torch.tensor([tol], dtype=torch.float64)

    # ---- head + weighted cross-entropy, the reference's code
    torch.manual_seed(11)
    B, D, K, N = 12, 64, 20, 50
    gen = torch.Generator().manual_seed(12)
    feats = torch.randn(B, D, generator=gen).requires_grad_(True)
    import collections
    head = nn.Sequential(collections.OrderedDict([
        ("linear1", nn.Linear(D, 256)),
        ("bn1", nn.BatchNorm1d(256)),
        ("relu", nn.LeakyReLU()),
        ("linear2", nn.Linear(256, K)),
    ]))
    head.linear2.weight.data.normal_(0, 0.01)
    head.linear2.bias.data.zero_()
    head.train()
    for name, p in head.named_parameters():
        t["head." + name] = p.detach().clone()
    pseudo = torch.randint(0, K - 3, (N,), generator=gen)  # clusters 17-19 stay empty
    weight = torch.zeros(K, dtype=torch.float32)
    for value in pseudo:
        weight[value] += 1.0
    weight = 1.0 - (weight / len(pseudo))
    indices = torch.randperm(N, generator=gen)[:B]
    target = pseudo[indices]
    ce = torch.nn.CrossEntropyLoss(weight)
    logits = head(feats)
    loss = ce(logits, target)
    loss.backward()
    t["head.features"] = feats.detach()
    t["head.pseudo"] = pseudo.to(torch.int32)
    t["head.indices"] = indices.to(torch.int32)
    t["head.weights"] = weight
    t["head.logits"] = logits.detach()
    t["head.loss"] = loss.detach().reshape(1)
    t["head.grad.features"] = feats.grad
    for name, p in head.named_parameters():
        t["head.grad." + name] = p.grad
    t["head.bn1.running_mean"] = head.bn1.running_mean.clone()
    t["head.bn1.running_var"] = head.bn1.running_var.clone()

    # ---- float -> 8-bit wrap-around of to_pil_image
    S = 8
    xw = torch.randn(3, S, S, generator=gen) * 2.5
    xw.view(-1)[:6] = torch.tensor([1.0, 1.004, -0.0039, 255.0 / 255.0 + 1e-7, -1.5, 2.0])
    t["wrap.x"] = xw
    t["wrap.img"] = torch.from_numpy(np.array(to_pil_image(xw)))
    v = torch.tensor([-3.0, -2.1, -1.5, -1.0, -0.5, -0.0039, -0.0, 0.0, 0.5, 0.999, 1.0, 1.004, 1.5, 2.0, 2.7,
                      3.1, 10.0, -10.0, 100.0, 8421504.5, -8421504.5, 1e7, -1e7, 3e9, float("inf"),
                      float("-inf"), float("nan")], dtype=torch.float32)
    t["wrap.v"] = v
    t["wrap.b"] = v.mul(255).byte()

    save_safetensors(os.path.join(out_dir, "deepcluster.safetensors"), t,
                     {"__generator__": "torch %s, numpy %s" % (torch.__version__, np.__version__)})
