"""golden_augment_stats: writes tests/golden/augment_stats.safetensors, the distributions of the
random parameters that torchvision's own samplers draw for every augmentation pipeline of spec 4.3
(T1 relationnet/simclr, T2 deepinfomax, T3 standard/rotationnet/deepcluster, T4 standard on STL-10),
and the per-channel statistics of the tensors torchvision's composed pipelines output for a fixed
set of images. tests/transforms/test_augment_stats.c draws as many views through relate's loader
and compares: a wrong range or probability shows there even when every single draw is replayed
exactly by the pixel tests (tests/transforms/test_transforms.c).
Not a test, and not the reference's random streams (spec 4.4: only the distributions must match).

Each parameter is summarised by its empirical CDF on a fixed grid: <name>.grid and <name>.cdf (F64),
<name>.n (F64 [1], the number of draws). Rates are <name>.rate (F64 [2]: rate, draws). The output
statistics are <pipeline>.out.mean / .out.std (F64 [3], over every pixel of every view) and
.out.view_mean_std (F64 [3]: the spread of the per-view channel means, for the test's tolerance).

The images: image_pixel() below, a smooth gradient plus hashed noise, computed the same way in C
(tests/transforms/test_augment_stats.c), so nothing but statistics is stored.
Torch's generator is seeded once; the draws follow each transform's forward() in torchvision 0.14
(Debian's python3-torchvision), calling its get_params and torch.rand exactly as forward does.
"""
import math
import os

import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T

from golden_common import save_safetensors

N_PARAMS = 20000   # parameter draws per pipeline
N_OUT = 4000       # views whose pixels make the output statistics
N_IMAGES = 64      # distinct source images, view v uses image v % N_IMAGES

CIFAR_MEAN, CIFAR_STD = (0.491, 0.482, 0.447), (0.247, 0.243, 0.262)
STL_MEAN, STL_STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
STL_CUTOUT = 0.111


