"""Which target a drill restores into: a local instance, or a container when asked (or `auto` and an engine
answers). A container must run exactly the backup's major: a mismatch is refused with a sentence."""

from __future__ import annotations

from pathlib import Path

from restoredrill import pgtools
from restoredrill.config import Target
from restoredrill.errors import CouldNotVerify
from restoredrill.evidence import DrillRecord
from restoredrill.targets.container import ContainerInstance, engine_available, image_for


def wants_container(kind: str) -> bool:
    return kind == "container" or (kind == "auto" and engine_available())


def newest_bindir(configured: Path | None) -> Path:
    """Client tools (pg_restore, pg_amcheck) read older archives and servers: the newest the host has."""
    found = pgtools.available_bindirs(configured)
    if not found:
        raise CouldNotVerify("no PostgreSQL client tools found (pg_restore, pg_amcheck)")
    return found[max(found)]


def start_container(record: DrillRecord, target: Target, major: int) -> ContainerInstance:
    image = image_for(target.image, major)
    instance = ContainerInstance(image, run_id=record.run_id, start_timeout=target.start_timeout)
    instance.start()
    record.target = "container"
    info = record.target_info
    info.kind, info.image = "container", image
    info.image_id, info.image_digest = instance.image_info.get("image_id"), instance.image_info.get("image_digest")
    info.server_version = instance.server_version()
    running = pgtools.major_of(info.server_version)
    if running != major:
        instance.destroy()
        raise CouldNotVerify(
            f"the image {image} runs PostgreSQL {running} but the backup comes from PostgreSQL {major}: "
            "refusing a major mismatch (set target.image to an image of the same major)"
        )
    return instance
