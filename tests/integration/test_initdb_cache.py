"""Throwaway instances start from a copy of a kept initdb output: each copy has its own password and database,
the template never changes, a template that does not work is replaced, and the cache can be turned off."""

from __future__ import annotations

import os
import time
from pathlib import Path

import psycopg
import pytest

from restoredrill import pgtools
from restoredrill.targets import initdb_cache
from restoredrill.targets.local import LocalInstance
from tests.conftest import leftovers, tree_digest

pytestmark = pytest.mark.integration


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache folder of this test's own (the user's ~/.cache is shared by parallel tests)."""
    home = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    monkeypatch.delenv(initdb_cache.DISABLE_VARIABLE, raising=False)
    return home / "restoredrill" / "initdb"


def _templates(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".")) if folder.is_dir() else []


def _login(instance: LocalInstance, dbname: str, password: str) -> str:
    assert instance.connection is not None
    with psycopg.connect(instance.connection.conninfo(dbname), password=password) as conn:
        return str(conn.execute("SELECT current_database()").fetchone()[0])  # type: ignore[index]


def test_a_copy_of_the_template_has_its_own_password_and_database(workdir: Path, cache_home: Path) -> None:
    bindir = pgtools.bindir_for(15)
    with LocalInstance(bindir, run_id="first", base=workdir) as first:  # no template yet: initdb, then kept
        first_password = first.password
    [template] = _templates(cache_home)
    before = tree_digest(template)

    second = LocalInstance(bindir, run_id="second", base=workdir)
    second.initialize("shop")
    try:
        assert second.created_databases == {"shop"}, "a copy of the template is prepared with the drill's database"
        second.start()
        second.create_database("shop")  # already there: not made twice
        assert _login(second, "shop", second.password) == "shop"
        assert second.password != first_password
        with pytest.raises(psycopg.OperationalError, match="password"):
            _login(second, "postgres", first_password)  # the template's password opens no copy
        assert second.connection is not None
        with second.connection.connect("postgres") as conn:
            method = conn.execute(
                "SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = current_user"
            ).fetchone()
        assert method == (True,)
    finally:
        second.destroy()
    assert tree_digest(template) == before, "the template is only ever copied, never run"
    assert oct(cache_home.stat().st_mode & 0o777) == "0o700"
    assert leftovers(workdir) == []


def test_a_template_that_does_not_work_is_replaced(workdir: Path, cache_home: Path) -> None:
    bindir = pgtools.bindir_for(15)
    LocalInstance(bindir, run_id="make", base=workdir).__enter__().destroy()
    [template] = _templates(cache_home)
    (template / "data" / "global" / "pg_control").unlink()  # a copy of this cannot even run single-user

    with LocalInstance(bindir, run_id="after", base=workdir) as instance:
        assert instance.created_databases == set(), "made by its own initdb"
        assert _login(instance, "postgres", instance.password) == "postgres"
    [replaced] = _templates(cache_home)
    assert (replaced / "data" / "global" / "pg_control").is_file(), "the broken template was made again"
    assert leftovers(workdir) == []


def test_the_cache_can_be_turned_off(workdir: Path, cache_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(initdb_cache.DISABLE_VARIABLE, "0")
    with LocalInstance(pgtools.bindir_for(15), run_id="off", base=workdir) as instance:
        assert _login(instance, "postgres", instance.password) == "postgres"
    assert not cache_home.exists()


def test_what_a_killed_drill_left_in_the_cache_is_swept(workdir: Path, cache_home: Path) -> None:
    cache_home.mkdir(parents=True, mode=0o700)
    os.chmod(cache_home, 0o700)
    for folder in (cache_home.parent, cache_home.parent.parent):
        os.chmod(folder, 0o700)
    stale, fresh = cache_home / ".abc-killed", cache_home / ".abc-making"
    for folder in (stale, fresh):
        (folder / "data").mkdir(parents=True)
    old = time.time() - initdb_cache.STALE_AFTER_S - 60
    os.utime(stale, (old, old))
    with LocalInstance(pgtools.bindir_for(15), run_id="sweep", base=workdir):
        pass
    assert not stale.exists(), "a temporary folder over an hour old is a killed drill's: removed"
    assert fresh.exists(), "one being made right now by another drill is left alone"
    assert len(_templates(cache_home)) == 1
