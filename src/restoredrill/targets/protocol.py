"""What a drill needs of the server it restored into, whatever kind it is.

`Target` is what every target offers: a local instance (local.py), a container (container.py), a copy
recovered by pgBackRest on the host or in a container (recovered.py), and the temporary RDS instance
(layers/rds.py). The layers hold their target through these protocols, so a new kind of target is a new
class here and a new choice in choice.py, not a change to a layer. The two narrower protocols name what
one layer needs on top: an empty server to load a dump into, or a data directory to recover.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from restoredrill.targets.connection import Connection

if TYPE_CHECKING:  # recovered.py imports the replay parser; a protocol needs only its result's type
    from restoredrill import proc
    from restoredrill.targets.recovered import RecoveryOutcome


class Target(Protocol):
    """A server a drill restored into and owns."""

    @property
    def connection(self) -> Connection | None:
        """How checks reach it; None until it accepts connections."""
        ...

    def destroy(self) -> None:
        """Stop and delete it, whatever happened before (also half-started); safe to call twice."""
        ...


class FreshTarget(Target, Protocol):
    """An empty server a logical restore loads a dump into: a local instance or a container."""

    @property
    def startup_s(self) -> float | None: ...

    def start(self) -> None: ...

    def server_version(self) -> str: ...

    def create_database(self, name: str) -> None: ...


class RecoveredTarget(Target, Protocol):
    """A data directory pgBackRest restores into, then started and recovered: on the host or in a container."""

    bindir: Path
    user: proc.RunAs | None
    root: Path | None
    recovery_s: float | None
    image_info: dict[str, str]  # the image that ran it; empty on the host

    @property
    def data(self) -> Path: ...

    def prepare(self) -> Path:
        """An empty data directory for `pgbackrest restore`."""
        ...

    def start_and_recover(self) -> RecoveryOutcome: ...

    def setting(self, name: str) -> str: ...

    def log_lines(self) -> list[str]: ...

    def log_tail(self, lines: int = 30) -> str: ...
