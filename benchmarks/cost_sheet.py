"""Cost sheet of the paper's tables: GPU-hours and wall time on N GPUs, from measured seconds per
step, for CIFAR-100 (Tables 1, 2 / B, 3), Tiny-ImageNet (C, D) and ImageNet-50 (4 / E).

    python benchmarks/cost_sheet.py            # the H200 figures below; Tiny/ImageNet projected by CPU ratios
    python benchmarks/cost_sheet.py --throughput outputs/bench/throughput_cuda.json --gpus 1 4 8
    python benchmarks/cost_sheet.py --step-seconds outputs/bench/step-seconds-cuda.json   # all measured on a GPU

CIFAR-100's step times were measured on an H200. Tiny-ImageNet's and ImageNet-50's were not measured
on a GPU: their GPU figures are PROJECTED as CIFAR-100's H200 step times times the ratio of the two
datasets' steps measured side by side on a CPU (`benchmarks/step_seconds.py`, the file given by
--cpu-step-seconds). A GPU keeps a bigger step busier than ResNet-32 at 32 px, so the projection is
likely high. The CPU's own cost (its measured step times, no projection) is printed too.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dfcil_core.foundations import config as config_mod
from dfcil_core.lab.costs import KINDS, StepSeconds, table_cost

# NVIDIA H200, `bash benchmarks/device_check.sh` (2026-11-27): CUDA graphs on the trunk, TF32, batch 128.
# The teacher's extra forward ("kd") and DGR's step were not measured there: PROJECTED from their ratios
# to Base's step on the CPU (`dfcil benchmark throughput --replay`, batch 128, AMD EPYC AVX-512,
# 2026-12-06: KD_RATIO = LwF + coreset's, DGR_RATIO = DGR's).
KD_RATIO, DGR_RATIO = 1.30, 6.0
H200 = StepSeconds(ce=0.0051, replay=0.0162, generator=0.0180, kd=0.0051 * KD_RATIO, dgr=0.0051 * DGR_RATIO,
                   device="NVIDIA H200 (CUDA graphs, TF32), 2026-11-27; kd and DGR steps projected from CPU ratios")
CPU_STEP_SECONDS = Path(__file__).with_name("step-seconds-cpu.json")


def tables(cifar_seeds: int) -> list[tuple[str, str, list[config_mod.Config], int]]:
    """(table, dataset, its runs, seeds): CIFAR-100's tables over `cifar_seeds` class orders, the
    others one run each, as the paper reports them."""
    load = config_mod.load
    return [
        ("Table 1 (CIFAR-100, 5/10/20 tasks, 8 methods with DGR)", "cifar100",
         [load(preset=f"paper-cifar100-{n}") for n in (5, 10, 20)], cifar_seeds),
        ("Tables 2 / B (CIFAR-100, 5/10/20 tasks, 4 coreset methods, upper bound, ABD)", "cifar100",
         [load(preset=f"paper-cifar100-{n}-coreset") for n in (5, 10, 20)], cifar_seeds),
        ("Table 3 (CIFAR-100, 5 ablations, 10 tasks)", "cifar100",
         [load(preset="paper-cifar100-10", overrides=["methods=[abd]", f"abd.{k}=false"])
          for k in ("task_balancing", "local_ce", "kd_real", "kd_synthetic", "ft_ce")], cifar_seeds),
        ("Table C (Tiny-ImageNet, 20 tasks, 7 methods)", "tinyimagenet", [load(preset="paper-tinyimagenet-20")], 1),
        ("Table D (Tiny-ImageNet, 20 tasks, coreset methods)", "tinyimagenet",
         [load(preset="paper-tinyimagenet-20-coreset")], 1),
        ("Tables 4 / E (ImageNet-50, 5 tasks, 6 methods)", "imagenet50", [load(preset="paper-imagenet50-5")], 1),
    ]


def measured(doc: dict, dataset: str, label: str) -> StepSeconds:
    """A dataset's step seconds from a `benchmarks/step_seconds.py` file."""
    row = doc["datasets"][dataset]
    return StepSeconds(row["ce"], row["replay"], row["generator"], f"{doc['device']}, {doc['date']} ({label})",
                       kd=row["kd"], dgr=row.get("dgr"))


