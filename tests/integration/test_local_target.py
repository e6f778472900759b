"""The throwaway instance is private: loopback only, a 0700 socket, a password required, and it is gone after."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from restoredrill import pgtools
from restoredrill.targets.local import LocalInstance
from tests.conftest import leftovers

pytestmark = pytest.mark.integration


def test_throwaway_instance_is_private_and_removed(workdir: Path) -> None:
    bindir = pgtools.bindir_for(15)
    with LocalInstance(bindir, run_id="privacy", base=workdir) as instance:
        assert instance.connection is not None
        with instance.connection.connect("postgres") as conn:
            settings = dict(
                conn.execute(
                    "SELECT name, setting FROM pg_settings WHERE name IN "
                    "('listen_addresses', 'unix_socket_permissions', 'archive_mode', 'password_encryption')"
                ).fetchall()
            )
        assert settings == {
            "listen_addresses": "127.0.0.1",
            "unix_socket_permissions": "0700",
            "archive_mode": "off",
            "password_encryption": "scram-sha-256",
        }
        conninfo = instance.connection.conninfo("postgres")
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(conninfo, password="wrong-password").close()  # noqa: S106
        assert instance.root is not None
        assert oct(instance.root.stat().st_mode & 0o777) == "0o700"
    assert leftovers(workdir) == []
