"""The two ways a drill ends without passing, and bad usage.

Every error carries one sentence meant for a human; the CLI prints it and never a traceback.
"""

from restoredrill.redaction import redact


class RestoreDrillError(Exception):
    """Base class: `str(error)` is one clear sentence, already redacted."""

    def __init__(self, message: str) -> None:
        # Redacted where it is made: the sentence travels into test reports, logs and evidence.
        super().__init__(redact(message))


class ConfigError(RestoreDrillError):
    """The configuration or the command line is wrong (exit code 2)."""


class BackupDefect(RestoreDrillError):
    """The backup itself is bad: missing, stale, corrupt, unrestorable (verdict `failed`)."""


class CouldNotVerify(RestoreDrillError):
    """The drill could not run: credentials, endpoint, missing binary, target never came up."""
