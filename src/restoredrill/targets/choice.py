"""Which target a drill restores into: a local instance, or a container when asked (or `auto` and an engine
answers). A container must run exactly the backup's major: a mismatch is refused with a sentence."""

from __future__ import annotations

from pathlib import Path

from restoredrill import pgtools
from restoredrill.config import Target
from restoredrill.errors import CouldNotVerify
from restoredrill.evidence import DrillRecord
from restoredrill.targets.container import ContainerInstance, engine_available, image_for, image_present
from restoredrill.targets.local import LocalInstance


def wants_container(target: Target, major: int) -> bool:
    """`container` always (a missing engine or image is then one sentence); `auto` only when an engine
    answers and the image for this major is there (or can be pulled), else a local instance."""
    if target.kind == "container":
        return True
    if target.kind != "auto" or not engine_available():
        return False
    return image_present(image_for(target.image, major))


def newest_bindir(configured: Path | None) -> Path:
    """Client tools (pg_restore, pg_amcheck) read older archives and servers: the newest the host has."""
    found = pgtools.available_bindirs(configured)
    if not found:
        raise CouldNotVerify("no PostgreSQL client tools found (pg_restore, pg_amcheck)")
    return found[max(found)]


def container_instance(target: Target, major: int, run_id: str) -> ContainerInstance:
    """Not started yet: the drill holds it before it starts, so a Ctrl-C during start still removes it."""
    return ContainerInstance(image_for(target.image, major), run_id=run_id, start_timeout=target.start_timeout)


def local_instance(target: Target, bindir: Path, run_id: str) -> LocalInstance:
    """Not started yet, like container_instance: a server of `bindir` in the configured workdir."""
    return LocalInstance(
        bindir, run_id=run_id, base=target.workdir, run_as=target.run_as, start_timeout=target.start_timeout
    )


def check_container(record: DrillRecord, instance: ContainerInstance, major: int) -> None:
    """Record which image ran, and refuse a server whose major differs from the backup's."""
    record.target = "container"
    info = record.target_info
    info.kind, info.image = "container", instance.image
    info.image_id, info.image_digest = instance.image_info.get("image_id"), instance.image_info.get("image_digest")
    info.server_version = instance.server_version()
    running = pgtools.major_of(info.server_version)
    if running != major:
        raise CouldNotVerify(
            f"the image {instance.image} runs PostgreSQL {running} but the backup comes from PostgreSQL {major}: "
            "refusing a major mismatch (set target.image to an image of the same major)"
        )
