"""golden_transforms: writes tests/golden/transforms.safetensors, the augmentation primitives of spec
4.4 applied with fixed parameters by PIL/torchvision, for tests/transforms/test_transforms.c.
Not the random streams: the reference draws with Python's `random`, which relate cannot and need
not reproduce; the C test checks the samplers' distributions separately.

Installed libraries vs the spec (Pillow 7.0 / torchvision 0.5, which the spec describes):
* torchvision 0.14's F.affine centres PIL images at (W/2, H/2); torchvision 0.5 used
  (W/2 + 0.5, H/2 + 0.5). The reference passes that centre explicitly through 0.14's `center=`
  (the inverse-matrix formula itself is unchanged), and an independent NumPy version of spec 4.4's
  formulas must agree pixel for pixel.
* adjust_hue: NumPy's float -> uint8 cast of a negative hue_factor*255 is not portable (spec
  A24), so the shift is applied explicitly as trunc(h*255) mod 256 on PIL's HSV bytes; the
  generator checks that it equals torchvision's F.adjust_hue on this machine.
* Pillow 9.4's rgb2hsv/hsv2rgb are compared over all 2^24 inputs with a NumPy transcription of
  the spec's float32 rules; ImageEnhance, Image.blend, RGB->L, resize and the bilinear affine
  filter are unchanged between Pillow 7.0 and 9.4 (checked against the spec formulas here).

Layout: images `img.<name>` (U8 [H, W, 3]); one case per entry `case<N>` of the metadata,
"<op> <input> <numbers...>", output `case<N>.out` (U8 [H, W, 3] or F32 [3, H, W]); metadata
`rgb2hsv_all` / `hsv2rgb_all` hold checksums (see checksum()) of Pillow's conversions of all 2^24
inputs, so the C test covers every colour without a 48 MB table.
"""
import math
import os

import numpy as np
import torch
import torchvision.transforms.functional as F
from PIL import Image, ImageEnhance

from golden_common import save_safetensors

BILINEAR = Image.BILINEAR
CIFAR10 = ((0.491, 0.482, 0.447), (0.247, 0.243, 0.262))
STL10 = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
TINY = ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def f32(x):
    """The double that a C float parameter holds: parameters are chosen float32-exact."""
    return float(np.float32(x))


