"""Render dvc.yaml from the config: one stage per (task, lineage) with its deps, params and outs.

Stages only call the `dfcil` CLI (the same stage functions as `dfcil run` and KFP). Shared work is
one stage: θ(1) of the CE methods (`models/ce`) and the generator inverted from it (`generators/ce`).
Each stage depends on its input files, on the code it runs (derived from imports: `code_deps`) and on
the config keys that enter its output's hash (the method registry's): nothing more, nothing less.
This module writes text; it does not import DVC.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import yaml

from dfcil_core.drivers.code_deps import module_code, stage_code
from dfcil_core.foundations import registry
from dfcil_core.foundations.config import Config
from dfcil_core.foundations.registry import lineage
from dfcil_core.run.artifacts import Layout

EVALUATE_PARAMS = ["methods", "name"]


def _out(cfg_out: str, rel: str) -> str:
    return f"{cfg_out}/{rel}"


def render(cfg: Config, out: str = "outputs", params_file: str = "params.yaml") -> str:
    stages: dict[str, Any] = {}
    lay = Layout(Path(out))
    split_dir = _out(out, "split")
    stages["split"] = {
        "cmd": f"dfcil split --config {params_file} --out {out}",
        "deps": stage_code("split"),
        "params": [{params_file: registry.split_keys()}],
        "outs": [split_dir],
    }
    trained: set[str] = set()
    made_generators: set[str] = set()
    made_coresets: set[str] = set()

    def path(p: Path) -> str:
        return p.as_posix()

    for task in range(1, cfg.data.n_tasks + 1):
        for method in cfg.methods:
            # synthesize: one stage per generator file
            if registry.replays_inverted(method, task):
                gen_rel = f"generators/{lineage(method, task - 1)}/task_{task}.pt"
                if gen_rel not in made_generators:
                    made_generators.add(gen_rel)
                    deps = [_out(out, f"models/{lineage(method, task - 1)}/task_{task - 1}.pt")]
                    if registry.continues_generator(method, task):
                        deps.append(_out(out, f"generators/{lineage(method, task - 2)}/task_{task - 1}.pt"))
                    gdir = f"generators/{lineage(method, task - 1)}"
                    stages[f"synthesize_{lineage(method, task - 1)}_t{task}"] = {
                        "cmd": f"dfcil synthesize --config {params_file} --out {out} --method {method} --task {task}",
                        "deps": [split_dir, *deps, *stage_code("synthesize")],
                        "params": [{params_file: registry.inversion_keys()}],
                        "outs": [_out(out, gen_rel), _out(out, f"{gdir}/samples_task_{task}.png"),
                                 _out(out, f"{gdir}/losses_task_{task}.png")],
                    }
            # train: one stage per model file (with what the same stage keeps beside it)
            fam = lineage(method, task)
            model_rel = f"models/{fam}/task_{task}.pt"
            if model_rel not in trained:
                trained.add(model_rel)
                deps = [split_dir]
                if registry.starts_from_previous(method, task):
                    deps.append(_out(out, f"models/{lineage(method, task - 1)}/task_{task - 1}.pt"))
                if registry.replays_inverted(method, task):
                    deps.append(_out(out, f"generators/{lineage(method, task - 1)}/task_{task}.pt"))
                if registry.uses_coreset(method, task):
                    deps.append(path(lay.coreset(method, task - 1)))
                if registry.replays_generative(method, task):
                    deps.append(path(lay.vae(method, task - 1)))
                outs = [_out(out, model_rel)]
                if registry.method(method).replay == "generative":
                    outs.insert(0, path(lay.vae(method, task)))
                if registry.coreset_selected_in_training(method, task) and \
                        registry.keeps_coreset(method, task, cfg.data.n_tasks):
                    outs.insert(0, path(lay.coreset(method, task)))
                    made_coresets.add(path(lay.coreset(method, task)))
                stages[f"train_{fam}_t{task}"] = {
                    "cmd": f"dfcil train --config {params_file} --out {out} --method {method} --task {task}",
                    "deps": [*deps, *stage_code("train")],
                    "params": [{params_file: registry.model_keys(method, task)}],
                    "outs": outs,
                }
            # coreset: one stage per coreset file its training stage does not write
            if registry.keeps_coreset(method, task, cfg.data.n_tasks) and \
                    not registry.coreset_selected_in_training(method, task):
                kept = path(lay.coreset(method, task))
                if kept not in made_coresets:
                    made_coresets.add(kept)
                    deps = [split_dir]
                    if task >= 2:
                        deps.append(path(lay.coreset(method, task - 1)))
                    if registry.method(method).coreset.selection != "random":
                        deps.append(_out(out, model_rel))
                    stages[f"coreset_{registry.coreset_lineage(method)}_t{task}"] = {
                        "cmd": f"dfcil coreset --config {params_file} --out {out} --method {method} --task {task}",
                        "deps": [*deps, *stage_code("coreset")],
                        "params": [{params_file: registry.coreset_keys(method, task)}],
                        "outs": [kept],
                    }
    eval_deps = [split_dir] + [_out(out, m) for m in sorted(trained)] + \
        [_out(out, g) for g in sorted(made_generators) if g.endswith("task_2.pt")] + stage_code("evaluate")
    eval_params = EVALUATE_PARAMS + [k for m in cfg.methods for k in registry.method(m).eval_keys]
    stages["evaluate"] = {
        "cmd": f"dfcil evaluate --config {params_file} --out {out}",
        "deps": eval_deps,
        "params": [{params_file: list(dict.fromkeys(eval_params))}],
        "outs": [_out(out, "eval"), _out(out, "results"), {_out(out, "metrics.json"): {"cache": False}},
                 {_out(out, "report.html"): {"cache": False}}],
        # One flat metrics file per method: `dvc metrics show` prints a row per method.
        "metrics": [{_out(out, f"metrics/{m}.json"): {"cache": False}} for m in cfg.methods],
    }
    plots: list[Any] = [{"accuracy_per_task": {"x": "task", "y": {_out(out, "eval/plot_accuracy.json"): list(cfg.methods)},
                                               "title": "accuracy over seen classes (%)"}}]
    if "upper_bound" in cfg.methods:
        plots.append({"omega_per_task": {"x": "task", "y": {_out(out, "eval/plot_omega.json"): list(cfg.methods)},
                                         "title": "terms of Ω: accuracy / upper bound (%)"}})
    plots += [_out(out, "eval/accuracy_per_task.png")]
    if any(registry.replays_inverted(m, 2) for m in cfg.methods) and cfg.data.n_tasks >= 2:
        plots.append(_out(out, "eval/mid.png"))
    doc = {"stages": stages, "plots": plots}
    header = ("# Generated by `dfcil dvc-yaml` from params.yaml (methods and task count decide the stages).\n"
              "# Regenerate after changing data.n_tasks or methods; a test keeps it in sync.\n")
    return header + yaml.safe_dump(doc, sort_keys=False, width=120)


def render_fan_out(preset: str, overrides: list[str], splits: list[int], seeds: list[int],
                   code_dir: str = "../dfcil_core") -> str:
    """A dvc.yaml for a folder of its own (e.g. `paper/dvc.yaml`): one `dfcil run` per (task split,
    class-order seed) as a DVC matrix stage, then `dfcil tables` over all of them. `dvc repro
    paper/dvc.yaml` runs it; `dvc exp run paper/dvc.yaml -S ...` varies it."""
    sets = "".join(f" -S {shlex.quote(o)}" for o in overrides)
    run_dir = "runs/${item.split}t-s${item.seed}"
    tables_code = [f"{code_dir}/{f.split('/', 1)[1]}" for f in module_code("dfcil_core.lab.paper_tables")]
    stages = {
        "run": {
            "matrix": {"split": list(splits), "seed": list(seeds)},
            "cmd": f"dfcil run --preset {preset}{sets} -S data.n_tasks=${{item.split}} -S seed=${{item.seed}} "
                   f"--out {run_dir}",
            "deps": [code_dir],
            "outs": [run_dir],
        },
        "tables": {
            "cmd": "dfcil tables " + " ".join(f"runs/{n}t-s{s}" for n in splits for s in seeds) + " --out tables",
            "deps": [f"runs/{n}t-s{s}" for n in splits for s in seeds] + tables_code,
            "outs": ["tables"],
        },
    }
    header = (f"# Generated by `dfcil dvc-yaml --fan-out`: {preset}, task splits {splits}, seeds {seeds}.\n"
              "# Run from the repository root: dvc repro <this folder>/dvc.yaml\n")
    return header + yaml.safe_dump({"stages": stages}, sort_keys=False, width=120)
