"""test_relate_torch.py RELATE: python/relate_torch.py against the relate CLI on real Fashion-MNIST.

For each of the five backbones: a short stage-1 run (a different method each, so every kind of
stage-1 file is read), `relate embed` of the test images, then relate_torch.load_backbone on the
same checkpoint and its features of the same images, normalised as relate's T5/T6 pipelines do
(x / 255, then (x - 0.2860) / 0.3530 in float32, grey repeated to three channels), which must
equal relate's within TOL and be no closer than relate's to the float64 forward. Then stage-2 files (linear evaluation, finetune), the reference's
formats (a bare state dict, the legacy pickle format, DataParallel's 'module.' prefix), and the
errors: a garbage file, a wrong backbone name, a resnet state dict that records no name.

The data are a subset of Debian's dataset-fashion-mnist files (the first N_TRAIN training and
N_TEST test images), written as IDX files under --data_root, so the test runs in seconds.
Runs with /usr/bin/python3 (Debian's python3-torch); without torch or numpy it FAILS (exit 1).
"""
import gzip
import os
import shutil
import subprocess
import sys
import tempfile
import time

try:
    import numpy as np
    import torch
except Exception as exc:  # noqa: BLE001 - any import failure means the test cannot run
    print("FAIL: torch and numpy must be importable by %s (%s); install Debian's python3-torch and "
          "python3-numpy (apt-get install python3-torch python3-numpy)" % (sys.executable, exc))
    sys.exit(1)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "python"))
import relate_torch  # noqa: E402

FASHION = "/usr/share/datasets/fashion-mnist"
N_TRAIN, N_TEST = 256, 200
MEAN, STD = 0.2860, 0.3530  # relate's Fashion-MNIST constants (src/data/dataset.c)
# Bounds on |torch - relate| / max(1, max |relate| of that image's features), per backbone. Both
# sides are float32 forwards that sum in different orders, so they differ by rounding, growing with
# depth. Measured (2 threads, x86-64, torch 1.13): conv4 1.8e-7, resnet8 2.4e-7, resnet32 4.7e-7,
# resnet56 5.8e-7, resnet34 5.4e-6; the bounds are about 5 times those.
TOL = {"conv4": 1e-6, "resnet8": 1.5e-6, "resnet32": 2.5e-6, "resnet56": 3e-6, "resnet34": 2.5e-5}
# One stage-1 method per backbone, so that every method's checkpoint layout is read.
RUNS = [("conv4", "relationnet", ["--K=4"]),
        ("resnet8", "simclr", []),
        ("resnet32", "rotationnet", []),
        ("resnet56", "standard", []),
        ("resnet34", "deepinfomax", [])]

FAILED = []


def check(cond, what):
    print(("ok:   " if cond else "FAIL: ") + what)
    if not cond:
        FAILED.append(what)


def read_idx(path, count, item_bytes, header_bytes):
    """The header and the first `count` items of an IDX file."""
    with gzip.open(path, "rb") as f:
        head = bytearray(f.read(header_bytes))
        body = f.read(count * item_bytes)
    head[4:8] = count.to_bytes(4, "big")  # the item count: the subset's
    return bytes(head), body


def write_subset(root):
    """data/fashionmnist/*-ubyte (plain IDX, which relate reads like .gz); returns the test
    images as uint8 [N_TEST, 28, 28]."""
    out = os.path.join(root, "fashionmnist")
    os.makedirs(out)
    test_images = None
    for split, n in (("train", N_TRAIN), ("t10k", N_TEST)):
        for kind, item, header in (("images-idx3", 784, 16), ("labels-idx1", 1, 8)):
            base = "%s-%s-ubyte" % (split, kind)
            head, body = read_idx(os.path.join(FASHION, base + ".gz"), n, item, header)
            with open(os.path.join(out, base), "wb") as f:
                f.write(head + body)
            if split == "t10k" and kind == "images-idx3":
                test_images = np.frombuffer(body, dtype=np.uint8).reshape(n, 28, 28)
    return test_images


def normalise(images):
    """relate's T5/T6 for 28 x 28 Fashion-MNIST: ToTensor then Normalize, all float32."""
    x = torch.from_numpy(images.copy()).float().div(255.0)
    x = x.sub(MEAN).div(STD)  # python floats: torch rounds the scalars to float32, as relate's constants
    return x.unsqueeze(1).expand(-1, 3, -1, -1).contiguous()


def relate(cli, *args):
    r = subprocess.run([cli] + list(args), capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stdout + r.stderr)
        raise SystemExit("FAIL: relate %s exited %d" % (args[0], r.returncode))
    return r.stdout


def embed(cli, ckpt, out):
    relate(cli, "embed", "--checkpoint=" + ckpt, "--dataset=fashionmnist", "--data_root=data", "--split=test",
           "--data_size=100", "--out=" + out)
    return np.load(out)


def rel_err(got, want):
    """max |got - want| / max(1, max |want| of that row)."""
    return float(np.max(np.abs(got - want) / np.maximum(1.0, np.abs(want).max(axis=1, keepdims=True))))


def compare(label, name, model, x, want):
    """relate's features `want` against the module's: within TOL[name] of torch's float32 forward,
    and as close to the float64 forward as torch's float32 forward is (so the difference is
    rounding, not a slightly different computation)."""
    with torch.no_grad():
        got = model(x).numpy()
        exact = model.double()(x.double()).numpy()
    model.float()
    check(got.shape == want.shape, "%s: features %s (relate: %s)" % (label, got.shape, want.shape))
    if got.shape != want.shape:
        return
    err, err_relate, err_torch = rel_err(got, want), rel_err(want, exact), rel_err(got, exact)
    print("      %s: |torch - relate| %.3g; against float64: relate %.3g, torch %.3g" % (label, err, err_relate, err_torch))
    check(err <= TOL[name], "%s: torch features equal relate embed's within %g" % (label, TOL[name]))
    check(err_relate <= 2 * err_torch + 2e-7, "%s: relate is as close to the float64 forward as torch float32" % label)


