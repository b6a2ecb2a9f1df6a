"""fidelity_standard: the supervised baseline (`standard`, spec 3.6) trained by relate and by the reference's stage-1
loop in PyTorch, on the same real data, over many seeds; prints both sides' stage-1 training accuracy and test
accuracy per seed, the means, standard deviations and Welch's t. An experiment, not a test (docs/fidelity.md
records its result): issue 16 found relate's standard 1.9 points above the reference on a CIFAR-10 subset.

The PyTorch side is the reference's stage 1 for `standard` as spec 1.3, 3.6, 4.3 (T3), 4.5 and 5.3 state it: the
reference's conv4 (He-normal fan-out init, BN 1/0) built after torch.manual_seed(seed), a Linear(64, C) with
PyTorch's default init, SGD on two groups (backbone; classifier) lr 0.1 momentum 0.9, the x0.1 decay at the start
of epochs int(0.5 E) and int(0.75 E) (E = 1: one decay at epoch 0, so the epoch runs at 0.01), torchvision's
RandomCrop(S, padding=P) -> RandomHorizontalFlip -> ToTensor -> Normalize on PIL images, a shuffled DataLoader with
drop_last = False, the training accuracy meter weighted by batch size, and the test pass of spec 5.3 in eval mode.
The relate side is the CLI: relate train_unsupervised --method=standard with the same flags.

Data: Fashion-MNIST from Debian's dataset-fashion-mnist (the CIFAR files cannot be downloaded here), grey replicated
to RGB as relate reads it, relate's normalisation constants. Both sides stop each epoch after --limit batches of a
fresh shuffle of all 60,000 images (relate's --limit_train_batches), which is a uniform random subset as large as
the issue's 10,000-image CIFAR subset.

Usage: /usr/bin/python3 tools/fidelity_standard.py --relate build/relate [--seeds 1-8] [--limit 79] [--epochs 1]
         [--batch 128] [--threads 2]
"""
import argparse
import gzip
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn
from PIL import Image
import torchvision.transforms as T

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_backbones  # noqa: E402  (the reference's conv4, spec 2.2)

FM_DIR = "/usr/share/datasets/fashion-mnist"
MEAN, STD = (0.2860, 0.2860, 0.2860), (0.3530, 0.3530, 0.3530)  # src/data/dataset.c, fashionmnist
SIDE, PAD, CLASSES = 28, 4, 10


