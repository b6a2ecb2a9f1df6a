"""bench_lineval_torch: seconds of the reference's stage 2 (linear evaluation, spec 5.1) in PyTorch,
the work that `relate train_linear_evaluation` does in bench/run_suite.sh: a conv4 backbone frozen in
eval mode, its features computed on every mini-batch of every epoch with autograd on and then
detached (as the reference's StandardModel.forward(x, detach=True) does), a fresh Linear(64, 10),
Adam(lr 1e-3) on the linear layer only, cross-entropy, B = 128, shuffle, transform T5 (ToTensor +
Normalize) applied to a PIL image made per item from an in-memory uint8 array (as torchvision's
CIFAR10 dataset does); then the test pass (both in eval mode, no gradient, T6 = T5, same batch).
Not a training run and not the checkpoint I/O: the backbone keeps its initial weights (relate's
side reads a randomweights checkpoint), and nothing is saved.

100 epochs would take too long here, so E epochs are timed (--measure, default 2) and the total is
extrapolated: total = epochs x median epoch + test pass. Every epoch includes the DataLoader's
start (worker processes are not persistent, as in the reference).

usage: /usr/bin/python3 bench/bench_lineval_torch.py [--data_root DIR] [--workers W] [--measure E]
       [--epochs 100] [--batch 128]
DIR holds cifar-10-batches-bin/ (bench_floor's synthetic files); without it, random images.
prints: torch lineval conv4 EPOCHS BATCH lineval total_s total_min_s total_max_s images_per_s
max_rss_mib workers measured_epochs epoch_median_s test_s
(total_min/max use the fastest / slowest measured epoch; images_per_s = EPOCHS x 50,000 / total_s).
"""
import argparse
import os
import resource
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn as nn
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
import golden_backbones  # noqa: E402

MEAN, STD = (0.491, 0.482, 0.447), (0.247, 0.243, 0.262)
RECORD = 3073  # CIFAR-10 binary: 1 label byte, then R, G, B planes of 32 x 32


def read_cifar_bin(paths):
    """uint8 images [N, 32, 32, 3] (HWC, as torchvision's CIFAR10 holds them) and int64 labels."""
    raw = np.concatenate([np.fromfile(p, dtype=np.uint8).reshape(-1, RECORD) for p in paths])
    images = raw[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy()
    return images, raw[:, 0].astype(np.int64)


class Images(Dataset):
    def __init__(self, data, labels, tf):
        self.data, self.labels, self.tf = data, labels, tf

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        return self.tf(Image.fromarray(self.data[i])), int(self.labels[i])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data_root", default="")
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--measure", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--batch", type=int, default=128)
    a = ap.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(1)
    if a.data_root:
        d = os.path.join(a.data_root, "cifar-10-batches-bin")
        train_x, train_y = read_cifar_bin([os.path.join(d, "data_batch_%d.bin" % i) for i in range(1, 6)])
        test_x, test_y = read_cifar_bin([os.path.join(d, "test_batch.bin")])
    else:
        rs = np.random.RandomState(1)
        train_x = rs.randint(0, 256, size=(50000, 32, 32, 3), dtype=np.uint8)
        test_x = rs.randint(0, 256, size=(10000, 32, 32, 3), dtype=np.uint8)
        train_y, test_y = np.arange(50000) % 10, np.arange(10000) % 10
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    train = DataLoader(Images(train_x, train_y, tf), batch_size=a.batch, shuffle=True, num_workers=a.workers)
    test = DataLoader(Images(test_x, test_y, tf), batch_size=a.batch, shuffle=False)

    net, d = golden_backbones.build("conv4")
    classifier = nn.Linear(d, 10)
    ce = nn.CrossEntropyLoss()
    opt = torch.optim.Adam([{"params": classifier.parameters(), "lr": 1e-3}])

    times = []
    for _ in range(a.measure):
        t0 = time.perf_counter()
        net.eval()
        classifier.train()
        for data, target in train:
            opt.zero_grad()
            out = classifier(net(data).detach())
            loss = ce(out, target)
            loss.item()  # the reference's loss meter
            loss.backward()
            opt.step()
            (100.0 * out.argmax(-1).eq(target).sum() / float(len(target))).item()  # its accuracy meter
        times.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    net.eval()
    classifier.eval()
    correct = 0
    with torch.no_grad():
        for data, target in test:
            out = classifier(net(data))
            ce(out, target).item()
            correct += int(out.argmax(-1).eq(target).sum())
    test_s = time.perf_counter() - t0

    times.sort()
    med = statistics.median(times)  # with 2 epochs, their mean: the upper one would favour relate
    total = a.epochs * med + test_s
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print("extrapolated: %d epochs from %d measured (median epoch %.3f s) + test pass %.3f s; test accuracy %.2f%%"
          % (a.epochs, a.measure, med, test_s, 100.0 * correct / len(test_x)), file=sys.stderr)
    print("torch lineval conv4 %d %d lineval %.4f %.4f %.4f %.1f %.0f %d %d %.4f %.4f" % (
        a.epochs, a.batch, total, a.epochs * times[0] + test_s, a.epochs * times[-1] + test_s,
        a.epochs * len(train_x) / total, rss, a.workers, a.measure, med, test_s))


if __name__ == "__main__":
    main()
