"""golden_deepinfomax: writes tests/golden/deepinfomax.safetensors, Deep InfoMax's loss (spec 3.4: local
discriminator on [M || y expanded] and on [M' || y expanded], prior discriminator, alpha 0, beta 1, gamma 0.1)
computed the reference's way (methods/deepinfomax.py) on fixed y, M and prior samples u, with its gradients,
for relate's fast (factorised) and literal local discriminators to match.
Not a test: tests/deepinfomax/test_deepinfomax.c compares. Also the modules bench/bench_deepinfomax_torch.py
times.

Sizes: B = 4 images, M_ch = 8 (conv4), H = W = 6, d = 64.
  y [B, d], M [B, M_ch, H, W], u [B, d]   inputs (u replaces torch.rand_like(y))
  T, Tprime [B, 1, H, W]                  local discriminator on [M || y] and [M' || y]
  local [1], prior [1], loss [1]          LOCAL, PRIOR and L = LOCAL + PRIOR
  grad.y, grad.M                          dL/dy, dL/dM (M' = cat(M[1:], M[:1]) included)
  grad.<param> for tensors of at most 4096 elements, else gradsample.<param> [4096] (flat indices
  j * numel // 4096) and gradstats.<param> [2] F64 (sum, 2-norm) of the whole gradient.
Discriminator parameters are not stored: every one is the hash fill `param_fill` (below, and
tests/deepinfomax/test_deepinfomax.c) of its index in registration order, U(-1/sqrt(fan_in), 1/sqrt(fan_in))-like.
"""
import math
import os
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from golden_common import save_safetensors

B, MC, H, W, D = 4, 8, 6, 6, 64
SAMPLE = 4096
KINK_MARGIN = 3e-6


# ------------------------------------------------------------------------- modules (spec 3.4)

class LocalDiscriminator(nn.Module):
    def __init__(self, y_size, m_channels):
        super().__init__()
        self.c0 = nn.Conv2d(y_size + m_channels, 256, kernel_size=1)
        self.c1 = nn.Conv2d(256, 256, kernel_size=1)
        self.c2 = nn.Conv2d(256, 1, kernel_size=1)

    def forward(self, x):
        h = F.relu(self.c0(x))
        h = F.relu(self.c1(h))
        return self.c2(h)


class PriorDiscriminator(nn.Module):
    def __init__(self, y_size):
        super().__init__()
        self.l0 = nn.Linear(y_size, 512)
        self.l1 = nn.Linear(512, 128)
        self.l2 = nn.Linear(128, 1)

    def forward(self, x):
        h = F.relu(self.l0(x))
        h = F.relu(self.l1(h))
        return torch.sigmoid(self.l2(h))


class DeepInfoMaxLoss(nn.Module):
    """alpha = 0 (no global discriminator is built), beta = 1, gamma = 0.1, as the reference runs it."""

    def __init__(self, y_size, m_channels, beta=1.0, gamma=0.1):
        super().__init__()
        self.local_d = LocalDiscriminator(y_size, m_channels)
        self.prior_d = PriorDiscriminator(y_size)
        self.beta, self.gamma = beta, gamma

    def local_loss(self, y, M, M_prime):
        y_exp = y.unsqueeze(-1).unsqueeze(-1).expand(-1, -1, M.shape[2], M.shape[3])
        y_M = torch.cat((M, y_exp), dim=1)
        y_M_prime = torch.cat((M_prime, y_exp), dim=1)
        self.T = self.local_d(y_M)
        self.T_prime = self.local_d(y_M_prime)
        Ej = -F.softplus(-self.T).mean()
        Em = F.softplus(self.T_prime).mean()
        return (Em - Ej) * self.beta

    def prior_loss(self, y, prior):
        term_a = torch.log(self.prior_d(prior)).mean()
        term_b = torch.log(1.0 - self.prior_d(y)).mean()
        return -(term_a + term_b) * self.gamma

    def forward(self, y, M, M_prime, prior=None):
        LOCAL = self.local_loss(y, M, M_prime)
        GLOBAL = 0.0
        if prior is None:
            prior = torch.rand_like(y)
        PRIOR = self.prior_loss(y, prior)
        self.LOCAL, self.PRIOR = LOCAL, PRIOR
        return LOCAL + GLOBAL + PRIOR


def encode_conv4(backbone, x):
    """The reference's Encoder.forward_conv4: y, and M = layer1's conv-bn-relu output."""
    l1 = backbone.layer1
    M = l1.relu(l1.bn(l1.conv(x)))
    h = backbone.layer4(backbone.layer3(backbone.layer2(l1.avgpool(M))))
    return backbone.flatten(h), M


# ------------------------------------------------------------------------- deterministic parameters

def _mix(x):
    x = x & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x2C1B3C6D) & 0xFFFFFFFF
    x ^= x >> 12
    x = (x * 0x297A2D39) & 0xFFFFFFFF
    x ^= x >> 15
    return x


