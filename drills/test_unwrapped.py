"""Engine checks that no test function is named after yet (a layer's new check in the old shape): each still
runs, once per drill that plans it, until a readable `test_<name>` takes it over (see test_every_drill.py)."""

from __future__ import annotations

from fixtures.restored import BuiltinCheck


def test_engine_check(builtin: BuiltinCheck) -> None:
    """The engine check named in this item's id passed on the drill's restore."""
    builtin.verify()
