"""The recurring regression-gate pipeline: profiles (one after another) -> compare -> gate.

    python -m pipelines.gate_pipeline            # the gate: fidelity-proxy, its four methods, training seeds 0-2, CPU
    python -m pipelines.gate_pipeline --profile paper-cifar100-5 --gpu --baseline <a GPU baseline>
    python -m pipelines.submit recurring --package pipelines/compiled/gate.yaml --cron "0 0 3 * * *"
"""

import argparse
import sys
from pathlib import Path

import pandas as pd
from kfp import compiler, dsl

from components.gate_components import DEFAULT_IMAGE, make_components
from dfcil_core.lab.gate_protocol import GATE_BASELINE, GATE_SEEDS, gate_run


def build_gate_pipeline(profiles: list[str], baseline_json: str, image: str = DEFAULT_IMAGE,
                             overrides: list[str] | None = None, gpu: bool = True, seeds: list[int] | None = None,
                             seed_key: str = "train_seed"):
    """Each profile once per seed (None: the profile's own seeds), one after another into one table; the
    gate then compares the mean over seeds with the baseline's seed band. `seed_key` says which seed:
    `train_seed` (the training RNG at the profile's class order: the gate's noise) or `seed` (the class
    order, which also moves the task difficulty)."""
    if seed_key not in ("train_seed", "seed"):
        raise ValueError(f"seed_key must be train_seed or seed, not {seed_key!r}")
    label = "train seed" if seed_key == "train_seed" else "seed"
    comps = make_components(image)

    @dsl.pipeline(name="dfcil-benchmark", description="Run benchmark profiles and gate on the baseline")
    def gate_pipeline(baseline_json: str = baseline_json):
        table = comps.empty_table().set_caching_options(False).outputs["table"]
        runs = [(profile, seed) for profile in profiles for seed in (seeds if seeds is not None else [None])]
        for profile, seed in runs:
            extra = [] if seed is None else [f"{seed_key}={seed}"]
            run = comps.run_profile(profile=profile, overrides=[*(overrides or []), *extra], table_in=table)
            run.set_display_name(f"run {profile}" + ("" if seed is None else f" {label} {seed}"))
            run.set_caching_options(False)
            run.set_cpu_limit("8").set_memory_limit("32G").set_retry(num_retries=2, backoff_duration="120s",
                                                                      backoff_factor=2.0)
            if gpu:
                run.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(1)
            table = run.outputs["table"]
        cmp = comps.compare(table=table, baseline_json=baseline_json).set_caching_options(False)
        cmp.set_display_name("compare")
        comps.gate(regressed=cmp.outputs["Output"]).set_display_name("gate").set_caching_options(False)

    return gate_pipeline


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Compile the regression-gate pipeline")
    p.add_argument("--profile", action="append", default=[], help="preset (repeatable)")
    p.add_argument("--set", "-S", dest="overrides", action="append", default=[],
                   help="config overrides (without --profile: after the gate's methods and 2 threads)")
    p.add_argument("--seeds", type=int, nargs="+", default=list(GATE_SEEDS),
                   help="training seeds per profile, at the profile's class order (the gate compares their "
                        "mean with the baseline band)")
    p.add_argument("--class-order-seeds", action="store_true",
                   help="--seeds are class-order seeds (`seed=S`) instead of training seeds (`train_seed=S`)")
    p.add_argument("--baseline", default=GATE_BASELINE)
    p.add_argument("--image", default=DEFAULT_IMAGE)
    # The gate's baseline was measured on a CPU: a GPU run would be another device class (refused).
    p.add_argument("--gpu", action="store_true", help="request one GPU per run (needs a GPU baseline)")
    p.add_argument("--no-gpu", dest="gpu", action="store_false", help="CPU only (the default)")
    p.add_argument("--out", default="pipelines/compiled/gate.yaml")
    a = p.parse_args(argv)
    # No --profile: the gate, whose methods and thread count come before any -S (as `benchmark run --gate`).
    profiles, overrides = (a.profile, a.overrides) if a.profile else gate_run(a.overrides)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    baseline = pd.read_csv(a.baseline).to_json(orient="records")  # one line: see dfcil_pipeline.py
    pipeline = build_gate_pipeline(profiles, baseline, a.image, overrides, a.gpu, a.seeds,
                                        "seed" if a.class_order_seeds else "train_seed")
    compiler.Compiler().compile(pipeline, str(out))
    print(f"compiled: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
