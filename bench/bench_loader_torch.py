"""bench_loader_torch: throughput of a PyTorch DataLoader producing K views per image with the
reference's relationnet transform (spec 4.3 T1) on PIL images, the work bench_loader.c times in
relate. Not a training run: the consumer only takes the batches.

Data: a synthetic CIFAR-like split in memory, 50,000 x 32 x 32 x 3 uniformly random uint8
(numpy, seed 1), turned into a PIL image per item as torchvision's CIFAR10 dataset does
(Image.fromarray), then K times through
  RandomResizedCrop(32, scale=(0.08, 1)), RandomHorizontalFlip(), RandomApply([ColorJitter(0.8,
  0.8, 0.8, 0.2)], p=0.8), RandomGrayscale(0.2), ToTensor(), Normalize(CIFAR-10 mean/std);
DataLoader(batch_size=B, shuffle=True, num_workers=W) stacks each view: a list of K [B,3,32,32].

usage: /usr/bin/python3 bench/bench_loader_torch.py WORKERS BATCHES [VIEWS BATCH_SIZE]
prints: torch workers views batch batches seconds ms_per_batch images_per_s views_per_s
max_rss_mib (main process; 2^20 bytes). The clock starts when the 2nd warm-up batch has arrived
(worker start-up excluded) and stops when the BATCHES-th timed one has.
"""
import resource
import sys
import time

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

MEAN = (0.491, 0.482, 0.447)
STD = (0.247, 0.243, 0.262)


class MultiView(Dataset):
    def __init__(self, data, views):
        self.data = data
        self.views = views
        jitter = transforms.ColorJitter(brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2)
        self.t = transforms.Compose([
            transforms.RandomResizedCrop(32, scale=(0.08, 1.0)),
            transforms.RandomHorizontalFlip(),
            transforms.RandomApply([jitter], p=0.8),
            transforms.RandomGrayscale(p=0.2),
            transforms.ToTensor(),
            transforms.Normalize(MEAN, STD),
        ])

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        img = Image.fromarray(self.data[i])
        return [self.t(img) for _ in range(self.views)], i % 10


def main():
    if len(sys.argv) not in (3, 5):
        sys.exit(__doc__)
    workers, batches = int(sys.argv[1]), int(sys.argv[2])
    views, bs = (int(sys.argv[3]), int(sys.argv[4])) if len(sys.argv) == 5 else (32, 64)
    torch.set_num_threads(2)
    torch.manual_seed(1)
    data = np.random.default_rng(1).integers(0, 256, size=(50000, 32, 32, 3), dtype=np.uint8)
    loader = DataLoader(MultiView(data, views), batch_size=bs, shuffle=True, num_workers=workers,
                        drop_last=False)
    warmup = 2
    it = iter(loader)
    for _ in range(warmup):
        x, _ = next(it)
    t0 = time.perf_counter()
    sink = 0.0
    for _ in range(batches):
        x, _ = next(it)
        sink += float(x[0][0, 0, 0, 0])
    secs = time.perf_counter() - t0
    del it
    assert len(x) == views and tuple(x[0].shape) == (bs, 3, 32, 32)
    ips = batches * bs / secs
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print("torch %d %d %d %d %.3f %.2f %.1f %.1f %.0f" % (workers, views, bs, batches, secs,
                                                          secs / batches * 1e3, ips, ips * views, rss))


if __name__ == "__main__":
    main()
