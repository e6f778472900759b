"""Is this the dump, and the manifest, that the backup job wrote? Pure comparisons of what was fetched with
what the backup job recorded (the object's metadata and the manifest), each failure one sentence.

The backup job records the dump's size and SHA-256 twice (metadata and manifest) and the manifest's own
SHA-256 in the dump's metadata, so an edit to any one record, or a dump swapped in under the key, shows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from restoredrill.errors import BackupDefect
from restoredrill.manifest import Manifest


def _short(digest: str | None) -> str:
    return f"{digest[:16]}..." if digest else "none"


def verify_manifest_file(text: str, metadata: Mapping[str, str], manifest: Manifest) -> str:
    """The manifest's SHA-256, refused when it differs from the one the backup job recorded beside the dump."""
    actual = hashlib.sha256(text.encode()).hexdigest()
    recorded = metadata.get("manifest-sha256")
    # Backup jobs before this check recorded the structure fingerprint in that field: nothing to compare.
    if recorded and recorded != manifest.structure_sha256 and recorded != actual:
        raise BackupDefect(
            f"the manifest was changed after the backup: its sha256 is {_short(actual)}, the backup job "
            f"recorded {_short(recorded)} in the dump's metadata"
        )
    return actual


@dataclass(frozen=True)
class Recorded:
    """What the backup job says the dump is."""

    size_bytes: int | None
    sha256: str | None

    @classmethod
    def of(cls, metadata: Mapping[str, str], manifest: Manifest | None) -> Recorded:
        """The dump's size and checksum; when metadata and manifest both record them, they must agree."""
        dump = manifest.dump if manifest else {}
        meta_size, meta_sha = metadata.get("size-bytes"), metadata.get("sha256")
        man_size, man_sha = dump.get("size_bytes"), dump.get("sha256")
        if meta_sha and man_sha and meta_sha != man_sha:
            raise BackupDefect(
                f"the backup's records disagree: the dump's metadata says sha256 {_short(meta_sha)}, its manifest "
                f"says {_short(man_sha)}; one of them was edited after the backup"
            )
        if meta_size is not None and man_size is not None and int(meta_size) != int(man_size):
            raise BackupDefect(
                f"the backup's records disagree: the dump's metadata says {int(meta_size)} bytes, its manifest "
                f"says {int(man_size)}; one of them was edited after the backup"
            )
        size = meta_size if meta_size is not None else man_size
        return cls(int(size) if size is not None else None, meta_sha or man_sha)


def verify_dump(size_bytes: int, sha256: str, recorded: Recorded) -> None:
    """The fetched dump is byte for byte the one the backup job wrote, or one sentence saying how it is not."""
    size_differs = recorded.size_bytes is not None and recorded.size_bytes != size_bytes
    sha_differs = recorded.sha256 is not None and recorded.sha256 != sha256
    if size_differs:
        assert recorded.size_bytes is not None
        delta = size_bytes - recorded.size_bytes
        how = f"{-delta} bytes shorter: truncated" if delta < 0 else f"{delta} bytes longer: padded"
        raise BackupDefect(
            f"not the dump the backup job wrote: size {size_bytes} vs {recorded.size_bytes} bytes recorded, "
            f"sha256 {_short(sha256)} vs {_short(recorded.sha256)} ({how}, or another dump swapped in)"
        )
    if sha_differs:
        raise BackupDefect(
            f"checksum mismatch: not the dump the backup job wrote: same size ({size_bytes} bytes), sha256 "
            f"{_short(sha256)} vs {_short(recorded.sha256)} recorded; it was corrupted or altered after upload"
        )
