"""KFP v2 components: one per stage, each a typed wrapper that calls one dfcil_core function.

The same lightweight components run in the CUDA image on a cluster (base_image) and in-process
locally (kfp.local SubprocessRunner). `make_components(image)` binds them to an image tag.
"""


import os
from types import SimpleNamespace

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Model, Output

DEFAULT_IMAGE = os.environ.get("DFCIL_IMAGE", "ghcr.io/dfcil/dfcil:0.1.0")


def split(config_yaml: str, split_data: Output[Dataset], workspace: Output[Model]):
    """Class order + per-task uint8 arrays; an empty workspace for the task chain."""
    from dfcil_core.drivers.kfp_workspace import split_step

    split_step(config_yaml, split_data.path, workspace.path)


def synthesize(config_yaml: str, method: str, task: int, split_data: Input[Dataset],
               workspace_in: Input[Model], workspace: Output[Model]):
    """Train the generator for `task` by inverting θ(task-1) (Eq. 1-7)."""
    from dfcil_core.drivers.kfp_workspace import stage_step

    stage_step("synthesize", config_yaml, method, task, split_data.path, workspace_in.path, workspace.path)


def train(config_yaml: str, method: str, task: int, split_data: Input[Dataset],
          workspace_in: Input[Model], workspace: Output[Model]):
    """θ(task) for `method`."""
    from dfcil_core.drivers.kfp_workspace import stage_step

    stage_step("train", config_yaml, method, task, split_data.path, workspace_in.path, workspace.path)


def coreset(config_yaml: str, method: str, task: int, split_data: Input[Dataset],
            workspace_in: Input[Model], workspace: Output[Model]):
    """The coreset a replay method keeps after `task` (in the workspace, for the next task)."""
    from dfcil_core.drivers.kfp_workspace import stage_step

    stage_step("coreset", config_yaml, method, task, split_data.path, workspace_in.path, workspace.path)


def merge(workspace_a: Input[Model], workspace_b: Input[Model], workspace: Output[Model]):
    """Union of two methods' workspaces (before evaluation)."""
    from dfcil_core.drivers.kfp_workspace import merge_step

    merge_step(workspace_a.path, workspace_b.path, workspace.path)


def evaluate(config_yaml: str, split_data: Input[Dataset], workspace_in: Input[Model], results: Output[Dataset],
             metrics: Output[Metrics], report: Output[HTML]):
    """Accuracy matrices, A_N, Ω, forgetting, plots, tables; an HTML report with the plots."""
    from dfcil_core.drivers.kfp_workspace import evaluate_step, html_report

    doc = evaluate_step(config_yaml, split_data.path, workspace_in.path, results.path)
    for method, row in doc["methods"].items():
        for key in ("a_n", "omega", "forgetting"):
            if row[key] is not None:
                metrics.log_metric(f"{method}.{key}", round(float(row[key]), 4))
    with open(report.path, "w") as f:
        f.write(html_report(results.path))


def make_components(image: str = DEFAULT_IMAGE) -> SimpleNamespace:
    """The stage components bound to `image` (the CUDA image of this repository)."""
    return SimpleNamespace(**{fn.__name__: dsl.component(base_image=image)(fn)
                              for fn in (split, synthesize, train, coreset, merge, evaluate)})
