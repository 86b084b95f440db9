"""One self-contained HTML page per evaluated output directory (`<out>/report.html`): the results
table, the curves, the Section 5 diagnosis and the sample grids, every plot embedded as base64 PNG."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from dfcil_core.foundations import atomic_io

REPORT_NAME = "report.html"
_SECTIONS = [  # (heading, glob patterns relative to the output directory)
    ("Accuracy over the tasks", ["eval/accuracy_per_task.png", "eval/omega_per_task.png"]),
    ("Accuracy matrices A[i][n]", ["eval/*/accuracy_matrix.png"]),
    ("Training losses (total and weighted terms)", ["eval/*/training_losses.png"]),
    ("Feature diagnosis after task 2 (Section 5)", ["eval/mid.png", "eval/mmd.png"]),
    ("What the generators dream", ["generators/*/samples_task_*.png"]),
    ("Inversion losses", ["generators/*/losses_task_*.png"]),
]


def story_checks(doc: dict[str, Any]) -> list[tuple[str, bool]]:
    """The paper's story as checks on one run (metrics.json): (statement with the numbers, holds?).

    Only statements whose methods ran are made. Thresholds are the main job's promise (README, "What you should see"):
    Base forgets the old classes (old-class accuracy <= 5), ABD keeps >= 20 points of them and beats
    DeepInversion, LwF and Base in A_N, the upper bound is highest, Omega <= 100 (above it is noise),
    and DeepInversion's synthetic/real feature gap (MID) is above ABD's (Section 5)."""
    m, diag = doc["methods"], doc.get("diagnosis") or {}
    checks: list[tuple[str, bool]] = []
    if "base" in m:
        checks.append((f"Base forgets the old classes: old-class accuracy {m['base']['old_acc']:.1f} <= 5",
                       m["base"]["old_acc"] <= 5.0))
    if "abd" in m:
        checks.append((f"ABD keeps the old classes: old-class accuracy {m['abd']['old_acc']:.1f} >= 20",
                       m["abd"]["old_acc"] >= 20.0))
        for other in ("deepinversion", "lwf", "base"):
            if other in m:
                checks.append((f"A_N: ABD {m['abd']['a_n']:.1f} > {other} {m[other]['a_n']:.1f}",
                               m["abd"]["a_n"] > m[other]["a_n"]))
    if "upper_bound" in m and len(m) > 1:
        best = max((k for k in m if k != "upper_bound"), key=lambda k: m[k]["a_n"])
        checks.append((f"A_N: upper bound {m['upper_bound']['a_n']:.1f} is highest (next: {best} {m[best]['a_n']:.1f})",
                       m["upper_bound"]["a_n"] > m[best]["a_n"]))
        worst = max(m, key=lambda k: m[k]["omega"])
        checks.append((f"Ω <= 100 for every method (largest: {worst} {m[worst]['omega']:.1f})",
                       m[worst]["omega"] <= 100.0 + 1e-9))
    if "abd" in diag and "deepinversion" in diag:
        di, abd = diag["deepinversion"]["mid_real1_syn1"], diag["abd"]["mid_real1_syn1"]
        checks.append((f"MID(real t1, synthetic t1): DeepInversion {di:.2f} > ABD {abd:.2f}", di > abd))
    return checks


def _fmt(v: Any, digits: int = 1) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def figure_html(path: Path, caption: str) -> str:
    """A PNG embedded in a page as base64 (pages stay one self-contained file), with its caption."""
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return (f"<figure><img alt='{html.escape(Path(path).stem)}' src='data:image/png;base64,{data}'/>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def html_page(root: str | Path) -> str:
    """The page for an output directory holding metrics.json and the plots `evaluate` wrote."""
    root = Path(root)
    doc = atomic_io.read_json(root / "metrics.json")
    results = _table(["method", "A_N", "Ω", "old-task acc", "new-task acc", "avg incremental acc", "forgetting"],
                     [[m, _fmt(r["a_n"]), _fmt(r["omega"]), _fmt(r["old_acc"]), _fmt(r["new_acc"]),
                       _fmt(r.get("avg_inc_acc")), _fmt(r["forgetting"])] for m, r in doc["methods"].items()])
    parts = [f"<h1>dfcil {html.escape(doc['name'])}: {html.escape(doc['dataset'])}, {doc['n_tasks']} tasks, "
             f"class order {doc['seed']}</h1>",
             "<p>Accuracies in %. A_N: accuracy over all classes after the last task; Ω: accuracy over time "
             "relative to the upper bound (Eq. 17); old/new: after the last task, on the earlier tasks' and "
             "the last task's test data.</p>", results]
    checks = story_checks(doc)
    if checks:
        parts.append("<h2>The paper's story in this run</h2><ul>" + "".join(
            f"<li>{'✓' if ok else '✗'} {html.escape(text)}</li>" for text, ok in checks) + "</ul>")
    if doc.get("diagnosis"):
        parts.append("<h2>Synthetic vs real features</h2>")
        parts.append(_table(
            ["method", "MID real t1 / synthetic t1", "MID real t1 / real t2", "MMD² real t1 / synthetic t1",
             "MMD² real t1 / real t2", "dims left out of MID"],
            [[m, _fmt(d["mid_real1_syn1"], 2), _fmt(d["mid_real1_real2"], 2), _fmt(d["mmd_real1_syn1"], 3),
              _fmt(d["mmd_real1_real2"], 3), f"{d['mid_dims_left_out']} of {d['feature_dims']}"]
             for m, d in doc["diagnosis"].items()]))
    for heading, patterns in _SECTIONS:
        files = [p for pat in patterns for p in sorted(root.glob(pat))]
        if files:
            parts.append(f"<h2>{html.escape(heading)}</h2>" + "".join(figure_html(p, str(p.relative_to(root))) for p in files))
    style = ("body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}figure{display:inline-block}"
             "img{max-width:100%}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>dfcil {html.escape(doc['name'])}</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")


def write(root: str | Path) -> Path:
    path = Path(root) / REPORT_NAME
    atomic_io.write_bytes(path, html_page(root).encode())
    return path
