"""golden_kernels: writes tests/golden/kernels.safetensors, PyTorch references for every kernel of src/kernels/kernels.h.
Not a test and not a benchmark: it only records torch's forward outputs and autograd gradients; tests/golden_kernels/ compares.

Each case stores tensors `<case>.<tensor>` (inputs, forward output, upstream gradient `dy` and the
resulting gradients `d<input>`), and its integer/float settings as JSON text in __metadata__[case].
Integer tensors (targets, argmax) are I32; everything else F32; scalar losses are F32 shape [1].
"""
import json
import zlib

import torch
import torch.nn.functional as F

from golden_common import save_safetensors


def _seed(name):
    # Per-case seed so adding or removing a case leaves the others unchanged.
    torch.manual_seed(zlib.crc32(name.encode()) & 0x7FFFFFFF)


class _Cases:
    def __init__(self):
        self.tensors = {}
        self.meta = {}

    def add(self, case, settings, **tensors):
        assert case not in self.meta, case
        self.meta[case] = json.dumps(settings, sort_keys=True, separators=(",", ":"))
        for name, t in tensors.items():
            t = t.detach()
            if t.dtype == torch.int64:
                t = t.to(torch.int32)
            if t.dim() == 0:
                t = t.reshape(1)
            self.tensors[case + "." + name] = t.contiguous()


def _leaf(t):
    return t.clone().requires_grad_(True)


# ------------------------------------------------------------------------------------ cases

def _conv(c, case, n, ch, h, w, o, k, stride, pad):
    _seed(case)
    x = _leaf(torch.randn(n, ch, h, w))
    wt = _leaf(torch.randn(o, ch, k, k) * (2.0 / (k * k * ch)) ** 0.5)
    y = F.conv2d(x, wt, stride=stride, padding=pad)
    dy = torch.randn_like(y)
    y.backward(dy)
    c.add(case, dict(n=n, c=ch, h=h, w=w, o=o, kh=k, kw=k, stride=stride, pad=pad,
                     ho=y.shape[2], wo=y.shape[3]),
          x=x, w=wt, y=y, dy=dy, dx=x.grad, dw=wt.grad)


def _bn_train(c, case, shape):
    _seed(case)
    n, ch = shape[0], shape[1]
    hw = 1
    for s in shape[2:]:
        hw *= s
    x = _leaf(torch.randn(*shape) * 1.7 + torch.linspace(-1, 2, ch).reshape([1, ch] + [1] * (len(shape) - 2)))
    gamma = _leaf(torch.rand(ch) + 0.5)
    beta = _leaf(torch.rand(ch) * 0.4 - 0.2)
    rm0 = torch.rand(ch) * 0.4 - 0.2
    rv0 = torch.rand(ch) + 0.5
    rm, rv = rm0.clone(), rv0.clone()
    y = F.batch_norm(x, rm, rv, gamma, beta, training=True, momentum=0.1, eps=1e-5)
    # saved statistics, as torch's native kernel keeps them for the backward
    _, smean, sinv = torch.native_batch_norm(x.detach(), gamma.detach(), beta.detach(),
                                             rm0.clone(), rv0.clone(), True, 0.1, 1e-5)
    dy = torch.randn_like(y)
    y.backward(dy)
    c.add(case, dict(n=n, c=ch, hw=hw, momentum=0.1, eps=1e-5),
          x=x, gamma=gamma, beta=beta, running_mean0=rm0, running_var0=rv0,
          y=y, saved_mean=smean, saved_invstd=sinv, running_mean=rm, running_var=rv,
          dy=dy, dx=x.grad, dgamma=gamma.grad, dbeta=beta.grad)