def image_pixel(n, y, x, c, side):
    """8-bit value of channel c at (y, x) of image n (side x side); uint32 arithmetic as in C."""
    h = (n * 2654435761 + (y * side + x) * 40503 + c * 977) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 1274126177) & 0xFFFFFFFF
    noise = (h >> 24) & 63
    base = (x * (4 + n % 5) + y * (2 + c) + n * 11) & 255
    return (base * 3 // 4 + noise) & 255


def make_image(n, side):
    a = np.zeros((side, side, 3), dtype=np.uint8)
    for y in range(side):
        for x in range(side):
            for c in range(3):
                a[y, x, c] = image_pixel(n, y, x, c, side)
    return Image.fromarray(a, "RGB")


def ecdf(tensors, name, values, grid):
    v = np.asarray(values, dtype=np.float64)
    g = np.asarray(grid, dtype=np.float64)
    tensors[name + ".grid"] = torch.from_numpy(g)
    tensors[name + ".cdf"] = torch.from_numpy(np.array([np.mean(v <= x) for x in g]))
    tensors[name + ".n"] = torch.tensor([float(len(v))], dtype=torch.float64)


def rate(tensors, name, flags):
    f = np.asarray(flags, dtype=np.float64)
    tensors[name + ".rate"] = torch.tensor([f.mean(), float(len(f))], dtype=torch.float64)


def draw_t1(tensors, side):
    """RandomResizedCrop -> RandomHorizontalFlip -> RandomApply([ColorJitter], 0.8) -> RandomGrayscale."""
    img = torch.zeros(3, side, side)
    area, ratio, top, left, flip, jit, gray = [], [], [], [], [], [], []
    factors = [[], [], [], []]
    first = np.zeros((4, 4))  # first[k][q]: op k applied at position q
    for _ in range(N_PARAMS):
        i, j, h, w = T.RandomResizedCrop.get_params(img, [0.08, 1.0], [3.0 / 4.0, 4.0 / 3.0])
        area.append(h * w / float(side * side))
        ratio.append(w / h)
        if h < side:
            top.append(i / float(side - h))
        if w < side:
            left.append(j / float(side - w))
        flip.append(bool(torch.rand(1) < 0.5))
        applied = not (0.8 < torch.rand(1))  # RandomApply.forward: skipped iff p < u
        jit.append(applied)
        if applied:
            fn_idx, b, c, s, hue = T.ColorJitter.get_params([0.2, 1.8], [0.2, 1.8], [0.2, 1.8], [-0.2, 0.2])
            for k, f in enumerate((b, c, s, hue)):
                factors[k].append(f)
            for q, k in enumerate(fn_idx.tolist()):
                first[k][q] += 1
        gray.append(bool(torch.rand(1) < 0.2))
    ecdf(tensors, "t1.area", area, np.linspace(0.08, 1.0, 24))
    ecdf(tensors, "t1.ratio", ratio, np.linspace(0.75, 4.0 / 3.0, 24))
    ecdf(tensors, "t1.top", top, np.linspace(0.0, 1.0, 11))
    ecdf(tensors, "t1.left", left, np.linspace(0.0, 1.0, 11))
    rate(tensors, "t1.flip", flip)
    rate(tensors, "t1.jitter", jit)
    rate(tensors, "t1.gray", gray)
    for k, name in enumerate(("brightness", "contrast", "saturation")):
        ecdf(tensors, "t1." + name, factors[k], np.linspace(0.2, 1.8, 17))
    ecdf(tensors, "t1.hue", factors[3], np.linspace(-0.2, 0.2, 17))
    tensors["t1.order"] = torch.from_numpy(first / max(1.0, first[0].sum()))


def draw_t3(tensors, side, pad):
    """RandomCrop(side, padding=pad) -> RandomHorizontalFlip."""
    img = torch.zeros(3, side + 2 * pad, side + 2 * pad)
    ii, jj, flip = [], [], []
    for _ in range(N_PARAMS):
        i, j, _, _ = T.RandomCrop.get_params(img, (side, side))
        ii.append(i)
        jj.append(j)
        flip.append(bool(torch.rand(1) < 0.5))
    ecdf(tensors, "t3.i", ii, np.arange(0, 2 * pad + 1))
    ecdf(tensors, "t3.j", jj, np.arange(0, 2 * pad + 1))
    rate(tensors, "t3.flip", flip)


def draw_t2(tensors):
    rate(tensors, "t2.flip", [bool(torch.rand(1) < 0.5) for _ in range(N_PARAMS)])


def draw_t4(tensors, side, cutout):
    """RandomHorizontalFlip -> RandomApply([RandomAffine], 0.5) -> ToTensor -> Normalize ->
    RandomErasing(p=0.5, scale=(cutout, cutout), ratio=(1, 1), value=0)."""
    img = torch.zeros(3, side, side)
    flip, aff, ang, txs, tys, scs, shs, er, ei, ej, eh = [], [], [], [], [], [], [], [], [], [], []
    for _ in range(N_PARAMS):
        flip.append(bool(torch.rand(1) < 0.5))
        applied = not (0.5 < torch.rand(1))
        aff.append(applied)
        if applied:
            angle, (tx, ty), scale, (shx, _) = T.RandomAffine.get_params([-18.0, 18.0], [0.1, 0.1], [0.9, 1.1],
                                                                         [-10.0, 10.0], [side, side])
            ang.append(angle)
            txs.append(tx)
            tys.append(ty)
            scs.append(scale)
            shs.append(shx)
        erased = bool(torch.rand(1) < 0.5)
        er.append(erased)
        if erased:
            i, j, h, w, _ = T.RandomErasing.get_params(img, scale=(cutout, cutout), ratio=(1.0, 1.0), value=[0])
            ei.append(i / float(side - h))
            ej.append(j / float(side - w))
            eh.append(h)
    rate(tensors, "t4.flip", flip)
    rate(tensors, "t4.affine", aff)
    ecdf(tensors, "t4.angle", ang, np.linspace(-18.0, 18.0, 19))
    m = int(round(0.1 * side))
    ecdf(tensors, "t4.tx", txs, np.arange(-m, m + 1))
    ecdf(tensors, "t4.ty", tys, np.arange(-m, m + 1))
    ecdf(tensors, "t4.scale", scs, np.linspace(0.9, 1.1, 11))
    ecdf(tensors, "t4.shear", shs, np.linspace(-10.0, 10.0, 11))
    rate(tensors, "t4.erase", er)
    ecdf(tensors, "t4.erase_top", ei, np.linspace(0.0, 1.0, 11))
    ecdf(tensors, "t4.erase_left", ej, np.linspace(0.0, 1.0, 11))
    tensors["t4.erase_side"] = torch.tensor([float(np.mean(eh)), float(np.std(eh))], dtype=torch.float64)


def output_stats(tensors, name, pipeline, side):
    images = [make_image(n, side) for n in range(N_IMAGES)]
    s = np.zeros(3)
    s2 = np.zeros(3)
    view_means = []
    for v in range(N_OUT):
        x = pipeline(images[v % N_IMAGES]).double().numpy().reshape(3, -1)
        s += x.sum(1)
        s2 += (x * x).sum(1)
        view_means.append(x.mean(1))
    npx = float(N_OUT * side * side)
    mean = s / npx
    std = np.sqrt(np.maximum(s2 / npx - mean * mean, 0.0))
    tensors[name + ".out.mean"] = torch.from_numpy(mean)
    tensors[name + ".out.std"] = torch.from_numpy(std)
    tensors[name + ".out.view_mean_std"] = torch.from_numpy(np.std(np.array(view_means), axis=0))


def make(out_dir):
    torch.manual_seed(20260412)
    tensors = {}
    draw_t1(tensors, 32)
    draw_t2(tensors)
    draw_t3(tensors, 32, 4)
    draw_t4(tensors, 96, STL_CUTOUT)
    t1 = T.Compose([T.RandomResizedCrop(32, scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0)),
                    T.RandomHorizontalFlip(0.5),
                    T.RandomApply([T.ColorJitter(0.8, 0.8, 0.8, 0.2)], p=0.8),
                    T.RandomGrayscale(0.2), T.ToTensor(), T.Normalize(CIFAR_MEAN, CIFAR_STD)])
    t3 = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(0.5), T.ToTensor(),
                    T.Normalize(CIFAR_MEAN, CIFAR_STD)])
    output_stats(tensors, "t1", t1, 32)
    output_stats(tensors, "t3", t3, 32)
    save_safetensors(os.path.join(out_dir, "augment_stats.safetensors"), tensors,
                     metadata={"n_params": N_PARAMS, "n_out": N_OUT, "n_images": N_IMAGES,
                               "torchvision": __import__("torchvision").__version__})


if __name__ == "__main__":
    import sys
    torch.set_num_threads(1)
    make(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "golden"))
