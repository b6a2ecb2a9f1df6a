"""make_golden: regenerates relate's committed PyTorch reference files (tests/golden/*.safetensors).
Not run by the build or the tests: run it by hand with /usr/bin/python3 (Debian's torch 1.13) after changing a generator.

Usage: /usr/bin/python3 tools/make_golden.py [--out tests/golden]
Calls make(out_dir) of tools/golden_kernels.py, tools/golden_backbones.py and, when present,
tools/golden_optim.py. Deterministic: fixed seeds and one torch thread.
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(HERE), "tests", "golden"))
    ap.add_argument("--only", default="", help="comma-separated subset of kernels,backbones,optim")
    args = ap.parse_args()

    import torch
    torch.set_num_threads(1)
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    os.makedirs(args.out, exist_ok=True)

    names = ["golden_kernels", "golden_backbones", "golden_optim", "golden_images", "golden_resize"]
    # Generators that later issues add register themselves by existing.
    for extra in ("golden_transforms", "golden_relationnet", "golden_simclr", "golden_rotationnet",
                  "golden_deepinfomax", "golden_deepcluster", "golden_augment_stats", "golden_trajectory",
                  "golden_knn"):
        if os.path.exists(os.path.join(HERE, extra + ".py")):
            names.append(extra)
    only = set(x.strip() for x in args.only.split(",") if x.strip())
    for name in names:
        if only and name[len("golden_"):] not in only:
            continue
        mod = __import__(name)
        mod.make(args.out)

    total = sum(os.path.getsize(os.path.join(args.out, f)) for f in os.listdir(args.out)
                if f.endswith(".safetensors"))
    print("total golden size: %.1f MB" % (total / 1e6))
    if total > 32e6:
        sys.exit("golden files exceed 32 MB")


if __name__ == "__main__":
    main()
