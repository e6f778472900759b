"""The fast subset of the pgBackRest detection corpus (tests/detection_pgbackrest.py): each class caught with its
exit code and a message naming the defect. (The healthy repository passing every target is
test_pgbackrest_drill.py's first test.)"""

from __future__ import annotations

import pytest

from tests.detection_pgbackrest import CLASSES, DefectClass, Templates, run_class
from tests.pgbackrest_support import Repo

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("pgbackrest-plain")]


@pytest.mark.parametrize("defect", [c for c in CLASSES if c.fast], ids=lambda c: c.name)
def test_a_broken_repository_is_caught_with_its_exit_code_and_named(
    pgbackrest_template: Repo, defect: DefectClass
) -> None:
    row = run_class(defect, Templates(posix=pgbackrest_template))
    assert row.actual_exit == defect.expected_exit, row
    assert row.actual_verdict == defect.expected_verdict, row
    assert row.caught, f"{defect.name}: no check names it with '{defect.words}': {row.reason}"
