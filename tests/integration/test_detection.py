"""The logical detection corpus, its CI subset: every class is caught, the headline names it, the healthy zoo
passes. The whole corpus (1 M-row zoo, every class) is `make detection`."""

from __future__ import annotations

import pytest

from restoredrill.detection import CLASSES, run_corpus, table

pytestmark = pytest.mark.integration


def test_every_class_of_the_fast_subset_is_caught_and_the_healthy_zoo_passes() -> None:
    classes = tuple(c for c in CLASSES if c.fast)
    assert len({c.group for c in classes}) == 6, "the subset covers every group"
    outcomes = run_corpus(classes, big_rows=20_000, log=lambda _m: None)
    assert [o for o in outcomes if not o.caught] == [], table(outcomes)


def test_the_corpus_has_every_required_class() -> None:
    names = {c.name for c in CLASSES if c.apply is not None}
    assert len(names) >= 22
    assert {c.layer for c in CLASSES} == {"logical"}
    assert {c.group for c in CLASSES} == {
        "healthy",
        "archive damage",
        "wrong archive",
        "timing",
        "data and structure",
        "records",
    }
