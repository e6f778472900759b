"""The logical drill's container on a data directory initialized on the host, reached over a unix socket.

The image's entrypoint runs initdb, starts a temporary server, stops it and starts the real one: seconds
of every container drill. Given a data directory that already exists (initdb on the host, of the same
major, run while the dump is fetched: targets/ahead.py), it starts the server at once. The server listens
on no TCP port: pg_restore and the checks talk to it through a socket in the drill's private 0700 folder
(bind-mounted), not through Docker's userland port proxy, and removing the container leaves no volume
behind (the data lives in the drill's folder, deleted by the drill).
"""

from __future__ import annotations

import time

import psycopg

from restoredrill.errors import CouldNotVerify
from restoredrill.targets.container import ContainerInstance, chown_tree
from restoredrill.targets.local import (
    RESTORE_SETTINGS,
    SUPERUSER,
    Connection,
    LocalInstance,
    mark_server_in_container,
    remove_marked_folder,
)

PORT_IN_CONTAINER = 5432  # the socket's name (.s.PGSQL.5432); no TCP listener


class PreparedContainer(ContainerInstance):
    def __init__(
        self, image: str, folder: LocalInstance, *, run_id: str, container_uid: int, start_timeout: float
    ) -> None:
        assert folder.root is not None
        self.folder = folder
        self.container_uid = container_uid
        super().__init__(
            image,
            run_id=run_id,
            start_timeout=start_timeout,
            command=["postgres"],
            settings={},
            volumes={str(folder.root): str(folder.root)},  # the same path inside: the socket path is one string
            env={"PGDATA": str(folder.data)},
            user=f"{container_uid}:{container_uid}",
        )

    def start(self, ready: object = None) -> None:
        folder = self.folder
        assert folder.root is not None
        password = folder.password
        socket_dir = folder.root / "socket"
        settings = {
            **RESTORE_SETTINGS,
            "listen_addresses": "''",
            "port": str(PORT_IN_CONTAINER),
            "unix_socket_directories": f"'{socket_dir}'",
        }
        with (folder.data / "postgresql.auto.conf").open("a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        mark_server_in_container(folder.root)  # before the server runs: see local.janitor
        chown_tree(folder.root, self.container_uid, self.container_uid)
        socket = Connection(str(socket_dir), PORT_IN_CONTAINER, SUPERUSER, password)

        def wait_socket() -> None:
            self.connection = socket
            deadline = time.monotonic() + self.start_timeout
            while True:
                if self.status() in {"exited", "dead", "gone"}:
                    raise CouldNotVerify(f"the {self.image} container died at start: {self.logs_tail()}")
                try:
                    with socket.connect("postgres") as conn:
                        conn.execute("SELECT 1")
                    return
                except psycopg.OperationalError as exc:
                    if time.monotonic() > deadline:
                        raise CouldNotVerify(
                            f"the {self.image} container did not accept connections within "
                            f"{self.start_timeout:.0f} s: {self.logs_tail() or exc}"
                        ) from None
                time.sleep(0.05)

        super().start(ready=wait_socket)
        self.startup_s = (self.startup_s or 0) + (folder.initialize_s or 0)

    def create_database(self, name: str) -> None:
        if name not in self.folder.created_databases:  # made with the folder's data directory: see initialize
            super().create_database(name)

    def destroy(self) -> None:
        """The container first (its server holds the folder), then the folder: its postmaster.pid names a pid
        of the container's namespace, so the host instance's stop (pg_ctl on that pid) must never run."""
        super().destroy()
        if self.folder.root is not None:
            remove_marked_folder(self.folder.root)
            self.folder.root = None
