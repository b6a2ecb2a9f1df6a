"""golden_knn: the weighted kNN classifier of InstDisc (Wu et al. 2018), as solo-learn and lightly
evaluate self-supervised features, computed by PyTorch 1.13 on synthetic features: L2-normalised
features, cosine similarity, the k most similar training features vote for their label with weight
exp(similarity / T), classes ranked by summed weight; top-1 and top-5 accuracy in percent.

Writes knn.safetensors: per case c, c/train, c/train_labels, c/test, c/test_labels (labels as
float32), c/pred (the top-ranked class of every test feature), c/acc ([top-1, top-5]); and for
retrieval (the training rows as the database, the test rows as queries): c/retrieval_top (the 10
most similar rows of each query, most similar first) and c/retrieval ([R, precision@R, mAP@R]).
"""
import os

import torch
import torch.nn.functional as F

from golden_common import save_safetensors

CASES = [  # name, d, ntrain, ntest, classes, k, T, class separation
    ("small_k20", 16, 1000, 300, 10, 20, 0.1, 0.6),
    ("k200_t007", 16, 1000, 300, 10, 200, 0.07, 0.6),
    ("k_over_n", 8, 30, 40, 4, 50, 0.1, 1.0),
    ("hundred", 32, 2000, 200, 100, 200, 0.1, 0.35),
    ("separable", 8, 200, 100, 5, 10, 0.1, 6.0),
]


def knn(train, train_y, test, k, T, C):
    train = F.normalize(train, dim=1)
    test = F.normalize(test, dim=1)
    sim = test @ train.t()
    k = min(k, train.shape[0])
    s, idx = sim.topk(k, dim=1, largest=True, sorted=True)
    w = (s / T).exp()
    votes = torch.zeros(test.shape[0], C, dtype=torch.float32).scatter_add_(1, train_y[idx], w)
    pred = votes.argsort(dim=1, descending=True)
    return pred


def make(out_dir):
    torch.set_num_threads(1)
    tensors = {}
    for i, (name, d, ntr, nte, C, k, T, sep) in enumerate(CASES):
        g = torch.Generator().manual_seed(1000 + i)
        centres = torch.randn(C, d, generator=g) * sep
        ytr = torch.randint(0, C, (ntr,), generator=g)
        yte = torch.randint(0, C, (nte,), generator=g)
        xtr = centres[ytr] + torch.randn(ntr, d, generator=g)
        xte = centres[yte] + torch.randn(nte, d, generator=g)
        pred = knn(xtr, ytr, xte, k, T, C)
        top1 = (pred[:, 0] == yte).float().mean() * 100
        top5 = (pred[:, :5] == yte[:, None]).any(dim=1).float().mean() * 100
        tensors[name + "/train"] = xtr
        tensors[name + "/train_labels"] = ytr.float()
        tensors[name + "/test"] = xte
        tensors[name + "/test_labels"] = yte.float()
        tensors[name + "/pred"] = pred[:, 0].float()
        tensors[name + "/acc"] = torch.tensor([top1.item(), top5.item()])
        tensors[name + "/params"] = torch.tensor([float(k), T, float(C)])
        # Retrieval: the top R database rows of each query by cosine, most similar first, then
        # precision@R and mAP@R (average precision over the R ranks), in percent.
        R = min(10, ntr)
        sim = F.normalize(xte, dim=1) @ F.normalize(xtr, dim=1).t()
        _, idx = sim.topk(R, dim=1, largest=True, sorted=True)
        rel = (ytr[idx] == yte[:, None]).float()
        hits = rel.cumsum(dim=1)
        prec_at = hits / torch.arange(1, R + 1, dtype=torch.float32)
        ap = (prec_at * rel).sum(dim=1) / rel.sum(dim=1).clamp(min=1)
        tensors[name + "/retrieval_top"] = idx.float()
        tensors[name + "/retrieval"] = torch.tensor([float(R), rel.mean().item() * 100, ap.mean().item() * 100])
    save_safetensors(os.path.join(out_dir, "knn.safetensors"), tensors)


if __name__ == "__main__":
    make(os.path.join(os.path.dirname(__file__), "..", "tests", "golden"))
