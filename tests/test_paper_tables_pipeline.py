"""The paper-tables fan-out on Kubeflow: the compiled ParallelFor, and a kfp.local run whose
aggregated table equals `dfcil tables` over the same runs done in-process."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from dfcil_core.foundations import config
from dfcil_core.foundations.errors import DfcilError
from dfcil_core.lab import paper_tables as tables
from dfcil_core.run import sequence
from pipelines.paper_tables_pipeline import build_tables_pipeline, variants

pytest.importorskip("kfp")

METHODS = "methods=[upper_bound,abd]"  # Ω (needs the upper bound) and a replay chain; few KFP steps


def _compile(tmp_path, **kw):
    from kfp import compiler

    cfg = config.load(preset="tiny", overrides=[METHODS])
    path = tmp_path / "pt.yaml"
    compiler.Compiler().compile(build_tables_pipeline(cfg, gpu=False, s3_secret=None, **kw), str(path))
    return yaml.safe_load(path.read_text())


def test_compiled_spec_has_a_parallel_for_per_split_with_the_parallelism(tmp_path):
    spec = _compile(tmp_path, splits=[2, 4], seeds=[0, 1, 2], parallelism=3)
    root = spec["root"]
    assert root["inputDefinitions"]["parameters"]["seeds"]["defaultValue"] == [0, 1, 2]
    loops = [t for t in root["dag"]["tasks"].values() if "iteratorPolicy" in t]
    assert len(loops) == 2  # one fan-out per task split
    for loop in loops:
        assert loop["iteratorPolicy"]["parallelismLimit"] == 3
        assert loop["parameterIterator"]["items"]["inputParameter"].endswith("seeds")
    names = {t["taskInfo"]["name"] for t in root["dag"]["tasks"].values()}
    assert {"tables", "2t collect", "4t collect"} <= names
    # Inside a branch: the same chain as dfcil_pipeline, unrolled per split (4 tasks -> train t4).
    comps = spec["components"]
    body = [c for c in comps if c.startswith("comp-for-loop")]
    inner = {t["taskInfo"]["name"] for c in body for t in comps[c]["dag"]["tasks"].values()}
    assert {"2t split", "2t train ce t1", "2t synthesize abd t2", "2t evaluate", "4t train abd t4", "4t evaluate"} <= inner


def test_ablation_variants_and_bad_ablation(tmp_path):
    base = config.load(preset="tiny")
    labels = [label for label, _ in variants(base, [2], ["ft_ce"])]
    assert labels == ["2t", "2t-no-ft_ce"]
    cfg = dict(variants(base, [2], ["ft_ce"]))["2t-no-ft_ce"]
    assert cfg.methods == ["abd"] and cfg.abd.ablation == "ft_ce"
    with pytest.raises(DfcilError, match="unknown ablation 'ewc'"):
        variants(base, [2], ["ewc"])


@pytest.mark.slow
def test_kfp_local_fan_out_equals_dfcil_tables_in_process(tmp_path, monkeypatch, data_root):
    from kfp import local

    cfg = config.load(preset="tiny", overrides=[METHODS])
    monkeypatch.chdir(tmp_path)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "kfp_root"))
    # One split, two seeds: the ParallelFor and the cross-seed aggregation; every extra split is
    # another chain of KFP subprocesses (a 4-task split cost ~6 of this test's 10 minutes).
    build_tables_pipeline(cfg, [2], [0, 1], parallelism=2, gpu=False, s3_secret=None)()
    found = list((tmp_path / "kfp_root").rglob("tables.csv"))
    assert len(found) == 1, found
    from_kfp = pd.read_csv(found[0])

    outs = []
    for seed in (0, 1):
        run_cfg = config.load(preset="tiny", overrides=[METHODS, "data.n_tasks=2", f"seed={seed}"])
        out = tmp_path / "in_process" / f"2-{seed}"
        sequence.run(run_cfg, out)
        outs.append(str(out))
    in_process = tables.build(tables.read_runs(outs))
    paths = tables.write(in_process, tmp_path / "in_process_tables")
    expected = pd.read_csv(paths["csv"])
    assert (expected["runs"] > 0).sum() == 2 * 2 + 2  # table 1: 2 methods x 2 metrics; table 3: full ABD
    assert set(expected[expected.runs > 0].runs) == {2}  # both seeds in every cell that ran
    pd.testing.assert_frame_equal(from_kfp, expected)
    assert (found[0].parent / "tables.html").is_file()


def test_a_bad_override_is_one_escaped_error_line(capsys, tmp_path):
    """The pipeline compiler reports DfcilError as the CLI does: one line, unprintable characters escaped."""
    from pipelines.paper_tables_pipeline import main
    assert main(["--set=0\x1e0=", "--out", str(tmp_path / "p.yaml")]) == 2
    assert capsys.readouterr().err.splitlines() == ["paper_tables: error: invalid config: 0\\x1e0: unknown key"]
    assert not (tmp_path / "p.yaml").exists()
