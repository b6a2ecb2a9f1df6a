"""bench_steps_torch: seconds per training step of the reference's methods in PyTorch, the work
bench_steps.c times in relate: relationnet (K views, the reference's pair construction with
torch.cat/torch.roll, Linear-BN-LeakyReLU-Linear head, focal loss, Adam), simclr (interleaved
views, projection head, the reference's loss), rotationnet (4B rotated images, Linear(d, 4)),
deepinfomax (conv4: local + prior discriminators, Adam 1e-4) and standard (backbone + Linear,
cross-entropy, SGD 0.1 momentum 0.9). The losses come from the golden generators in tools/.
Not a training run. "full" feeds batches from a DataLoader with the reference's transforms on a
synthetic in-memory CIFAR-like split (50,000 random 32x32 images); "compute" reuses one batch.

usage: /usr/bin/python3 bench/bench_steps_torch.py METHOD BACKBONE K BATCH STEPS full|compute [WORKERS [WARMUP]]
prints: torch method backbone K batch mode median_s min_s max_s images_per_s max_rss_mib params
backbone_params workers, where params counts the trainable parameters the optimizer updates
(backbone and heads: bench/run_suite.sh's bytes floor) and WARMUP (default 2) the untimed steps.
With BENCH_TORCH_COMPILE=1 the backbone and the head run under torch.compile (inductor, PyTorch 2),
as a careful user would compile a model; its warm-up (at least 3 steps) includes the compilation.
"""
import os
import resource
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
import golden_backbones  # noqa: E402
from golden_relationnet import focal_loss  # noqa: E402
from golden_simclr import return_loss_fn  # noqa: E402
from golden_rotationnet import rotate_reference  # noqa: E402
from golden_deepinfomax import DeepInfoMaxLoss, encode_conv4  # noqa: E402

MEAN, STD = (0.491, 0.482, 0.447), (0.247, 0.243, 0.262)


def aggregate(features, K):
    pairs, targets = [], []
    shift = 1
    size = features.shape[0] // K
    for i1 in range(0, size * K, size):
        for i2 in range(i1 + size, size * K, size):
            a = features[i1:i1 + size]
            b = features[i2:i2 + size]
            pairs += [torch.cat([a, b], 1), torch.cat([a, torch.roll(b, shifts=shift, dims=0)], 1)]
            targets += [torch.ones(size), torch.zeros(size)]
            shift += 1
            if shift >= size:
                shift = 1
    return torch.cat(pairs, 0), torch.cat(targets, 0)


class Views(Dataset):
    def __init__(self, data, k, tf):
        self.data, self.k, self.tf = data, k, tf

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        img = Image.fromarray(self.data[i])
        return [self.tf(img) for _ in range(self.k)], i % 10


def main():
    method, backbone, K, B, steps, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), \
        int(sys.argv[5]), sys.argv[6]
    workers = int(sys.argv[7]) if len(sys.argv) > 7 else 0
    warmup = int(sys.argv[8]) if len(sys.argv) > 8 else 2
    torch.set_num_threads(2)
    torch.manual_seed(1)
    net, d = golden_backbones.build(backbone)
    net.train()
    norm = transforms.Normalize(MEAN, STD)
    if method == "relationnet":
        tf = transforms.Compose([
            transforms.RandomResizedCrop(32, scale=(0.08, 1.0)), transforms.RandomHorizontalFlip(),
            transforms.RandomApply([transforms.ColorJitter(0.8, 0.8, 0.8, 0.2)], p=0.8),
            transforms.RandomGrayscale(p=0.2), transforms.ToTensor(), norm])
        head = nn.Sequential(nn.Linear(2 * d, 256), nn.BatchNorm1d(256), nn.LeakyReLU(), nn.Linear(256, 1))
        opt = torch.optim.Adam([{"params": net.parameters(), "lr": 1e-3}, {"params": head.parameters(), "lr": 1e-3}])
        views = K
    elif method == "simclr":
        tf = transforms.Compose([
            transforms.RandomResizedCrop(32, scale=(0.08, 1.0)), transforms.RandomHorizontalFlip(),
            transforms.RandomApply([transforms.ColorJitter(0.8, 0.8, 0.8, 0.2)], p=0.8),
            transforms.RandomGrayscale(p=0.2), transforms.ToTensor(), norm])
        head = nn.Sequential(nn.Linear(d, 256), nn.BatchNorm1d(256), nn.LeakyReLU(), nn.Linear(256, 64))
        opt = torch.optim.Adam([{"params": net.parameters(), "lr": 1e-3}, {"params": head.parameters(), "lr": 1e-3}])
        views = 2
    else:
        crop = [transforms.RandomCrop(32, padding=4)] if method != "deepinfomax" else []
        tf = transforms.Compose(crop + [transforms.RandomHorizontalFlip(), transforms.ToTensor(), norm])
        if method == "rotationnet":
            head = nn.Linear(d, 4)
        elif method == "deepinfomax":
            head = DeepInfoMaxLoss(d, 8)
        else:
            head = nn.Linear(d, 10)
        if method == "standard":
            opt = torch.optim.SGD([{"params": net.parameters(), "lr": 0.1},
                                   {"params": head.parameters(), "lr": 0.1}], momentum=0.9)
        else:
            lr = 1e-4 if method == "deepinfomax" else 1e-3
            opt = torch.optim.Adam([{"params": net.parameters(), "lr": lr}, {"params": head.parameters(), "lr": lr}])
        views = 1
    if os.environ.get("BENCH_TORCH_COMPILE") == "1":
        # The optimizer already holds the parameters; compiled modules share them.
        net = torch.compile(net)
        head = torch.compile(head)
        warmup = max(warmup, 3)
    data = np.random.RandomState(1).randint(0, 256, size=(50000, 32, 32, 3), dtype=np.uint8)
    loader = DataLoader(Views(data, views, tf), batch_size=B, shuffle=True, num_workers=workers, drop_last=True)
    it_loader = iter(loader)
    fixed = next(it_loader)

    def step(batch):
        data_views, labels = batch
        opt.zero_grad()
        if method == "relationnet":
            x = torch.cat(data_views, 0)
            feats = net(x)
            pairs, targets = aggregate(feats, K)
            loss = focal_loss(head(pairs).squeeze(), targets)
        elif method == "simclr":
            x = torch.stack(data_views, 1).reshape(-1, *data_views[0].shape[1:])  # rows 2n, 2n+1: views of n
            loss = return_loss_fn(head(net(x)))
        elif method == "rotationnet":
            x, target = rotate_reference(data_views[0])
            loss = F.cross_entropy(head(net(x)), target)
        elif method == "deepinfomax":
            y, M = encode_conv4(net, data_views[0])
            M_prime = torch.cat((M[1:], M[0].unsqueeze(0)), dim=0)
            loss = head(y, M, M_prime)
        else:
            loss = F.cross_entropy(head(net(data_views[0])), labels)
        loss.backward()
        opt.step()

    times = []
    for it in range(warmup + steps):
        t0 = time.perf_counter()
        step(next(it_loader) if mode == "full" else fixed)
        if it >= warmup:
            times.append(time.perf_counter() - t0)
    times.sort()
    med = times[len(times) // 2]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    params = sum(p.numel() for group in opt.param_groups for p in group["params"] if p.requires_grad)
    backbone_params = sum(p.numel() for p in net.parameters() if p.requires_grad)
    print("torch %s %s %d %d %s %.4f %.4f %.4f %.1f %.0f %d %d %d" % (
        method, backbone, K, B, mode, med, times[0], times[-1], B / med, rss, params, backbone_params, workers))


if __name__ == "__main__":
    main()
