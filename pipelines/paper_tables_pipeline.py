"""The paper's tables on a cluster: class-order seeds fanned out with `dsl.ParallelFor` for each task
split (and each ABD ablation), every branch the same split -> synthesize -> train -> evaluate chain
as `dfcil_pipeline`, then one aggregate step that writes Table 1 / Table 3 beside the paper.

The chain of one split is unrolled at compile time (its length is the task count); the seeds are a
pipeline parameter iterated by a real ParallelFor, `parallelism` branches at a time.

    python -m pipelines.paper_tables_pipeline --preset paper-cifar100-10 --splits 5 10 20 --seeds 0 1 2 \\
        --parallelism 6 --out pipelines/compiled/paper_tables.yaml      # Table 1
    python -m pipelines.paper_tables_pipeline --preset paper-cifar100-10 --splits 10 --methods abd \\
        --ablations task_balancing local_ce kd_real kd_synthetic ft_ce --out pipelines/compiled/table3.yaml
    kfp run submit -e dfcil -r table1 -f pipelines/compiled/paper_tables.yaml
"""

import argparse
import json
import sys
from pathlib import Path

from kfp import compiler, dsl

from components.stage_components import DEFAULT_IMAGE, make_components
from components.table_components import make_table_components
from dfcil_core.foundations import config as config_mod
from dfcil_core.foundations.config import AbdConfig, explicit_params
from dfcil_core.foundations.errors import DfcilError, one_line
from pipelines.dfcil_pipeline import S3_SECRET, add_run


def variants(base: config_mod.Config, splits: list[int], ablations: list[str]) -> list[tuple[str, config_mod.Config]]:
    """(label, config) per branch group: every split with the base methods, then each ABD ablation
    (ABD alone) at each split. Configs are validated here, at compile time."""
    out = []
    raw = base.dump()
    for n in splits:
        out.append((f"{n}t", config_mod.from_dict({**raw, "data": {**raw["data"], "n_tasks": n}})))
    for ablation in ablations:
        if ablation not in AbdConfig.ABLATIONS:
            raise DfcilError(f"unknown ablation {ablation!r} (known: {', '.join(AbdConfig.ABLATIONS)})")
        for n in splits:
            out.append((f"{n}t-no-{ablation}", config_mod.from_dict(
                {**raw, "methods": ["abd"], "data": {**raw["data"], "n_tasks": n},
                 "abd": {**raw["abd"], ablation: False}})))
    return out


def build_tables_pipeline(base: config_mod.Config, splits: list[int], seeds: list[int], parallelism: int = 4,
                          ablations: list[str] | None = None, image: str = DEFAULT_IMAGE,
                          pipeline_root: str | None = None, gpu: bool = True, s3_secret: str | None = S3_SECRET):
    comps, tc = make_components(image), make_table_components(image)
    groups = variants(base, splits, ablations or [])

    @dsl.pipeline(name=f"dfcil-paper-tables-{base.name}", pipeline_root=pipeline_root,
                  description="Seeds x task splits (x ablations) fanned out; Table 1 / Table 3 beside the paper")
    def paper_tables(seeds: list = seeds):  # noqa: B006 (a pipeline parameter's default)
        collected = []
        for label, cfg in groups:
            with dsl.ParallelFor(items=seeds, parallelism=parallelism, name=f"seeds-{label}") as seed:
                branch = tc.with_seed(config_yaml=json.dumps(explicit_params(cfg)), seed=seed)
                branch.set_display_name(f"{label} config").set_caching_options(True)
                ev = add_run(comps, cfg, branch.output, gpu, s3_secret, label=label)
            runs = tc.collect_runs(results=dsl.Collected(ev.outputs["results"]))
            runs.set_display_name(f"{label} collect").set_caching_options(True)
            collected.append(runs.outputs["runs"])
        merged = collected[0]
        for other in collected[1:]:
            merged = tc.concat_runs(runs_a=merged, runs_b=other).outputs["runs"]
        tc.paper_tables(runs=merged).set_display_name("tables").set_caching_options(True)

    return paper_tables


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Compile the paper-tables fan-out pipeline")
    p.add_argument("--config", default=None)
    p.add_argument("--preset", default="paper-cifar100-10")
    p.add_argument("--set", "-S", dest="overrides", action="append", default=[])
    p.add_argument("--splits", type=int, nargs="+", default=[5, 10, 20])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--parallelism", type=int, default=4, help="branches running at once per fan-out")
    p.add_argument("--ablations", nargs="*", default=[])
    p.add_argument("--methods", nargs="+", default=None)
    p.add_argument("--image", default=DEFAULT_IMAGE)
    p.add_argument("--pipeline-root", default=None)
    p.add_argument("--no-gpu", action="store_true")
    p.add_argument("--out", default="pipelines/compiled/paper_tables.yaml")
    a = p.parse_args(argv)
    overrides = a.overrides + ([f"methods={json.dumps(a.methods)}"] if a.methods else [])
    try:
        cfg = config_mod.load(a.config, None if a.config else a.preset, overrides)
        pipe = build_tables_pipeline(cfg, a.splits, a.seeds, a.parallelism, a.ablations, a.image, a.pipeline_root,
                                     gpu=not a.no_gpu)
    except DfcilError as err:
        print(f"paper_tables: error: {one_line(err)}", file=sys.stderr)
        return 2
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(pipe, str(out))
    print(f"compiled: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
