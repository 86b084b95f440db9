"""Cost sheet of the paper's tables: GPU-hours and wall time on N GPUs, from measured seconds per
step (`dfcil benchmark throughput --out F.json` on the GPU, or the figures given here).

    python benchmarks/cost_sheet.py                                  # the H200 figures of docs/performance.md
    python benchmarks/cost_sheet.py --throughput outputs/bench/throughput_cuda.json --gpus 1 4 8
"""

from __future__ import annotations

import argparse
import json
import sys

from dfcil_core.foundations import config as config_mod
from dfcil_core.lab.costs import StepSeconds, table_cost

# NVIDIA H200, `bash benchmarks/device_check.sh` (2026-11-27): CUDA graphs on the trunk, TF32, batch 128.
# The teacher's extra forward ("kd") and DGR's step were not measured there: PROJECTED from their ratios
# to Base's step on the CPU (`dfcil benchmark throughput --replay`, batch 128, AMD EPYC AVX-512,
# 2026-12-06: KD_RATIO = LwF + coreset's, DGR_RATIO = DGR's).
KD_RATIO, DGR_RATIO = 1.30, 6.0
H200 = StepSeconds(ce=0.0051, replay=0.0162, generator=0.0180, kd=0.0051 * KD_RATIO, dgr=0.0051 * DGR_RATIO,
                   device="NVIDIA H200 (CUDA graphs, TF32), 2026-11-27; kd and DGR steps projected from CPU ratios")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--throughput", help="JSON of `dfcil benchmark throughput` (its 'optimised' figures)")
    p.add_argument("--gpus", type=int, nargs="+", default=[1, 4, 8, 16])
    p.add_argument("--seeds", type=int, default=3)
    a = p.parse_args()
    s = H200
    if a.throughput:
        with open(a.throughput) as f:
            res = json.load(f)
        opt, replay = res["optimised"], res.get("replay_steps")
        ce = opt["ce_step"]["seconds_per_step"]
        measured = replay is not None  # `--replay`: the teacher's and DGR's steps measured on the same device
        s = StepSeconds(ce, opt["abd_step"]["seconds_per_step"], opt["generator_step"]["seconds_per_step"],
                        f"{res['device']} ({a.throughput}" + ("" if measured else "; kd and DGR projected") + ")",
                        kd=replay["lwf_coreset_step"]["seconds_per_step"] if measured else ce * KD_RATIO,
                        dgr=replay["dgr_step"]["seconds_per_step"] if measured else ce * DGR_RATIO)
    t1 = [config_mod.load(preset=f"paper-cifar100-{n}") for n in (5, 10, 20)]
    t2 = [config_mod.load(preset=f"paper-cifar100-{n}-coreset") for n in (5, 10, 20)]
    t3 = [config_mod.load(preset="paper-cifar100-10", overrides=["methods=[abd]", f"abd.{k}=false"])
          for k in ("task_balancing", "local_ce", "kd_real", "kd_synthetic", "ft_ce")]
    print(f"seconds per step: CE {s.ce:.4g}, KD {s.kd:.4g}, replay {s.replay:.4g}, generator {s.generator:.4g}, "
          f"DGR {s.dgr:.4g} -- {s.device}")
    print("| table | runs | GPU-hours | " + " | ".join(f"wall on {n} GPU{'s' if n > 1 else ''}" for n in a.gpus) + " |")
    print("|---|---|---|" + "---|" * len(a.gpus))
    for name, runs in (("Table 1 (5/10/20 tasks, 8 methods with DGR)", t1),
                       ("Tables 2 / B (5/10/20 tasks, the 4 coreset methods, upper bound, ABD)", t2),
                       ("Table 3 (5 ablations, 10 tasks)", t3)):
        c = table_cost(runs, a.seeds, s, a.gpus)
        walls = " | ".join(f"{c['wall_hours'][n]:.1f} h" for n in a.gpus)
        print(f"| {name} | {c['runs']} | {c['gpu_hours']:.1f} | {walls} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
