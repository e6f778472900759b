"""A throwaway PostgreSQL in a Docker container whose major matches the backup's, through testcontainers.

Works where the reaper (Ryuk) image cannot be pulled: every container is labelled with the run id and the
owning process, removed on success, failure and Ctrl-C by the drill, at once by the owner's watchdog when
the owner is killed (watchdog.py), and by the janitor of a later run as the last net. The port is
published on 127.0.0.1 only; the password is random.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import time
import urllib.parse
from pathlib import Path
from typing import Any

import psycopg

from restoredrill import proc
from restoredrill.errors import CouldNotVerify
from restoredrill.targets import watchdog
from restoredrill.targets.connection import Connection
from restoredrill.targets.local import RESTORE_SETTINGS, free_port, process_alive
from restoredrill.waiting import wait_until

LABEL = "restoredrill"
RUN_LABEL = "restoredrill.run-id"
OWNER_LABEL = "restoredrill.owner"
DATA_IN_CONTAINER = "/var/lib/postgresql/data"
# Settings that only make sense on a host instance (paths, listen address) are left to the image.
_HOST_ONLY = {"listen_addresses", "unix_socket_permissions", "logging_collector", "log_min_messages"}


def _environment() -> None:
    # No registry: the reaper image cannot be pulled; and on a host with /.dockerenv testcontainers would
    # guess it runs inside a container and pick the wrong connection mode.
    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
    os.environ.setdefault("TESTCONTAINERS_CONNECTION_MODE", "docker_host")
    os.environ.setdefault("TC_MAX_TRIES", "10")


def docker_client(timeout: float = 5) -> Any:
    """A docker SDK client that answered a ping, or CouldNotVerify naming why not."""
    try:
        import docker
    except ImportError:
        raise CouldNotVerify("the docker Python SDK is not installed (pip install testcontainers)") from None
    try:
        client = docker.from_env(timeout=int(timeout))
        client.ping()
    except Exception as exc:  # docker.errors.DockerException, connection refused, missing socket
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CouldNotVerify(f"no Docker engine answers ({message})") from None
    return client


def engine_available() -> bool:
    try:
        docker_client(timeout=2).close()
    except CouldNotVerify:
        return False
    return True


def image_present(image: str) -> bool:
    """The image is local, or a registry gave it to us now."""
    try:
        client = docker_client(timeout=5)
    except CouldNotVerify:
        return False
    try:
        client.images.get(image)
        return True
    except Exception:
        try:
            client.images.pull(image)
            return True
        except Exception:
            return False
    finally:
        client.close()


def image_for(template: str, major: int) -> str:
    return template.format(major=major)


def describe_image(client: Any, image: str) -> dict[str, str]:
    try:
        found = client.images.get(image)
    except Exception:
        raise CouldNotVerify(
            f"the image {image} is not available locally and no registry can be reached "
            "(build it with scripts/build-postgres-image.sh or set target.image)"
        ) from None
    digests = found.attrs.get("RepoDigests") or []
    return {"image": image, "image_id": found.id, "image_digest": digests[0] if digests else ""}


class ContainerInstance:
    """A fresh server in a container for logical restores: `with` guarantees it is removed."""

    def __init__(
        self,
        image: str,
        *,
        run_id: str,
        start_timeout: float = 60,
        settings: dict[str, str] | None = None,
        volumes: dict[str, str] | None = None,
        command: list[str] | None = None,
        user: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        _environment()
        self.image = image
        self.run_id = run_id
        self.start_timeout = start_timeout
        self.settings = (
            settings
            if settings is not None
            else {k: v.strip("'") for k, v in RESTORE_SETTINGS.items() if k not in _HOST_ONLY}
        )
        self.volumes = volumes or {}
        self.command = command
        self.name: str | None = None  # set before the engine is asked, so cleanup can always find it
        self.user = user
        self.env = env or {}
        self.container: Any = None
        self.connection: Connection | None = None
        self.startup_s: float | None = None
        self.image_info: dict[str, str] = {}

    def __enter__(self) -> ContainerInstance:
        try:
            self.start()
        except BaseException:
            self.destroy()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.destroy()

    def start(self, ready: Any = None) -> None:
        from testcontainers.core.container import DockerContainer

        started = time.monotonic()
        client = docker_client()
        self.image_info = describe_image(client, self.image)
        password = secrets.token_urlsafe(24)
        proc.register_secret(password)
        port = free_port()
        name = self.name = f"restoredrill-{self.run_id.lower()[-6:]}-{secrets.token_hex(3)}"
        container = DockerContainer(self.image).with_name(name)
        container.with_envs(POSTGRES_PASSWORD=password, POSTGRES_USER="postgres", POSTGRES_DB="postgres", **self.env)
        container.ports = {"5432/tcp": ("127.0.0.1", port)}  # loopback only; with_bind_ports binds 0.0.0.0
        command = self.command or ["postgres", *[f"-c{k}={v}" for k, v in self.settings.items()]]
        container.with_command(command)
        for host, inside in self.volumes.items():
            container.with_volume_mapping(host, inside, mode="rw")
        kwargs: dict[str, Any] = {
            "labels": {LABEL: "true", RUN_LABEL: self.run_id, OWNER_LABEL: _owner_label(os.getpid())}
        }
        if self.user:
            kwargs["user"] = self.user
        container.with_kwargs(**kwargs)
        self.container = container
        watchdog.ensure_watchdog()  # removes the container if this process dies without cleaning up
        try:
            container.start()
        except Exception as exc:
            self.destroy()
            raise CouldNotVerify(f"the container for {self.image} could not start: {exc}") from None
        except BaseException:  # Ctrl-C while the engine creates or starts it
            self.destroy()
            raise
        self.connection = Connection("127.0.0.1", port, "postgres", password)
        try:
            (ready or self._wait_ready)()
        except BaseException:
            self.destroy()  # a container that failed to come up is removed at once, with its evidence taken
            raise
        self.startup_s = time.monotonic() - started

    def logs_tail(self, lines: int = 5) -> str:
        if self.container is None or self.container._container is None:
            return ""
        with contextlib.suppress(Exception):
            raw = self.container._container.logs(tail=lines).decode(errors="replace")
            return proc.redact(" | ".join(ln.strip() for ln in raw.strip().splitlines()))
        return ""

    def status(self) -> str:
        with contextlib.suppress(Exception):
            self.container._container.reload()
            return str(self.container._container.status)
        return "gone"

    def _wait_ready(self) -> None:
        connection = self.connection
        assert connection is not None
        last = ""

        def accepts() -> bool:
            nonlocal last
            if self.status() in {"exited", "dead", "gone"}:
                raise CouldNotVerify(f"the {self.image} container died at start: {self.logs_tail() or last}")
            try:
                with connection.connect("postgres") as conn:
                    conn.execute("SELECT 1")
                return True
            except psycopg.OperationalError as exc:
                last = str(exc).strip().splitlines()[-1] if str(exc).strip() else ""
                return False

        wait_until(
            accepts,
            timeout=self.start_timeout,
            interval=0.1,
            timed_out=lambda: (
                f"the {self.image} container did not accept connections within "
                f"{self.start_timeout:.0f} s: {self.logs_tail() or last}"
            ),
        )

    def server_version(self) -> str:
        assert self.connection is not None
        return self.connection.server_version()

    def create_database(self, name: str) -> None:
        assert self.connection is not None
        self.connection.create_database(name)

    def destroy(self) -> None:
        if self.container is not None:
            handle = getattr(self.container, "_container", None)
            with contextlib.suppress(Exception):
                self.container.stop(force=True, delete_volume=True)
                if handle is not None:
                    self.name = None  # removed through its handle: no second engine round-trip by name
            self.container = None
        if self.name is not None:
            # A Ctrl-C inside the engine's create/start leaves testcontainers without a handle while the
            # engine already has the container: remove it by the name we gave it.
            with contextlib.suppress(Exception):
                client = docker_client(timeout=10)
                client.containers.get(self.name).remove(force=True, v=True)
                client.close()
            self.name = None


def _owner_label(pid: int) -> str:
    return f"{socket.gethostname()}:{pid}"


def _remove_labelled(owner_is_gone: Any, timeout: float = 2) -> list[str]:
    try:
        client = docker_client(timeout=timeout)
    except CouldNotVerify:
        return []
    removed = []
    host = socket.gethostname()
    try:
        # Another run's janitor may remove a container between the listing and its inspection:
        # ignore_removed skips it instead of raising (a janitor must never stop a run).
        leftovers = client.containers.list(all=True, filters={"label": f"{LABEL}=true"}, ignore_removed=True)
    except Exception:
        client.close()
        return []
    for container in leftovers:
        owner_host, _, pid = container.labels.get(OWNER_LABEL, "").partition(":")
        if owner_host != host or not pid.isdigit() or not owner_is_gone(int(pid)):
            continue
        with contextlib.suppress(Exception):
            container.remove(force=True, v=True)
            removed.append(container.name)
    client.close()
    return removed


def _labelled_containers_exist(timeout: float = 2) -> bool | None:
    """Whether the local engine holds any drill container, asked over its unix socket with one HTTP GET;
    None when that cannot be told this way (DOCKER_HOST elsewhere, no answer); False when no engine listens
    on the socket (no socket file, or nobody accepting on it). Every run's janitor asks:
    importing the docker SDK (requests, urllib3) only to hear "none" cost ~0.1 s of each run."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        return None
    query = urllib.parse.quote(json.dumps({"label": [f"{LABEL}=true"]}))
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(host.removeprefix("unix://"))
            sock.sendall(f"GET /containers/json?all=1&filters={query} HTTP/1.0\r\nHost: docker\r\n\r\n".encode())
            answer = b"".join(iter(lambda: sock.recv(65536), b""))
    except (FileNotFoundError, ConnectionRefusedError):
        return False  # no engine listens on this host: it holds no container to remove
    except OSError:
        return None  # no answer in time, or not ours to ask: the SDK path says so the usual way
    head, _, body = answer.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.") or head.split(b" ", 2)[1:2] != [b"200"]:
        return None
    try:
        return bool(json.loads(body))
    except ValueError:
        return None


def janitor() -> list[str]:
    """Remove containers labelled by a drill process of this host that no longer exists."""
    if _labelled_containers_exist() is False:
        return []
    return _remove_labelled(lambda pid: not process_alive(pid))


def remove_owned_by(owner: int) -> list[str]:
    """Remove the containers of one drill process, which just died (the watchdog's job)."""
    return _remove_labelled(lambda pid: pid == owner, timeout=30)  # nobody waits on the watchdog


def chown_tree(root: Path, uid: int, gid: int) -> None:
    """A data directory restored on the host becomes the container user's (the image runs as uid 999)."""
    os.chown(root, uid, gid)
    for folder, dirs, files in os.walk(root):
        for entry in dirs + files:
            with contextlib.suppress(FileNotFoundError):
                os.lchown(os.path.join(folder, entry), uid, gid)