def make_image(w, h, seed):
    """Gradients, noise, saturated primaries, greys and a black/white pair: every clamp and every
    branch of the HSV conversion is reached."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    a = np.zeros((h, w, 3), np.uint8)
    a[..., 0] = (xx * 255 // max(w - 1, 1)).astype(np.uint8)
    a[..., 1] = (yy * 255 // max(h - 1, 1)).astype(np.uint8)
    a[..., 2] = rng.integers(0, 256, (h, w), dtype=np.uint8)
    noise = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    a[h // 2:, : w // 2] = noise[h // 2:, : w // 2]
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255),
               (255, 255, 255), (0, 0, 0), (128, 128, 128), (1, 0, 0), (254, 255, 255), (200, 100, 100)]
    bs = max(2, min(w, h) // 8)
    for k, c in enumerate(colours):
        y, x = (k // 4) * bs, (w // 2) + (k % 4) * bs
        if y + bs <= h and x + bs <= w:
            a[y:y + bs, x:x + bs] = c
    return a


# ------------------------------------------------------------------ spec formulas in NumPy

def spec_rgb2hsv(rgb):
    f4, f8 = np.float32, np.float64
    r, g, b = [rgb[..., k].astype(np.int32) for k in range(3)]
    mx, mn = np.maximum(np.maximum(r, g), b), np.minimum(np.minimum(r, g), b)
    same = mx == mn
    mxs = np.where(same, 1, mx)
    cr = np.where(same, 1, mx - mn).astype(f4)
    s = cr / mxs.astype(f4)
    rc, gc, bc = [(mx - c).astype(f4) / cr for c in (r, g, b)]
    h = np.where(r == mx, bc - gc,
                 np.where(g == mx, (2.0 + rc.astype(f8) - bc.astype(f8)).astype(f4),
                          (4.0 + gc.astype(f8) - rc.astype(f8)).astype(f4)))
    h = np.fmod(h.astype(f8) / 6.0 + 1.0, 1.0).astype(f4)
    H = np.clip(np.trunc(h.astype(f8) * 255.0), 0, 255)
    S = np.clip(np.trunc(s.astype(f8) * 255.0), 0, 255)
    out = np.stack([np.where(same, 0, H), np.where(same, 0, S), mx], -1)
    return out.astype(np.uint8)


def c_round(x):
    """C round(): half away from zero, exactly."""
    t = np.trunc(x)
    return t + np.sign(x) * (np.abs(x - t) >= 0.5)


def spec_hsv2rgb(hsv):
    f4, f8 = np.float32, np.float64
    h, s, v = [hsv[..., k].astype(np.int32) for k in range(3)]
    x = h.astype(f4).astype(f8) * 6.0 / 255.0
    i = np.floor(x).astype(np.int32)
    f = (x - i.astype(f4).astype(f8)).astype(f4)
    fs = (s.astype(f4).astype(f8) / 255.0).astype(f4)
    vv = v.astype(f4).astype(f8)
    p = np.clip(c_round(vv * (1.0 - fs.astype(f8))), 0, 255)
    q = np.clip(c_round(vv * (1.0 - (fs * f).astype(f8))), 0, 255)
    t = np.clip(c_round(vv * (1.0 - fs.astype(f8) * (1.0 - f.astype(f8)))), 0, 255)
    sel = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    out = np.zeros(hsv.shape, f8)
    for k, (a, b, c) in enumerate(sel):
        m = (i % 6) == k
        out[m] = np.stack([a, b, c], -1)[m]
    grey = s == 0
    out[grey] = np.stack([v, v, v], -1)[grey]
    return out.astype(np.uint8)


def spec_affine(a, angle, tx, ty, scale, shear):
    """Spec 4.4's RandomAffine: torchvision 0.5's inverse matrix about (W/2+.5, H/2+.5), Pillow's
    bilinear filter with truncation."""
    H, W = a.shape[:2]
    rot, sx, sy = math.radians(angle), math.radians(shear), math.radians(0.0)
    cx, cy = W * 0.5 + 0.5, H * 0.5 + 0.5
    A = math.cos(rot - sy) / math.cos(sy)
    B = -math.cos(rot - sy) * math.tan(sx) / math.cos(sy) - math.sin(rot)
    C = math.sin(rot - sy) / math.cos(sy)
    D = -math.sin(rot - sy) * math.tan(sx) / math.cos(sy) + math.cos(rot)
    m = [x / scale for x in [D, -B, 0.0, -C, A, 0.0]]
    m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty)
    m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty)
    m[2] += cx
    m[5] += cy
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    xin, yin = xx + 0.5, yy + 0.5
    xs = m[0] * xin + m[1] * yin + m[2]
    ys = m[3] * xin + m[4] * yin + m[5]
    inside = (xs >= 0) & (xs < W) & (ys >= 0) & (ys < H)
    xs, ys = xs - 0.5, ys - 0.5
    x0, y0 = np.floor(xs).astype(np.int64), np.floor(ys).astype(np.int64)
    dx, dy = (xs - x0)[..., None], (ys - y0)[..., None]
    xa, xb, ya = np.clip(x0, 0, W - 1), np.clip(x0 + 1, 0, W - 1), np.clip(y0, 0, H - 1)
    yb_ok = (y0 + 1 >= 0) & (y0 + 1 < H)
    yb = np.clip(y0 + 1, 0, H - 1)
    I = a.astype(np.int64)
    v1 = I[ya, xa] + (I[ya, xb] - I[ya, xa]) * dx
    v2 = I[yb, xa] + (I[yb, xb] - I[yb, xa]) * dx
    v2 = np.where(yb_ok[..., None], v2, v1)
    v = np.trunc(v1 + (v2 - v1) * dy)
    return np.where(inside[..., None], v, 0).astype(np.uint8)


def checksum(a):
    """sum_k byte_k * (k * 2654435761 + 1) mod 2^64 over the flat bytes: a single wrong byte
    always changes it, and the C test recomputes it without a 48 MB table."""
    b = a.reshape(-1).astype(np.uint64)
    k = np.arange(b.size, dtype=np.uint64)
    with np.errstate(over="ignore"):
        return int(np.sum(b * (k * np.uint64(2654435761) + np.uint64(1)), dtype=np.uint64))


def check_hsv_exhaustively():
    """Pillow's conversions of all 2^24 inputs (r, g, b) = (k >> 16, k >> 8 & 255, k & 255) equal
    the spec's formulas; returns their checksums."""
    rgb = np.arange(1 << 24, dtype=np.uint32)
    rgb = np.stack([(rgb >> 16) & 255, (rgb >> 8) & 255, rgb & 255], -1).astype(np.uint8).reshape(4096, 4096, 3)
    fwd = np.asarray(Image.fromarray(rgb).convert("HSV"))
    bad = int((fwd != spec_rgb2hsv(rgb)).any(-1).sum())
    assert bad == 0, "Pillow rgb2hsv differs from the spec formula on %d colours" % bad
    inv = np.asarray(Image.frombytes("HSV", (4096, 4096), rgb.tobytes()).convert("RGB"))
    bad = int((inv != spec_hsv2rgb(rgb)).any(-1).sum())
    assert bad == 0, "Pillow hsv2rgb differs from the spec formula on %d triples" % bad
    return checksum(fwd), checksum(inv)


