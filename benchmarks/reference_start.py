"""Start our ABD task 2 from the reference's own θ(1) (and generator): does the gap sit in the loop or the start?

    python benchmarks/reference_start.py outputs/proxy/s1-t1 outputs/diagnostics/s1-t1-refstart
    dfcil train --preset fidelity-proxy -S seed=1 -S train_seed=1 --out outputs/diagnostics/s1-t1-refstart --method abd --task 2
    dfcil evaluate --preset fidelity-proxy -S seed=1 -S train_seed=1 -S 'methods=[abd]' --out outputs/diagnostics/s1-t1-refstart

`--theta-only` copies only θ(1), so that `dfcil synthesize ... --method abd --task 2` inverts our own
generator from the reference's θ(1) first. The reference's run directory (`--reference`) is the
`models/repeat-R/task-1` folder of `benchmarks/reference_proxy.sh` for the same class-order seed as
the source run. The checkpoints keep our run's metadata (same config hashes), so the stages accept
them; only the weights are the reference's, mapped with dfcil_core.lab.reference_weights (its 100-row head cut
to our run's rows: all 100 by default; the diagnostics of 2026-11-30 in docs/fidelity.md ran before
`model.head_size` existed, with 20 rows: add `-S model.head_size=20` to repeat them).
`--probe` prints, for both starts, the ABD feature-KD term at the first step of task 2
(a train-mode copy of θ(1) against θ(1) in eval mode, 128 real task-2 + 128 synthetic images).

Any later task the same way (the many-task proxy): `--task T` starts our task T from the reference's
θ(T-1) and the generator it inverted from it (its `task-(T-1)` folder; our generator's Adam state is
kept, so a task after T would continue a hybrid), and `--row T` prints θ(T)'s accuracy on each seen
task's test set, from the run's own checkpoint (A_{T,1:T} is their mean):

    python benchmarks/reference_start.py outputs/proxy4/o0-t0 outputs/diagnostics/p4-refstart-t3 --task 3 \
        --reference outputs/reference-4task/abd/models/repeat-1/task-2
    dfcil train --preset fidelity-proxy-4task -S seed=0 --out outputs/diagnostics/p4-refstart-t3 --method abd --task 3
    python benchmarks/reference_start.py outputs/diagnostics/p4-refstart-t3 --row 3 --preset fidelity-proxy-4task -S seed=0

`--lineage ce --theta-only` puts the reference's Base θ(1) under our shared task-1 model instead, so that
`dfcil run -S 'methods=[base,lwf,deepinversion]'` into OUT trains those lineages' tasks 2-N from it
(DeepInversion inverting our own generator from it).
"""

from __future__ import annotations

import argparse
import copy
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

from dfcil_core.foundations import atomic_io
from dfcil_core.foundations import config as config_mod
from dfcil_core.foundations.config import AbdConfig
from dfcil_core.foundations.errors import DfcilError, one_line
from dfcil_core.lab.reference_weights import reference_classifier, saved_task_states
from dfcil_core.method import losses
from dfcil_core.method.augment import DeviceAugment
from dfcil_core.method.models import Generator
from dfcil_core.method.training import accuracy_row
from dfcil_core.run.artifacts import Layout, read_split, seen_classes
from dfcil_core.run.checkpoints import load_model
from dfcil_core.run.evaluate_stage import test_sets


def start_files(task: int, lineage: str = "abd") -> tuple[Path, Path]:
    """Our θ(task-1) of `lineage` and the generator replayed in `task`, relative to a run directory."""
    return Path(f"models/{lineage}/task_{task - 1}.pt"), Path(f"generators/{lineage}/task_{task}.pt")


def accuracy_by_task(run: Path, task: int, preset: str, overrides: list[str]) -> list[float]:
    """θ(task) of ABD in `run`: accuracy (%) on each seen task's test set, over the seen classes."""
    cfg = config_mod.load(preset=preset, overrides=[*overrides, "runtime.device=cpu"])
    lay, device = Layout(run), torch.device("cpu")
    seen = seen_classes(read_split(cfg, lay), task)[1]
    model = load_model(cfg, lay.model("abd", task), "abd", task, device, seen)
    return accuracy_row(model, test_sets(lay, task, device), seen, cfg, device)


def reference_weights(ref_dir: Path, head_rows: int, with_generator: bool = True) -> tuple[dict, dict | None]:
    model, gen = saved_task_states(ref_dir, with_generator)
    model["head.weight"], model["head.bias"] = model["head.weight"][:head_rows], model["head.bias"][:head_rows]
    return model, gen


