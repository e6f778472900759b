"""Folders the user names (reports, workdir, demo): made and proven writable before anything starts.

A folder that is a file, sits under /proc, or cannot be written is a usage error: one sentence and exit 2
at the start, not an unexpected error (or a failed drill) half-way through a run.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from restoredrill.errors import ConfigError


def writable_folder(path: Path, what: str) -> Path:
    """`path`, created if missing and proven writable, or a ConfigError naming `what` and why."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{what} {path} is a file, not a folder: name a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass  # writing is the only reliable test (read-only mounts, /proc, ACLs)
    except OSError as exc:
        raise ConfigError(f"{what} {path} cannot be created or written: {exc.strerror or exc}") from None
    return path
