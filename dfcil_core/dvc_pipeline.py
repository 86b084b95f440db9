"""Render dvc.yaml from the config: one stage per (task, lineage) with exact deps, params and outs.

Stages only call the `dfcil` CLI (the same stage functions as `dfcil run` and KFP). Shared work is
one stage: θ(1) of the CE methods (`models/ce`) and the generator inverted from it (`generators/ce`).
This module writes text; it does not import DVC.
"""

from __future__ import annotations

import shlex
from typing import Any

import yaml

from dfcil_core.config import Config
from dfcil_core.learners import LEARNERS, lineage

CODE = "dfcil_core"
COMMON_CODE = [f"{CODE}/config.py", f"{CODE}/stages.py", f"{CODE}/io.py"]
TRAIN_PARAMS = ["train.lr", "train.momentum", "train.weight_decay", "train.batch_size", "train.milestones",
                "train.gamma", "train_seed", "data.color_jitter", "model", "runtime.amp", "runtime.channels_last"]


def _out(cfg_out: str, rel: str) -> str:
    return f"{cfg_out}/{rel}"


def render(cfg: Config, out: str = "outputs", params_file: str = "params.yaml") -> str:
    stages: dict[str, Any] = {}
    split_dir = _out(out, "split")
    stages["split"] = {
        "cmd": f"dfcil split --config {params_file} --out {out}",
        "deps": [f"{CODE}/data.py", *COMMON_CODE],
        "params": [{params_file: ["seed", "data"]}],
        "outs": [split_dir],
    }
    trained: set[str] = set()
    made_generators: set[str] = set()
    for task in range(1, cfg.data.n_tasks + 1):
        for method in cfg.methods:
            learner = LEARNERS[method]
            # synthesize: one stage per generator file
            if task >= 2 and learner.uses_replay:
                gen_rel = f"generators/{lineage(method, task - 1)}/task_{task}.pt"
                if gen_rel not in made_generators:
                    made_generators.add(gen_rel)
                    deps = [_out(out, f"models/{lineage(method, task - 1)}/task_{task - 1}.pt"),
                            f"{CODE}/synthesis.py", f"{CODE}/losses.py", f"{CODE}/models.py", *COMMON_CODE]
                    if task >= 3:
                        deps.insert(1, _out(out, f"generators/{lineage(method, task - 2)}/task_{task - 1}.pt"))
                    gdir = f"generators/{lineage(method, task - 1)}"
                    stages[f"synthesize_{lineage(method, task - 1)}_t{task}"] = {
                        "cmd": f"dfcil synthesize --config {params_file} --out {out} --method {method} --task {task}",
                        "deps": deps,
                        "params": [{params_file: ["synthesis", "train_seed"]}],
                        "outs": [_out(out, gen_rel), _out(out, f"{gdir}/samples_task_{task}.png"),
                                 _out(out, f"{gdir}/losses_task_{task}.png")],
                    }
            # train: one stage per model file
            fam = lineage(method, task)
            model_rel = f"models/{fam}/task_{task}.pt"
            if model_rel in trained:
                continue
            trained.add(model_rel)
            deps = [split_dir]
            if task >= 2 and not learner.fresh_model_each_task:
                deps.append(_out(out, f"models/{lineage(method, task - 1)}/task_{task - 1}.pt"))
            if task >= 2 and learner.uses_replay:
                deps.append(_out(out, f"generators/{lineage(method, task - 1)}/task_{task}.pt"))
            deps += [f"{CODE}/training.py", f"{CODE}/learners.py", f"{CODE}/losses.py", f"{CODE}/models.py",
                     *COMMON_CODE]
            params = [*TRAIN_PARAMS, f"train.task_epochs.{task}"]
            if fam != "ce":
                if method in ("lwf", "lwf_syn", "deepinversion"):
                    params += ["train.kd_temperature", f"train.{method}_mu"]
                if method in ("abd", "rdfcil") and task >= 2:
                    params.append(method)
                if learner.uses_replay and task >= 2:
                    params.append("synthesis.replay_batch_size")
            stages[f"train_{fam}_t{task}"] = {
                "cmd": f"dfcil train --config {params_file} --out {out} --method {method} --task {task}",
                "deps": deps,
                "params": [{params_file: params}],
                "outs": [_out(out, model_rel)],
            }
    eval_deps = [split_dir] + [_out(out, m) for m in sorted(trained)] + \
        [_out(out, g) for g in sorted(made_generators) if g.endswith("task_2.pt")] + \
        [f"{CODE}/metrics.py", f"{CODE}/plots.py", *COMMON_CODE]
    stages["evaluate"] = {
        "cmd": f"dfcil evaluate --config {params_file} --out {out}",
        "deps": eval_deps,
        "params": [{params_file: ["methods", "name"]}],
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
    if any(LEARNERS[m].uses_replay for m in cfg.methods) and cfg.data.n_tasks >= 2:
        plots.append(_out(out, "eval/mid.png"))
    doc = {"stages": stages, "plots": plots}
    header = ("# Generated by `dfcil dvc-yaml` from params.yaml (methods and task count decide the stages).\n"
              "# Regenerate after changing data.n_tasks or methods; a test keeps it in sync.\n")
    return header + yaml.safe_dump(doc, sort_keys=False, width=120)


def explicit_params(cfg: Config) -> dict[str, Any]:
    """The config as params.yaml: per-task epochs spelled out so each task stage can depend on its own."""
    d = cfg.dump()
    d["train"]["task_epochs"] = {str(t): cfg.train.epochs_for(t) for t in range(1, cfg.data.n_tasks + 1)}
    return d


def render_fan_out(preset: str, overrides: list[str], splits: list[int], seeds: list[int],
                   code_dir: str = "../dfcil_core") -> str:
    """A dvc.yaml for a folder of its own (e.g. `paper/dvc.yaml`): one `dfcil run` per (task split,
    class-order seed) as a DVC matrix stage, then `dfcil tables` over all of them. `dvc repro
    paper/dvc.yaml` runs it; `dvc exp run paper/dvc.yaml -S ...` varies it."""
    sets = "".join(f" -S {shlex.quote(o)}" for o in overrides)
    run_dir = "runs/${item.split}t-s${item.seed}"
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
            "deps": [f"runs/{n}t-s{s}" for n in splits for s in seeds] + [f"{code_dir}/tables.py",
                                                                         f"{code_dir}/paper_results.py"],
            "outs": ["tables"],
        },
    }
    header = (f"# Generated by `dfcil dvc-yaml --fan-out`: {preset}, task splits {splits}, seeds {seeds}.\n"
              "# Run from the repository root: dvc repro <this folder>/dvc.yaml\n")
    return header + yaml.safe_dump({"stages": stages}, sort_keys=False, width=120)