def param_fill(tag, numel, fan_in):
    """float32 (q - 2^23) * float32(1/sqrt(fan_in) / 2^23), q = mix((i+1)*0x9E3779B1 + tag*0x85EBCA77) >> 8:
    exact in both numpy and C, so the C test rebuilds every parameter bit for bit."""
    i = np.arange(numel, dtype=np.uint64)
    x = ((i + 1) * np.uint64(0x9E3779B1) + np.uint64((tag * 0x85EBCA77) & 0xFFFFFFFF)) & np.uint64(0xFFFFFFFF)
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(0x2C1B3C6D)) & np.uint64(0xFFFFFFFF)
    x ^= x >> np.uint64(12)
    x = (x * np.uint64(0x297A2D39)) & np.uint64(0xFFFFFFFF)
    x ^= x >> np.uint64(15)
    q = (x >> np.uint64(8)).astype(np.int64) - (1 << 23)
    scale = np.float32((1.0 / math.sqrt(fan_in)) / 8388608.0)
    return torch.from_numpy(q.astype(np.float32) * scale)


def _set_params(loss_fn):
    for tag, (name, p) in enumerate(loss_fn.named_parameters()):
        w = p if name.endswith("weight") else dict(loss_fn.named_parameters())[name[:-4] + "weight"]
        fan_in = w[0].numel()
        with torch.no_grad():
            p.copy_(param_fill(tag, p.numel(), fan_in).reshape(p.shape))


# ------------------------------------------------------------------------- golden file

def _kink_margin(loss_fn, y, M, u):
    """Smallest |v| / rms(v) over every ReLU input, in float64 (see golden_backbones._kink_margin)."""
    f = DeepInfoMaxLoss(D, MC).double()
    f.load_state_dict(loss_fn.state_dict())
    y, M, u = y.double(), M.double(), u.double()
    worst = float("inf")
    y_exp = y[:, :, None, None].expand(-1, -1, H, W)
    Mp = torch.cat([M[1:], M[:1]], 0)
    for inp in (torch.cat((M, y_exp), 1), torch.cat((Mp, y_exp), 1)):
        h0 = f.local_d.c0(inp)
        h1 = f.local_d.c1(F.relu(h0))
        for v in (h0, h1):
            worst = min(worst, (v.abs().min() / v.pow(2).mean().sqrt()).item())
    for inp in (u, y):
        a0 = f.prior_d.l0(inp)
        a1 = f.prior_d.l1(F.relu(a0))
        for v in (a0, a1):
            worst = min(worst, (v.abs().min() / v.pow(2).mean().sqrt()).item())
    return worst


def make(out_dir):
    torch.set_num_threads(1)
    torch.manual_seed(3405)
    loss_fn = DeepInfoMaxLoss(D, MC)
    _set_params(loss_fn)
    count = sum(p.numel() for p in loss_fn.parameters())
    assert count == 183810, count  # spec 3.4: conv4's discriminators
    for attempt in range(200):
        y = torch.rand(B, D)
        M = F.relu(torch.randn(B, MC, H, W))
        u = torch.rand(B, D)
        if _kink_margin(loss_fn, y, M, u) > KINK_MARGIN:
            break
    else:
        raise RuntimeError("no input away from ReLU kinks found")

    yg = y.clone().requires_grad_(True)
    Mg = M.clone().requires_grad_(True)
    M_prime = torch.cat([Mg[1:], Mg[0].unsqueeze(0)], dim=0)
    loss = loss_fn(yg, Mg, M_prime, prior=u)
    loss.backward()

    t = OrderedDict()
    t["y"], t["M"], t["u"] = y, M, u
    t["T"] = loss_fn.T.detach().clone()
    t["Tprime"] = loss_fn.T_prime.detach().clone()
    t["local"] = loss_fn.LOCAL.detach().reshape(1).clone()
    t["prior"] = loss_fn.PRIOR.detach().reshape(1).clone()
    t["loss"] = loss.detach().reshape(1).clone()
    t["grad.y"] = yg.grad.clone()
    t["grad.M"] = Mg.grad.clone()
    for name, p in loss_fn.named_parameters():
        g = p.grad.detach()
        if g.numel() > SAMPLE:
            flat = g.reshape(-1)
            idx = torch.tensor([(j * flat.numel()) // SAMPLE for j in range(SAMPLE)])
            t["gradsample." + name] = flat[idx].clone()
            g64 = flat.double()
            t["gradstats." + name] = torch.stack([g64.sum(), g64.norm()])
        else:
            t["grad." + name] = g.clone()
    keys = [name for name, _ in loss_fn.named_parameters()]
    meta = {"B": B, "M_channels": MC, "H": H, "W": W, "d": D, "params": ",".join(keys),
            "loss_fn_keys": ",".join(loss_fn.state_dict().keys())}
    path = os.path.join(out_dir, "deepinfomax.safetensors")
    save_safetensors(path, t, meta)
    print("%s: loss %.6f (local %.6f, prior %.6f), inputs drawn %d time(s), %d bytes"
          % (path, loss.item(), loss_fn.LOCAL.item(), loss_fn.PRIOR.item(), attempt + 1, os.path.getsize(path)))
    return path
