"""The `dfcil` command's run-side subcommands: one per stage (split, synthesize, train, coreset,
evaluate), `run` (the whole sequence), `report`,
`config`, `dvc-yaml`, `presets`, `methods` and `publish`. The lab adds `benchmark` and `tables`
(`dfcil_core.__main__` puts the two together).

Bad input prints one line `dfcil: error: ...` and exits 2; no traceback. `report`, `config`,
`dvc-yaml`, `presets` and `methods` import no torch.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from dfcil_core.foundations import config as config_mod
from dfcil_core.foundations.errors import DfcilError, StopRequested, one_line
from dfcil_core.foundations.provenance import git_commit

log = logging.getLogger("dfcil")


def add_config_arguments(p: argparse.ArgumentParser, out: bool = True) -> None:
    p.add_argument("--config", "-c", default=None,
                   help="params file (default: ./params.yaml when it exists, else the built-in defaults)")
    p.add_argument("--preset", default=None, help="a named preset as the base (see `dfcil presets`)")
    p.add_argument("--set", "-S", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. -S train.epochs=5 (repeatable)")
    if out:
        p.add_argument("--out", "-o", default="outputs", help="output directory (default: outputs)")


def load_config(args: argparse.Namespace) -> config_mod.Config:
    path = args.config
    if path is None and args.preset is None and Path("params.yaml").is_file():
        path = "params.yaml"
    return config_mod.load(path, args.preset, args.overrides)


def report_text(out: Path) -> str:
    """The metrics of an evaluated output directory, the diagnosis and the paper's story checks."""
    from dfcil_core.foundations import atomic_io
    from dfcil_core.run.report import story_checks

    doc = atomic_io.read_json(out / "metrics.json")
    lines = [f"{doc['name']}: {doc['dataset']}, {doc['n_tasks']} tasks, seed {doc['seed']}",
             f"{'method':<15}{'A_N':>8}{'Ω':>8}{'old':>8}{'new':>8}{'forget':>8}"]
    for m, r in doc["methods"].items():
        om = "-" if r["omega"] is None else f"{r['omega']:.1f}"
        lines.append(f"{m:<15}{r['a_n']:>8.1f}{om:>8}{r['old_acc']:>8.1f}{r['new_acc']:>8.1f}{r['forgetting']:>8.1f}")
    for m, d in doc.get("diagnosis", {}).items():
        left_out = d["mid_dims_left_out"]
        note = f" ({left_out} of {d['feature_dims']} near-constant feature dims left out)" if left_out else ""
        lines.append(f"{m}: MID(real t1, syn t1) {d['mid_real1_syn1']:.2f}, MID(real t1, real t2) "
                     f"{d['mid_real1_real2']:.2f}{note}")
    checks = story_checks(doc)
    if checks:
        lines.append("the paper's story in this run:")
        lines += [f"  {'ok  ' if ok else 'NOT '} {text}" for text, ok in checks]
    return "\n".join(lines)


# --- handlers --------------------------------------------------------------------------------


def _stage(args: argparse.Namespace) -> int:
    """split / synthesize / train / evaluate / run: the stage functions (torch is imported here)."""
    cfg = load_config(args)
    out = Path(args.out)
    from dfcil_core.method.runtime import SigtermFlag

    SigtermFlag.install()
    if args.command == "split":
        from dfcil_core.run.split_stage import split

        split(cfg, out)
    elif args.command == "synthesize":
        from dfcil_core.run.synthesize_stage import synthesize

        synthesize(cfg, args.method, args.task, out)
    elif args.command == "train":
        from dfcil_core.run.train_stage import train

        train(cfg, args.method, args.task, out)
    elif args.command == "coreset":
        from dfcil_core.run.coreset_stage import select_coreset

        select_coreset(cfg, args.method, args.task, out)
    elif args.command == "evaluate" and args.first_task:
        from dfcil_core.run.evaluate_stage import first_task_accuracy

        for method, acc in first_task_accuracy(cfg, out).items():
            print(f"{method:<16} task-1 accuracy {acc:.2f}")
    elif args.command == "evaluate":
        from dfcil_core.run.evaluate_stage import evaluate

        evaluate(cfg, out)
        print(report_text(out))
    else:  # run
        sink = None
        if args.results:  # fail fast on a bad URL, before hours of training
            from dfcil_core.drivers.results_sink import S3ResultsSink

            sink = S3ResultsSink(args.results)
        from dfcil_core.run.sequence import run

        run(cfg, out)
        print(report_text(out))
        print(f"metrics: {out / 'metrics.json'}\ntables: {out / 'results'}\nplots: {out / 'eval'}")
        if sink is not None:
            print(f"published run {sink.append_tables(out / 'results')} to {args.results}")
    return 0


def _report(args: argparse.Namespace) -> int:
    print(report_text(Path(args.out)))
    return 0


def _config(args: argparse.Namespace) -> int:
    import yaml

    print(yaml.safe_dump(config_mod.explicit_params(load_config(args)), sort_keys=False), end="")
    return 0


