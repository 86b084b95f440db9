"""The house: the layers of dfcil_core and their direction, one name per module, the torch-free
registry and light commands, and the DVC stages' params against the checkpoint hashes."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dfcil_core.drivers import code_deps
from dfcil_core.drivers.dvc_render import render
from dfcil_core.foundations import config, registry
from dfcil_core.foundations.config import explicit_params
from dfcil_core.foundations.errors import DfcilError
from dfcil_core.run import artifacts

REPO = Path(__file__).resolve().parents[1]
LAYERS = ["foundations", "method", "run", "drivers", "lab"]  # bottom to top


def _modules() -> list[str]:
    return sorted(".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
                  for p in (REPO / "dfcil_core").rglob("*.py"))


def _layer(module: str) -> int:
    """The package root (its version) sits below every layer, the program (`__main__`) above all."""
    parts = module.split(".")
    if module == "dfcil_core":
        return -1
    if module == "dfcil_core.__main__":
        return len(LAYERS)
    return LAYERS.index(parts[1])


def test_every_module_sits_in_a_layer():
    for m in _modules():
        _layer(m)  # raises for a module outside the layers


def test_no_import_points_up():
    upward = [(m, i) for m in _modules() for i in code_deps.imported_modules(m) if _layer(i) > _layer(m)]
    assert not upward, "imports pointing up a layer: " + ", ".join(f"{m} -> {i}" for m, i in upward)


def test_the_library_imports_no_driver_framework_or_pipeline_code():
    import ast

    for path in (REPO / "dfcil_core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert name.split(".")[0] not in ("kfp", "dvc", "components", "pipelines"), (path, name)


def test_no_two_modules_of_the_repository_share_a_name():
    files = subprocess.run(["git", "ls-files", "*.py"], cwd=REPO, capture_output=True, text=True, check=True)
    stems: dict[str, list[str]] = {}
    for f in files.stdout.split():
        if Path(f).name not in ("__init__.py", "conftest.py"):
            stems.setdefault(Path(f).stem, []).append(f)
    assert {s: fs for s, fs in stems.items() if len(fs) > 1} == {}


def test_import_closure_follows_imports_inside_functions_and_packages():
    train = code_deps.closure("dfcil_core.run.train_stage")
    assert "dfcil_core.method.augment" in train and "dfcil_core.method.learners.relational" in train
    assert {"dfcil_core", "dfcil_core.run", "dfcil_core.method"} <= set(train)
    assert "dfcil_core.run.eval_plots" not in train and "dfcil_core.run.report" not in train
    # the synthesize stage imports its figures inside the function: they count
    assert "dfcil_core.run.generator_plots" in code_deps.closure("dfcil_core.run.synthesize_stage")
    assert "dfcil_core.run.eval_plots" in code_deps.closure("dfcil_core.run.evaluate_stage")


@pytest.mark.parametrize("command", [["config", "--preset", "tiny"], ["dvc-yaml", "--preset", "tiny"],
                                     ["presets"], ["methods"]])
def test_light_commands_import_no_torch(command):
    code = ("import sys; from dfcil_core.__main__ import main; rc = main(sys.argv[1:]); "
            "print('torch imported' if 'torch' in sys.modules else 'torch not imported', file=sys.stderr); "
            "sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code, *command], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip().splitlines()[-1] == "torch not imported"


def test_methods_command_prints_the_registry(capsys):
    from dfcil_core.__main__ import main

    assert main(["methods"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["key", "paper", "task", "1", "replays", "switches"]
    rows = {line.split()[0]: line for line in lines[1::2]}
    assert list(rows) == list(registry.METHODS)
    assert rows["abd"].split()[:4] == ["abd", "ABD", "own", "inverted"]
    assert rows["lwf"].split()[:4] == ["lwf", "LwF", "shared", "none"]
    assert rows["dgr"].split() == ["dgr", "DGR", "own", "generative", "dgr.*"]  # the longest replay kind fits
    assert lines[lines.index(rows["abd"]) + 1].strip() == registry.METHODS["abd"].equations


def test_registry_and_learners_name_the_same_methods():
    from dfcil_core.method.learners import LEARNERS

    assert list(registry.METHODS) == list(registry.METHOD_KEYS) and set(LEARNERS) == set(registry.METHODS)
    assert config.Config().methods == list(registry.PAPER_METHOD_KEYS)
    with pytest.raises(DfcilError, match="unknown method 'nope'"):
        config.from_dict({"methods": ["nope"]})


def test_inversion_keys_are_every_synthesis_key_but_the_replay_batch_and_the_guard():
    # the replay batch is read by the training stages only; the divergence bound changes no output it passes
    fields = {f"synthesis.{k}" for k in config.SynthesisConfig.model_fields} - {"synthesis.replay_batch_size",
                                                                               "synthesis.max_loss"}
    assert {k for k in registry.INVERSION_KEYS if k.startswith("synthesis.")} == fields


# --- the DVC stage params are the keys of the checkpoint hashes -----------------------------------


def _leaves(d: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        out += _leaves(v, f"{key}.") if isinstance(v, dict) and v else [key]
    return out


def _perturbed(raw: dict, key: str) -> dict | None:
    """`raw` with `key` set to another valid value, or None when there is none to try."""
    node = out = copy.deepcopy(raw)
    *parents, leaf = key.split(".")
    for p in parents:
        node = node[p]
    v = node[leaf]
    alternatives = {"A": "B", "reference": "paper" if key in ("synthesis.prior_kernel", "e2e.phase_b_teacher")
                    else "stable", "resnet32": "resnet18", "auto": "cpu", "default": "reduce-overhead",
                    "train": "frozen"}
    if isinstance(v, bool):
        node[leaf] = not v
    elif isinstance(v, int):
        node[leaf] = v + 2  # even: 2 tasks still divide the classes
    elif isinstance(v, float):
        node[leaf] = v * 0.5 if v else 0.5  # 0 would stay 0
    elif isinstance(v, str) and v in alternatives:
        node[leaf] = alternatives[v]
    elif isinstance(v, list) and key == "train.milestones":
        node[leaf] = [*v, v[-1] + 1] if v else [1]
    elif v is None and key in ("train_seed", "model.head_size", "e2e.phase_b_epochs", "bic.stage2_epochs"):
        node[leaf] = {"train_seed": 7, "model.head_size": 8}.get(key, 3)
    else:
        return None
    if key == "name":
        return None
    return out


def _hash_inputs(cfg: config.Config, method: str, task: int) -> dict[str, str]:
    """θ(task)'s hash and the hashes of the outputs its DVC stage depends on as files."""
    h = {"model": artifacts.model_hash(cfg, method, task), "split": config.split_hash(cfg)}
    if registry.starts_from_previous(method, task):
        h["prev"] = artifacts.model_hash(cfg, method, task - 1)
    if registry.replays_inverted(method, task):
        h["generator"] = artifacts.generator_hash(cfg, method, task)
    if registry.uses_coreset(method, task):
        h["coreset"] = artifacts.coreset_hash(cfg, method, task - 1)
    return h


