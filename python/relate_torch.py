"""relate_torch: relate's five backbones as PyTorch modules, and a loader for relate checkpoints.

    import relate_torch
    model = relate_torch.load_backbone("checkpoint.tar")

`model(x)` takes images [N, 3, S, S], normalised as relate normalises them (x / 255, then
(x - mean) / std per channel with the dataset's constants; grey images repeated to three
channels), and returns the features [N, d] that `relate embed` writes: batch norm in eval mode,
global average pooling, flattened. d is 64, or 512 for resnet34.

The modules' state-dict names are relate's (which are the reference's), so
`load_state_dict(strict=True)` accepts the `backbone` entry of any relate checkpoint. Needs only
torch (Debian's python3-torch 1.13 or later); the file stands alone, copy it where you need it.
"""
from collections import OrderedDict

import torch
import torch.nn as nn

__all__ = ["BACKBONES", "Conv4", "ResNet", "build", "load_backbone"]

BACKBONES = ("conv4", "resnet8", "resnet32", "resnet56", "resnet34")


def _conv(cin, cout, k, stride=1, pad=0):
    return nn.Conv2d(cin, cout, k, stride, pad, bias=False)  # no backbone conv has a bias


class Conv4(nn.Module):
    """Four conv3x3-BN-ReLU blocks (8, 16, 32, 64 channels), 2x2 average pooling after the first
    three, then global average pooling. State dict: layer{1..4}.conv / layer{1..4}.bn."""

    feature_size = 64

    def __init__(self):
        super().__init__()
        chans = (3, 8, 16, 32, 64)
        for i in range(4):
            block = OrderedDict([("conv", _conv(chans[i], chans[i + 1], 3, 1, 1)),
                                 ("bn", nn.BatchNorm2d(chans[i + 1])),
                                 ("relu", nn.ReLU())])
            if i < 3:
                block["avgpool"] = nn.AvgPool2d(2, 2)  # floor: 28 -> 14 -> 7 -> 3
            setattr(self, "layer%d" % (i + 1), nn.Sequential(block))

    def forward(self, x):
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)


class BasicBlock(nn.Module):
    """relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut), the shortcut a 1x1 conv + BN
    (`downsample.0`, `downsample.1`) where the stride or the width changes."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = _conv(cin, cout, 3, stride, 1)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = _conv(cout, cout, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(_conv(cin, cout, 1, stride), nn.BatchNorm2d(cout))

    def forward(self, x):
        h = torch.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return torch.relu(h + (x if self.downsample is None else self.downsample(x)))


class ResNet(nn.Module):
    """The CIFAR ResNets (resnet8/32/56: a 3x3 stem of 16 channels, three stages of 16, 32, 64
    channels with n = 1, 5, 9 blocks) and ResNet-34 (torchvision's layout without `fc`: a 7x7
    stride-2 stem of 64 channels, 3x3 stride-2 max pooling, stages of 3, 4, 6, 3 blocks)."""

    def __init__(self, name):
        super().__init__()
        if name == "resnet34":
            stem, widths, blocks = 64, (64, 128, 256, 512), (3, 4, 6, 3)
            self.conv1 = _conv(3, stem, 7, 2, 3)
        elif name in ("resnet8", "resnet32", "resnet56"):
            n = {"resnet8": 1, "resnet32": 5, "resnet56": 9}[name]
            stem, widths, blocks = 16, (16, 32, 64), (n, n, n)
            self.conv1 = _conv(3, stem, 3, 1, 1)
        else:
            raise ValueError("not a ResNet of relate: %r" % name)
        self.bn1 = nn.BatchNorm2d(stem)
        self.maxpool = nn.MaxPool2d(3, 2, 1) if name == "resnet34" else nn.Identity()
        cin = stem
        for s, (width, count) in enumerate(zip(widths, blocks)):
            stage = []
            for b in range(count):
                stage.append(BasicBlock(cin, width, 2 if b == 0 and s > 0 else 1))
                cin = width
            setattr(self, "layer%d" % (s + 1), nn.Sequential(*stage))
        self.stages = len(widths)
        self.feature_size = cin

    def forward(self, x):
        x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        for s in range(self.stages):
            x = getattr(self, "layer%d" % (s + 1))(x)
        return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)


def build(name):
    """A freshly initialised (PyTorch's default init, not relate's) backbone by relate's name."""
    if name == "conv4":
        return Conv4()
    if name in BACKBONES:
        return ResNet(name)
    raise ValueError("unknown backbone %r; choose one of %s" % (name, ", ".join(BACKBONES)))


def _guess(sd):
    """The backbone whose layout a state dict has, or None (only for error messages)."""
    for name in BACKBONES:
        if set(build(name).state_dict()) == set(sd):
            return name
    return None


def load_backbone(path, backbone=None):
    """The backbone of a relate checkpoint, loaded strictly and in eval mode.

    path: any file relate reads a backbone from: a stage-1 checkpoint of any method, a stage-2
    (linear evaluation / finetune) checkpoint, or the reference's files (a dict with a
    'backbone' entry, or a bare state dict). backbone: relate's name; by default the one the
    file records ('backbone_name'), else conv4, as `relate embed` decides. Raises ValueError
    when the file is no checkpoint or does not hold that backbone. Like torch.load before torch
    2.6, this unpickles the file: load only files you trust.
    """
    try:
        # torch's default unpickler: torch 1.13's weights_only=True refuses relate's files (it has
        # no BINFLOAT opcode, and stage-1 files store floats); from torch 2.6 the default is safe.
        ck = torch.load(path, map_location="cpu")
    except FileNotFoundError:
        raise
    except Exception as exc:  # pickle, zip and torch errors alike: the file is not a checkpoint
        raise ValueError("%s is not a relate or PyTorch checkpoint (torch.load failed: %s)" % (path, exc)) from exc
    if not isinstance(ck, dict):
        raise ValueError("%s holds a %s, not a checkpoint dict" % (path, type(ck).__name__))

    stored = ck.get("backbone_name")
    if backbone and stored and stored != backbone:
        raise ValueError("%s holds a %s backbone, but backbone=%r: pass backbone=%r or leave it out"
                         % (path, stored, backbone, stored))
    name = backbone or stored or "conv4"

    # relate's rule: the 'backbone' entry if there is one, else the file is the state dict itself.
    sd = ck["backbone"] if "backbone" in ck else ck
    if not isinstance(sd, dict) or not all(torch.is_tensor(v) for v in sd.values()):
        raise ValueError("%s has no backbone state dict (no 'backbone' entry; its keys: %s)"
                         % (path, ", ".join(map(str, ck))))
    if sd and all(k.startswith("module.") for k in sd):  # saved from nn.DataParallel
        sd = OrderedDict((k[len("module."):], v) for k, v in sd.items())

    model = build(name)
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        guess = _guess(sd)
        hint = " It looks like a %s backbone: pass backbone=%r." % (guess, guess) if guess and guess != name else ""
        raise ValueError("cannot use %s as a %s backbone: %s%s" % (path, name, exc, hint)) from exc
    return model.eval()