# ------------------------------------------------------------------ references per op

def pil(a):
    return Image.fromarray(a)


def arr(im):
    return np.asarray(im).copy()


def hue_ref(im, h):
    hsv = arr(im.convert("HSV"))
    d = int(h * 255) % 256  # spec A24: trunc, then wrap
    hsv[..., 0] = ((hsv[..., 0].astype(np.int32) + d) % 256).astype(np.uint8)
    return Image.frombytes("HSV", im.size, hsv.tobytes()).convert("RGB")


def jitter_op(im, k, f):
    if k == 0:
        return ImageEnhance.Brightness(im).enhance(f)
    if k == 1:
        return ImageEnhance.Contrast(im).enhance(f)
    if k == 2:
        return ImageEnhance.Color(im).enhance(f)
    return hue_ref(im, f)


def tensor_norm(im, norm):
    return F.normalize(F.to_tensor(im), list(norm[0]), list(norm[1]))


def affine_ref(im, angle, tx, ty, scale, shear):
    W, H = im.size
    out = F.affine(im, angle=angle, translate=[tx, ty], scale=scale, shear=[shear, 0.0],
                   interpolation=F.InterpolationMode.BILINEAR, fill=0, center=[W * 0.5 + 0.5, H * 0.5 + 0.5])
    out = arr(out)
    spec = spec_affine(arr(im), angle, tx, ty, scale, shear)
    assert (out == spec).all(), "affine: torchvision/PIL and the spec formula differ"
    return out


