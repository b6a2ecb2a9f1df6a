"""bench_deepinfomax_torch: PyTorch's time for one deepinfomax training step as the reference does it
(methods/deepinfomax.py: conv4 encoder returning y and M, M' = cat(M[1:], M[:1]), the local
discriminator on cat(M, y expanded) and on cat(M', y expanded), the prior term, Adam 1e-4), for
bench_deepinfomax.c to be compared with. Not a training run (synthetic N(0,1) images).
Modules: tools/golden_deepinfomax.py (the reference's, spec 3.4) and tools/golden_backbones.py.

Where the reference's time goes on this machine (conv4, B = 128, 32x32, 2 threads): 13-21 s per step, of
which ~9 s is system time for ~1.4 million page faults: every [128, 256, 32, 32] intermediate (134 MB) is a
fresh mmap that glibc unmaps again when it is freed. With
GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736 the same step takes ~0.9-1.0 s:
oneDNN's 1x1 convolutions then run near the cores' peak, on ~130 GFLOP (c0 on the 64 constant y channels
included).

usage: /usr/bin/python3 bench/bench_deepinfomax_torch.py [BATCH [IMAGE_SIZE [STEPS [THREADS]]]]
       (defaults 128 32 5 2)
prints: one line per phase (median ms of STEPS steps after 2 warm-up steps):
  torch deepinfomax B S step_ms <median> min <min> | local_fwd_bwd_ms <m> | rest_ms <m> - max_rss_mib <r>
"""
import os
import resource
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
import golden_backbones  # noqa: E402
import golden_deepinfomax  # noqa: E402


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 128
    s = int(sys.argv[2]) if len(sys.argv) > 2 else 32
    steps = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    threads = int(sys.argv[4]) if len(sys.argv) > 4 else 2
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    backbone, d = golden_backbones.build("conv4")
    loss_fn = golden_deepinfomax.DeepInfoMaxLoss(d, 8)
    opt = torch.optim.Adam([{"params": backbone.parameters(), "lr": 1e-4},
                            {"params": loss_fn.parameters(), "lr": 1e-4}])
    backbone.train()
    x = torch.randn(n, 3, s, s)
    step_t, local_t = [], []
    for it in range(2 + steps):
        t0 = time.perf_counter()
        opt.zero_grad()
        y, M = golden_deepinfomax.encode_conv4(backbone, x)
        M_prime = torch.cat([M[1:], M[0].unsqueeze(0)], dim=0)
        loss = loss_fn(y, M, M_prime)
        loss.backward()
        opt.step()
        t1 = time.perf_counter()
        # The local discriminator alone (forward + backward on detached inputs).
        yd, Md = y.detach().requires_grad_(), M.detach().requires_grad_()
        t2 = time.perf_counter()
        Mp = torch.cat([Md[1:], Md[0].unsqueeze(0)], dim=0)
        loss_fn.local_loss(yd, Md, Mp).backward()
        t3 = time.perf_counter()
        loss_fn.zero_grad()
        if it >= 2:
            step_t.append(t1 - t0)
            local_t.append(t3 - t2)
    step_t.sort()
    local_t.sort()
    med, lmed = step_t[len(step_t) // 2], local_t[len(local_t) // 2]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print("torch deepinfomax %d %d step_ms %.1f min %.1f | local_fwd_bwd_ms %.1f | rest_ms %.1f - max_rss_mib %.0f"
          % (n, s, med * 1e3, step_t[0] * 1e3, lmed * 1e3, (med - lmed) * 1e3, rss))


if __name__ == "__main__":
    main()
