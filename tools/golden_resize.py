"""golden_resize: writes tests/golden/resize.safetensors, Pillow's Image.resize(BILINEAR) on small
RGB images, up- and down-sampling, for relate's resize (src/data/resize.c).
Not the transform pipelines' goldens: only the resize primitive.
"""
import os

import numpy as np
import torch
from PIL import Image

from golden_common import save_safetensors

# (source width, height) -> (target width, height): up, down, one axis only, odd ratios.
CASES = [((37, 29), (64, 64)), ((37, 29), (20, 15)), ((10, 30), (32, 32)), ((96, 96), (64, 64)),
         ((13, 13), (96, 96)), ((200, 150), (64, 64)), ((64, 64), (7, 50)), ((32, 32), (32, 17))]


def make(out_dir):
    rng = np.random.default_rng(1234)
    tensors, meta = {}, {}
    for i, ((sw, sh), (dw, dh)) in enumerate(CASES):
        a = rng.integers(0, 256, (sh, sw, 3), dtype=np.uint8)
        a[: sh // 2, : sw // 3] = 255  # saturated and dark blocks exercise the clamps
        a[sh // 2:, sw // 2:] = 0
        out = np.asarray(Image.fromarray(a).resize((dw, dh), Image.BILINEAR))
        tensors["case%d.in" % i] = torch.from_numpy(a.copy())
        tensors["case%d.out" % i] = torch.from_numpy(out.copy())
        meta["case%d" % i] = "%d %d %d %d" % (sw, sh, dw, dh)
    meta["cases"] = str(len(CASES))
    path = os.path.join(out_dir, "resize.safetensors")
    save_safetensors(path, tensors, meta)
    return [path]
