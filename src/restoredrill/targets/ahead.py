"""A local instance's initdb run ahead, in a background thread, while the drill fetches its backup.

initdb is ~0.5 s of a small drill and waits for nothing the fetch produces; the server itself is started
later by the drill's own thread (proc.spawn ties a server to the thread that started it).
"""

from __future__ import annotations

import threading
from pathlib import Path

from restoredrill.targets.local import LocalInstance


class InitializedAhead:
    def __init__(self, instance: LocalInstance, database: str | None = None) -> None:
        self.instance = instance
        self.database = database
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._initialize, name="initdb-ahead", daemon=True)
        self._thread.start()

    def _initialize(self) -> None:
        try:
            self.instance.initialize(self.database)
        except BaseException as exc:  # raised again in the drill's thread by take()
            self._error = exc

    def take(self, bindir: Path | None) -> LocalInstance | None:
        """The instance, initialized, when it runs the binaries the drill chose; else None (it is removed)."""
        self._thread.join()
        if bindir is None or self.instance.bindir != bindir:
            self.discard()
            return None
        if self._error is not None:
            self.instance.destroy()  # what initdb left behind
            raise self._error
        return self.instance

    def discard(self) -> None:
        """Wait for initdb (it has its own timeout), then remove what it made."""
        self._thread.join()
        self.instance.destroy()
