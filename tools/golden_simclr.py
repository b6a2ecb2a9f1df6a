"""golden_simclr: writes tests/golden/simclr.safetensors, simclr's projection head and loss (spec 3.2, A10) computed
the reference's way (nn.Sequential head, return_loss_fn taken from the reference) on fixed features, for relate's
fused loss op and head to match.
Not a test: tests/baselines_sr/test_simclr_rotationnet.c compares.

head.* (B = 6 images, 2B = 12 interleaved views, d = 64 as conv4):
  head.features [2B, d]                     input features, rows 2n and 2n+1 = views 0 and 1 of image n
  head.linear1.weight_i8 [256, d], head.linear2.weight_i8 [64, 256]   I8 codes: weight = code * 2^-10 (linear1),
                                            code * 2^-11 (linear2), exact in float32 (keeps the file < 200 KB)
  head.linear1.bias, head.bn1.weight, head.bn1.bias, head.linear2.bias    F32
  head.z [2B, 64], head.loss [1]            forward
  head.grad.features, head.grad.<param>     gradients of the loss
  head.bn1.running_mean, head.bn1.running_var   BatchNorm1d state after the forward
loss.* (the loss alone on given embeddings z, including degenerate rows):
  clamp.z [8, 5]   row 3 all zeros and row 6 of norm ~1e-9: their norm products fall under eps = 1e-8
  pair.z [2, 5]    a single image (B = 1, the smallest last batch): loss 0 and zero gradient in exact arithmetic,
                   so both sides hold only rounding noise there
  <case>.loss [1], <case>.grad.z, <case>.loss64 [1] (F64: the same formula in float64; clamp's column 6 sums to
                   7.52 - e^2 = 0.133, a cancellation that leaves PyTorch's float32 loss 1.4e-5 from it)
"""
import os

import torch
import torch.nn as nn

from golden_common import save_safetensors

B, D = 6, 64


def return_loss_fn(x, t=0.5, eps=1e-8):
    """The reference's loss, verbatim in its operations (methods/simclr.py)."""
    # Estimate cosine similarity
    n = torch.norm(x, p=2, dim=1, keepdim=True)
    x = (x @ x.t()) / (n * n.t()).clamp(min=eps)
    x = torch.exp(x / t)
    # Put positive pairs on the diagonal
    idx = torch.arange(x.size()[0])
    idx[::2] += 1
    idx[1::2] -= 1
    x = x[idx]
    # subtract the similarity of 1 from the numerator
    x = x.diag() / (x.sum(0) - torch.exp(torch.tensor(1 / t)))
    return -torch.log(x.mean())


def make(out_dir):
    tensors = {}
    gen = torch.Generator().manual_seed(41)
    torch.manual_seed(11)
    # Two views of an image are correlated, as after a backbone: view 1 = view 0 + noise.
    base = torch.randn(B, D, generator=gen)
    feats = torch.stack([base, base + 0.5 * torch.randn(B, D, generator=gen)], 1).reshape(2 * B, D)
    feats = feats.clone().requires_grad_(True)
    head = nn.Sequential()
    head.add_module("linear1", nn.Linear(D, 256))
    head.add_module("bn1", nn.BatchNorm1d(256))
    head.add_module("relu", nn.LeakyReLU())
    head.add_module("linear2", nn.Linear(256, 64))
    head.train()
    with torch.no_grad():
        # Keeps the file small: the two weight matrices are int8 codes times a power of two (exact
        # in float32), stored as I8; the C test scales them back. Bounds match the default init.
        for name, shift in (("linear1", 10), ("linear2", 11)):
            w = getattr(head, name).weight
            codes = torch.randint(-127, 128, w.shape, generator=gen, dtype=torch.int32).to(torch.int8)
            w.copy_(codes.float() * 2.0 ** -shift)
            tensors["head.%s.weight_i8" % name] = codes
        head.bn1.weight.copy_(1 + 0.1 * torch.randn(256, generator=gen))
        head.bn1.bias.copy_(0.1 * torch.randn(256, generator=gen))
    for name, p in head.named_parameters():
        if not name.endswith(".weight") or name.startswith("bn1"):
            tensors["head.%s" % name] = p.detach().clone()
    z = head(feats)
    loss = return_loss_fn(z)
    loss.backward()
    tensors["head.features"] = feats.detach().clone()
    tensors["head.z"] = z.detach().clone()
    tensors["head.loss"] = loss.detach().reshape(1)
    tensors["head.grad.features"] = feats.grad.clone()
    for name, p in head.named_parameters():
        tensors["head.grad.%s" % name] = p.grad.clone()
    tensors["head.bn1.running_mean"] = head.bn1.running_mean.clone()
    tensors["head.bn1.running_var"] = head.bn1.running_var.clone()

    z = torch.randn(8, 5, generator=gen)
    z[3] = 0.0
    z[6] = z[6] / z[6].norm() * 1e-9
    z2 = torch.randn(2, 5, generator=gen)
    for case, zc in (("clamp", z), ("pair", z2)):
        zc = zc.clone().requires_grad_(True)
        loss = return_loss_fn(zc)
        loss.backward()
        tensors["%s.z" % case] = zc.detach().clone()
        tensors["%s.loss" % case] = loss.detach().reshape(1)
        tensors["%s.grad.z" % case] = zc.grad.clone()
        tensors["%s.loss64" % case] = return_loss_fn(zc.detach().double()).reshape(1)
    save_safetensors(os.path.join(out_dir, "simclr.safetensors"), tensors,
                     metadata={"B": B, "d": D, "tau": 0.5, "eps": 1e-8})
