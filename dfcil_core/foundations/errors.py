"""User-facing errors: the CLI prints them as one line and exits with code 2."""


class DfcilError(Exception):
    """Bad input (config, data, checkpoint): reported as one line, no traceback."""


def one_line(err: BaseException) -> str:
    """`err`'s message with every unprintable character escaped, so that it prints as the one line the
    contract promises: a key or path echoed from the user may hold a newline or a separator such as
    \\x1e, which str.splitlines breaks on."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in str(err))


class Diverged(DfcilError):
    """A training or inversion loss went non-finite or past its bound: the stage stops and writes
    nothing of its task; the stage adds which method and task, and what to change."""


class StopRequested(Exception):
    """SIGTERM arrived: the stage stopped at a safe point; re-running the same command continues."""
