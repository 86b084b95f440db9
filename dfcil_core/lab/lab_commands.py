"""The lab's subcommands of `dfcil`: `benchmark` (the regression gate, the numerics snapshot,
throughput) and `tables` (the paper's tables). Every import happens inside a handler: the stage
commands of the same program must not pay for pandas or the gate."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dfcil_core.lab.gate_protocol import GATE_LEDGER, RESULTS_TABLE


def add_commands(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser("benchmark", help="regression benchmarking: run profiles, compare with a baseline")
    b.set_defaults(handler=_benchmark)
    bsub = b.add_subparsers(dest="bench_command", required=True)
    p = bsub.add_parser("run", help="run profiles (presets or params files) and append rows to the table")
    p.add_argument("profiles", nargs="*")
    p.add_argument("--gate", action="store_true",
                   help="the nightly gate's run: its profile with its methods and thread count (then -S)")
    p.add_argument("--set", "-S", dest="overrides", action="append", default=[])
    p.add_argument("--table", default=None,
                   help=f"results table to append to (default: the checked-in gate ledger {GATE_LEDGER} with "
                        f"--gate, else {RESULTS_TABLE})")
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
    p = bsub.add_parser("throughput", help="seconds per step of the CE, ABD and inversion steps, ours beside "
                        "a plain eager path (JSON + a printed table)")
    p.add_argument("--tiny", action="store_true", help="2 timed steps of batch 16 (CI)")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--shape-of", metavar="PRESET", default=None,
                   help="the steps of this preset's dataset, image size, network and batch size "
                        "(default: CIFAR-100's ResNet-32, batch 128)")
    p.add_argument("--device", default="auto")
    p.add_argument("--compile", action="store_true", help="torch.compile the trunk")
    p.add_argument("--compile-mode", default="default", help="default | reduce-overhead (CUDA graphs) | ...")
    p.add_argument("--amp", action="store_true", help="ours with bf16 autocast (CUDA)")
    p.add_argument("--profile", default=None, help="also time a whole `dfcil run` of this preset")
    p.add_argument("--replay", action="store_true",
                   help="also the replay comparisons' steps beside Base's on the same batch (ratios)")
    p.add_argument("--rounds", type=int, default=3,
                   help="with --replay: pairs of (Base, method) timings per method, median taken (--tiny: 1)")
    p.add_argument("--out", default="outputs/bench/throughput.json")
    p = sub.add_parser("tables", help="Table 1 / Table 3 of the paper from finished runs, beside the paper's values")
    p.add_argument("sources", nargs="+", metavar="SOURCE",
                   help="evaluated output directories, results tables (CSV) or s3:// result sinks")
    p.add_argument("--out", "-o", default="outputs/tables", help="where tables.{md,csv,html} go")
    p.set_defaults(handler=_tables)


def _tables(args: argparse.Namespace) -> int:
    from dfcil_core.lab import paper_tables

    long = paper_tables.build(paper_tables.read_runs(args.sources))
    paths = paper_tables.write(long, args.out)
    print(paper_tables.markdown(long))
    print(f"tables: {paths['markdown']}, {paths['csv']}, {paths['html']}")
    return 0


def _snapshot(args: argparse.Namespace) -> int:
    from dfcil_core.foundations import config as config_mod
    from dfcil_core.lab import numerics_snapshot as ns

    current = ns.fresh_snapshot(config_mod.load(None, args.preset, []))
    print(current.to_string(index=False))
    path = Path(args.snapshot)
    if args.update:
        ns.update_snapshot(path, current)
        print(f"snapshot {path}: recorded {args.preset} for [{current['device_class'].iloc[0]}]")
        return 0
    verdict, lines = ns.check_snapshot(current, ns.read_snapshot(path))
    for line in lines:
        print(f"  {line}")
    if verdict == "differs":
        print(f"NUMERICS CHANGED against {path}: if intended, record it in the same commit with "
              f"`dfcil benchmark snapshot --update --snapshot {path}` (and re-promote the gate baseline)")
        return 1
    print(f"snapshot: {verdict} ({path})")
    return 0


def _throughput(args: argparse.Namespace) -> int:
    import tempfile

    from dfcil_core.foundations import atomic_io
    from dfcil_core.foundations import config as config_mod
    from dfcil_core.lab.throughput import preset_shape, run_benchmark, shaped_config, time_run

    shape, bs = preset_shape(args.shape_of) if args.shape_of else ({}, 128)
    steps, warmup, bs = (2, 1, 16) if args.tiny else (args.steps, args.warmup, bs)
    result = run_benchmark(steps, warmup, bs, args.device, args.compile,
                           {"compile_mode": args.compile_mode, "amp": args.amp}, shape)
    if args.profile:
        cfg = config_mod.load(preset=args.profile, overrides=[f"runtime.device={args.device}", "runtime.progress=false"])
        with tempfile.TemporaryDirectory() as tmp:
            timing = time_run(cfg, Path(tmp))
        result["profile"] = {"name": args.profile, "wall_seconds": timing["wall_seconds"],
                             "stage_seconds": timing["stage_seconds"]}
    rt = result["runtime"]
    print(f"device: {result['device']} | {args.shape_of or 'cifar100'} | torch {result['torch']} | "
          f"threads {result['threads']} | batch {bs} | ours: amp={rt['amp']} channels_last={rt['channels_last']} "
          f"compile={rt['compile']} ({rt['compile_mode']})")
    print(f"{'step':<16}{'eager s/step':>14}{'ours s/step':>13}{'ours img/s':>12}{'speedup':>9}")
    for k, v in result["optimised"].items():
        e = result["eager_baseline"][k]["seconds_per_step"]
        print(f"{k:<16}{e:>14.3f}{v['seconds_per_step']:>13.3f}{v['images_per_s']:>12.0f}{result['speedup'][k]:>8.2f}x")
    if "profile" in result:
        print(f"profile {args.profile}: {result['profile']['wall_seconds']:.1f} s wall")
    if args.replay:
        from dfcil_core.lab.throughput import replay_steps

        cfg = config_mod.from_dict(shaped_config(shape, bs, {**rt, "progress": False}))
        result["replay_steps"] = replay_steps(cfg, steps, warmup, rounds=1 if args.tiny else args.rounds)
        base = result["replay_steps"]["base_step"]["seconds_per_step"]
        rounds = result["replay_steps"]["ratio_rounds"]
        print(f"replay comparisons, batch {bs} (ours; median of each method's pairs with Base, then every pair): "
              f"Base {base:.3f} s/step; " + ", ".join(
                  f"{m} {r:.2f}x ({'/'.join(f'{v:.2f}' for v in rounds[m])})"
                  for m, r in result["replay_steps"]["ratio_to_base"].items()))
        from dfcil_core.lab.throughput import teacher_forward_costs

        tc = result["teacher_forward"] = teacher_forward_costs(cfg, steps, warmup)
        print(f"teacher forward, batch {bs}: {tc['teacher']:.3f} s, in bf16 {tc['teacher_bf16']:.3f} s (not used; "
              f"logits off by {tc['bf16_max_rel_dev']:.1e} of their largest); CE step + forward / CE step: "
              f"{tc['kd_ratio']:.2f}x, with the bf16 forward {tc['kd_ratio_bf16']:.2f}x")
    atomic_io.write_json(args.out, result)
    print(f"written: {args.out}")
    return 0


def _benchmark(args: argparse.Namespace) -> int:
    if args.bench_command == "snapshot":
        return _snapshot(args)
    if args.bench_command == "throughput":
        return _throughput(args)
    from dfcil_core.foundations import atomic_io
    from dfcil_core.foundations.errors import DfcilError
    from dfcil_core.lab import gate
    from dfcil_core.lab.gate_protocol import gate_run

    if args.bench_command == "run":
        if args.gate == bool(args.profiles):
            raise DfcilError("benchmark run: give profiles or --gate, not both or neither")
        profiles, overrides = gate_run(args.overrides) if args.gate else (args.profiles, args.overrides)
        args.table = args.table or (GATE_LEDGER if args.gate else RESULTS_TABLE)
        df = gate.run_profiles(profiles, Path(args.out), overrides, Path(args.table))
        print(df[["run_id", "method", "seed", "train_seed", "a_n", "omega", "wall_seconds"]].to_string(index=False))
        if args.results:
            from dfcil_core.drivers.results_sink import S3ResultsSink

            sink = S3ResultsSink(args.results)
            for run_id, part in df.groupby("run_id"):
                sink.put_new(str(run_id), "benchmark.csv", part.to_csv(index=False).encode())
        print(f"appended {len(df)} rows to {args.table}")
        return 0
    if args.bench_command == "add":
        df = gate.rows_from_outputs([Path(o) for o in args.outputs])
        gate.append_rows(Path(args.table), df)
        print(f"appended {len(df)} rows to {args.table}")
        return 0
    source = args.table if args.bench_command == "spread" else args.current
    current = gate.read_table(Path(source))
    if args.run_id:
        current = current[current["run_id"].isin(args.run_id)]
        if current.empty:
            raise DfcilError(f"no rows for run ids {args.run_id} in {source}")
    if args.bench_command == "spread":
        spread = gate.seed_spread(current)
        spread["device_class"] = spread["device_class"].astype(str).str.replace("|", "\\|", regex=False)  # Markdown
        print(spread.to_markdown(index=False, floatfmt=".2f"))
        return 0
    if args.bench_command == "promote":
        merged, kept = gate.promote(Path(args.baseline), current, args.method)
        with atomic_io.atomic_path(args.baseline) as tmp:
            merged.to_csv(tmp, index=False, float_format="%.4f")
        print(f"baseline {args.baseline}: {len(merged) - kept} rows from {sorted(set(current['run_id']))}"
              + (f"; kept {kept} rows of other device classes or profiles" if kept else ""))
        return 0
    tol = dict(gate.DEFAULT_TOLERANCES)
    if args.points is not None or args.k_std is not None:
        tol = {m: gate.Tolerance(args.points if args.points is not None else t.points,
                                 args.k_std if args.k_std is not None else t.k_std) for m, t in tol.items()}
    baseline = gate.read_table(Path(args.baseline))
    comp = gate.compare(current, baseline, tol, across_devices=args.across_devices)
    print(f"device: {comp.current_device} (baseline: {'; '.join(comp.baseline_devices)})")
    for note in comp.notes:
        print(f"note: {note}")
    print(comp.table.to_string(index=False, float_format=lambda x: f"{x:.2f}"))
    paths = gate.write_reports(comp, current, baseline, Path(args.report_dir))
    print(f"report: {paths['html']} and {paths['markdown']}")
    if comp.failed:
        print(f"REGRESSION in {len(comp.regressions)} metric(s)", file=sys.stderr)
        return 1
    return 0
