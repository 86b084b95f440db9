"""What a replay generator draws, per old task: ours or the reference's, on the same count of draws.

A many-task run forgets the old tasks its generator stops drawing. This prints the share of the replay
labelled with each old task's classes (θ(t-1)'s argmax, as both codes label replay) for the generator
replayed in task t, from either side's saved weights (`--per-class`: per old class instead):

    python benchmarks/replay_shares.py --reference outputs/reference-4task/abd/models/repeat-1 --task 3 --classes 5
    python benchmarks/replay_shares.py --ours outputs/proxy4/o0-t0 --method abd --task 3 \
        --preset fidelity-proxy-4task [-S train_seed=1]

The reference saves θ(t-1) and the generator inverted from it together in `task-(t-1)/`; the class
order is the same on both sides (checked for the 4 x 5 proxy), so old task k is rows [(k-1)c, kc).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from dfcil_core.foundations import config as config_mod
from dfcil_core.foundations.errors import DfcilError, one_line
from dfcil_core.lab.reference_weights import reference_classifier, saved_task_states
from dfcil_core.method.models import Generator, IncrementalClassifier
from dfcil_core.method.synthesis import replay_class_shares
from dfcil_core.run.artifacts import Layout, class_blocks, read_split, seen_classes
from dfcil_core.run.checkpoints import load_generator, load_model


def reference_pair(models: Path, task: int, past: int) -> tuple[Generator, IncrementalClassifier]:
    """The reference's generator replayed in `task` and θ(task-1), under our module names."""
    state, gen_state = saved_task_states(models / f"task-{task - 1}")
    generator = Generator()
    generator.load_state_dict(gen_state)
    return generator, reference_classifier(state, past)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    side = p.add_mutually_exclusive_group(required=True)
    side.add_argument("--reference", type=Path, help="the reference's models/repeat-N directory")
    side.add_argument("--ours", type=Path, help="a dfcil run directory")
    p.add_argument("--task", type=int, required=True, help="the task whose replay is measured (>= 2)")
    p.add_argument("--classes", type=int, default=5, help="classes per task (--reference)")
    p.add_argument("--method", default="abd", help="the lineage (--ours)")
    p.add_argument("--preset", default="fidelity-proxy-4task", help="the run's preset (--ours)")
    p.add_argument("-S", dest="overrides", action="append", default=[], help="the run's overrides (--ours)")
    p.add_argument("--draws", type=int, default=2000)
    p.add_argument("--per-class", action="store_true", help="a share per old class instead of per old task")
    args = p.parse_args(argv)
    gen = torch.Generator().manual_seed(0)
    if args.reference:
        past = (args.task - 1) * args.classes
        try:
            generator, teacher = reference_pair(args.reference, args.task, past)
        except DfcilError as err:
            print(f"replay_shares: error: {one_line(err)}", file=sys.stderr)
            return 2
        blocks = [(k * args.classes, (k + 1) * args.classes) for k in range(args.task - 1)]
    else:
        cfg = config_mod.load(preset=args.preset, overrides=[*args.overrides, "runtime.device=cpu"])
        lay = Layout(args.ours)
        meta = read_split(cfg, lay)
        past, _ = seen_classes(meta, args.task)
        device = torch.device("cpu")
        teacher = load_model(cfg, lay.model(args.method, args.task - 1), args.method, args.task - 1, device, past)
        generator = load_generator(cfg, lay.generator(args.method, args.task), args.method, args.task, device)
        blocks = class_blocks(meta, args.task - 1)
    if args.per_class:
        blocks = [(c, c + 1) for c in range(past)]
    generator.eval()
    teacher.eval()
    with torch.no_grad():
        shares = replay_class_shares(generator, teacher, past, blocks, n=args.draws, gen=gen)
    if args.per_class:
        shares["share_by_class"] = shares.pop("share_by_task")
    print(json.dumps(shares))
    return 0


if __name__ == "__main__":
    sys.exit(main())
