"""The `dfcil` command: one subcommand per stage, plus `run` (whole sequence) and `report`.

Bad input prints one line `dfcil: error: ...` and exits 2; no traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from dfcil_core import config as config_mod
from dfcil_core.errors import DfcilError, StopRequested

RESULTS_TABLE = "benchmarks/results.csv"  # the scratch results table of every benchmark subcommand

log = logging.getLogger("dfcil")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", default=None,
                   help="params file (default: ./params.yaml when it exists, else the built-in defaults)")
    p.add_argument("--preset", default=None, help="a named preset as the base (see `dfcil presets`)")
    p.add_argument("--set", "-S", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. -S train.epochs=5 (repeatable)")
    p.add_argument("--out", "-o", default="outputs", help="output directory (default: outputs)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dfcil", description="Data-free class-incremental learning (ABD).")
    parser.add_argument("--verbose", "-v", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="split, then synthesize/train every task for every method, then evaluate")
    _common(p)
    p.add_argument("--results", default=None, metavar="S3_URL", help="then append the result tables to S3")
    p = sub.add_parser("split", help="class order and per-task data")
    _common(p)
    for name, helptext in (("synthesize", "train the generator for a task (t >= 2)"),
                           ("train", "train θ(t) for one method")):
        p = sub.add_parser(name, help=helptext)
        _common(p)
        p.add_argument("--method", "-m", required=True)
        p.add_argument("--task", "-t", type=int, required=True)
    p = sub.add_parser("evaluate", help="accuracy matrices, A_N, Ω, forgetting, plots, tables")
    _common(p)
    p.add_argument("--first-task", action="store_true",
                   help="only θ(1)'s task-1 accuracy per method (before later tasks exist): eval/first_task.json")
    p = sub.add_parser("report", help="print the metrics of an evaluated output directory")
    _common(p)
    p = sub.add_parser("config", help="print the resolved config as YAML (a complete params.yaml)")
    _common(p)
    p = sub.add_parser("dvc-yaml", help="print dvc.yaml for the config (stages per task and method)")
    _common(p)
    p.add_argument("--params-file", default="params.yaml")
    p.add_argument("--fan-out", action="store_true",
                   help="instead: a matrix of whole runs over --splits x --seeds plus `dfcil tables`, "
                        "for a folder of its own (e.g. paper/dvc.yaml)")
    p.add_argument("--splits", type=int, nargs="+", default=[5, 10, 20])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    sub.add_parser("presets", help="list the presets")
    b = sub.add_parser("benchmark", help="regression benchmarking: run profiles, compare with a baseline")
    bsub = b.add_subparsers(dest="bench_command", required=True)
    p = bsub.add_parser("run", help="run profiles (presets or params files) and append rows to the table")
    p.add_argument("profiles", nargs="*")
    p.add_argument("--gate", action="store_true",
                   help="the nightly gate's run: its profile with its methods and thread count (then -S)")
    p.add_argument("--set", "-S", dest="overrides", action="append", default=[])
    p.add_argument("--table", default=None,
                   help="results table to append to (default: the checked-in gate ledger "
                        f"benchmarks/gate-runs.csv with --gate, else {RESULTS_TABLE})")
    p.add_argument("--out", "-o", default="outputs/benchmarks")
    p.add_argument("--results", default=None, metavar="S3_URL", help="also append to this S3 results sink")
    p = bsub.add_parser("add", help="append evaluated output directories (e.g. after `dvc exp run`) to the table")
    p.add_argument("outputs", nargs="+", help="output directories holding results/runs.csv")
    p.add_argument("--table", default=RESULTS_TABLE)
    p = bsub.add_parser("compare", help="mean over seeds vs the baseline; exit 1 on a regression")
    p.add_argument("--baseline", required=True)
    p.add_argument("--current", default=RESULTS_TABLE)
    p.add_argument("--run-id", action="append", default=[], help="only these runs of the current table")
    p.add_argument("--report-dir", default="outputs/benchmarks/report")
    p.add_argument("--points", type=float, default=None, help="override the absolute tolerance (points)")
    p.add_argument("--k-std", type=float, default=None, help="override the tolerance in baseline std")
    p.add_argument("--across-devices", action="store_true",
                   help="compare with a baseline from another device class, with a wider band")
    p = bsub.add_parser("spread", help="spread per method over the runs of a table (mean, std, min, max)")
    p.add_argument("--table", default=RESULTS_TABLE)
    p.add_argument("--run-id", action="append", default=[], help="only these runs")
    p = bsub.add_parser("snapshot", help="run a small profile afresh and compare its numbers with the checked-in "
                        "snapshot of this device class (exit 1 when they differ)")
    p.add_argument("--snapshot", default="benchmarks/snapshots/tiny.csv")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--update", action="store_true", help="record this run as the snapshot of this device class")
    p = bsub.add_parser("promote", help="make runs of the current table the new baseline")
    p.add_argument("--current", default=RESULTS_TABLE)
    p.add_argument("--run-id", action="append", required=True)
    p.add_argument("--baseline", required=True)
    p.add_argument("--method", action="append", default=[],
                   help="only these methods (the gate's runs may carry more than the gate compares)")
    p = sub.add_parser("tables", help="Table 1 / Table 3 of the paper from finished runs, beside the paper's values")
    p.add_argument("sources", nargs="+", metavar="SOURCE",
                   help="evaluated output directories, results tables (CSV) or s3:// result sinks")
    p.add_argument("--out", "-o", default="outputs/tables", help="where tables.{md,csv,html} go")
    p = sub.add_parser("publish", help="append this run's result tables to the S3 results sink")
    p.add_argument("--out", "-o", default="outputs")
    p.add_argument("--results", required=True, metavar="S3_URL", help="s3://bucket/prefix")
    p.add_argument("--run-id", default=None)
    return parser


def load_config(args: argparse.Namespace) -> config_mod.Config:
    path = args.config
    if path is None and args.preset is None and Path("params.yaml").is_file():
        path = "params.yaml"
    return config_mod.load(path, args.preset, args.overrides)


def _report(out: Path) -> str:
    from dfcil_core import io

    doc = io.read_json(out / "metrics.json")
    lines = [f"{doc['name']}: {doc['dataset']}, {doc['n_tasks']} tasks, seed {doc['seed']}",
             f"{'method':<15}{'A_N':>8}{'Ω':>8}{'old':>8}{'new':>8}{'forget':>8}"]
    for m, r in doc["methods"].items():
        om = "-" if r["omega"] is None else f"{r['omega']:.1f}"
        lines.append(f"{m:<15}{r['a_n']:>8.1f}{om:>8}{r['old_acc']:>8.1f}{r['new_acc']:>8.1f}{r['forgetting']:>8.1f}")
    for m, d in doc.get("diagnosis", {}).items():
        left_out = d.get("mid_dims_left_out", 0)
        note = f" ({left_out} of {d['feature_dims']} near-constant feature dims left out)" if left_out else ""
        lines.append(f"{m}: MID(real t1, syn t1) {d['mid_real1_syn1']:.2f}, MID(real t1, real t2) "
                     f"{d['mid_real1_real2']:.2f}{note}")
    from dfcil_core.report import story_checks

    checks = story_checks(doc)
    if checks:
        lines.append("the paper's story in this run:")
        lines += [f"  {'ok  ' if ok else 'NOT '} {text}" for text, ok in checks]
    return "\n".join(lines)


def _snapshot(args: argparse.Namespace) -> int:
    import tempfile

    from dfcil_core import benchmarking as bm
    from dfcil_core import stages

    cfg = config_mod.load(None, args.preset, [])
    with tempfile.TemporaryDirectory(prefix="dfcil-snapshot-") as tmp:  # always afresh: never reuse outputs
        stages.run(cfg, Path(tmp))
        current = bm.snapshot_rows(Path(tmp))
    print(current.to_string(index=False))
    path = Path(args.snapshot)
    if args.update:
        bm.update_snapshot(path, current)
        print(f"snapshot {path}: recorded {args.preset} for [{current['device_class'].iloc[0]}]")
        return 0
    snapshot = bm.read_snapshot(path)
    verdict, lines = bm.check_snapshot(current, snapshot)
    for line in lines:
        print(f"  {line}")
    if verdict == "differs":
        print(f"NUMERICS CHANGED against {path}: if intended, record it in the same commit with "
              f"`dfcil benchmark snapshot --update --snapshot {path}` (and re-promote the gate baseline)")
        return 1
    print(f"snapshot: {verdict} ({path})")
    return 0


def _benchmark(args: argparse.Namespace) -> int:
    from dfcil_core import benchmarking as bm

    if args.bench_command == "run":
        if args.gate == bool(args.profiles):
            raise DfcilError("benchmark run: give profiles or --gate, not both or neither")
        profiles, overrides = bm.gate_run(args.overrides) if args.gate else (args.profiles, args.overrides)
        args.table = args.table or (bm.GATE_LEDGER if args.gate else RESULTS_TABLE)
        df = bm.run_profiles(profiles, Path(args.out), overrides, Path(args.table))
        print(df[["run_id", "method", "seed", "train_seed", "a_n", "omega", "wall_seconds"]].to_string(index=False))
        if args.results:
            import io as _io

            from dfcil_core.results_sink import S3ResultsSink

            sink = S3ResultsSink(args.results)
            for run_id, part in df.groupby("run_id"):
                buf = _io.StringIO()
                part.to_csv(buf, index=False)
                sink.put_new(str(run_id), "benchmark.csv", buf.getvalue().encode())
        print(f"appended {len(df)} rows to {args.table}")
        return 0
    if args.bench_command == "add":
        df = bm.rows_from_outputs([Path(o) for o in args.outputs])
        bm.append_rows(Path(args.table), df)
        print(f"appended {len(df)} rows to {args.table}")
        return 0
    if args.bench_command == "snapshot":
        return _snapshot(args)
    source = args.table if args.bench_command == "spread" else args.current
    current = bm.read_table(Path(source))
    if args.run_id:
        current = current[current["run_id"].isin(args.run_id)]
        if current.empty:
            raise DfcilError(f"no rows for run ids {args.run_id} in {source}")
    if args.bench_command == "spread":
        spread = bm.seed_spread(current)
        if "device_class" in spread.columns:  # its "|" separators would split a Markdown cell
            spread["device_class"] = spread["device_class"].astype(str).str.replace("|", "\\|", regex=False)
        print(spread.to_markdown(index=False, floatfmt=".2f"))
        return 0
    if args.bench_command == "promote":
        from dfcil_core import io

        merged, kept = bm.promote(Path(args.baseline), current, args.method)
        with io.atomic_path(args.baseline) as tmp:
            merged.to_csv(tmp, index=False, float_format="%.4f")
        print(f"baseline {args.baseline}: {len(merged) - kept} rows from {sorted(set(current['run_id']))}"
              + (f"; kept {kept} rows of other device classes or profiles" if kept else ""))
        return 0
    tol = dict(bm.DEFAULT_TOLERANCES)
    if args.points is not None or args.k_std is not None:
        tol = {m: bm.Tolerance(args.points if args.points is not None else t.points,
                               args.k_std if args.k_std is not None else t.k_std) for m, t in tol.items()}
    baseline = bm.read_table(Path(args.baseline))
    comp = bm.compare(current, baseline, tol, across_devices=args.across_devices)
    print(f"device: {comp.current_device} (baseline: {'; '.join(comp.baseline_devices)})")
    for note in comp.notes:
        print(f"note: {note}")
    print(comp.table.to_string(index=False, float_format=lambda x: f"{x:.2f}"))
    paths = bm.write_reports(comp, current, baseline, Path(args.report_dir))
    print(f"report: {paths['html']} and {paths['markdown']}")
    if comp.failed:
        print(f"REGRESSION in {len(comp.regressions)} metric(s)", file=sys.stderr)
        return 1
    return 0


def dispatch(args: argparse.Namespace) -> int:
    if args.command == "presets":
        from dfcil_core.presets import PRESETS

        for name in PRESETS:
            print(name)
        return 0
    if args.command == "benchmark":
        return _benchmark(args)
    if args.command == "tables":
        from dfcil_core import tables

        long = tables.build(tables.read_runs(args.sources))
        paths = tables.write(long, args.out)
        print(tables.markdown(long))
        print(f"tables: {paths['markdown']}, {paths['csv']}, {paths['html']}")
        return 0
    out = Path(args.out)
    if args.command == "publish":
        from dfcil_core.results_sink import S3ResultsSink

        run_id = S3ResultsSink(args.results).append_tables(out / "results", args.run_id)
        print(f"published run {run_id} to {args.results}")
        return 0
    if args.command == "report":
        print(_report(out))
        return 0
    cfg = load_config(args)
    if args.command == "config":
        import yaml

        from dfcil_core.dvc_pipeline import explicit_params

        print(yaml.safe_dump(explicit_params(cfg), sort_keys=False), end="")
        return 0
    if args.command == "dvc-yaml":
        from dfcil_core.dvc_pipeline import render, render_fan_out

        if args.fan_out:
            if args.preset is None:
                raise DfcilError("dvc-yaml --fan-out: give the profile as --preset")
            for n in args.splits:  # fail now, not in the middle of the matrix
                config_mod.load(None, args.preset, [*args.overrides, f"data.n_tasks={n}"])
            print(render_fan_out(args.preset, args.overrides, args.splits, args.seeds), end="")
        else:
            print(render(cfg, args.out, args.params_file), end="")
        return 0
    # The stages only now: `report` answers without importing torch (`config` and `dvc-yaml` still do,
    # through the learners that dvc_pipeline reads).
    from dfcil_core import stages
    from dfcil_core.runtime import install_sigterm_handler

    install_sigterm_handler()
    if args.command == "split":
        stages.split(cfg, out)
    elif args.command == "synthesize":
        stages.synthesize(cfg, args.method, args.task, out)
    elif args.command == "train":
        stages.train(cfg, args.method, args.task, out)
    elif args.command == "evaluate" and args.first_task:
        for method, acc in stages.first_task_accuracy(cfg, out).items():
            print(f"{method:<16} task-1 accuracy {acc:.2f}")
    elif args.command == "evaluate":
        stages.evaluate(cfg, out)
        print(_report(out))
    elif args.command == "run":
        sink = None
        if args.results:  # fail fast on a bad URL, before hours of training
            from dfcil_core.results_sink import S3ResultsSink

            sink = S3ResultsSink(args.results)
        stages.run(cfg, out)
        print(_report(out))
        print(f"metrics: {out / 'metrics.json'}\ntables: {out / 'results'}\nplots: {out / 'eval'}")
        if sink is not None:
            print(f"published run {sink.append_tables(out / 'results')} to {args.results}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Our logger at INFO; third-party libraries (botocore, ...) only at WARNING.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    log.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        return dispatch(args)
    except DfcilError as err:
        print(f"dfcil: error: {err}", file=sys.stderr)
        return 2
    except StopRequested as err:
        print(f"dfcil: stopped by SIGTERM: {err}; re-run the same command to resume", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("dfcil: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
