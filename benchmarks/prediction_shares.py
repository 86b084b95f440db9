"""What a trained θ(t) predicts on the seen classes' test images: its accuracy, the share of images
predicted as each class and each class's recall, for our models or the reference's, on the same images.

A model that over-predicts one class pulls its inversion onto that class (see
`benchmarks/replay_shares.py`); this measures the lean in the model itself:

    python benchmarks/prediction_shares.py outputs/proxy4/o0-t0 --method abd --task 1 \
        --preset fidelity-proxy-4task -S seed=0 [-S train_seed=1]
    python benchmarks/prediction_shares.py outputs/proxy4/o0-t0 --task 1 --preset fidelity-proxy-4task \
        -S seed=0 --reference outputs/reference-4task/abd/models/repeat-1/task-1/class.pth

The run directory gives the split and test images; `--reference` swaps in the reference's saved θ(t)
(the class order is the same on both sides for the proxies, checked). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from dfcil_core.foundations import config as config_mod
from dfcil_core.lab.reference_weights import reference_classifier, resnet32_state
from dfcil_core.method.augment import DeviceAugment
from dfcil_core.method.metrics import class_prediction_shares
from dfcil_core.method.training import predict
from dfcil_core.run.artifacts import Layout, read_split, seen_classes
from dfcil_core.run.checkpoints import load_model
from dfcil_core.run.evaluate_stage import test_sets


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="a dfcil run directory (its split and test images)")
    p.add_argument("--task", type=int, default=1, help="θ(task) over the classes of tasks 1..task")
    p.add_argument("--method", default="abd", help="the lineage whose θ(task) is measured")
    p.add_argument("--reference", type=Path, help="the reference's class.pth to measure instead")
    p.add_argument("--preset", default="fidelity-proxy-4task")
    p.add_argument("-S", dest="overrides", action="append", default=[], help="the run's overrides")
    args = p.parse_args(argv)
    if args.reference and not args.reference.is_file():
        p.error(f"no saved model at {args.reference}")
    torch.set_num_threads(1)
    cfg = config_mod.load(preset=args.preset, overrides=[*args.overrides, "runtime.device=cpu"])
    device = torch.device("cpu")
    lay = Layout(args.run)
    _, seen = seen_classes(read_split(cfg, lay), args.task)
    tests = test_sets(lay, args.task, device)
    x, y = torch.cat([t.x for t in tests]), torch.cat([t.y for t in tests])
    if args.reference:
        model = reference_classifier(resnet32_state(torch.load(args.reference, map_location="cpu")), seen)
    else:
        model = load_model(cfg, lay.model(args.method, args.task), args.method, args.task, device, seen)
    augment = DeviceAugment(cfg.data.dataset, cfg.data.image_size, device)
    pred = predict(model, x, augment, seen)[:, 0]
    shares = class_prediction_shares(pred.numpy(), y.numpy(), seen)
    print(json.dumps({k: [round(v, 2) for v in val] if isinstance(val, list) else round(val, 2)
                      for k, val in shares.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