def _dvc_yaml(args: argparse.Namespace) -> int:
    from dfcil_core.drivers.dvc_render import render, render_fan_out

    cfg = load_config(args)
    if args.fan_out:
        if args.preset is None:
            raise DfcilError("dvc-yaml --fan-out: give the profile as --preset")
        for n in args.splits:  # fail now, not in the middle of the matrix
            config_mod.load(None, args.preset, [*args.overrides, f"data.n_tasks={n}"])
        print(render_fan_out(args.preset, args.overrides, args.splits, args.seeds), end="")
    else:
        print(render(cfg, args.out, args.params_file), end="")
    return 0


def _presets(_args: argparse.Namespace) -> int:
    from dfcil_core.foundations.presets import PRESETS

    for name in PRESETS:
        print(name)
    return 0


def _methods(_args: argparse.Namespace) -> int:
    """The method registry as a table: what each key runs, after which paper, and what varies it."""
    from dfcil_core.foundations.registry import METHODS

    print(f"{'key':<14}{'paper':<17}{'task 1':<10}{'replays':<12}switches")
    for key, m in METHODS.items():
        first = "shared" if m.shares_first_task else "own"
        print(f"{key:<14}{m.name:<17}{first:<10}{m.replay:<12}{m.switches or '-'}\n{'':<14}{m.equations}")
    return 0


def _publish(args: argparse.Namespace) -> int:
    from dfcil_core.drivers.results_sink import S3ResultsSink

    run_id = S3ResultsSink(args.results).append_tables(Path(args.out) / "results", args.run_id)
    print(f"published run {run_id} to {args.results}")
    return 0


# --- the parser ------------------------------------------------------------------------------


def build_parser(extend: Callable[[argparse._SubParsersAction], None] | None = None) -> argparse.ArgumentParser:
    """The run-side subcommands; `extend` adds more (the lab's) to the same subparsers."""
    parser = argparse.ArgumentParser(prog="dfcil", description="Data-free class-incremental learning (ABD).")
    parser.add_argument("--verbose", "-v", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="split, then synthesize/train every task for every method, then evaluate")
    add_config_arguments(p)
    p.add_argument("--results", default=None, metavar="S3_URL", help="then append the result tables to S3")
    p.set_defaults(handler=_stage)
    p = sub.add_parser("split", help="class order and per-task data")
    add_config_arguments(p)
    p.set_defaults(handler=_stage)
    for name, helptext in (("synthesize", "train the generator for a task (t >= 2)"),
                           ("train", "train θ(t) for one method"),
                           ("coreset", "the coreset a replay method keeps after a task")):
        p = sub.add_parser(name, help=helptext)
        add_config_arguments(p)
        p.add_argument("--method", "-m", required=True)
        p.add_argument("--task", "-t", type=int, required=True)
        p.set_defaults(handler=_stage)
    p = sub.add_parser("evaluate", help="accuracy matrices, A_N, Ω, forgetting, plots, tables")
    add_config_arguments(p)
    p.add_argument("--first-task", action="store_true",
                   help="only θ(1)'s task-1 accuracy per method (before later tasks exist): eval/first_task.json")
    p.set_defaults(handler=_stage)
    p = sub.add_parser("report", help="print the metrics of an evaluated output directory")
    p.add_argument("--out", "-o", default="outputs", help="output directory (default: outputs)")
    p.set_defaults(handler=_report)
    p = sub.add_parser("config", help="print the resolved config as YAML (a complete params.yaml)")
    add_config_arguments(p, out=False)
    p.set_defaults(handler=_config)
    p = sub.add_parser("dvc-yaml", help="print dvc.yaml for the config (stages per task and method)")
    add_config_arguments(p)
    p.add_argument("--params-file", default="params.yaml")
    p.add_argument("--fan-out", action="store_true",
                   help="instead: a matrix of whole runs over --splits x --seeds plus `dfcil tables`, "
                        "for a folder of its own (e.g. paper/dvc.yaml)")
    p.add_argument("--splits", type=int, nargs="+", default=[5, 10, 20])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.set_defaults(handler=_dvc_yaml)
    sub.add_parser("presets", help="list the presets").set_defaults(handler=_presets)
    sub.add_parser("methods", help="list the methods: paper name, equations, shared task 1, replay, switches"
                   ).set_defaults(handler=_methods)
    p = sub.add_parser("publish", help="append this run's result tables to the S3 results sink")
    p.add_argument("--out", "-o", default="outputs")
    p.add_argument("--results", required=True, metavar="S3_URL", help="s3://bucket/prefix")
    p.add_argument("--run-id", default=None)
    p.set_defaults(handler=_publish)
    if extend is not None:
        extend(sub)
    return parser


def main(argv: list[str] | None = None,
         extend: Callable[[argparse._SubParsersAction], None] | None = None) -> int:
    args = build_parser(extend).parse_args(argv)
    # Our logger at INFO; third-party libraries (botocore, ...) only at WARNING.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    log.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    git_commit()  # pinned at start: the stage records name the code this process loaded
    try:
        return args.handler(args)
    except DfcilError as err:
        print(f"dfcil: error: {one_line(err)}", file=sys.stderr)
        return 2
    except StopRequested as err:
        print(f"dfcil: stopped by SIGTERM: {err}; re-run the same command to resume", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("dfcil: interrupted", file=sys.stderr)
        return 130