def projected(gpu_cifar: StepSeconds, cpu: dict, dataset: str) -> StepSeconds:
    """`dataset`'s GPU step seconds PROJECTED: CIFAR-100's GPU figure of each kind times the ratio of
    `dataset`'s to CIFAR-100's step of that kind on the CPU."""
    if dataset == "cifar100":
        return gpu_cifar
    ours, base = cpu["datasets"][dataset], cpu["datasets"]["cifar100"]
    scaled = {k: getattr(gpu_cifar, k) * ours[k] / base[k] for k in KINDS if k in ours and getattr(gpu_cifar, k)}
    return StepSeconds(scaled["ce"], scaled["replay"], scaled["generator"],
                       f"PROJECTED: {gpu_cifar.device.split(';')[0]} x CPU ratios ({cpu['device']}, {cpu['date']})",
                       kd=scaled.get("kd"), dgr=scaled.get("dgr"))


def print_sheet(title: str, rows: list, per_dataset: dict[str, StepSeconds], gpus: list[int], unit: str) -> None:
    print(f"\n{title}")
    for ds, s in per_dataset.items():
        kinds = ", ".join(f"{k} {getattr(s, k):.4g}" for k in KINDS if getattr(s, k) is not None)
        print(f"  {ds}: seconds per step {kinds} -- {s.device}")
    print(f"| table | runs | {unit}-hours | " + " | ".join(f"wall on {n} {unit}{'s' if n > 1 else ''}" for n in gpus) + " |")
    print("|---|---|---|" + "---|" * len(gpus))
    for name, ds, runs, seeds in rows:
        c = table_cost(runs, seeds, per_dataset[ds], gpus)
        walls = " | ".join(f"{c['wall_hours'][n]:.1f} h" for n in gpus)
        print(f"| {name} | {c['runs']} | {c['gpu_hours']:.1f} | {walls} |")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--throughput", help="JSON of `dfcil benchmark throughput` on a GPU (CIFAR-100's steps)")
    p.add_argument("--step-seconds", help="JSON of benchmarks/step_seconds.py on a GPU (every dataset measured)")
    p.add_argument("--cpu-step-seconds", default=str(CPU_STEP_SECONDS),
                   help="JSON of benchmarks/step_seconds.py on a CPU: the ratios that project the other datasets")
    p.add_argument("--gpus", type=int, nargs="+", default=[1, 4, 8, 16])
    p.add_argument("--seeds", type=int, default=3, help="class orders of the CIFAR-100 tables")
    a = p.parse_args()
    rows = tables(a.seeds)
    datasets = list(dict.fromkeys(ds for _, ds, _, _ in rows))
    cpu = json.loads(Path(a.cpu_step_seconds).read_text()) if Path(a.cpu_step_seconds).is_file() else None
    if a.step_seconds:
        doc = json.loads(Path(a.step_seconds).read_text())
        gpu = {ds: measured(doc, ds, a.step_seconds) for ds in datasets}
    else:
        s = H200
        if a.throughput:
            res = json.loads(Path(a.throughput).read_text())
            opt, replay = res["optimised"], res.get("replay_steps")
            ce = opt["ce_step"]["seconds_per_step"]
            has = replay is not None  # `--replay`: the teacher's and DGR's steps measured on the same device
            s = StepSeconds(ce, opt["abd_step"]["seconds_per_step"], opt["generator_step"]["seconds_per_step"],
                            f"{res['device']} ({a.throughput}" + ("" if has else "; kd and DGR projected") + ")",
                            kd=replay["lwf_coreset_step"]["seconds_per_step"] if has else ce * KD_RATIO,
                            dgr=replay["dgr_step"]["seconds_per_step"] if has else ce * DGR_RATIO)
        if cpu is None:
            print(f"{a.cpu_step_seconds}: missing; CIFAR-100's tables only", file=sys.stderr)
            datasets, rows = ["cifar100"], [r for r in rows if r[1] == "cifar100"]
        gpu = {ds: projected(s, cpu, ds) if cpu else s for ds in datasets}
    print_sheet("GPU", rows, gpu, a.gpus, "GPU")
    if cpu is not None and not a.step_seconds:
        print_sheet("CPU, measured step times, no projection (one 2-core machine per run)", rows,
                    {ds: measured(cpu, ds, a.cpu_step_seconds) for ds in datasets}, [1], "CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