def _bn_eval(c, case, shape):
    _seed(case)
    n, ch = shape[0], shape[1]
    hw = 1
    for s in shape[2:]:
        hw *= s
    x = _leaf(torch.randn(*shape) * 1.3 + 0.3)
    gamma = _leaf(torch.rand(ch) + 0.5)
    beta = _leaf(torch.rand(ch) * 0.4 - 0.2)
    rm = torch.rand(ch) * 0.4 - 0.2
    rv = torch.rand(ch) + 0.5
    y = F.batch_norm(x, rm, rv, gamma, beta, training=False, momentum=0.1, eps=1e-5)
    dy = torch.randn_like(y)
    y.backward(dy)
    c.add(case, dict(n=n, c=ch, hw=hw, eps=1e-5),
          x=x, gamma=gamma, beta=beta, running_mean=rm, running_var=rv,
          y=y, dy=dy, dx=x.grad, dgamma=gamma.grad, dbeta=beta.grad)


def _unary(c, case, fn, x, settings=None):
    x = _leaf(x)
    y = fn(x)
    dy = torch.randn_like(y)
    y.backward(dy)
    c.add(case, dict(settings or {}, count=x.numel()), x=x, y=y, dy=dy, dx=x.grad)


def _pool(c, case, kind, n, ch, h, w, k, stride, pad, quantise=False):
    _seed(case)
    xv = torch.randn(n, ch, h, w)
    if quantise:
        xv = torch.round(xv * 2) / 2  # many exact ties inside windows
    x = _leaf(xv)
    tensors = {}
    if kind == "avg":
        y = F.avg_pool2d(x, k, stride, pad)
    else:
        y, idx = F.max_pool2d(x, k, stride, pad, return_indices=True)
        tensors["argmax"] = idx
    dy = torch.randn_like(y)
    y.backward(dy)
    c.add(case, dict(n=n, c=ch, h=h, w=w, k=k, stride=stride, pad=pad, ho=y.shape[2], wo=y.shape[3]),
          x=x, y=y, dy=dy, dx=x.grad, **tensors)


def _matmul(c, case, m, n, k, ta, tb):
    _seed(case)
    a = _leaf(torch.randn(k, m) if ta else torch.randn(m, k))
    b = _leaf(torch.randn(n, k) if tb else torch.randn(k, n))
    y = (a.t() if ta else a) @ (b.t() if tb else b)
    dy = torch.randn_like(y)
    y.backward(dy)
    c.add(case, dict(m=m, n=n, k=k, trans_a=ta, trans_b=tb), a=a, b=b, y=y, dy=dy, da=a.grad, db=b.grad)


def _scalar_loss(c, case, settings, fn, inputs, grads, g=0.7):
    """fn(**inputs) -> scalar; records loss, g (upstream) and d<name> for names in grads."""
    leaves = {k: (_leaf(v) if k in grads else v) for k, v in inputs.items()}
    loss = fn(**leaves)
    loss.backward(torch.tensor(g))
    out = dict(inputs)
    out["loss"] = loss
    out["g"] = torch.tensor([g])
    for k in grads:
        out["d" + k] = leaves[k].grad
    c.add(case, settings, **out)


def focal_loss(x, t, alpha, gamma):
    """Sigmoid focal loss of spec 3.1.5, written as its formula (mean over all pairs)."""
    bce = torch.clamp(x, min=0) - x * t + torch.log(1 + torch.exp(-torch.abs(x)))
    sig = 1 / (1 + torch.exp(-x))
    p_t = t * sig + (1 - t) * (1 - sig)
    alpha_t = t * alpha + (1 - t) * (1 - alpha)
    w = alpha_t * (1 - p_t) ** gamma
    return (w * bce).mean()


