"""torch_interop: relate checkpoints against real PyTorch (spec 8), both directions.
Not a unit test of the container (tests/checkpoint/test_checkpoint.c is) and not run with the
pyenv python: always /usr/bin/python3, the interpreter that has torch and torchvision.

(a) relate -> torch: test_checkpoint_writer writes a conv4 relationnet checkpoint (backbone,
    relation, Adam, SGD, epoch, method) and a resnet34 bare state dict plus their eval-mode
    forward outputs; this script torch.load's them, load_state_dict(strict=True) into the
    PyTorch modules of tools/golden_backbones.py (torchvision resnet34 with strict=False),
    compares the forward outputs and loads the optimizer states into torch.optim.Adam / SGD.
(b) torch -> relate: torch.save writes state dicts, optimizer state dicts (1.13 tensor steps),
    a nested checkpoint and tensor views (storage offsets, shared storages, strides, other
    dtypes) in the zip and the legacy format; test_checkpoint_reader checks every value against
    expected.safetensors written here.
Exit status 0 = pass, 1 = fail, 77 = skipped (no torch; without torchvision only the resnet34 round
trip is left out). With RELATE_REQUIRE_ALL=1 in the environment (CI sets it) a missing torch or
torchvision is a failure (1), never a skip.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections import OrderedDict

REQUIRE_ALL = os.environ.get("RELATE_REQUIRE_ALL") == "1"
INSTALL = ("apt-get install python3-torch python3-torchvision (Debian's packages, for /usr/bin/python3; "
           "the tests run this script with that interpreter)")


def missing(what, exc):
    """A dependency is missing: exit 77 (skipped), or 1 under RELATE_REQUIRE_ALL=1."""
    if REQUIRE_ALL:
        print("FAIL: %s is not importable by %s (%s); RELATE_REQUIRE_ALL=1 forbids skipping. Install: %s"
              % (what, sys.executable, exc, INSTALL))
        sys.exit(1)
    print("SKIPPED: %s is not importable by %s (%s). Install: %s (RELATE_REQUIRE_ALL=1 makes this a failure)"
          % (what, sys.executable, exc, INSTALL))
    sys.exit(77)


try:
    import torch
    import torch.nn as nn
except Exception as exc:  # noqa: BLE001 - any import failure means "no usable torch"
    missing("torch", exc)

# torchvision is needed only for the resnet34 round trip: without it the rest still runs and that
# part is skipped with a note, unless RELATE_REQUIRE_ALL=1, which makes it a failure here.
try:
    import torchvision
    TORCHVISION_MISSING = None
except Exception as exc:  # noqa: BLE001
    if REQUIRE_ALL:
        missing("torchvision", exc)
    torchvision = None
    TORCHVISION_MISSING = exc

FAILED = []


def check(cond, what):
    if not cond:
        FAILED.append(what)
        print("FAIL:", what)


def read_safetensors(path):
    import json
    import struct
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        base = 8 + n
        data = open(path, "rb").read()
    out = {}
    dt = {"F32": torch.float32, "I64": torch.int64}
    for name, d in header.items():
        if name == "__metadata__":
            continue
        a, b = d["data_offsets"]
        t = torch.frombuffer(bytearray(data[base + a:base + b]), dtype=dt[d["dtype"]])
        out[name] = t.reshape(d["shape"])
    return out


def rel_err(got, want):
    den = want.abs().max().item()
    num = (got - want).abs().max().item()
    return num / den if den > 0 else num


def relation_head():
    return nn.Sequential(OrderedDict([
        ("linear1", nn.Linear(128, 256)), ("bn1", nn.BatchNorm1d(256)),
        ("relu", nn.LeakyReLU()), ("linear2", nn.Linear(256, 1))]))


# ----------------------------------------------------------------------------- (a) relate -> torch
def relate_to_torch(work, writer, golden_backbones):
    out = subprocess.run([writer, work, "--resnet34"], capture_output=True, text=True)
    check(out.returncode == 0, "test_checkpoint_writer ran: " + out.stderr.strip())
    if out.returncode:
        return
    path = os.path.join(work, "relate_conv4.tar")
    ck = torch.load(path)
    check(list(ck.keys()) == ["backbone", "relation", "optimizer", "optimizer_sgd", "epoch", "method"],
          "top-level keys %s" % list(ck.keys()))
    check(ck["epoch"] == 2 and ck["method"] == "relationnet", "plain values")
    sd = ck["backbone"]
    check(isinstance(sd, OrderedDict), "state dicts are OrderedDicts")
    nbt = sd["layer1.bn.num_batches_tracked"]
    check(nbt.dtype == torch.int64 and nbt.shape == () and nbt.item() == 5,
          "num_batches_tracked is an int64 scalar (%s %s %s)" % (nbt.dtype, tuple(nbt.shape), nbt.item()))

    model, _ = golden_backbones.build("conv4")
    model.load_state_dict(sd, strict=True)
    model.eval()
    fw = read_safetensors(os.path.join(work, "relate_conv4_forward.safetensors"))
    with torch.no_grad():
        y = model(fw["input"])
    e = rel_err(y, fw["output"])
    print("conv4 eval forward after load: rel err %.3g" % e)
    check(e < 1e-4, "conv4 forward matches relate's (rel err %.3g)" % e)

    head = relation_head()
    head.load_state_dict(ck["relation"], strict=True)

    groups = [{"params": list(model.parameters())}, {"params": list(head.parameters())}]
    adam = torch.optim.Adam(groups, lr=0.5)
    adam.load_state_dict(ck["optimizer"])
    check([g["lr"] for g in adam.param_groups] == [1e-3, 2e-3], "Adam lrs restored")
    check(adam.param_groups[1]["weight_decay"] == 1e-5, "Adam weight decay restored")
    params = groups[0]["params"] + groups[1]["params"]
    stepped = [p for p in params if p in adam.state]
    check(len(stepped) == len(params) - 1, "every parameter but the frozen one has Adam state (%d of %d)"
          % (len(stepped), len(params)))
    check(params[-1] not in adam.state, "the frozen linear2.bias has no state")
    st0 = adam.state[params[0]]
    check(float(st0["step"]) == 2.0, "Adam step restored (%s)" % st0["step"])
    check(torch.equal(st0["exp_avg"], ck["optimizer"]["state"][0]["exp_avg"]), "exp_avg restored")
    for p in params:
        p.grad = torch.ones_like(p)
    adam.step()  # the restored state is usable
    check(float(adam.state[params[0]]["step"]) == 3.0, "Adam continues from step 2")

    sgd = torch.optim.SGD(groups, lr=0.5, momentum=0.9)
    sgd.load_state_dict(ck["optimizer_sgd"])
    check(sgd.param_groups[0]["momentum"] == 0.9 and sgd.param_groups[1]["lr"] == 2e-3, "SGD groups restored")
    check(torch.equal(sgd.state[params[0]]["momentum_buffer"], ck["optimizer_sgd"]["state"][0]["momentum_buffer"]),
          "SGD momentum buffer restored")
    sgd.step()

    # resnet34: a bare state dict into torchvision's resnet34 (non-strict: it has an fc layer).
    if torchvision is None:
        print("SKIPPED (part): torchvision is not importable by %s (%s); the resnet34 round trip is left out. "
              "Install: %s (RELATE_REQUIRE_ALL=1 makes this a failure)" % (sys.executable, TORCHVISION_MISSING, INSTALL))
        return
    r34 = torchvision.models.resnet34()
    sd34 = torch.load(os.path.join(work, "relate_resnet34.pt"), weights_only=True)
    res = r34.load_state_dict(sd34, strict=False)
    check(sorted(res.missing_keys) == ["fc.bias", "fc.weight"] and not res.unexpected_keys,
          "resnet34 loads into torchvision's (missing %s, unexpected %s)" % (res.missing_keys, res.unexpected_keys))
    r34.fc = nn.Identity()
    r34.eval()
    fw = read_safetensors(os.path.join(work, "relate_resnet34_forward.safetensors"))
    with torch.no_grad():
        y = r34(fw["input"])
    e = rel_err(y, fw["output"])
    print("resnet34 eval forward after load: rel err %.3g" % e)
    check(e < 1e-4, "resnet34 forward matches relate's (rel err %.3g)" % e)


# ----------------------------------------------------------------------------- (b) torch -> relate
def torch_to_relate(work, reader, golden_backbones, save_safetensors):
    torch.manual_seed(3)
    model, _ = golden_backbones.build("conv4")
    head = relation_head()
    with torch.no_grad():
        for m in list(model.modules()) + list(head.modules()):
            if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 1.5)
                m.bias.uniform_(-1, 1)
                m.num_batches_tracked.fill_(17)
    groups = [{"params": list(model.parameters())}, {"params": list(head.parameters()), "lr": 2e-3}]
    params = groups[0]["params"] + groups[1]["params"]
    adam = torch.optim.Adam(groups, lr=1e-3, weight_decay=1e-5)
    sgd = torch.optim.SGD([{"params": groups[0]["params"]}, {"params": groups[1]["params"], "lr": 0.2}],
                          lr=0.1, momentum=0.9)
    for step in range(3):
        for i, p in enumerate(params):
            # the last parameter never gets a gradient: no state entry for it
            p.grad = None if i == len(params) - 1 else torch.randn_like(p)
        adam.step()
        sgd.step()

    base = torch.arange(20, dtype=torch.float32).reshape(4, 5)
    flat = torch.randn(40)
    views = OrderedDict([
        ("base", base),
        ("rows", base[1:3]),                       # storage offset 5, shares base's storage
        ("cols", base[:, 1:3]),                    # offset 1, strides (5, 1)
        ("transposed", base.t()),                  # strides (1, 5)
        ("window", flat[7:19].view(3, 4)),         # offset 7 into a 40-element storage
        ("expanded", torch.arange(3.0).expand(2, 3)),  # stride 0
        ("scalar", torch.tensor(3.5)),
        ("empty", torch.zeros(0, 3)),
        ("half", torch.randn(3, 4).half()),
        ("double", torch.randn(5, dtype=torch.float64)),
        ("bf16", torch.randn(6).bfloat16()),
        ("i32", torch.arange(-3, 3, dtype=torch.int32).reshape(2, 3)),
        ("u8", torch.tensor([0, 7, 255], dtype=torch.uint8)),
        ("flags", torch.tensor([True, False, True])),
    ])

    ck = {"backbone": model.state_dict(), "relation": head.state_dict(), "optimizer": adam.state_dict(),
          "optimizer_sgd": sgd.state_dict(), "epoch": 7, "name": "conv4 ckpt", "lr": 0.25,
          "nested": {"views": views, "list": [1, 2.5, "x", None]}}

    expected = OrderedDict()
    for prefix, sdict in (("backbone", ck["backbone"]), ("relation", ck["relation"])):
        for k, v in sdict.items():
            expected["%s.%s" % (prefix, k)] = v.clone()
    n = len(params)
    steps = torch.zeros(n, dtype=torch.int64)
    for i, p in enumerate(params):
        st = adam.state.get(p)
        if st:
            steps[i] = int(st["step"])
            expected["adam.%d.exp_avg" % i] = st["exp_avg"].clone()
            expected["adam.%d.exp_avg_sq" % i] = st["exp_avg_sq"].clone()
        st = sgd.state.get(p)
        if st and st.get("momentum_buffer") is not None:
            expected["sgd.%d.momentum_buffer" % i] = st["momentum_buffer"].clone()
    expected["adam.step"] = steps
    expected["adam.lr"] = torch.tensor([g["lr"] for g in adam.param_groups], dtype=torch.float64)
    expected["sgd.lr"] = torch.tensor([g["lr"] for g in sgd.param_groups], dtype=torch.float64)
    for k, v in views.items():
        v = v.contiguous()
        expected["view." + k] = v.long() if not v.is_floating_point() else v.float()
    save_safetensors(os.path.join(work, "expected.safetensors"), expected,
                     {"views": ",".join(views.keys()), "nparams": n})

    files = []
    for fmt, zipped in (("zip", True), ("legacy", False)):
        full = os.path.join(work, "torch_full_%s.pt" % fmt)
        bare = os.path.join(work, "torch_sd_%s.pt" % fmt)
        torch.save(ck, full, _use_new_zipfile_serialization=zipped)
        torch.save(model.state_dict(), bare, _use_new_zipfile_serialization=zipped)
        files += ["full:" + full, "bare:" + bare]
    out = subprocess.run([reader, os.path.join(work, "expected.safetensors")] + files, capture_output=True, text=True)
    sys.stdout.write(out.stdout)
    sys.stdout.write(out.stderr)
    check(out.returncode == 0, "test_checkpoint_reader accepted torch.save's files (status %d)" % out.returncode)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--writer", required=True)
    ap.add_argument("--reader", required=True)
    ap.add_argument("--tools", required=True)
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args()
    sys.path.insert(0, args.tools)
    import golden_backbones
    from golden_common import save_safetensors
    torch.set_num_threads(1)
    print("torch", torch.__version__)
    work = tempfile.mkdtemp(prefix="relate_ckpt_interop_")
    try:
        relate_to_torch(work, args.writer, golden_backbones)
        torch_to_relate(work, args.reader, golden_backbones, save_safetensors)
    finally:
        if args.keep:
            print("kept", work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    if FAILED:
        print("%d checks failed" % len(FAILED))
        return 1
    print("torch interop: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
