"""User-facing errors: the CLI prints them as one line and exits with code 2."""


class DfcilError(Exception):
    """Bad input (config, data, checkpoint): reported as one line, no traceback."""


class Diverged(DfcilError):
    """A training or inversion loss went non-finite or past its bound: the stage stops and writes
    nothing of its task; the stage adds which method and task, and what to change."""


class StopRequested(Exception):
    """SIGTERM arrived: the stage stopped at a safe point; re-running the same command continues."""
