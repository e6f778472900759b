"""How a drill reaches a restored server: host (or unix socket folder), port, user, password, sslmode.

Every target hands one out, and checks and layers use only this: they never need
to know whether the server is a local instance, a container, a recovered copy or an RDS instance.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg


@dataclass(frozen=True)
class Connection:
    host: str
    port: int
    user: str
    password: str
    sslmode: str = "disable"  # loopback and unix sockets; a cloud endpoint asks for "require"

    def conninfo(self, dbname: str) -> str:
        return psycopg.conninfo.make_conninfo(
            host=self.host, port=self.port, user=self.user, dbname=dbname, connect_timeout=10, sslmode=self.sslmode
        )

    def env(self) -> dict[str, str]:
        """Credentials for libpq tools, passed by environment so they never show in `ps`."""
        return {"PGPASSWORD": self.password, "PGSSLMODE": self.sslmode}

    def connect(self, dbname: str, autocommit: bool = True) -> psycopg.Connection:
        return psycopg.connect(self.conninfo(dbname), password=self.password, autocommit=autocommit)

    def server_version(self) -> str:
        with self.connect("postgres") as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "unknown"

    def create_database(self, name: str) -> None:
        with self.connect("postgres") as conn:
            conn.execute(psycopg.sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(psycopg.sql.Identifier(name)))
