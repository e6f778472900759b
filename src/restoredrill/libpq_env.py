"""Inherited libpq variables: a drill reaches only its own throwaway server, never what a shell points at.

An engineer's shell often has PG* pointing at production, and libpq honours them wherever a connection
string leaves a gap: PGHOSTADDR even overrides the host we name, PGSERVICE names another server, and
PGSSLMODE=require breaks a loopback connection. pg_restore, pg_amcheck and psycopg all read them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable


def points_at_a_server(name: str) -> bool:
    """A libpq variable (PGHOST, PGHOSTADDR, PGSERVICE, PGPASSFILE, ...) or DATABASE_URL; pgBackRest's own
    PGBACKREST_* settings are not libpq's."""
    return (name.startswith("PG") and not name.startswith("PGBACKREST_")) or name == "DATABASE_URL"


def forget_inherited_servers(keep: Iterable[str] = ()) -> list[str]:
    """Remove them from this process (and so from every tool it starts); `keep` names variables the
    configuration itself refers to (an RDS password_env). Returns what was removed, names only."""
    kept = set(keep)
    removed = [name for name in os.environ if points_at_a_server(name) and name not in kept]
    for name in removed:
        del os.environ[name]
    return removed
