"""The DFCIL Kubeflow pipeline, built from params: split -> for each task [synthesize -> train ->
coreset] -> evaluate, unrolled at compile time. Methods fan out from one shared task-1 model and share
the generator inverted from it; GPU, CPU/memory limits, retries and caching are set per task.

    python -m pipelines.dfcil_pipeline --config params.yaml --out pipelines/compiled/dfcil.yaml
"""

import argparse
import json
import math
import sys
from pathlib import Path

from kfp import compiler, dsl, kubernetes

from components.stage_components import DEFAULT_IMAGE, make_components
from dfcil_core.foundations import config as config_mod
from dfcil_core.foundations import registry
from dfcil_core.foundations.config import explicit_params
from dfcil_core.foundations.registry import lineage

S3_SECRET = "dfcil-s3"
S3_ENV = {"AWS_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY",
          "AWS_ENDPOINT_URL": "AWS_ENDPOINT_URL"}


def memory_limit(cfg: config_mod.Config, floor_gb: int) -> str:
    """A stage's memory: `floor_gb`, or, where the split's image arrays are large (ImageNet-50: 13 GB
    of 256 px images), twice them (loaded, and the task's or the evaluation's copy) and 8 GB for the
    rest, in steps of 8 GB."""
    need = 2 * cfg.split_gigabytes + 8
    return f"{max(floor_gb, 8 * math.ceil(need / 8))}G"


def _gpu_task(task, cfg_gpu: bool, memory: str, cpu: str = "8"):
    if cfg_gpu:
        task.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(1)
    task.set_cpu_limit(cpu).set_memory_limit(memory)
    task.set_retry(num_retries=3, backoff_duration="60s", backoff_factor=2.0, backoff_max_duration="3600s")
    task.set_caching_options(True)
    return task


def add_run(comps, cfg: config_mod.Config, config_yaml, gpu: bool = True, s3_secret: str | None = S3_SECRET,
            label: str = ""):
    """Add one run's tasks to the pipeline being defined: split -> per task [synthesize -> train] for
    every method (shared θ(1) and generators) -> merge -> evaluate. `config_yaml` is a pipeline
    parameter or another task's output; returns the evaluate task."""
    tag = f"{label} " if label else ""
    small, large = memory_limit(cfg, 16), memory_limit(cfg, 32)
    split = comps.split(config_yaml=config_yaml)
    split.set_display_name(f"{tag}split").set_caching_options(True).set_cpu_limit("4").set_memory_limit(small)
    split.set_retry(num_retries=3, backoff_duration="30s", backoff_factor=2.0)
    data = split.outputs["split_data"]
    # workspace per lineage file: shared θ(1) ('ce') and the generator inverted from it
    made: dict[str, object] = {}
    heads: dict[str, object] = {}
    for method in cfg.methods:
        ws = split.outputs["workspace"]
        for t in range(1, cfg.data.n_tasks + 1):
            if registry.replays_inverted(method, t):
                key = f"gen:{lineage(method, t - 1)}:{t}"
                if key not in made:
                    task = comps.synthesize(config_yaml=config_yaml, method=method, task=t, split_data=data,
                                            workspace_in=ws)
                    made[key] = _gpu_task(task.set_display_name(f"{tag}synthesize {lineage(method, t - 1)} t{t}"), gpu, large)
                ws = made[key].outputs["workspace"]
            key = f"model:{lineage(method, t)}:{t}"
            if key not in made:
                task = comps.train(config_yaml=config_yaml, method=method, task=t, split_data=data, workspace_in=ws)
                made[key] = _gpu_task(task.set_display_name(f"{tag}train {lineage(method, t)} t{t}"), gpu, large)
            ws = made[key].outputs["workspace"]
            if registry.keeps_coreset(method, t, cfg.data.n_tasks) and not registry.coreset_selected_in_training(method, t):
                key = f"coreset:{registry.coreset_lineage(method)}:{t}"
                if key not in made:
                    task = comps.coreset(config_yaml=config_yaml, method=method, task=t, split_data=data,
                                         workspace_in=ws)
                    task.set_display_name(f"{tag}coreset {registry.coreset_lineage(method)} t{t}")
                    made[key] = _gpu_task(task, gpu, large)
                ws = made[key].outputs["workspace"]
        heads[method] = ws
    merged = None
    for method in cfg.methods:
        if merged is None:
            merged = heads[method]
            continue
        m = comps.merge(workspace_a=merged, workspace_b=heads[method])
        m.set_display_name(f"{tag}merge {method}").set_caching_options(True)
        merged = m.outputs["workspace"]
    ev = comps.evaluate(config_yaml=config_yaml, split_data=data, workspace_in=merged)
    ev.set_display_name(f"{tag}evaluate").set_caching_options(True).set_cpu_limit("4").set_memory_limit(small)
    ev.set_retry(num_retries=2, backoff_duration="30s", backoff_factor=2.0)
    if s3_secret:
        kubernetes.use_secret_as_env(ev, secret_name=s3_secret, secret_key_to_env=S3_ENV)
    return ev


def build_pipeline(cfg: config_mod.Config, image: str = DEFAULT_IMAGE, pipeline_root: str | None = None,
                   gpu: bool = True, s3_secret: str | None = S3_SECRET):
    """A @dsl.pipeline function for `cfg` (its methods and task count fix the graph)."""
    comps = make_components(image)
    # One line of JSON (valid YAML): KFP copies defaults into a '#' header, where a newline breaks the file.
    config_yaml = json.dumps(explicit_params(cfg))

    @dsl.pipeline(name=f"dfcil-{cfg.name}", description="Data-free class-incremental learning (ABD)",
                  pipeline_root=pipeline_root)
    def dfcil_pipeline(config_yaml: str = config_yaml):
        add_run(comps, cfg, config_yaml, gpu, s3_secret)

    return dfcil_pipeline


def compile_pipeline(cfg: config_mod.Config, out: str | Path, **kwargs) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build_pipeline(cfg, **kwargs), str(out))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Compile the dfcil pipeline to KFP IR YAML")
    p.add_argument("--config", default="params.yaml")
    p.add_argument("--preset", default=None)
    p.add_argument("--set", "-S", dest="overrides", action="append", default=[])
    p.add_argument("--image", default=DEFAULT_IMAGE)
    p.add_argument("--pipeline-root", default=None, help="e.g. s3://bucket/kfp-root")
    p.add_argument("--no-gpu", action="store_true")
    p.add_argument("--out", default="pipelines/compiled/dfcil.yaml")
    a = p.parse_args(argv)
    cfg = config_mod.load(None if a.preset else a.config, a.preset, a.overrides)
    path = compile_pipeline(cfg, a.out, image=a.image, pipeline_root=a.pipeline_root, gpu=not a.no_gpu)
    print(f"compiled: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
