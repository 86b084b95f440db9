"""User-facing errors: the CLI prints them as one line and exits with code 2."""


class DfcilError(Exception):
    """Bad input (config, data, checkpoint): reported as one line, no traceback."""


class StopRequested(Exception):
    """SIGTERM arrived: the stage stopped at a safe point; re-running the same command continues."""
