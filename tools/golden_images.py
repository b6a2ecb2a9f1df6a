"""golden_images: writes tests/golden/images/* (tiny JPEG and PNG files of every colour type and
bit depth relate's decoder handles) and tests/golden/images.safetensors, the RGB bytes PIL gives
for each: Image.open(path).convert("RGB"), as torchvision's ImageFolder loader does.
Not a test of PIL and not a benchmark: tests/data/test_datasets.c compares relate's decoder to it.

Tensors: "<file name>" U8 [h, w, 3]. JPEGs are encoded by PIL (libjpeg-turbo); PNGs are built
byte by byte here (zlib, filter type 0) so that bit depths PIL never writes (gray 2/4/16 bits,
16-bit alpha, short palettes, Adam7 interlacing) are covered too.
"""
import os
import struct
import zlib

import numpy as np
import torch
from PIL import Image

from golden_common import save_safetensors


def _pattern(h, w, c, seed):
    rng = np.random.RandomState(seed)
    # smooth gradients plus noise: JPEG's chroma upsampling and IDCT both have work to do
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([(x * 255 // max(w - 1, 1) + k * 60) % 256 for k in range(c)], axis=-1)
    noise = rng.randint(0, 64, size=(h, w, c))
    return ((base + noise + (y[..., None] * 7)) % 256).astype(np.uint8)


def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _pack_row(samples, depth):
    """samples: 1-D array of ints of `depth` bits -> bytes of one scanline (without filter byte)."""
    if depth == 16:
        return b"".join(struct.pack(">H", int(v)) for v in samples)
    if depth == 8:
        return bytes(int(v) for v in samples)
    per = 8 // depth
    out = bytearray()
    for i in range(0, len(samples), per):
        b = 0
        for k in range(per):
            v = int(samples[i + k]) if i + k < len(samples) else 0
            b |= v << (8 - depth * (k + 1))
        out.append(b)
    return bytes(out)


_ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def _png(path, samples, depth, ctype, palette=None, trns=None, interlace=False):
    """samples: [h, w, channels] ints; writes a PNG with filter type 0 on every row."""
    h, w = samples.shape[:2]
    raw = bytearray()
    passes = _ADAM7 if interlace else [(0, 0, 1, 1)]
    for x0, y0, dx, dy in passes:
        sub = samples[y0::dy, x0::dx]
        if sub.shape[0] == 0 or sub.shape[1] == 0:
            continue
        for row in sub:
            raw += b"\x00" + _pack_row(row.reshape(-1), depth)
    png = b"\x89PNG\r\n\x1a\n"
    png += _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 1 if interlace else 0))
    if palette is not None:
        png += _chunk(b"PLTE", bytes(np.asarray(palette, dtype=np.uint8).reshape(-1)))
    if trns is not None:
        png += _chunk(b"tRNS", trns)
    png += _chunk(b"IDAT", zlib.compress(bytes(raw), 9))
    png += _chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(png)


def _write_images(d):
    os.makedirs(d, exist_ok=True)
    files = []

    def jpeg(name, img, **kw):
        img.save(os.path.join(d, name), format="JPEG", **kw)
        files.append(name)

    jpeg("rgb_420.jpg", Image.fromarray(_pattern(13, 17, 3, 1)), quality=85, subsampling=2)
    jpeg("rgb_444_progressive.jpg", Image.fromarray(_pattern(16, 16, 3, 2)), quality=90, subsampling=0,
         progressive=True)
    jpeg("rgb_422.jpg", Image.fromarray(_pattern(9, 24, 3, 3)), quality=75, subsampling=1)
    jpeg("gray.jpg", Image.fromarray(_pattern(11, 10, 1, 4)[..., 0], mode="L"), quality=90)
    jpeg("cmyk.jpg", Image.fromarray(_pattern(8, 12, 4, 5), mode="CMYK"), quality=90)

    rng = np.random.RandomState(7)

    def png(name, samples, depth, ctype, **kw):
        _png(os.path.join(d, name), samples, depth, ctype, **kw)
        files.append(name)

    h, w = 7, 11
    png("gray1.png", rng.randint(0, 2, (h, w, 1)), 1, 0)
    png("gray2.png", rng.randint(0, 4, (h, w, 1)), 2, 0)
    png("gray4.png", rng.randint(0, 16, (h, w, 1)), 4, 0)
    png("gray8.png", rng.randint(0, 256, (h, w, 1)), 8, 0)
    png("gray8_trns.png", rng.randint(0, 256, (h, w, 1)), 8, 0, trns=struct.pack(">H", 17))
    g16 = rng.randint(0, 65536, (h, w, 1))
    g16[0, :4, 0] = [0, 1, 255, 256]  # around PIL's clip to 255 of mode "I"
    png("gray16.png", g16, 16, 0)
    png("rgb8.png", rng.randint(0, 256, (h, w, 3)), 8, 2)
    png("rgb8_trns.png", rng.randint(0, 256, (h, w, 3)), 8, 2, trns=struct.pack(">HHH", 1, 2, 3))
    png("rgb16.png", rng.randint(0, 65536, (h, w, 3)), 16, 2)
    png("rgb8_interlaced.png", rng.randint(0, 256, (13, 10, 3)), 8, 2, interlace=True)
    png("gray_alpha8.png", rng.randint(0, 256, (h, w, 2)), 8, 4)
    png("gray_alpha16.png", rng.randint(0, 65536, (h, w, 2)), 16, 4)
    png("rgba8.png", rng.randint(0, 256, (h, w, 4)), 8, 6)
    png("rgba16.png", rng.randint(0, 65536, (h, w, 4)), 16, 6)
    pal = rng.randint(0, 256, (16, 3))
    png("palette1.png", rng.randint(0, 2, (h, w, 1)), 1, 3, palette=pal[:2])
    png("palette2.png", rng.randint(0, 4, (h, w, 1)), 2, 3, palette=pal[:4])
    png("palette4.png", rng.randint(0, 16, (h, w, 1)), 4, 3, palette=pal)
    png("palette8_trns.png", rng.randint(0, 16, (h, w, 1)), 8, 3, palette=pal, trns=bytes(range(0, 160, 10)))
    # indices past a short PLTE: Pillow's palette starts as a grey ramp
    png("palette_short.png", rng.randint(0, 8, (h, w, 1)), 4, 3, palette=pal[:3])
    return files


def make(out_dir):
    d = os.path.join(out_dir, "images")
    files = _write_images(d)
    tensors = {}
    for name in files:
        with Image.open(os.path.join(d, name)) as im:
            rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
        tensors[name] = torch.from_numpy(rgb.copy())
    save_safetensors(os.path.join(out_dir, "images.safetensors"), tensors,
                     metadata={"files": ",".join(files), "pil": Image.__version__})
    print("images.safetensors: %d images" % len(files))