def build():
    torch.set_num_threads(1)
    c = _Cases()

    # convolution (no bias)
    _conv(c, "conv_s1p1", 2, 3, 8, 7, 4, 3, 1, 1)
    _conv(c, "conv_s2p1", 2, 3, 9, 8, 5, 3, 2, 1)
    _conv(c, "conv_1x1s2", 2, 4, 8, 7, 6, 1, 2, 0)
    _conv(c, "conv_7x7s2p3", 2, 3, 16, 15, 4, 7, 2, 3)

    # batch norm
    _bn_train(c, "bn2d_train", (4, 3, 5, 4))
    _bn_train(c, "bn1d_train", (6, 5))
    _bn_eval(c, "bn2d_eval", (3, 4, 3, 5))
    _bn_eval(c, "bn1d_eval", (5, 6))

    # activations (randn has no exact zeros, so the kink is never hit)
    _seed("relu")
    _unary(c, "relu", torch.relu, torch.randn(3, 4, 5))
    _seed("leaky_relu")
    _unary(c, "leaky_relu", lambda x: F.leaky_relu(x, 0.01), torch.randn(3, 4, 5), dict(slope=0.01))
    _seed("sigmoid")
    _unary(c, "sigmoid", torch.sigmoid, torch.randn(60) * 4)

    # pooling
    _pool(c, "avgpool", "avg", 2, 3, 6, 7, 2, 2, 0)
    _pool(c, "maxpool", "max", 2, 3, 9, 8, 3, 2, 1)
    _pool(c, "maxpool_ties", "max", 2, 2, 8, 8, 3, 2, 1, quantise=True)
    _seed("global_avgpool")
    x = _leaf(torch.randn(2, 3, 4, 5))
    y = F.adaptive_avg_pool2d(x, 1).flatten(1)
    dy = torch.randn_like(y)
    y.backward(dy)
    c.add("global_avgpool", dict(n=2, c=3, hw=20), x=x, y=y, dy=dy, dx=x.grad)

    # element-wise
    _seed("mul")
    a, b = _leaf(torch.randn(50)), _leaf(torch.randn(50))
    y = a * b
    dy = torch.randn_like(y)
    y.backward(dy)
    c.add("mul", dict(count=50), a=a, b=b, y=y, dy=dy, da=a.grad, db=b.grad)
    _seed("add")
    a, b = _leaf(torch.randn(50)), _leaf(torch.randn(50))
    y = a + b
    dy = torch.randn_like(y)
    y.backward(dy)
    c.add("add", dict(count=50), a=a, b=b, y=y, dy=dy, da=a.grad, db=b.grad)
    _seed("maximum")
    av, bv = torch.randn(60), torch.randn(60)
    bv[::4] = av[::4]  # exact ties: each side receives dy/2 (PyTorch 1.13)
    a, b = _leaf(av), _leaf(bv)
    y = torch.maximum(a, b)
    dy = torch.randn_like(y)
    y.backward(dy)
    c.add("maximum", dict(count=60, ties=15), a=a, b=b, y=y, dy=dy, da=a.grad, db=b.grad)
    _seed("exp")
    _unary(c, "exp", torch.exp, torch.randn(40) * 3)
    _seed("log")
    _unary(c, "log", torch.log, torch.rand(40) * 5 + 0.01)
    _seed("sum")
    _unary(c, "sum", lambda x: x.sum(), torch.randn(1000) + 0.25)
    _seed("mean")
    _unary(c, "mean", lambda x: x.mean(), torch.randn(37) + 0.25)

    # batch-axis moves
    for shift in (2, 6, -1):
        case = "roll_s%d" % shift if shift >= 0 else "roll_sm%d" % -shift
        _seed(case)
        _unary(c, case, lambda x: torch.roll(x, shift, dims=0), torch.randn(5, 3, 2),
               dict(n=5, row=6, shift=shift))
    _seed("cat_cols")
    a, b = _leaf(torch.randn(4, 3)), _leaf(torch.randn(4, 5))
    y = torch.cat([a, b], dim=1)
    dy = torch.randn_like(y)
    y.backward(dy)
    c.add("cat_cols", dict(n=4, ca=3, cb=5), a=a, b=b, y=y, dy=dy, da=a.grad, db=b.grad)

    # matrix products
    _seed("linear")
    x, w, bias = _leaf(torch.randn(5, 7)), _leaf(torch.randn(4, 7) * 0.4), _leaf(torch.randn(4) * 0.2)
    y = F.linear(x, w, bias)
    dy = torch.randn_like(y)
    y.backward(dy)
    c.add("linear", dict(n=5, **{"in": 7}, out=4), x=x, w=w, b=bias, y=y, dy=dy,
          dx=x.grad, dw=w.grad, db=bias.grad)
    for ta in (0, 1):
        for tb in (0, 1):
            _matmul(c, "matmul_t%d%d" % (ta, tb), 5, 4, 6, ta, tb)

    # softmax family and norms
    _seed("log_softmax")
    xv = torch.randn(5, 7) * 2
    xv[1] += 50.0   # large offsets: the max must be subtracted
    xv[3] -= 80.0
    _unary(c, "log_softmax", lambda x: F.log_softmax(x, dim=1), xv, dict(n=5, c=7))
    _seed("normalize")
    _unary(c, "normalize", lambda x: F.normalize(x, p=2, dim=1, eps=1e-12), torch.randn(5, 6) * 2,
           dict(n=5, c=6, eps=1e-12))
    # rows whose norm is below eps: y = x / eps and dx = dy / eps (clamp_min passes no gradient)
    _seed("normalize_tiny")
    xv = torch.zeros(3, 4)
    xv[1] = torch.randn(4) * 1e-14
    xv[2] = torch.randn(4) * 1e-14
    _unary(c, "normalize_tiny", lambda x: F.normalize(x, p=2, dim=1, eps=1e-12), xv,
           dict(n=3, c=4, eps=1e-12))

    # losses
    _seed("cross_entropy")
    x = torch.randn(6, 5) * 2
    t = torch.tensor([0, 4, 2, 2, 1, 3])
    _scalar_loss(c, "cross_entropy", dict(n=6, c=5),
                 lambda x, targets: F.cross_entropy(x, targets), dict(x=x, targets=t), ("x",))
    c.tensors["cross_entropy.prob"] = torch.softmax(x, dim=1)
    _seed("cross_entropy_w")
    x = torch.randn(7, 4) * 2
    t = torch.tensor([3, 0, 1, 1, 2, 3, 3])
    wcls = torch.rand(4) * 2 + 0.1
    _scalar_loss(c, "cross_entropy_w", dict(n=7, c=4),
                 lambda x, targets, weights: F.cross_entropy(x, targets, weight=weights),
                 dict(x=x, targets=t, weights=wcls), ("x",))
    c.tensors["cross_entropy_w.prob"] = torch.softmax(x, dim=1)
    _seed("bce_logits")
    x = torch.randn(24) * 3
    x[0], x[1], x[2], x[3] = 30.0, -30.0, 25.0, -25.0
    t = (torch.rand(24) > 0.5).float()
    t[20:] = torch.tensor([0.25, 0.5, 0.75, 0.9])  # soft targets too
    _scalar_loss(c, "bce_logits", dict(n=24),
                 lambda x, t: F.binary_cross_entropy_with_logits(x, t), dict(x=x, t=t), ("x",))
    for case, alpha in (("focal", 0.5), ("focal_a25", 0.25)):
        _seed(case)
        x = torch.randn(32) * 3
        x[0], x[1], x[2], x[3] = 12.0, -12.0, 12.0, -12.0
        t = (torch.rand(32) > 0.5).float()
        t[0], t[1], t[2], t[3] = 1.0, 0.0, 0.0, 1.0  # confident right and confident wrong
        _scalar_loss(c, case, dict(n=32, alpha=alpha, gamma=2.0),
                     lambda x, t, alpha=alpha: focal_loss(x, t, alpha, 2.0), dict(x=x, t=t), ("x",))
    return c


def make(out_dir):
    import os
    c = build()
    meta = dict(c.meta)
    meta["__generator__"] = "tools/golden_kernels.py, torch %s" % torch.__version__
    path = os.path.join(out_dir, "kernels.safetensors")
    save_safetensors(path, c.tensors, meta)
    print("%s: %d cases, %d tensors, %d bytes" % (path, len(c.meta), len(c.tensors), os.path.getsize(path)))
    return path
