"""Kubeflow: the compiled spec's structure, and a full kfp.local run equal to `dfcil run`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from dfcil_core.foundations import config
from pipelines.dfcil_pipeline import compile_pipeline

pytest.importorskip("kfp")


def _spec(tmp_path, cfg, **kw):
    path = compile_pipeline(cfg, tmp_path / "p.yaml", **kw)
    docs = list(yaml.safe_load_all(path.read_text()))
    return docs[0], (docs[1] if len(docs) > 1 else {})


def test_compiled_spec_structure(tmp_path):
    cfg = config.load(preset="paper-cifar100-10", overrides=["methods=[upper_bound,base,lwf_mc,deepinversion,abd]"])
    spec, platform = _spec(tmp_path, cfg, image="registry.example/dfcil:test", pipeline_root="s3://bucket/root")
    assert spec["defaultPipelineRoot"] == "s3://bucket/root"
    base_names = {re.sub(r"-\d+$", "", c) for c in spec["components"]}  # KFP numbers repeated uses
    assert base_names == {"comp-split", "comp-synthesize", "comp-train", "comp-merge", "comp-evaluate"}
    tasks = spec["root"]["dag"]["tasks"]
    names = {t["taskInfo"]["name"] for t in tasks.values()}
    # shared θ(1) and generator (ABD trains its own task 1, as the authors' code); per-lineage chains afterwards
    assert "train ce t1" in names and "train lwf_mc t1" in names and "synthesize ce t2" in names
    assert "train abd t1" in names and "synthesize abd t2" in names
    assert "train abd t10" in names and "synthesize abd t10" in names and "train upper_bound t10" in names
    # ce t2 (DeepInversion) and abd t2, then deepinversion/abd t3..t10
    assert sum(1 for n in names if n.startswith("synthesize")) == 2 + 2 * 8
    by_name = {t["taskInfo"]["name"]: (key, t) for key, t in tasks.items()}

    def upstream(name):
        return set(by_name[name][1].get("dependentTasks", []))

    # the chain in order: θ(t-1) -> synthesize(t) -> train(t)
    for t in range(3, 11):
        assert by_name[f"train abd t{t - 1}"][0] in upstream(f"synthesize abd t{t}")
        assert by_name[f"synthesize abd t{t}"][0] in upstream(f"train abd t{t}")
    assert by_name["synthesize abd t2"][0] in upstream("train abd t2")
    assert by_name["synthesize ce t2"][0] in upstream("train deepinversion t2")
    assert by_name["train ce t1"][0] in upstream("synthesize ce t2")
    assert by_name["train abd t1"][0] in upstream("synthesize abd t2")
    # evaluate runs after every method's last task (through the merges)
    ev_key, ev = by_name["evaluate"]
    assert ev["componentRef"]["name"].startswith("comp-evaluate")
    execs = spec["deploymentSpec"]["executors"]
    for t in tasks.values():
        image = execs[f"exec-{t['componentRef']['name'][5:]}"]["container"]["image"]
        assert image == "registry.example/dfcil:test"
    # GPU on synthesize/train, retries everywhere, caching on
    for name, (_, t) in by_name.items():
        assert t.get("cachingOptions", {}).get("enableCache") is True
        if name.startswith(("train", "synthesize")):
            assert t["retryPolicy"]["maxRetryCount"] == 3 and t["retryPolicy"]["backoffFactor"] == 2.0
    gpu_execs = [e for e in execs.values() if "accelerator" in e["container"].get("resources", {})]
    assert gpu_execs and all(e["container"]["resources"]["accelerator"]["resourceType"] == "nvidia.com/gpu"
                             for e in gpu_execs)
    # S3 credentials from a Kubernetes secret on evaluate
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    secret_execs = {k: v for k, v in k8s.items() if "secretAsEnv" in v}
    assert secret_execs, "no secret wiring"
    env = {e["envVar"] for v in secret_execs.values() for s in v["secretAsEnv"] for e in s["keyToEnv"]}
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= env
    # the config travels as a parameter with the full, explicit params as default
    default_cfg = spec["root"]["inputDefinitions"]["parameters"]["config_yaml"]["defaultValue"]
    assert yaml.safe_load(default_cfg)["data"]["n_tasks"] == 10 and "\n" not in default_cfg


def test_no_gpu_compile(tmp_path):
    spec, _ = _spec(tmp_path, config.load(preset="tiny"), gpu=False)
    assert not any("accelerator" in e["container"].get("resources", {}) for e in spec["deploymentSpec"]["executors"].values())



@pytest.mark.parametrize("preset, split_gb, train_gb", [("paper-cifar100-10", 16, 32),
                                                        ("paper-tinyimagenet-20", 16, 32),
                                                        ("paper-imagenet50-5", 40, 40)])
def test_stage_memory_follows_the_datasets_size(tmp_path, preset, split_gb, train_gb):
    # ImageNet-50's split holds 50 x 1,350 images of 256 x 256 x 3 = 13.3 GB: 2 x 13.3 + 8 -> 40 GB
    cfg = config.load(preset=preset, overrides=["methods=[base]", "data.n_tasks=2"])
    spec, _ = _spec(tmp_path, cfg)
    memory = {name[5:]: e["container"]["resources"].get("resourceMemoryLimit")
              for name, e in spec["deploymentSpec"]["executors"].items()}
    assert memory["split"] == f"{split_gb}G" and memory["evaluate"] == f"{split_gb}G"
    assert memory["train"] == f"{train_gb}G"

def test_submit_helpers_build_the_kfp_cli_commands(capsys):
    from pipelines import submit

    assert submit.main(["run", "--dry-run", "--endpoint", "http://kfp:8888", "--experiment", "exp", "--run-name", "r1",
                        "--package", "p.yaml", "config_yaml=x"]) == 0
    assert capsys.readouterr().out.split() == ["kfp", "--endpoint", "http://kfp:8888", "run", "submit",
                                               "--experiment-name", "exp", "--run-name", "r1", "--package-file",
                                               "p.yaml", "config_yaml=x"]
    cmd = submit.recurring_command(None, "bench", "b.yaml", "nightly", "0 0 3 * * *", [])
    assert cmd[:3] == ["kfp", "recurring-run", "create"]
    assert cmd[cmd.index("--max-concurrency") + 1] == "1" and "--no-catchup" in cmd
    assert cmd[cmd.index("--cron-expression") + 1] == "0 0 3 * * *"


def test_benchmark_pipeline_compares_after_all_profiles(tmp_path):
    from kfp import compiler

    from pipelines.gate_pipeline import build_gate_pipeline

    pipe = build_gate_pipeline(["default", "tiny", "cpu-dreaming"], '[{"run_id": "r", "method": "abd", "a_n": 1.0}]')
    compiler.Compiler().compile(pipe, str(tmp_path / "b.yaml"))
    spec = yaml.safe_load((tmp_path / "b.yaml").read_text())
    tasks = spec["root"]["dag"]["tasks"]
    by_name = {t["taskInfo"]["name"]: (k, t) for k, t in tasks.items()}
    order = ["run default", "run tiny", "run cpu-dreaming"]
    for prev, nxt in zip(order, order[1:]):
        assert by_name[prev][0] in by_name[nxt][1]["dependentTasks"]
    assert by_name["run cpu-dreaming"][0] in by_name["compare"][1]["dependentTasks"]
    assert by_name["compare"][0] in by_name["gate"][1]["dependentTasks"]
    assert "comp-compare" in spec["components"] and "report" in str(spec["components"]["comp-compare"])


def test_benchmark_pipeline_runs_each_gate_seed_in_turn(tmp_path):
    from kfp import compiler

    from pipelines.gate_pipeline import build_gate_pipeline

    baseline = '[{"run_id": "r", "method": "abd", "a_n": 1.0}]'
    for seed_key, label in (("train_seed", "train seed"), ("seed", "seed")):
        pipe = build_gate_pipeline(["default"], baseline, seeds=[0, 1, 2], seed_key=seed_key)
        compiler.Compiler().compile(pipe, str(tmp_path / "b.yaml"))
        spec = yaml.safe_load((tmp_path / "b.yaml").read_text())
        by_name = {t["taskInfo"]["name"]: (k, t) for k, t in spec["root"]["dag"]["tasks"].items()}
        order = [f"run default {label} {s}" for s in (0, 1, 2)]
        for prev, nxt in zip(order, order[1:]):
            assert by_name[prev][0] in by_name[nxt][1]["dependentTasks"]
        overrides = [by_name[n][1]["inputs"]["parameters"]["overrides"]["runtimeValue"]["constant"] for n in order]
        assert overrides == [[f"{seed_key}=0"], [f"{seed_key}=1"], [f"{seed_key}=2"]]
        assert by_name[order[-1]][0] in by_name["compare"][1]["dependentTasks"]
    with pytest.raises(ValueError, match="seed_key"):
        build_gate_pipeline(["default"], baseline, seeds=[0], seed_key="data_seed")


def test_checked_in_baseline_compiles_into_the_benchmark_pipeline(tmp_path):
    import io

    import pandas as pd

    from dfcil_core.lab import gate
    from dfcil_core.lab import gate_protocol as gp
    from pipelines import gate_pipeline

    base = gate.read_table(Path(__file__).resolve().parents[1] / gp.GATE_BASELINE)
    # The gate's baseline: the gate's methods (all of them in the gate profile), every column (device
    # fingerprint included), and per device class at least MIN_BAND_SEEDS seeds of every gate method so
    # that the gate has a seed band wherever it has a baseline.
    assert set(base["method"]) == set(gp.GATE_METHODS) <= set(config.load(preset=gp.GATE_PROFILE).methods)
    assert list(base.columns) == gate.TABLE_COLUMNS and set(base["profile"]) == {gp.GATE_PROFILE}
    for _, rows in base.groupby("device_class"):
        assert set(rows["method"]) == set(gp.GATE_METHODS)
        assert gate.seed_spread(rows)["runs"].min() >= gate.MIN_BAND_SEEDS
    # One class order (the nightly runs vary train_seed at it): compare refuses any other.
    assert set(base["seed"]) == {0} and set(gp.GATE_SEEDS) <= set(base["train_seed"])
    assert gate_pipeline.main(["--out", str(tmp_path / "b.yaml")]) == 0
    spec = yaml.safe_load((tmp_path / "b.yaml").read_text())
    default = spec["root"]["inputDefinitions"]["parameters"]["baseline_json"]["defaultValue"]
    assert len(pd.read_json(io.StringIO(default))) == len(base)
    # Every nightly run is the gate profile with the gate's methods at the baseline's thread count, on a CPU.
    runs = [t for t in spec["root"]["dag"]["tasks"].values() if t["taskInfo"]["name"].startswith("run ")]
    assert [t["taskInfo"]["name"] for t in runs] == [f"run {gp.GATE_PROFILE} train seed {s}" for s in gp.GATE_SEEDS]
    for t, s in zip(runs, gp.GATE_SEEDS, strict=True):
        assert t["inputs"]["parameters"]["overrides"]["runtimeValue"]["constant"] == [*gp.GATE_OVERRIDES, f"train_seed={s}"]
    assert set(base["threads"]) == {2} and "runtime.threads=2" in gp.GATE_OVERRIDES
    assert "nvidia.com/gpu" not in (tmp_path / "b.yaml").read_text()
