"""`dfcil tables`: the paper's values as data (checked against the paper's text), aggregation over
seeds, flags, "not run" cells."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from dfcil_core.__main__ import main
from dfcil_core.foundations.errors import DfcilError
from dfcil_core.lab import paper_tables as tables
from dfcil_core.lab.paper_values import IMAGENET50, TABLE1, TABLE2, TABLE3, TINY_IMAGENET_C, TINY_IMAGENET_D

PAPER = Path(__file__).resolve().parents[1].parent / "shared" / "paper" / "always-be-dreaming-dfcil.txt"


@pytest.fixture(scope="module")
def paper_text() -> str:
    if not PAPER.is_file():
        pytest.skip(f"paper text not found at {PAPER}")
    return " ".join(PAPER.read_text().split())


def _segment(text: str, start: str, end: str) -> str:
    i = text.index(start)
    return text[i:text.index(end, i)]


def _pm(mean: float, std: float) -> str:
    return re.escape(f"{mean:.1f} ± {std:.1f}")


def test_table1_values_match_the_paper(paper_text):
    t1 = _segment(paper_text, "Table 1: Results", "Table 2: Results")
    labels = {"upper_bound": "Upper Bound None", "base": "Base None", "lwf": r"LwF \[36\] None",
              "lwf_syn": r"LwF \[36\] Synthetic", "deepinversion": r"DeepInversion \[62\] Synthetic",
              "abd": "Ours Synthetic"}
    for method, label in labels.items():
        cells = TABLE1[method]
        values = r"\s+".join(_pm(c.a_n, c.a_n_std) + r"\s+" + _pm(c.omega, c.omega_std) for c in cells.values())
        assert re.search(label + r"\s+" + values, t1), method
        assert all(c.source.startswith("Table 1") for c in cells.values())


def test_lwf_mc_values_match_the_papers_table_a(paper_text):
    ta = _segment(paper_text, "Table A: Full Results", "Table B: Results")
    c = TABLE1["lwf_mc"]
    five_ten = r"\s+".join(_pm(c[n].a_n, c[n].a_n_std) + r"\s+" + _pm(c[n].omega, c[n].omega_std) for n in (5, 10))
    assert re.search(r"LwF\.MC \[46\] None\s+" + five_ten, ta)
    # The 20-task columns come as two lists in row order: Upper Bound, Base, LwF, LwF.MC, DGR, ...
    cols = re.search(r"20 AN \(↑\) ((?:\d+\.\d ± \d+\.\d ?){8})\S+ \(↑\) ((?:\d+\.\d ± \d+\.\d ?){8})", ta)
    a_col, o_col = cols.group(1), cols.group(2)
    order = ["upper_bound", "base", "lwf", "lwf_mc", None, "lwf_syn", "deepinversion", "abd"]
    for col, metric in ((a_col, "a_n"), (o_col, "omega")):
        vals = re.findall(r"\d+\.\d ± \d+\.\d", col)
        for method, v in zip(order, vals, strict=True):
            if method:
                cell = TABLE1[method][20]
                assert v == f"{getattr(cell, metric):.1f} ± {getattr(cell, metric + '_std'):.1f}", (method, metric)


def test_dgr_row_of_table1_matches_the_paper(paper_text):
    t1 = _segment(paper_text, "Table 1: Results", "Table 2: Results")
    cells = TABLE1["dgr"]
    values = r"\s+".join(_pm(c.a_n, c.a_n_std) + r"\s+" + _pm(c.omega, c.omega_std) for c in cells.values())
    assert re.search(r"DGR \[51\] Generator\s+" + values, t1)


def test_table2_and_b_values_match_the_paper(paper_text):
    t2 = _segment(paper_text, "Table 2: Results", "order before sampling tasks")
    tb = _segment(paper_text, "Table B: Results", "Table C: Results")
    labels = {"upper_bound": "Upper Bound None", "rehearsal": "Naive Rehearsal Coreset",
              "lwf_coreset": r"LwF \[36\] Coreset", "bic": r"BiC \[61\] Coreset", "abd": "Ours Synthetic"}
    for method, label in labels.items():
        cells = TABLE2[method]
        values = r"\s+".join(_pm(c.a_n, c.a_n_std) + r"\s+" + _pm(c.omega, c.omega_std) for c in cells.values())
        assert re.search(label + r"\s+" + values, t2), method
        assert re.search(label + r"\s+" + values, tb), method  # Table B repeats Table 2's rows
    e2e = TABLE2["e2e"]  # Table B's extra row; its label follows its values in the text
    values = r"\s+".join(_pm(c.a_n, c.a_n_std) + r"\s+" + _pm(c.omega, c.omega_std) for c in e2e.values())
    assert re.search(r"Coreset\s+" + values + r"\s+E2E \[7\]", tb)
    assert e2e[10].source.startswith("Table B") and TABLE2["bic"][5].source.startswith("Table 2")


def test_tiny_imagenet_and_imagenet_values_match_the_paper(paper_text):
    tc = _segment(paper_text, "Table C: Results", "Table E: Results")
    td = _segment(paper_text, "Table D: Results", "Table F:")
    for method, label in {"upper_bound": "Upper Bound None", "base": "Base None", "lwf": r"LwF \[36\] None",
                          "abd": "Ours Synthetic"}.items():
        c = TINY_IMAGENET_C[method][20]
        assert re.search(label + rf"\s+{c.a_n:.1f}\s+{c.omega:.1f}", tc), method
    # the text runs these rows' labels apart from their values: the pairs, in the table's row order
    pairs = [f"{TINY_IMAGENET_C[m][20].a_n:.1f} {TINY_IMAGENET_C[m][20].omega:.1f}" for m in ("lwf_mc", "lwf_syn",
                                                                                         "deepinversion")]
    assert re.search(r"None " + pairs[0] + r" LwF\.MC \[46\] LwF \[36\] Synthetic " + pairs[1] + " Synthetic "
                     + pairs[2] + r" DeepInversion \[62\]", tc)
    for method, label in {"upper_bound": "Upper Bound None", "rehearsal": "Naive Rehearsal Coreset",
                          "lwf_coreset": r"LwF \[36\] Coreset", "e2e": r"E2E \[7\] Coreset",
                          "bic": r"BiC \[61\] Coreset", "abd": "Ours Synthetic"}.items():
        c = TINY_IMAGENET_D[method][20]
        assert re.search(label + rf"\s+{c.a_n:.1f}\s+{c.omega:.1f}", td), method
    t4 = _segment(paper_text, "Table 4: Results", "ageNet Benchmark")
    te = _segment(paper_text, "Table E: Results", "Table D: Results")
    for method, pattern in {"upper_bound": "Upper Bound None 89.8", "lwf": r"LwF \[36\] None 19.4",
                            "rehearsal": "Naive Rehearsal Coreset 78.9", "lwf_coreset": r"Coreset 84.8 LwF \[36\]",
                            "abd": "Ours Synthetic 71.5"}.items():
        assert re.search(pattern, t4), method
        assert f"{IMAGENET50[method][5].a_n:.1f}" in pattern
    assert re.search(r"None 72.7 LwF.MC \[46\]", te) and IMAGENET50["lwf_mc"][5].a_n == 72.7


def test_table2_rows_appear_when_a_coreset_method_ran():
    runs = _runs([("paper-cifar100-10-coreset", 10, "bic", "none", 0, 46.0, 82.0),
                  ("paper-cifar100-10-coreset", 10, "abd", "none", 0, 34.0, 70.0)])
    long = tables.build(runs)
    t2 = long[long.table == "table2"]
    assert list(dict.fromkeys(t2.method)) == ["upper_bound", "abd", "rehearsal", "lwf_coreset", "e2e", "bic"]
    bic = t2[(t2.method == "bic") & (t2.n_tasks == 10) & (t2.metric == "a_n")].iloc[0]
    assert (bic.ours_mean, bic.paper_mean) == (46.0, 45.9) and bic.source == "Table 2, BiC (replay: coreset)"
    assert "bic" not in set(long[long.table == "table1"].method)  # Table 1 holds the data-free rows
    md = tables.markdown(long)
    assert "### Table 2 shape (replay data: a coreset; ABD without one): profile paper-cifar100-10-coreset" in md
    assert "| BiC | " in md and "| E2E | not run / 47.4 ± 0.8" in md
    no_coreset = tables.build(_runs([("paper-cifar100-10", 10, "abd", "none", 0, 34.0, 70.0)]))
    assert "table2" not in set(no_coreset.table)


def test_table3_values_match_the_paper(paper_text):
    t3 = _segment(paper_text, "Table 3: Ablation", "Table 4:")
    for key, c in TABLE3.items():
        assert re.search(_pm(c.a_n, c.a_n_std) + r"\s+" + _pm(c.omega, c.omega_std), t3), key
    # rows whose label stands right before its values in the text
    for key, label in (("none", "Full Method"), ("kd_real", "Ablate Real Data Distillation"),
                       ("kd_synthetic", "Ablate Synthetic Data Distillation"), ("ft_ce", "Ablate FT-CE Loss")):
        assert re.search(re.escape(label) + r"[^±]*?" + _pm(TABLE3[key].a_n, TABLE3[key].a_n_std), t3), key


def _runs(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame([{"name": name, "dataset": "cifar100", "n_tasks": n, "method": m, "ablation": ab, "seed": s,
                          "train_seed": s, "a_n": a, "omega": o} for name, n, m, ab, s, a, o in rows])


def test_cells_mean_std_flags_and_not_run(tmp_path):
    runs = _runs([
        ("paper-cifar100-10", 10, "abd", "none", 0, 33.0, 69.0),
        ("paper-cifar100-10", 10, "abd", "none", 1, 34.0, 70.0),
        ("paper-cifar100-10", 10, "abd", "none", 2, 35.0, 71.0),  # A_N 34.0 ± 1.0 vs 33.7: in band
        ("paper-cifar100-10", 10, "base", "none", 0, 20.0, 40.0),  # 20.0 vs 8.8: far out of band
        ("paper-cifar100-10", 10, "abd", "ft_ce", 0, 9.0, 35.0),
    ])
    long = tables.build(runs)
    cell = long[(long.table == "table1") & (long.method == "abd") & (long.n_tasks == 10) & (long.metric == "a_n")].iloc[0]
    assert (cell.runs, cell.ours_mean, cell.ours_std, cell.paper_mean) == (3, 34.0, 1.0, 33.7)
    assert cell["diff"] == pytest.approx(0.3) and not cell.flag
    base = long[(long.table == "table1") & (long.method == "base") & (long.n_tasks == 10) & (long.metric == "a_n")].iloc[0]
    assert base.flag and base["diff"] == pytest.approx(11.2)
    missing = long[(long.table == "table1") & (long.method == "lwf") & (long.n_tasks == 5)].iloc[0]
    assert missing.runs == 0 and pd.isna(missing.ours_mean)
    t3 = long[(long.table == "table3") & (long.ablation == "ft_ce") & (long.metric == "a_n")].iloc[0]
    assert t3.runs == 1 and t3.paper_mean == 9.8
    md = tables.markdown(long)
    assert "not run / 17.0 ± 0.1" in md  # LwF, 5 tasks: nobody ran it, no number of ours
    assert "| Base | " in md and "20.0 (n=1) / 8.8 ± 0.1 (+11.2) ⚠" in md
    assert "34.0 ± 1.0 (n=3) / 33.7 ± 1.2 (+0.3) |" in md


def test_small_profiles_never_flag(tmp_path):
    long = tables.build(_runs([("tiny", 10, "base", "none", 0, 60.0, 90.0)]))
    assert not long.flag.any()
    assert "NOT the paper's schedule" in tables.markdown(long)


def test_cli_writes_md_csv_html(tmp_path, capsys):
    csv = tmp_path / "runs.csv"
    _runs([("paper-cifar100-5", 5, "abd", "none", 0, 44.0, 79.0)]).to_csv(csv, index=False)
    assert main(["tables", str(csv), "--out", str(tmp_path / "t")]) == 0
    for name in ("tables.md", "tables.csv", "tables.html"):
        assert (tmp_path / "t" / name).is_file()
    assert "data:image/png;base64," in (tmp_path / "t" / "tables.html").read_text()
    assert main(["tables", str(tmp_path / "nothing"), "--out", str(tmp_path / "t")]) == 2
    assert "no results/runs.csv" in capsys.readouterr().err


def test_eight_concurrent_writers_lose_no_row_and_tables_read_the_sink(tmp_path):
    """Fan-out branches publish at once (8 processes against the loopback S3 server); every row
    arrives, and `dfcil tables s3://...` aggregates them."""
    import os
    import subprocess
    import sys

    import boto3

    from tests.s3_server import s3_server

    with s3_server() as server:
        boto3.client("s3").create_bucket(Bucket="dfcil")
        procs = []
        for seed in range(8):
            out = tmp_path / f"run{seed}"
            (out / "results").mkdir(parents=True)
            _runs([("paper-cifar100-10", 10, m, "none", seed, 30.0 + seed, 60.0 + seed) for m in ("abd", "base")]) \
                .to_csv(out / "results" / "runs.csv", index=False)
            pd.DataFrame([{"method": "abd", "seed": seed, "train_seed": seed, "task": 1, "acc_seen": 50.0}]).to_csv(
                out / "results" / "tasks.csv", index=False)
            procs.append(subprocess.Popen([sys.executable, "-m", "dfcil_core", "publish", "--out", str(out),
                                           "--results", "s3://dfcil/results"], env={**os.environ, **server.env()},
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        for p in procs:
            _, err = p.communicate(timeout=300)
            assert p.returncode == 0, err
        from dfcil_core.drivers.results_sink import S3ResultsSink

        rows = S3ResultsSink("s3://dfcil/results").read_table("runs.csv")
        assert len(rows) == 16 and sorted(set(rows.seed)) == list(range(8)) and rows.run_id.nunique() == 8
        long = tables.build(tables.read_runs(["s3://dfcil/results"]))
        abd = long[(long.table == "table1") & (long.method == "abd") & (long.n_tasks == 10) & (long.metric == "a_n")]
        assert abd.iloc[0].runs == 8 and abd.iloc[0].ours_mean == pytest.approx(33.5)


def test_runs_without_upper_bound_say_n_a_for_omega():
    runs = _runs([("paper-cifar100-10", 10, "abd", "none", 0, 33.0, float("nan"))])
    md = tables.markdown(tables.build(runs))
    assert "| ABD | " in md and "33.0 (n=1) / 33.7 ± 1.2 (-0.7) | n/a (no upper bound) / 69.6 ± 1.6 |" in md


def test_training_seeds_of_one_class_order_are_separate_runs(tmp_path):
    rows = _runs([("fidelity-proxy", 2, "abd", "none", 0, 40.0, 80.0), ("fidelity-proxy", 2, "abd", "none", 0, 44.0, 84.0)])
    rows["train_seed"] = [0, 1]
    csv = tmp_path / "runs.csv"
    rows.to_csv(csv, index=False)
    runs = tables.read_runs([str(csv), str(csv)])  # the same table read twice: each run once
    assert sorted(runs["train_seed"]) == [0, 1]
    cell = tables.build(runs)
    abd = cell[(cell.method == "abd") & (cell.metric == "a_n")].iloc[0]
    assert abd.runs == 2 and abd.ours_mean == pytest.approx(42.0)
    rows.drop(columns="train_seed").to_csv(csv, index=False)  # not a runs table `evaluate` writes: refused
    with pytest.raises(DfcilError, match=r"missing columns \['train_seed'\]"):
        tables.read_runs([str(csv)])
