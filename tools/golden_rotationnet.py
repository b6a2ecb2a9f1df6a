"""golden_rotationnet: writes tests/golden/rotationnet.safetensors, rotationnet's batch construction and loss
(spec 3.3, A11) computed the reference's way, for relate to match.
Not a test: tests/baselines_sr/test_simclr_rotationnet.c compares.

rot<S>.x [B, 3, S, S], rot<S>.y [4B, 3, S, S]   X and [X; R1 X; R2 X; R3 X] for S = 5 (odd, B = 2) and S = 4
    (even, B = 3), built with the reference's transpose/flip calls; checked here against torch.rot90(X, k, (2, 3))
    and against the spec's index formulas.
ce.features [4B, d], ce.weight [4, d], ce.bias [4]   Linear(d, 4) (PyTorch default init) on fixed features, B = 6
ce.targets [4B] (I32), ce.logits [4B, 4], ce.loss [1], ce.grad.features, ce.grad.weight, ce.grad.bias, ce.acc [1] (F64, %)
"""
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from golden_common import save_safetensors

D = 64


def rotate_reference(data):
    """methods/rotationnet.py: the three rotated copies and the targets."""
    batch_size = data.shape[0]
    x_90 = data.transpose(2, 3).flip(2)
    x_180 = data.flip(2).flip(3)
    x_270 = data.flip(2).transpose(2, 3)
    data = torch.cat((data, x_90, x_180, x_270), 0)
    target = torch.cat((torch.zeros(batch_size), torch.ones(batch_size), 2 * torch.ones(batch_size),
                        3 * torch.ones(batch_size)), 0).long()
    return data, target


def rotate_spec(x, k):
    S = x.shape[-1]
    y = torch.empty_like(x)
    for i in range(S):
        for j in range(S):
            if k == 1:
                y[..., i, j] = x[..., j, S - 1 - i]
            elif k == 2:
                y[..., i, j] = x[..., S - 1 - i, S - 1 - j]
            else:
                y[..., i, j] = x[..., S - 1 - j, i]
    return y


def make(out_dir):
    tensors = {}
    gen = torch.Generator().manual_seed(53)
    for S, B in ((5, 2), (4, 3)):
        x = torch.randn(B, 3, S, S, generator=gen)
        y, t = rotate_reference(x)
        for k in (1, 2, 3):
            block = y[k * B:(k + 1) * B]
            assert torch.equal(block, torch.rot90(x, k, (2, 3))), "rot90 k=%d" % k
            assert torch.equal(block, rotate_spec(x, k)), "spec formula k=%d" % k
        assert torch.equal(t, torch.arange(4).repeat_interleave(B))
        tensors["rot%d.x" % S] = x
        tensors["rot%d.y" % S] = y

    B = 6
    torch.manual_seed(17)
    lin = nn.Linear(D, 4)
    feats = torch.randn(4 * B, D, generator=gen).requires_grad_(True)
    _, target = rotate_reference(torch.zeros(B, 1, 2, 2))
    logits = lin(feats)
    loss = F.cross_entropy(logits, target)
    loss.backward()
    pred = logits.detach().argmax(-1)
    acc = 100.0 * int(pred.eq(target).sum()) / float(len(target))
    tensors["ce.features"] = feats.detach().clone()
    tensors["ce.weight"] = lin.weight.detach().clone()
    tensors["ce.bias"] = lin.bias.detach().clone()
    tensors["ce.targets"] = target.to(torch.int32)
    tensors["ce.logits"] = logits.detach().clone()
    tensors["ce.loss"] = loss.detach().reshape(1)
    tensors["ce.grad.features"] = feats.grad.clone()
    tensors["ce.grad.weight"] = lin.weight.grad.clone()
    tensors["ce.grad.bias"] = lin.bias.grad.clone()
    tensors["ce.acc"] = torch.tensor([acc], dtype=torch.float64)
    save_safetensors(os.path.join(out_dir, "rotationnet.safetensors"), tensors, metadata={"d": D, "B": B})
