"""The demo's own invariant, written the way a team writes theirs (README, "Writing your own drill").

It applies to the drills of a database called `shop` (the demo's): delete or adapt it if your
configuration has a `shop` database with another schema.
"""

from __future__ import annotations

import pytest

from fixtures.restored import RestoredDatabase

pytestmark = pytest.mark.drill(database="shop")


def test_every_paid_order_has_an_invoice(restored: RestoredDatabase) -> None:
    """An order that was paid or shipped has its invoice in the same backup: a restore that lost invoices
    (or kept orders from a later point than their invoices) would bill customers twice."""
    missing = restored.scalar(
        "SELECT count(*) FROM orders o LEFT JOIN invoices i ON i.order_id = o.id"
        " WHERE o.status IN ('paid', 'shipped') AND i.order_id IS NULL"
    )
    assert missing == 0, f"{missing} paid or shipped order(s) have no invoice"
