"""The code a stage runs, derived from the imports of its module (not a hand list): the DVC stages
depend on exactly these files, so editing any of them re-runs the stage and editing anything else
does not.

Every import of a `dfcil_core` module counts, at the top of a file or inside a function, and so does
every package `__init__.py` on the way. The `dfcil` command's own two files count too (they parse
the stage's arguments), without their imports, which serve the other subcommands.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

PACKAGE = "dfcil_core"
PACKAGE_DIR = Path(__file__).resolve().parents[1]
COMMAND_MODULES = (f"{PACKAGE}.__main__", f"{PACKAGE}.drivers.cli")
STAGE_MODULES = {"split": f"{PACKAGE}.run.split_stage", "synthesize": f"{PACKAGE}.run.synthesize_stage",
                 "train": f"{PACKAGE}.run.train_stage", "coreset": f"{PACKAGE}.run.coreset_stage",
                 "evaluate": f"{PACKAGE}.run.evaluate_stage"}


def module_file(module: str) -> Path | None:
    """The file of a `dfcil_core` module (a package's `__init__.py`), or None when it is no module."""
    path = PACKAGE_DIR.parent.joinpath(*module.split("."))
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


@cache
def imported_modules(module: str) -> frozenset[str]:
    """The `dfcil_core` modules that `module` imports anywhere in its file."""
    path = module_file(module)
    if path is None:
        raise ValueError(f"no module {module}")
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == PACKAGE)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == PACKAGE:
            if node.level:
                raise ValueError(f"{path}: relative import; dfcil_core imports absolutely")
            found.add(node.module)
            # `from dfcil_core.method import losses` imports the module losses
            found.update(f"{node.module}.{a.name}" for a in node.names if module_file(f"{node.module}.{a.name}"))
    return frozenset(found)


def with_packages(module: str) -> list[str]:
    """`module` and every package above it (importing a module runs their `__init__.py` first)."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def closure(module: str) -> list[str]:
    """Every `dfcil_core` module that importing `module` and running it may execute, sorted."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        for m in with_packages(todo.pop()):
            if m not in seen:
                seen.add(m)
                todo.extend(imported_modules(m))
    return sorted(seen)


def relative_file(module: str) -> str:
    return module_file(module).relative_to(PACKAGE_DIR.parent).as_posix()


def module_code(module: str) -> list[str]:
    """The files (relative to the repository) that a `dfcil` command running `module` executes."""
    command = {m for c in COMMAND_MODULES for m in with_packages(c)}
    return sorted(relative_file(m) for m in set(closure(module)) | command)


def stage_code(stage: str) -> list[str]:
    """The files that a stage's `dfcil` command runs."""
    return module_code(STAGE_MODULES[stage])
