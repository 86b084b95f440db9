"""Regression gate: compare on crafted tables, reports with plots, an injected regression end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dfcil_core import __main__ as cli
from dfcil_core.foundations import atomic_io, config
from dfcil_core.foundations.errors import DfcilError
from dfcil_core.lab import gate as bm
from dfcil_core.lab import gate_protocol as gp
from dfcil_core.lab import numerics_snapshot as ns
from dfcil_core.run import artifacts, sequence
from dfcil_core.run.results_table import RUN_COLUMNS

DEVICE = "cpu AVX2 | 2 threads | torch 2.14.1"


def _table(values: dict[str, list[float]], omega: float = 70.0) -> pd.DataFrame:
    rows = []
    for method, accs in values.items():
        for seed, a in enumerate(accs):
            rows.append({"run_id": f"r{seed}", "profile": "paper-cifar100-10", "dataset": "cifar100", "n_tasks": 10,
                         "method": method, "seed": seed, "train_seed": seed, "a_n": a, "omega": omega,
                         "forgetting": 10.0, "device_class": DEVICE})
    return pd.DataFrame(rows)


BASE = _table({"abd": [33.0, 34.0, 35.0], "lwf": [9.0, 9.0, 9.0]})  # abd mean 34, std 1


def test_within_tolerance_passes():
    # abd 32.5 is 1.5 below 34: allowed max(2 points, 2 * 1.0 std) = 2
    comp = bm.compare(_table({"abd": [32.5], "lwf": [8.0]}), BASE)
    assert not comp.failed
    row = comp.table[(comp.table.method == "abd") & (comp.table.metric == "a_n")].iloc[0]
    assert row["delta"] == pytest.approx(-1.5) and row["allowed_drop"] == pytest.approx(2.0)


def test_beyond_tolerance_fails():
    comp = bm.compare(_table({"abd": [31.5], "lwf": [9.0]}), BASE)  # 2.5 below
    assert comp.failed and list(comp.regressions["method"]) == ["abd"]


def test_std_tolerance_widens_the_band():
    noisy = _table({"abd": [30.0, 34.0, 38.0]})  # std 4 -> allowed 8
    assert not bm.compare(_table({"abd": [27.0]}), noisy).failed
    assert bm.compare(_table({"abd": [25.0]}), noisy).failed


def test_omega_has_its_own_tolerance():
    comp = bm.compare(_table({"abd": [34.0]}, omega=66.0), _table({"abd": [34.0]}, omega=70.0))
    assert comp.failed and list(comp.regressions["metric"]) == ["omega"]


def test_missing_baseline_is_reported_not_failed():
    comp = bm.compare(_table({"ewc": [10.0]}), BASE)
    assert not comp.failed and set(comp.table["status"]) == {"no baseline"}


def test_reports_embed_the_plots(tmp_path):
    comp = bm.compare(_table({"abd": [31.0]}), BASE)
    paths = bm.write_reports(comp, _table({"abd": [31.0]}), BASE, tmp_path)
    page = paths["html"].read_text()
    assert page.count("data:image/png;base64,") == 2 and "REGRESSION" in page
    assert "a_n_bars.png" in paths["markdown"].read_text()


def test_cli_compare_exit_codes(tmp_path):
    BASE.to_csv(tmp_path / "base.csv", index=False)
    _table({"abd": [34.0], "lwf": [9.0]}).to_csv(tmp_path / "ok.csv", index=False)
    _table({"abd": [20.0], "lwf": [9.0]}).to_csv(tmp_path / "bad.csv", index=False)
    common = ["benchmark", "compare", "--baseline", str(tmp_path / "base.csv"), "--report-dir", str(tmp_path / "r")]
    assert cli.main([*common, "--current", str(tmp_path / "ok.csv")]) == 0
    assert cli.main([*common, "--current", str(tmp_path / "bad.csv")]) == 1
    assert cli.main([*common, "--current", str(tmp_path / "missing.csv")]) == 2


@pytest.mark.slow
def test_injected_regression_is_caught_end_to_end(tmp_path, data_root):
    """Baseline: a tiny real run of the upper bound (joint training, the method that learns most in a
    short run). The same config passes; the same run with its learning rate cut to 1e-6 (a training
    loop that no longer learns) is caught with exit 1: A_N 47.0 / 44.5 against 26.0 / 26.0 on two
    threads / one thread per process (AVX2). (An ABD run ablating FT-CE was the injected
    regression before: at this size ABD ends near chance either way, and on one thread per process
    the ablated run came out 1.0 point lower, exactly the floor: not a regression the gate can see.)"""
    table = tmp_path / "results.csv"
    common = ["-S", "methods=[upper_bound]", "-S", "data.num_classes=4", "-S", "model.head_size=4",
              "-S", "data.train_per_class=100", "-S", "data.test_per_class=50", "-S", "train.epochs=8",
              "-S", "train.milestones=[6]", "-S", "train.batch_size=16"]
    run = ["benchmark", "run", "tiny", "--table", str(table), "--out", str(tmp_path / "runs"), *common]
    assert cli.main(run) == 0
    base_id = pd.read_csv(table)["run_id"].iloc[0]
    assert cli.main(["benchmark", "promote", "--current", str(table), "--run-id", base_id,
                     "--baseline", str(tmp_path / "baseline.csv")]) == 0
    assert cli.main([*run, "-S", "train.lr=1e-6"]) == 0
    crippled_id = pd.read_csv(table)["run_id"].iloc[-1]
    compare = ["benchmark", "compare", "--baseline", str(tmp_path / "baseline.csv"), "--current", str(table),
               "--report-dir", str(tmp_path / "report"), "--points", "1", "--k-std", "0"]
    assert cli.main([*compare, "--run-id", base_id]) == 0
    assert cli.main([*compare, "--run-id", crippled_id]) == 1
    rows = pd.read_csv(table).set_index("run_id")["a_n"]
    assert rows[base_id] - rows[crippled_id] >= 10, rows  # far above the 1-point floor, not a draw
    assert "data:image/png;base64," in (tmp_path / "report" / "report.html").read_text()


def _runs_csv(out: Path, a_n: float = 30.0, seed: int = 0, train_seed: int = 0) -> None:
    """A results/runs.csv as the evaluate stage writes it (one ABD row)."""
    (out / "results").mkdir(parents=True, exist_ok=True)
    pd.DataFrame([{"name": "default", "dataset": "cifar100", "n_tasks": 2, "method": "abd", "ablation": "none",
                   "seed": seed, "train_seed": train_seed, "a_n": a_n, "omega": 80.0, "avg_inc_acc": 40.0,
                   "forgetting": 10.0, "old_acc": 20.0, "new_acc": 40.0, "device": "cpu",
                   **{c: 2 if c == "threads" else DEVICE if c == "device_class" else "x" for c in bm.FINGERPRINT_COLUMNS}}],
                 columns=RUN_COLUMNS).to_csv(out / "results" / "runs.csv", index=False)


def test_evaluated_outputs_feed_the_table(tmp_path):
    """What `dvc exp run` leaves (outputs/results/runs.csv, the stages' log records) joins the benchmark table."""
    out = tmp_path / "outputs"
    _runs_csv(out)
    table = tmp_path / "t.csv"
    assert cli.main(["benchmark", "add", str(out), str(out), "--table", str(table)]) == 0
    df = pd.read_csv(table)
    assert len(df) == 2 and df["run_id"].nunique() == 2 and list(df.columns) == bm.TABLE_COLUMNS
    assert df["a_n"].tolist() == [30.0, 30.0] and df["wall_seconds"].isna().all()  # no log records: no times
    _runs_csv(out, seed=3, train_seed=7)
    for t in (1, 2):
        artifacts.write_stage_log(out, artifacts.stage_name("train", "abd", t), seconds=5.0 * t, images_per_s=[8.0])
    assert cli.main(["benchmark", "add", str(out), "--table", str(table)]) == 0
    last = pd.read_csv(table).iloc[-1]
    assert [last["seed"], last["train_seed"], last["wall_seconds"], last["images_per_s"]] == [3, 7, 15.0, 8.0]
    # The row names the commit that evaluated the run (its log record), not the checkout adding it.
    artifacts.write_stage_log(out, "evaluate")
    record = atomic_io.read_json(artifacts.Layout(out).stage_log("evaluate"))
    atomic_io.write_json(artifacts.Layout(out).stage_log("evaluate"), {**record, "code_version": "0.1.0+abc1234"})
    assert cli.main(["benchmark", "add", str(out), "--table", str(table)]) == 0
    assert pd.read_csv(table)["git_sha"].iloc[-1] == "abc1234"
    assert cli.main(["benchmark", "add", str(tmp_path / "nope"), "--table", str(table)]) == 2


def _profile_run_module():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "profile_run.py"
    spec = importlib.util.spec_from_file_location("profile_run", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cifar_subset_gives_the_same_task_images(tmp_path, data_root, monkeypatch):
    """The GPU profile's subset file: a task built from it holds exactly the images (and labels) the
    same task built from the full data holds, with train_per_class=K, test_per_class=L."""
    import numpy as np

    from dfcil_core.method import datasets as data

    monkeypatch.setenv(data.DATA_ROOT_ENV, str(data_root))
    full_train, full_test = data.load_dataset("cifar100", None, False, 32)
    profile_run = _profile_run_module()
    subset = tmp_path / "c100.npz"
    original_loader = data._load_cifar
    try:
        profile_run.make_subset(subset, 3, 2)
        profile_run.use_subset(subset)
        sub_train, sub_test = data.load_dataset("cifar100", None, False, 32)
    finally:
        data._load_cifar = original_loader
    assert sub_train.x.shape == (300, 3, 32, 32) and sub_test.x.shape == (200, 3, 32, 32)
    order = data.class_order(100, 0)
    for positions in ([0, 1, 2], [97, 98, 99]):
        for full, sub, k in ((full_train, sub_train, 3), (full_test, sub_test, 2)):
            a = data.select_task(full, order, positions, k)
            b = data.select_task(sub, order, positions, k)
            assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y)


AVX2 = "cpu AVX2 | 2 threads | torch 2.14.1"
AVX512 = "cpu AVX512 | 2 threads | torch 2.14.1"


def _on(df: pd.DataFrame, device_class: str) -> pd.DataFrame:
    return df.assign(device_class=device_class)


FIVE = _table({"abd": [33.0, 34.0, 35.0, 33.5, 34.5], "lwf": [9.0, 9.5, 8.5, 9.0, 9.0]})  # abd mean 34, std 0.79


def test_crafted_regression_of_three_std_on_every_seed_fails(tmp_path):
    std = FIVE[FIVE.method == "abd"].a_n.std()
    same = _table({"abd": list(FIVE[FIVE.method == "abd"].a_n), "lwf": [9.0] * 5})
    assert not bm.compare(_on(same, AVX2), _on(FIVE, AVX2)).failed
    lowered = same.assign(a_n=[a - 3 * max(std, 1.0) if m == "abd" else a for m, a in zip(same.method, same.a_n)])
    comp = bm.compare(_on(lowered, AVX2), _on(FIVE, AVX2))
    assert comp.failed and list(comp.regressions.method) == ["abd"] and not comp.notes
    row = comp.regressions.iloc[0]
    assert row.baseline_seeds == 5 and row.allowed_drop == pytest.approx(2.0)  # floor 2 > 2 x 0.79


def test_another_device_is_refused_or_widened_with_the_reason(tmp_path, capsys):
    with pytest.raises(bm.DfcilError, match=r"baseline measured on \[cpu AVX2.*this run on \[cpu AVX512.*not like for like"):
        bm.compare(_on(_table({"abd": [34.0]}), AVX512), _on(FIVE, AVX2))
    comp = bm.compare(_on(_table({"abd": [31.0], "lwf": [9.0]}), AVX512), _on(FIVE, AVX2), across_devices=True)
    assert not comp.failed  # 3 below: inside the widened band of 4 points
    assert comp.notes and "widened 2x" in comp.notes[0]
    FIVE.pipe(_on, AVX2).to_csv(tmp_path / "base.csv", index=False)
    _on(_table({"abd": [34.0], "lwf": [9.0]}), AVX512).to_csv(tmp_path / "cur.csv", index=False)
    common = ["benchmark", "compare", "--baseline", str(tmp_path / "base.csv"), "--current", str(tmp_path / "cur.csv"),
              "--report-dir", str(tmp_path / "r")]
    assert cli.main(common) == 2
    assert "not like for like" in capsys.readouterr().err
    assert cli.main([*common, "--across-devices"]) == 0
    out = capsys.readouterr().out
    assert "note: across devices" in out
    page = (tmp_path / "r" / "report.html").read_text()
    assert AVX512 in page and AVX2 in page and "allowed_drop" in page


def test_promote_replaces_its_own_device_class_and_keeps_the_others(tmp_path, capsys):
    """One baseline file serves every node class: promoting AVX2 runs leaves the AVX-512 band intact."""
    base = tmp_path / "baseline.csv"
    _on(FIVE, AVX512).assign(profile="proxy").to_csv(base, index=False)
    runs = _on(_table({"abd": [40.0, 41.0, 42.0], "lwf": [9.0] * 3, "lwf_mc": [5.0] * 3}), AVX2).assign(profile="proxy")
    runs.to_csv(tmp_path / "runs.csv", index=False)
    promote = ["benchmark", "promote", "--current", str(tmp_path / "runs.csv"), "--baseline", str(base),
               "--run-id", "r0", "--run-id", "r1", "--run-id", "r2", "--method", "abd", "--method", "lwf"]
    assert cli.main(promote) == 0
    out = capsys.readouterr().out
    assert ": 6 rows from ['r0', 'r1', 'r2']; kept 10 rows of other device classes" in out
    stored = pd.read_csv(base)
    assert sorted(stored.groupby("device_class").size().items()) == [(AVX2, 6), (AVX512, 10)]
    assert "lwf_mc" not in set(stored.method)  # --method keeps what the gate compares
    assert not bm.compare(_on(_table({"abd": [41.0], "lwf": [9.0]}), AVX2).assign(profile="proxy"), stored).failed
    # the AVX2 band, not AVX-512's
    assert bm.compare(_on(_table({"abd": [37.0], "lwf": [9.0]}), AVX2).assign(profile="proxy"), stored).failed
    assert cli.main(promote) == 0  # promoting the same class again replaces its rows, never duplicates them
    assert len(pd.read_csv(base)) == 16
    with pytest.raises(DfcilError, match=r"no rows for method\(s\) \['ewc'\]"):
        bm.promote(base, runs, ["ewc"])


def test_one_seed_baseline_gates_on_the_floor_only_and_says_so():
    one = _table({"abd": [34.0]})
    comp = bm.compare(_table({"abd": [31.5]}), one)  # 2.5 below the floor of 2: a regression, floor only
    assert comp.failed
    assert comp.regressions.iloc[0].status == "REGRESSION (floor only: 1 baseline seed)"
    assert any("1 seed(s) < 3" in n for n in comp.notes)
    assert not bm.compare(_table({"abd": [32.5]}), one).failed


def _snap(device: str = "cpu AVX2 | 2 threads | torch X", loss: float = 0.8123456, a_n: float = 37.5) -> pd.DataFrame:
    return pd.DataFrame([{"device_class": device, "profile": "tiny", "method": "abd", "a_n": a_n, "omega": 90.0,
                          "old_acc": 12.5, "new_acc": 62.5, "final_loss": loss},
                         {"device_class": device, "profile": "tiny", "method": "base", "a_n": 30.0, "omega": 80.0,
                          "old_acc": 0.0, "new_acc": 60.0, "final_loss": 0.5}])


def test_snapshot_round_trip_matches_and_keeps_other_device_classes(tmp_path):
    path = tmp_path / "snap.csv"
    ns.update_snapshot(path, _snap("cpu AVX512 | 2 threads | torch X", loss=0.7))
    ns.update_snapshot(path, _snap())
    ns.update_snapshot(path, _snap())  # re-recording replaces this class's rows, never duplicates them
    stored = ns.read_snapshot(path)
    assert len(stored) == 4 and sorted(set(stored["device_class"])) == ["cpu AVX2 | 2 threads | torch X",
                                                                        "cpu AVX512 | 2 threads | torch X"]
    assert ns.check_snapshot(_snap(), stored) == ("match", [])


def test_snapshot_flags_a_changed_loss_or_accuracy_in_either_direction(tmp_path):
    stored = _snap()
    verdict, lines = ns.check_snapshot(_snap(loss=0.8123556), stored)  # 1.2e-5 relative: a kernel change
    assert verdict == "differs" and lines == ["abd final_loss: 0.812356 (snapshot 0.812346)"]
    verdict, lines = ns.check_snapshot(_snap(a_n=38.75), stored)  # better is a change too
    assert verdict == "differs" and lines == ["abd a_n: 38.75 (snapshot 37.5)"]
    assert ns.check_snapshot(_snap(loss=0.81234561), stored)[0] == "match"  # what a CSV round trip keeps


def test_snapshot_of_another_device_class_is_not_compared():
    verdict, lines = ns.check_snapshot(_snap("cpu AVX512 | 2 threads | torch X"), _snap())
    assert verdict == "no snapshot" and "cpu AVX512" in lines[0] and "--update" in lines[0]


def test_snapshot_with_a_method_missing_differs():
    verdict, lines = ns.check_snapshot(_snap().iloc[:1], _snap())
    assert verdict == "differs" and lines == ["base: only in the snapshot"]


def test_a_method_new_since_the_snapshot_is_named_and_not_compared():
    """A method added after this class's snapshot was recorded: nothing to compare, said in a line;
    the methods the snapshot has are still compared."""
    verdict, lines = ns.check_snapshot(_snap(), _snap().iloc[:1])
    assert verdict == "match"
    assert lines == ["base: no snapshot row for this device class yet (new methods; not compared)"]
    verdict, lines = ns.check_snapshot(_snap(a_n=38.75), _snap().iloc[:1])
    assert verdict == "differs" and lines[0] == "abd a_n: 38.75 (snapshot 37.5)"


def test_profiles_are_gated_separately():
    base = pd.concat([BASE.assign(profile="gate"), _table({"abd": [10.0, 10.0, 10.0]}).assign(profile="tiny")])
    comp = bm.compare(_table({"abd": [31.0]}).assign(profile="gate"), base)  # 3 below gate's 34: not tiny's 10
    assert comp.failed and list(comp.table[comp.table.metric == "a_n"]["baseline"]) == [34.0]
    assert list(comp.table["profile"].unique()) == ["gate"]


def test_seed_spread_hand_values():
    df = _table({"abd": [30.0, 34.0, 38.0], "lwf": [9.0]}).assign(profile="gate")
    spread = bm.seed_spread(df).set_index("method")
    assert spread.loc["abd", "runs"] == 3 and spread.loc["abd", "a_n_mean"] == pytest.approx(34.0)
    assert spread.loc["abd", "a_n_std"] == pytest.approx(4.0) and spread.loc["abd", "a_n_min"] == 30.0
    assert np.isnan(spread.loc["lwf", "a_n_std"]) and spread.loc["lwf", "runs"] == 1
    assert spread.loc["abd", "seeds"] == "0/0 1/1 2/2"


def test_seed_spread_counts_training_seeds_of_one_class_order():
    df = _table({"abd": [30.0, 34.0, 38.0]}).assign(profile="gate", seed=0, train_seed=[2, 0, 10])
    spread = bm.seed_spread(df).set_index("method")
    assert spread.loc["abd", "runs"] == 3 and spread.loc["abd", "seeds"] == "0/0 0/2 0/10"
    assert spread.loc["abd", "a_n_std"] == pytest.approx(4.0)


def test_another_class_order_is_not_gated():
    base = _table({"abd": [33.0, 34.0, 35.0]}).assign(seed=0, train_seed=[0, 1, 2])
    ok = bm.compare(_table({"abd": [34.0, 33.5]}).assign(seed=0, train_seed=[3, 4]), base)
    assert not ok.failed and ok.table.iloc[0]["baseline_seeds"] == 3
    with pytest.raises(DfcilError, match=r"class-order seed\(s\) \[1\], the baseline only \[0\]"):
        bm.compare(_table({"abd": [34.0]}).assign(seed=1), base)


def test_cli_spread_reads_its_table(tmp_path, capsys):
    table = tmp_path / "rows.csv"
    rows = _table({"abd": [30.0, 34.0, 38.0]}).assign(profile="default", train_seed=[5, 6, 7])
    rows.assign(device_class="cpu AVX2 | 2 threads | torch X").to_csv(table, index=False)
    assert cli.main(["benchmark", "spread", "--table", str(table)]) == 0
    out = capsys.readouterr().out
    assert "| abd " in out and "34.00" in out and "4.00" in out and "0/5 1/6 2/7" in out
    assert "cpu AVX2 \\| 2 threads \\| torch X" in out  # one Markdown cell
    assert len({line.count(" | ") for line in out.splitlines() if line.startswith("| ")}) == 1
    assert cli.main(["benchmark", "spread", "--table", str(table), "--run-id", "nope"]) == 2


def test_benchmark_run_gate_runs_the_gate_profile_with_its_overrides(tmp_path, monkeypatch, capsys):
    """`dfcil benchmark run --gate -S train_seed=3` is the nightly's run: the gate profile, its methods and
    thread count, then the user's overrides; profiles and --gate together (or neither) are refused."""
    seen = {}

    def fake_run(profiles, out_root, overrides, table):
        seen.update(profiles=profiles, overrides=overrides, table=table)
        return pd.DataFrame(columns=bm.TABLE_COLUMNS)

    monkeypatch.setattr(bm, "run_profiles", fake_run)
    assert cli.main(["benchmark", "run", "--gate", "-S", "train_seed=3", "--table", str(tmp_path / "t.csv")]) == 0
    assert seen == {"profiles": [gp.GATE_PROFILE], "overrides": [*gp.GATE_OVERRIDES, "train_seed=3"],
                    "table": tmp_path / "t.csv"}
    # Without --table a gate run lands in the checked-in ledger, any other run in the scratch table.
    assert cli.main(["benchmark", "run", "--gate"]) == 0 and seen["table"] == Path(gp.GATE_LEDGER)
    assert cli.main(["benchmark", "run", "tiny"]) == 0 and seen["table"] == Path("benchmarks/results.csv")
    for argv in (["benchmark", "run"], ["benchmark", "run", "tiny", "--gate"]):
        assert cli.main(argv) == 2
        assert "give profiles or --gate" in capsys.readouterr().err
    cfg = config.load(preset=gp.GATE_PROFILE, overrides=list(gp.GATE_OVERRIDES))
    assert tuple(cfg.methods) == gp.GATE_METHODS and cfg.runtime.threads == 2


def test_benchmark_run_help_names_the_gate_ledger(capsys):
    """The help text names the ledger a gate run appends to."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["benchmark", "run", "--help"])
    assert exit_info.value.code == 0
    assert gp.GATE_LEDGER in capsys.readouterr().out


def test_checked_in_gate_baseline_rows_come_from_the_gate_ledger():
    """Every promoted baseline row is a gate run recorded in the ledger, value for value, so a band can
    be rebuilt (or widened with a later session's seeds) without the machine that measured it."""
    repo = Path(__file__).resolve().parents[1]
    ledger, base = bm.read_table(repo / gp.GATE_LEDGER), bm.read_table(repo / gp.GATE_BASELINE)
    assert list(ledger.columns) == bm.TABLE_COLUMNS and set(ledger["profile"]) == {gp.GATE_PROFILE}
    assert not ledger.duplicated(["run_id", "method"]).any()
    keys = ["run_id", "method", "device_class", "seed", "train_seed", "a_n"]
    joined = base[keys].merge(ledger[keys], how="left", indicator=True)
    assert (joined["_merge"] == "both").all(), joined[joined["_merge"] != "both"]


def test_run_profiles_labels_rows_with_the_commit_at_the_start(tmp_path, monkeypatch):
    """A gate run takes an hour: a commit landing meanwhile must not label its rows."""
    shas = iter(["before", "after", "after"])
    monkeypatch.setattr(bm, "git_commit", lambda: next(shas))

    def fake_stage_run(cfg, out):
        _runs_csv(out, a_n=50.0)
        for t in (1, 2):
            artifacts.write_stage_log(out, artifacts.stage_name("train", "abd", t), seconds=5.0, images_per_s=[1.0, 3.0])
        bm.git_commit()  # the commit moves while the run trains
        return {}

    monkeypatch.setattr(sequence, "run", fake_stage_run)
    df = bm.run_profiles(["tiny"], tmp_path)
    assert list(df["git_sha"]) == ["before"] and list(df["images_per_s"]) == [2.0]
