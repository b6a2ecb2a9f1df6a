"""golden_relationnet: writes tests/golden/relationnet.safetensors, the relation head of spec 3.1 computed the
reference's way (pairs built block by block with torch.cat/torch.roll, nn.Sequential head, focal loss) on fixed
features, for relate's factorised and literal heads to match.
Not a test: tests/methods/test_relationnet.c compares.

Per aggregation A in cat, sum, mean, max (K = 4 views, B = 5 images, d = 64 as conv4, so the shift wraps from B-1 to 1):
  A.features [K*B, d]                     input features (view-major)
  A.linear1.weight, A.linear1.bias, A.bn1.weight, A.bn1.bias, A.linear2.weight, A.linear2.bias   head parameters
  A.logits [P], A.targets [P], A.loss [1] forward (P = B*K*(K-1))
  A.grad.features, A.grad.<param>         gradients of the loss
  A.bn1.running_mean, A.bn1.running_var   BatchNorm1d state after the forward
  A.acc [3]                               accuracy, first-half and second-half accuracy in % (spec 3.1.6)
  bce.* (cat only)                        the essential script's plain BCE instead of the focal loss: bce.loss
"""
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from golden_common import save_safetensors

K, B, D = 4, 5, 64


def aggregate(features, agg):
    pairs, targets = [], []
    shift = 1
    size = features.shape[0] // K
    for i1 in range(0, size * K, size):
        for i2 in range(i1 + size, size * K, size):
            a = features[i1:i1 + size]
            b = features[i2:i2 + size]
            bn = torch.roll(b, shifts=shift, dims=0)
            if agg == "cat":
                pos, neg = torch.cat([a, b], 1), torch.cat([a, bn], 1)
            elif agg == "sum":
                pos, neg = a + b, a + bn
            elif agg == "mean":
                pos, neg = (a + b) / 2.0, (a + bn) / 2.0
            else:
                pos, neg = torch.max(a, b), torch.max(a, bn)
            pairs += [pos, neg]
            targets += [torch.ones(size), torch.zeros(size)]
            shift += 1
            if shift >= size:
                shift = 1
    return torch.cat(pairs, 0), torch.cat(targets, 0)


def focal_loss(x, t, gamma=2.0, alpha=0.5):
    bce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    p = torch.sigmoid(x)
    p_t = t * p + (1 - t) * (1 - p)
    alpha_t = t * alpha + (1 - t) * (1 - alpha)
    return (alpha_t * (1 - p_t) ** gamma * bce).mean()


def make(out_dir):
    tensors = {}
    gen = torch.Generator().manual_seed(31)
    for agg in ("cat", "sum", "mean", "max"):
        torch.manual_seed(7)
        feats = torch.randn(K * B, D, generator=gen)
        if agg == "max":
            feats[3, 2] = feats[3 + 2 * B, 2]  # one exact tie: the gradient splits in half
        feats.requires_grad_(True)
        inp = 2 * D if agg == "cat" else D
        head = nn.Sequential()
        head.add_module("linear1", nn.Linear(inp, 256))
        head.add_module("bn1", nn.BatchNorm1d(256))
        head.add_module("relu", nn.LeakyReLU())
        head.add_module("linear2", nn.Linear(256, 1))
        head.train()
        for name, p in head.named_parameters():
            tensors["%s.%s" % (agg, name)] = p.detach().clone()
        pairs, targets = aggregate(feats, agg)
        logits = head(pairs).squeeze()
        loss = focal_loss(logits, targets)
        loss.backward()
        pred = torch.round(torch.sigmoid(logits.detach()))
        half = logits.shape[0] // 2
        # as the reference: 100 * correct / float(len(target)), in Python floats
        acc = [100.0 * int(pred.eq(targets).sum()) / float(len(targets)),
               100.0 * int(pred[:half].eq(targets[:half]).sum()) / float(half),
               100.0 * int(pred[half:].eq(targets[half:]).sum()) / float(len(targets) - half)]
        tensors["%s.features" % agg] = feats.detach().clone()
        tensors["%s.logits" % agg] = logits.detach().clone()
        tensors["%s.targets" % agg] = targets.clone()
        tensors["%s.loss" % agg] = loss.detach().reshape(1)
        tensors["%s.grad.features" % agg] = feats.grad.clone()
        for name, p in head.named_parameters():
            tensors["%s.grad.%s" % (agg, name)] = p.grad.clone()
        tensors["%s.bn1.running_mean" % agg] = head.bn1.running_mean.clone()
        tensors["%s.bn1.running_var" % agg] = head.bn1.running_var.clone()
        tensors["%s.acc" % agg] = torch.tensor(acc, dtype=torch.float64)
        if agg == "cat":
            tensors["bce.loss"] = F.binary_cross_entropy_with_logits(logits.detach(), targets).reshape(1)
    save_safetensors(os.path.join(out_dir, "relationnet.safetensors"), tensors,
                     metadata={"K": K, "B": B, "d": D})