def raises(what, fn, needle):
    try:
        fn()
    except ValueError as exc:
        ok = needle in str(exc)
        check(ok, "%s raises ValueError mentioning %r: %s" % (what, needle, str(exc)[:160]))
        return
    except Exception as exc:  # noqa: BLE001 - the wrong kind of exception is a failure
        check(False, "%s raises ValueError, got %s: %s" % (what, type(exc).__name__, exc))
        return
    check(False, "%s raises ValueError (nothing raised)" % what)


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: test_relate_torch.py PATH/TO/relate")
    cli = os.path.abspath(sys.argv[1])
    torch.set_num_threads(2)
    start = time.time()
    work = tempfile.mkdtemp(prefix="relate_torch_")
    try:
        os.chdir(work)
        x = normalise(write_subset(os.path.join(work, "data")))
        common = ["--dataset=fashionmnist", "--data_root=data", "--seed=1", "--num_workers=2", "--epochs=1",
                  "--data_size=16", "--limit_train_batches=3", "--log_every=0"]
        stage1 = {}
        for name, method, extra in RUNS:
            relate(cli, "train_unsupervised", "--backbone=" + name, "--method=" + method, *(common + extra))
            ckpt = "checkpoint/%s/fashionmnist/%s_fashionmnist_%s_seed_1_epoch_1.tar" % (method, method, name)
            stage1[name] = ckpt
            model = relate_torch.load_backbone(ckpt)
            check(type(model).__name__ == ("Conv4" if name == "conv4" else "ResNet") and not model.training,
                  "%s %s: load_backbone picks the recorded backbone, eval mode" % (name, method))
            compare("%s (%s stage 1)" % (name, method), name, model, x, embed(cli, ckpt, name + ".npy"))

        # Stage 2: linear evaluation (conv4) and finetuning (resnet8, whose backbone changes).
        lin = ["--dataset=fashionmnist", "--data_root=data", "--seed=1", "--num_workers=2", "--epochs=1",
               "--data_size=32", "--limit_train_batches=2", "--log_every=0"]
        relate(cli, "train_linear_evaluation", "--method=relationnet", "--checkpoint=" + stage1["conv4"], *lin)
        ckpt = stage1["conv4"][:-len(".tar")] + "_linear_evaluation.tar"
        compare("conv4 (stage 2, linear evaluation)", "conv4", relate_torch.load_backbone(ckpt), x,
                embed(cli, ckpt, "conv4_lin.npy"))
        relate(cli, "train_linear_evaluation", "--method=simclr", "--finetune=True", "--id=ft",
               "--checkpoint=" + stage1["resnet8"], *lin)
        ckpt = "checkpoint/simclr/fashionmnist/simclr_ft_fashionmnist_resnet8_seed_1_epoch_1_finetune.tar"
        if not os.path.exists(ckpt):  # the name is relate's business; find the one file it wrote
            ckpt = [os.path.join(d, f) for d, _, fs in os.walk("checkpoint/simclr") for f in fs
                    if "_ft_" in f and f.endswith(".tar")][0]
        ft = embed(cli, ckpt, "resnet8_ft.npy")
        compare("resnet8 (stage 2, finetune)", "resnet8", relate_torch.load_backbone(ckpt), x, ft)
        check(not np.array_equal(ft, np.load("resnet8.npy")), "finetuning changed resnet8's features")

        # The reference's formats: a bare state dict (zip and legacy pickle) and DataParallel names.
        sd = torch.load(stage1["conv4"])["backbone"]
        want = np.load("conv4.npy")
        torch.save(sd, "bare.pt")
        compare("conv4 bare state dict", "conv4", relate_torch.load_backbone("bare.pt"), x, want)
        torch.save({"backbone": sd}, "legacy.pt", _use_new_zipfile_serialization=False)
        compare("conv4 legacy format", "conv4", relate_torch.load_backbone("legacy.pt"), x, want)
        torch.save({"module." + k: v for k, v in sd.items()}, "dp.pt")
        compare("conv4 'module.' prefix", "conv4", relate_torch.load_backbone("dp.pt"), x, want)
        torch.save(torch.load(stage1["resnet8"])["backbone"], "bare8.pt")
        compare("resnet8 bare state dict, backbone='resnet8'", "resnet8", relate_torch.load_backbone("bare8.pt", "resnet8"), x,
                np.load("resnet8.npy"))

        # Errors.
        with open("garbage.tar", "wb") as f:
            f.write(b"this is not a checkpoint\n" * 40)
        raises("a garbage file", lambda: relate_torch.load_backbone("garbage.tar"), "not a relate or PyTorch checkpoint")
        raises("a resnet8 file with backbone='conv4'", lambda: relate_torch.load_backbone(stage1["resnet8"], "conv4"),
               "holds a resnet8 backbone")
        raises("a bare resnet8 state dict (read as conv4)", lambda: relate_torch.load_backbone("bare8.pt"),
               "pass backbone='resnet8'")
        torch.save({"epoch": 3}, "nobackbone.pt")
        raises("a dict without a backbone", lambda: relate_torch.load_backbone("nobackbone.pt"), "no backbone")
        raises("an unknown backbone name", lambda: relate_torch.build("resnet18"), "choose one of")
    finally:
        os.chdir("/")
        shutil.rmtree(work, ignore_errors=True)
    print("time: %.1f s" % (time.time() - start))
    if FAILED:
        print("%d checks failed" % len(FAILED))
        return 1
    print("relate_torch: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
