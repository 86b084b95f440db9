"""Submit the compiled pipeline with `kfp run submit` (alias of `kfp run create`), or create a
recurring run with `kfp recurring-run create`. Prints the command; `--dry-run` only prints it.

    python -m pipelines.submit run --endpoint http://kfp.example --experiment dfcil \
        --package pipelines/compiled/dfcil.yaml config_yaml="$(cat params.yaml)"
"""

import argparse
import shlex
import subprocess
import sys
from datetime import UTC, datetime


def run_command(endpoint: str | None, experiment: str, package: str, run_name: str | None,
                params: list[str]) -> list[str]:
    cmd = ["kfp"] + (["--endpoint", endpoint] if endpoint else [])
    name = run_name or f"{experiment}-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    return cmd + ["run", "submit", "--experiment-name", experiment, "--run-name", name,
                  "--package-file", package, *params]


def recurring_command(endpoint: str | None, experiment: str, package: str, job_name: str, cron: str,
                      params: list[str]) -> list[str]:
    """Cron schedule, one run at a time, no catch-up of missed runs."""
    cmd = ["kfp"] + (["--endpoint", endpoint] if endpoint else [])
    return cmd + ["recurring-run", "create", "--experiment-name", experiment, "--job-name", job_name,
                  "--pipeline-package-path", package, "--cron-expression", cron, "--max-concurrency", "1",
                  "--no-catchup", "--enable-caching", *params]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    for what in ("run", "recurring"):
        s = sub.add_parser(what)
        s.add_argument("--endpoint", default=None, help="KFP API endpoint (else kube config)")
        s.add_argument("--experiment", default="dfcil")
        s.add_argument("--package", default="pipelines/compiled/dfcil.yaml")
        s.add_argument("--dry-run", action="store_true")
        s.add_argument("params", nargs="*", metavar="KEY=VALUE", help="pipeline parameters")
        if what == "run":
            s.add_argument("--run-name", default=None)
        else:
            s.add_argument("--job-name", default="dfcil-benchmark")
            s.add_argument("--cron", default="0 0 3 * * *", help="KFP cron (with seconds): daily 03:00")
    a = p.parse_args(argv)
    if a.what == "run":
        cmd = run_command(a.endpoint, a.experiment, a.package, a.run_name, a.params)
    else:
        cmd = recurring_command(a.endpoint, a.experiment, a.package, a.job_name, a.cron, a.params)
    print(shlex.join(cmd))
    if a.dry_run:
        return 0
    return subprocess.call(cmd)


if __name__ == "__main__":
    sys.exit(main())
