"""The `dfcil` program (`python -m dfcil_core`): the run-side subcommands of the drivers' CLI plus
the lab's `benchmark` and `tables`. It sits above every layer; nothing imports it."""

from __future__ import annotations

import sys

from dfcil_core.drivers import cli
from dfcil_core.lab import lab_commands


def main(argv: list[str] | None = None) -> int:
    return cli.main(argv, extend=lab_commands.add_commands)


if __name__ == "__main__":
    sys.exit(main())