def make(out_dir):
    sum_fwd, sum_inv = check_hsv_exhaustively()
    imgs = {"sq32": make_image(32, 32, 1), "ns37x29": make_image(37, 29, 2), "sq48": make_image(48, 48, 3),
            "tall20x45": make_image(20, 45, 4),
            "colours": np.random.default_rng(5).integers(0, 256, (32, 32, 3), dtype=np.uint8)}
    tensors = {"img." + k: torch.from_numpy(v) for k, v in imgs.items()}
    rot_in = torch.from_numpy(np.random.default_rng(6).standard_normal((3, 8, 8)).astype(np.float32))
    tensors["rot.in"] = rot_in
    cases = []  # (op, input, params, output)

    def add(op, name, params, out):
        if isinstance(out, np.ndarray):
            out = torch.from_numpy(np.ascontiguousarray(out))
        cases.append((op, name, params, out.contiguous()))

    # resize of a box (RandomResizedCrop's crop + resize), up, down, one axis, identity
    for name, (i, j, h, w), s in [("ns37x29", (0, 0, 29, 37), 32), ("ns37x29", (3, 5, 10, 7), 32),
                                  ("ns37x29", (1, 2, 27, 30), 32), ("sq32", (0, 0, 32, 32), 32),
                                  ("sq32", (4, 4, 8, 8), 32), ("sq32", (0, 3, 32, 20), 32),
                                  ("sq48", (10, 2, 35, 44), 32), ("sq48", (0, 0, 48, 48), 20),
                                  ("tall20x45", (5, 0, 30, 20), 32), ("sq32", (7, 9, 1, 1), 32)]:
        im = pil(imgs[name])
        out = arr(im.crop((j, i, j + w, i + h)).resize((s, s), BILINEAR))
        tv = arr(F.resized_crop(im, i, j, h, w, [s, s], F.InterpolationMode.BILINEAR))
        assert (out == tv).all()
        add("resize_box", name, [i, j, h, w, s], out)

    add("crop", "ns37x29", [3, 4, 20, 25], arr(pil(imgs["ns37x29"]).crop((4, 3, 29, 23))))
    for name in ("ns37x29", "sq32"):
        add("hflip", name, [], arr(pil(imgs[name]).transpose(Image.FLIP_LEFT_RIGHT)))

    factors = [0.0, f32(0.4567), 1.0, f32(1.3702), 1.8]
    for op, k in (("brightness", 0), ("contrast", 1), ("saturation", 2)):
        for fac in factors:
            for name in ("ns37x29", "colours"):
                add(op, name, [fac], arr(jitter_op(pil(imgs[name]), k, fac)))
    for h in [-0.5, f32(-0.1234), f32(-0.0039), 0.0, f32(0.0021), 0.2, 0.5]:
        for name in ("ns37x29", "colours"):
            ref = hue_ref(pil(imgs[name]), h)
            tv = F.adjust_hue(pil(imgs[name]), h)  # agrees where NumPy's cast wraps (x86)
            assert (arr(tv) == arr(ref)).all(), "adjust_hue(%r) differs from the spec's wrap" % h
            add("hue", name, [h], arr(ref))
    add("rgb2hsv", "colours", [], arr(pil(imgs["colours"]).convert("HSV")))
    add("hsv2rgb", "colours", [], arr(Image.frombytes("HSV", (32, 32), imgs["colours"].tobytes()).convert("RGB")))
    for name in ("ns37x29", "colours"):
        add("gray", name, [], arr(F.to_grayscale(pil(imgs[name]), 3)))

    for name, p, s, ij in [("sq32", 4, 32, [(0, 0), (8, 8), (3, 7), (5, 0)]), ("ns37x29", 4, 32, [(0, 0), (5, 13), (2, 9)]),
                           ("sq48", 6, 48, [(0, 12), (11, 3)]), ("tall20x45", 8, 32, [(0, 0), (29, 4)])]:
        for i, j in ij:
            out = arr(F.crop(F.pad(pil(imgs[name]), p, fill=0), i, j, s, s))
            add("padcrop", name, [p, i, j, s], out)

    for name in ("sq32", "ns37x29"):
        for angle, tx, ty, scale, shear in [(0.0, 0, 0, 1.0, 0.0), (f32(17.3), 5, -3, f32(0.93), f32(-7.5)),
                                           (-18.0, -9, 9, f32(1.1), 10.0), (90.0, 0, 0, 1.0, 0.0),
                                           (f32(5.5), 1, 2, f32(0.9), 0.0), (f32(-3.25), 0, 0, f32(1.05), f32(9.9))]:
            add("affine", name, [angle, tx, ty, scale, shear],
                affine_ref(pil(imgs[name]), angle, tx, ty, scale, shear))

    for name, norm in (("ns37x29", CIFAR10), ("tall20x45", TINY)):
        add("tensor", name, list(norm[0]) + list(norm[1]), tensor_norm(pil(imgs[name]), norm))
    for i, j, bh, bw in [(16, 16, 16, 16), (5, 11, 8, 8)]:
        t = F.erase(tensor_norm(pil(imgs["sq32"]), CIFAR10), i, j, bh, bw, torch.tensor(0.0))
        add("erase", "sq32", list(CIFAR10[0]) + list(CIFAR10[1]) + [i, j, bh, bw], t)
    for k in (1, 2, 3):
        add("rot90", "rot", [k], torch.rot90(rot_in, k, dims=(1, 2)))

    # Whole pipelines with fixed draws, built from torchvision's transforms in the spec's order.
    # The 8-bit image before ToTensor is stored (the tensor step has its own cases).
    # t1: i j h w S flip jitter b c s h o0 o1 o2 o3 gray
    for name, (i, j, h, w), flip, jit, fac, order, gray in [
            ("ns37x29", (2, 3, 20, 25), 1, 1, (f32(1.3), f32(0.6), f32(1.7), f32(-0.15)), (3, 1, 0, 2), 0),
            ("sq32", (0, 0, 32, 32), 0, 1, (f32(0.25), f32(1.75), f32(0.3), f32(0.19)), (0, 2, 3, 1), 1),
            ("tall20x45", (10, 1, 30, 18), 1, 0, (1.0, 1.0, 1.0, 0.0), (0, 1, 2, 3), 0)]:
        im = F.resized_crop(pil(imgs[name]), i, j, h, w, [32, 32], F.InterpolationMode.BILINEAR)
        if flip:
            im = F.hflip(im)
        if jit:
            for k in order:
                im = jitter_op(im, k, fac[k])
        if gray:
            im = F.to_grayscale(im, 3)
        add("t1", name, [i, j, h, w, 32, flip, jit] + list(fac) + list(order) + [gray], arr(im))
    # t3: P i j S flip
    for name, p, i, j, flip in [("sq32", 4, 6, 1, 1), ("ns37x29", 4, 4, 12, 0)]:
        im = F.crop(F.pad(pil(imgs[name]), p, fill=0), i, j, 32, 32)
        if flip:
            im = F.hflip(im)
        add("t3", name, [p, i, j, 32, flip], arr(im))
    # t4 (its 8-bit part): flip aff angle tx ty scale shear
    for flip, aff, prm in [(1, 1, (f32(-12.5), 2, -3, f32(1.07), f32(4.25))), (1, 0, (0.0, 0, 0, 1.0, 0.0)),
                           (0, 1, (f32(17.9), -3, 1, f32(0.91), f32(-9.5)))]:
        im = pil(imgs["sq32"])
        if flip:
            im = F.hflip(im)
        if aff:
            im = Image.fromarray(affine_ref(im, *prm))
        add("t4", "sq32", [flip, aff] + list(prm), arr(im))

    meta = {"cases": str(len(cases)), "generator": "torch %s, torchvision %s, Pillow %s" % (
        torch.__version__, __import__("torchvision").__version__, Image.__version__),
        "rgb2hsv_all": str(sum_fwd), "hsv2rgb_all": str(sum_inv)}
    for n, (op, name, params, out) in enumerate(cases):
        meta["case%d" % n] = " ".join([op, name] + [repr(float(p)) if isinstance(p, float) else str(p) for p in params])
        tensors["case%d.out" % n] = out
    # F32 data first: save_safetensors aligns only the start of the data, and odd-sized U8
    # images before a float tensor would leave it misaligned for the C reader.
    tensors = dict(sorted(tensors.items(), key=lambda kv: kv[1].dtype != torch.float32))
    path = os.path.join(out_dir, "transforms.safetensors")
    save_safetensors(path, tensors, meta)
    return [path]


if __name__ == "__main__":
    make(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "golden"))