def read_idx(name):
    with gzip.open(os.path.join(FM_DIR, name), "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


class FashionRGB(torch.utils.data.Dataset):
    def __init__(self, split, transform):
        prefix = "train" if split == "train" else "t10k"
        self.x = read_idx(prefix + "-images-idx3-ubyte.gz")
        self.y = read_idx(prefix + "-labels-idx1-ubyte.gz").astype(np.int64)
        self.transform = transform

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        img = Image.fromarray(self.x[i], mode="L").convert("RGB")
        return self.transform(img), int(self.y[i])


def reference_model(seed):
    torch.manual_seed(seed)
    backbone, d = golden_backbones.build("conv4")
    for m in backbone.modules():  # spec 2.5
        if isinstance(m, nn.Conv2d):
            n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            m.weight.data.normal_(0, math.sqrt(2.0 / n))
        elif isinstance(m, nn.BatchNorm2d):
            m.weight.data.fill_(1)
            m.bias.data.zero_()
    torch.manual_seed(seed)  # spec 1.3 step 4: the data manager re-seeds before the heads are built
    classifier = nn.Linear(d, CLASSES)
    return backbone, classifier


def run_reference(seed, args):
    torch.set_num_threads(args.threads)
    backbone, classifier = reference_model(seed)
    opt = torch.optim.SGD([{"params": backbone.parameters(), "lr": 0.1, "momentum": 0.9},
                           {"params": classifier.parameters(), "lr": 0.1, "momentum": 0.9}])
    train_t = T.Compose([T.RandomCrop(SIDE, padding=PAD), T.RandomHorizontalFlip(), T.ToTensor(),
                         T.Normalize(MEAN, STD)])
    test_t = T.Compose([T.ToTensor(), T.Normalize(MEAN, STD)])
    train = torch.utils.data.DataLoader(FashionRGB("train", train_t), batch_size=args.batch, shuffle=True,
                                        drop_last=False, num_workers=2)
    test = torch.utils.data.DataLoader(FashionRGB("test", test_t), batch_size=args.batch, shuffle=False)
    ce = nn.CrossEntropyLoss()
    E = args.epochs
    train_acc = 0.0
    for epoch in range(E):
        backbone.train(), classifier.train()
        if epoch == int(E * 0.5) or epoch == int(E * 0.75):
            for g in opt.param_groups:
                g["lr"] *= 0.1
        correct = seen = 0
        for i, (x, y) in enumerate(train):
            if args.limit and i >= args.limit:
                break
            opt.zero_grad()
            out = classifier(backbone(x))
            loss = ce(out, y)
            loss.backward()
            opt.step()
            correct += int((out.argmax(-1) == y).sum())
            seen += len(y)
        train_acc = 100.0 * correct / seen
    backbone.eval(), classifier.eval()
    correct = seen = 0
    with torch.no_grad():
        for x, y in test:
            correct += int((classifier(backbone(x)).argmax(-1) == y).sum())
            seen += len(y)
    return train_acc, 100.0 * correct / seen


def run_relate(seed, args, workdir):
    cmd = [os.path.abspath(args.relate), "train_unsupervised", "--dataset=fashionmnist", "--method=standard",
           "--backbone=conv4", "--seed=%d" % seed, "--data_size=%d" % args.batch, "--epochs=%d" % args.epochs,
           "--limit_train_batches=%d" % args.limit, "--threads=%d" % args.threads,
           "--data_root=%s" % os.path.abspath(args.data_root)]
    out = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, check=True).stdout
    acc = [float(a) for a in re.findall(r"^Epoch \[\d+\]\[[^]]*\] loss: [^;]+; acc: ([0-9.]+)%", out, re.M)]
    test = re.search(r"^Test accuracy: ([0-9.]+)%", out, re.M)
    if not acc or not test:
        raise RuntimeError("unexpected relate output:\n" + out)
    return acc[-1], float(test.group(1))


def welch_t(a, b):
    va, vb = statistics.variance(a), statistics.variance(b)
    return (statistics.mean(a) - statistics.mean(b)) / math.sqrt(va / len(a) + vb / len(b))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--relate", required=True)
    p.add_argument("--data_root", default="./data")
    p.add_argument("--seeds", default="1-8")
    p.add_argument("--limit", type=int, default=79)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    lo, _, hi = args.seeds.partition("-")
    seeds = list(range(int(lo), int(hi or lo) + 1))
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for s in seeds:
            t0 = time.time()
            rt, rs = run_relate(s, args, work)
            t1 = time.time()
            pt, ps = run_reference(s, args)
            t2 = time.time()
            rows.append((s, rt, pt, rs, ps))
            print("seed %d: stage-1 train acc relate %.2f reference %.2f | test acc relate %.2f reference %.2f"
                  " (%.0f s, %.0f s)" % (s, rt, pt, rs, ps, t1 - t0, t2 - t1), flush=True)
    for col, name in ((1, "stage-1 train acc"), (3, "test acc")):
        a = [r[col] for r in rows]
        b = [r[col + 1] for r in rows]
        print("%s: relate %.2f +- %.2f, reference %.2f +- %.2f, difference %+.2f, Welch t %.2f, relate higher in %d"
              " of %d" % (name, statistics.mean(a), statistics.stdev(a), statistics.mean(b), statistics.stdev(b),
                          statistics.mean(a) - statistics.mean(b), welch_t(a, b), sum(x > y for x, y in zip(a, b)),
                          len(a)))


if __name__ == "__main__":
    main()