def _in_params(key: str, params: list[str]) -> bool:
    return any(key == p or key.startswith(f"{p}.") for p in params)


@pytest.mark.parametrize("method", registry.METHOD_KEYS)
def test_dvc_train_params_are_exactly_the_keys_that_change_the_checkpoint(method):
    """For every method and task: a config key changes θ(t)'s checkpoint hash exactly when it is one
    of its DVC stage's params, or when it changes an upstream output the stage depends on as a file
    (the split, θ(t-1), the generator). So `dvc repro` re-runs a stage exactly when the stage itself
    would refuse its old checkpoint."""
    raw = explicit_params(config.load(preset="tiny", overrides=[f"methods=[{method}]", "data.n_tasks=2"]))
    raw["train"]["task_epochs"] = {"1": 2, "2": 2}
    base = config.from_dict(raw)
    stages = yaml.safe_load(render(base))["stages"]
    checked = 0
    for task in (1, 2):
        params = stages[f"train_{registry.lineage(method, task)}_t{task}"]["params"][0]["params.yaml"]
        assert params == registry.model_keys(method, task)
        before = _hash_inputs(base, method, task)
        for key in _leaves(raw):
            changed = _perturbed(raw, key)
            if changed is None:
                continue
            try:
                cfg = config.from_dict(changed)
            except DfcilError:
                continue  # that value is not valid for this profile: nothing to check
            after = _hash_inputs(cfg, method, task)
            upstream = any(after[k] != before[k] for k in before if k != "model")
            assert (after["model"] != before["model"]) == (_in_params(key, params) or upstream), (task, key)
            checked += 1
    assert checked > 40


@pytest.mark.parametrize("method,task", [("rehearsal", 1), ("rehearsal", 2), ("e2e", 1), ("bic", 1), ("bic", 2)])
def test_dvc_coreset_params_are_exactly_the_keys_that_change_the_coreset(method, task):
    """The coreset stages, as the training stages: a key changes the coreset's hash exactly when it is
    a param of its stage or changes a file the stage depends on (the split, the coreset before it,
    the model that ranks it)."""
    raw = explicit_params(config.load(preset="tiny", overrides=[f"methods=[{method}]", "data.n_tasks=4"]))
    base = config.from_dict(raw)
    stage = yaml.safe_load(render(base))["stages"][f"coreset_{registry.coreset_lineage(method)}_t{task}"]
    params = stage["params"][0]["params.yaml"]
    assert params == registry.coreset_keys(method, task)

    def inputs(cfg):
        h = {"coreset": artifacts.coreset_hash(cfg, method, task), "split": config.split_hash(cfg)}
        if task >= 2:
            h["prev"] = artifacts.coreset_hash(cfg, method, task - 1)
        if registry.method(method).coreset.selection != "random":
            h["model"] = artifacts.model_hash(cfg, method, task)
        return h

    before, checked = inputs(base), 0
    for key in _leaves(raw):
        changed = _perturbed(raw, key)
        if changed is None:
            continue
        try:
            cfg = config.from_dict(changed)
        except DfcilError:
            continue
        after = inputs(cfg)
        upstream = any(after[k] != before[k] for k in before if k != "coreset")
        assert (after["coreset"] != before["coreset"]) == (_in_params(key, params) or upstream), key
        checked += 1
    assert checked > 40


def test_dvc_synthesize_and_split_params_are_their_hash_keys():
    cfg = config.load(preset="tiny", overrides=["data.n_tasks=2"])
    stages = yaml.safe_load(render(cfg))["stages"]
    assert stages["split"]["params"][0]["params.yaml"] == registry.split_keys()
    assert stages["synthesize_ce_t2"]["params"][0]["params.yaml"] == registry.inversion_keys()
    raw = explicit_params(cfg)
    for key in _leaves(raw):
        changed = _perturbed(raw, key)
        if changed is None:
            continue
        try:
            other = config.from_dict(changed)
        except DfcilError:
            continue
        split_moved = config.split_hash(other) != config.split_hash(cfg)
        assert split_moved == _in_params(key, registry.split_keys()), key
        gen_moved = artifacts.generator_hash(other, "deepinversion", 2) != artifacts.generator_hash(cfg, "deepinversion", 2)
        teacher_moved = artifacts.model_hash(other, "deepinversion", 1) != artifacts.model_hash(cfg, "deepinversion", 1)
        assert gen_moved == (_in_params(key, registry.inversion_keys()) or teacher_moved or split_moved), key
