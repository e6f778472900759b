"""`pg_restore --list` read right: real listings of the schema zoo (tests/unit/data, made by pg_restore 15 from the
zoo's backups), every entry type including the multi-word ones, schemas and names with spaces and unicode."""

from __future__ import annotations

from pathlib import Path

from restoredrill.pgtools import KINDS, parse_listing

DATA = Path(__file__).with_name("data")
ZOO_TABLES = {
    ("Reporting", "MixedCase"),
    ("public", "big"),
    ("public", "bookings"),
    ("public", "cache"),
    ("public", "cars"),
    ("public", "countdown"),
    ("public", "documents"),
    ("public", "employees"),
    ("public", "empty_table"),
    ("public", "events"),
    ("public", "measurements"),
    ("public", "measurements_2024"),
    ("public", "measurements_2024_h0"),
    ("public", "measurements_2024_h1"),
    ("public", "measurements_2025"),
    ("public", "measurements_default"),
    ("public", "order"),
    ("public", "regions"),
    ("public", "regions_eu"),
    ("public", "regions_other"),
    ("public", "ring"),
    ("public", "trucks"),
    ("public", "vehicles"),
    ("sales", "credit_notes"),
    ("sales", "customers"),
    ("sales", "invoices"),
    ("sales", "products"),
    ("ünïcode schema", "tâble ✓"),
}


def zoo():  # type: ignore[no-untyped-def]
    return parse_listing((DATA / "zoo.list").read_text())


def test_every_table_of_the_zoo_and_nothing_else() -> None:
    """TABLE ATTACH entries attach partitions: they are not tables named 'ATTACH.public <partition>'."""
    assert set(zoo().tables()) == ZOO_TABLES


def test_every_entry_line_is_read_with_its_type() -> None:
    text = (DATA / "zoo.list").read_text()
    entry_lines = [ln for ln in text.splitlines() if ln and not ln.startswith(";")]
    listing = zoo()
    assert len(listing.entries) == len(entry_lines)


def test_multi_word_types_keep_their_schema_and_name() -> None:
    by_kind: dict[str, set[tuple[str, str]]] = {}
    for e in zoo().entries:
        by_kind.setdefault(e.kind, set()).add((e.schema, e.name))
    assert ("public", "measurements_2024_h0") in by_kind["TABLE ATTACH"]
    assert ("public", "measurements_device_idx") not in by_kind["INDEX ATTACH"]  # the parent is not attached
    assert ("public", "big") in by_kind["TABLE DATA"]
    assert ("sales", "document_number_seq") in by_kind["SEQUENCE SET"]
    assert ("public", "events_id_seq") in by_kind["SEQUENCE OWNED BY"]
    assert by_kind["MATERIALIZED VIEW"] == {("sales", "revenue_by_status"), ("public", "event_stats")}
    # WITH NO DATA: no data entry, so nothing to populate
    assert by_kind["MATERIALIZED VIEW DATA"] == {("sales", "revenue_by_status")}
    assert ("public", "bookings id") in by_kind["DEFAULT"]
    assert ("-", "BLOBS") in by_kind["BLOBS"]
    assert len(by_kind["BLOB"]) == 2
    assert ("-", "citext") in by_kind["EXTENSION"]  # no owner: the line ends in a space
    assert ("-", "EXTENSION citext") in by_kind["COMMENT"]
    assert ("ünïcode schema", "tâble ✓ tâble ✓_pkey") in by_kind["CONSTRAINT"]
    assert ("sales", "invoices invoices_customer_fk") in by_kind["FK CONSTRAINT"]
    assert ("sales", "customers") in by_kind["ROW SECURITY"]
    assert ("sales", "archive_invoices(integer)") in by_kind["PROCEDURE"]


def test_header_names_the_database_and_versions() -> None:
    listing = zoo()
    assert listing.database == "zoo"
    assert listing.server_major == 15
    assert listing.archive_version == "1.14-0"


def test_schema_subset_listing() -> None:
    listing = parse_listing((DATA / "zoo-schema-sales.list").read_text())
    assert {s for s, _t in listing.tables()} == {"sales"}
    assert {e.name for e in listing.entries if e.kind == "EXTENSION"} >= {"citext", "hstore", "pgcrypto"}


def test_multi_word_types_match_longest_first() -> None:
    for kind in KINDS:
        shorter = [k for k in KINDS if kind.startswith(k + " ")]
        assert all(KINDS.index(k) > KINDS.index(kind) for k in shorter), kind


def test_a_schema_with_spaces_not_defined_in_the_archive_falls_back_to_the_first_word() -> None:
    listing = parse_listing(
        "5; 1259 1 TABLE other thing postgres\n6; 0 0 DEFAULT ACL - DEFAULT PRIVILEGES x postgres\n"
    )
    assert listing.tables() == [("other", "thing")]
    assert listing.entries[1].kind == "DEFAULT ACL"