def first_step_kd(model_state: dict, past: int, gen_state: dict, split: Path,
                  lambda_kd: float = AbdConfig().lambda_kd) -> tuple[float, float]:
    """ABD's feature-KD (Eq. 13, x lambda_kd) between a train-mode copy of θ(1) and θ(1): (real, synthetic)."""
    teacher = reference_classifier(model_state, past).eval()
    gen = Generator()
    gen.load_state_dict(gen_state)
    gen.eval()
    d = np.load(split / "task_2.npz")
    x_real = DeviceAugment("cifar100", 32, torch.device("cpu")).normalize(
        torch.from_numpy(d["train_x"][torch.randperm(len(d["train_x"]), generator=torch.Generator().manual_seed(0))[:128]]))
    with torch.no_grad():
        x = torch.cat([x_real, gen.sample(128, torch.Generator().manual_seed(1))])
        student = copy.deepcopy(teacher).train()
        s, t, w_old = student.forward_with_features(x)[1], teacher.forward_with_features(x)[1], teacher.head.weight[:past]
        return tuple(lambda_kd * losses.importance_weighted_feature_kd(s[half], t[half], w_old).item()
                     for half in (slice(None, 128), slice(128, None)))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", type=Path, help="our run (class order S, its split and ABD θ(T-1) / generator)")
    p.add_argument("out", type=Path, nargs="?", help="new output directory for the reference-start run")
    p.add_argument("--reference", type=Path, default=Path("outputs/reference/abd/models/repeat-2/task-1"))
    p.add_argument("--task", type=int, default=2, help="the task T our run starts (from the reference's θ(T-1))")
    p.add_argument("--lineage", default="abd",
                   help="whose θ(T-1) to replace: abd, or ce (the task-1 model Base, LwF and DeepInversion share)")
    p.add_argument("--theta-only", action="store_true", help="copy θ(T-1) only (invert our own generator from it)")
    p.add_argument("--probe", action="store_true", help="print the first-step feature-KD of both starts (T = 2)")
    p.add_argument("--row", type=int, help="print θ(ROW)'s accuracy per seen task in SOURCE, then stop")
    p.add_argument("--preset", default="fidelity-proxy", help="SOURCE's preset (--row)")
    p.add_argument("-S", dest="overrides", action="append", default=[], help="SOURCE's overrides (--row)")
    a = p.parse_args()
    if a.row:
        row = accuracy_by_task(a.source, a.row, a.preset, a.overrides)
        print(f"θ({a.row}) in {a.source}: " + " / ".join(f"{v:.1f}" for v in row) + f"; mean {sum(row) / len(row):.2f}")
        return 0
    if a.out is None:
        p.error("OUT is required unless --row is given")
    model_file, generator_file = start_files(a.task, a.lineage)
    with_generator = a.probe or not a.theta_only
    ours_model = atomic_io.load_torch(a.source / model_file)
    ours_gen = atomic_io.load_torch(a.source / generator_file) if with_generator else None
    rows = ours_model["state_dict"]["head.weight"].shape[0]
    try:
        ref_model, ref_gen = reference_weights(a.reference, rows, with_generator)
    except DfcilError as err:
        print(f"reference_start: error: {one_line(err)} (use --theta-only)", file=sys.stderr)
        return 2
    if a.probe:
        for name, (m, g) in {"reference θ(1) + generator": (ref_model, ref_gen),
                             f"ours ({a.source})": (ours_model["state_dict"], ours_gen["state_dict"])}.items():
            real, syn = first_step_kd(m, ours_model["num_classes"], g, a.source / "split")
            print(f"{name}: first-step feature-KD {(real + syn) / 2:.3f} (real {real:.3f}, synthetic {syn:.3f})")
    if a.out.exists():
        print(f"reference_start: error: {a.out} exists (choose a new directory)", file=sys.stderr)
        return 2
    shutil.copytree(a.source / "split", a.out / "split")
    ours_model["state_dict"] = ref_model
    atomic_io.save_torch(a.out / model_file, ours_model)
    if not a.theta_only:
        ours_gen["state_dict"] = ref_gen
        atomic_io.save_torch(a.out / generator_file, ours_gen)
    print(f"{a.out}: the reference's θ({a.task - 1}){'' if a.theta_only else ' and generator'} under our run's metadata")
    return 0


if __name__ == "__main__":
    sys.exit(main())
