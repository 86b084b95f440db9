"""Print and write (JSON) training throughput: CE step, ABD step, generator step, and
optionally the wall time of a whole profile.

    python benchmarks/throughput.py                 # full figures (batch 128)
    python benchmarks/throughput.py --tiny          # seconds, for CI
    python benchmarks/throughput.py --profile tiny  # also time `dfcil run` of a preset
    python benchmarks/throughput.py --device cuda --steps 50 --compile --compile-mode reduce-overhead [--amp]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from dfcil_core import io
from dfcil_core.bench import run_benchmark, time_run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true", help="2 timed steps of batch 16")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--device", default="auto")
    p.add_argument("--compile", action="store_true", help="torch.compile the trunk (CUDA)")
    p.add_argument("--compile-mode", default="default", help="default | reduce-overhead (CUDA graphs) | ...")
    p.add_argument("--amp", action="store_true", help="ours with bf16 autocast (CUDA)")
    p.add_argument("--profile", default=None, help="also time a whole `dfcil run` of this preset")
    p.add_argument("--out", default="outputs/bench/throughput.json")
    a = p.parse_args(argv)
    steps, warmup, bs = (2, 1, 16) if a.tiny else (a.steps, 3, 128)
    runtime = {"compile_mode": a.compile_mode, "amp": a.amp}
    result = run_benchmark(steps, warmup, bs, a.device, a.compile, runtime)
    if a.profile:
        from dfcil_core import config

        cfg = config.load(preset=a.profile, overrides=[f"runtime.device={a.device}", "runtime.progress=false"])
        with tempfile.TemporaryDirectory() as tmp:
            timing = time_run(cfg, Path(tmp))
        result["profile"] = {"name": a.profile, "wall_seconds": timing["wall_seconds"],
                             "stage_seconds": timing["stage_seconds"]}
    rt = result["runtime"]
    print(f"device: {result['device']} | torch {result['torch']} | threads {result['threads']} | batch {bs} | "
          f"ours: amp={rt['amp']} channels_last={rt['channels_last']} compile={rt['compile']} ({rt['compile_mode']})")
    print(f"{'step':<16}{'eager s/step':>14}{'ours s/step':>13}{'ours img/s':>12}{'speedup':>9}")
    for k, v in result["optimised"].items():
        e = result["eager_baseline"][k]["seconds_per_step"]
        print(f"{k:<16}{e:>14.3f}{v['seconds_per_step']:>13.3f}{v['images_per_s']:>12.0f}{result['speedup'][k]:>8.2f}x")
    if "profile" in result:
        print(f"profile {a.profile}: {result['profile']['wall_seconds']:.1f} s wall")
    io.write_json(a.out, result)
    print(f"written: {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
