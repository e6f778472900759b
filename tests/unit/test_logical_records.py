"""Pure logic of the logical verdicts: which sentence a dump that is not the backup job's gets, and which failing
check the headline names."""

from __future__ import annotations

import hashlib

import pytest

from restoredrill.errors import BackupDefect
from restoredrill.layers.logical_records import Recorded, verify_dump, verify_manifest_file
from restoredrill.manifest import Manifest
from restoredrill.verdicts import severity

A, B = "a" * 64, "b" * 64


def manifest(**dump: object) -> Manifest:
    return Manifest("shop", "2026-01-01T00:00:00+00:00", "15.1", {}, {}, dump=dict(dump))


def test_a_swapped_dump_is_named_with_both_sizes_and_checksums() -> None:
    with pytest.raises(BackupDefect) as caught:
        verify_dump(900, B, Recorded(1000, A))
    assert str(caught.value).startswith(
        "not the dump the backup job wrote: size 900 vs 1000 bytes recorded, sha256 bbbbbbbbbbbbbbbb... vs "
        "aaaaaaaaaaaaaaaa..."
    )
    assert "100 bytes shorter: truncated, or another dump swapped in" in str(caught.value)


def test_same_size_other_checksum_is_a_checksum_mismatch() -> None:
    with pytest.raises(BackupDefect, match=r"^checksum mismatch: not the dump the backup job wrote: same size"):
        verify_dump(1000, B, Recorded(1000, A))


def test_the_dump_the_job_wrote_passes() -> None:
    verify_dump(1000, A, Recorded(1000, A))
    verify_dump(1000, A, Recorded(None, None))


def test_records_that_disagree_are_refused() -> None:
    with pytest.raises(BackupDefect, match="the backup's records disagree"):
        Recorded.of({"sha256": A, "size-bytes": "1000"}, manifest(sha256=B, size_bytes=1000))
    with pytest.raises(BackupDefect, match="says 1000 bytes, its manifest says 999"):
        Recorded.of({"sha256": A, "size-bytes": "1000"}, manifest(sha256=A, size_bytes=999))
    assert Recorded.of({}, manifest(sha256=A, size_bytes=5)) == Recorded(5, A)


def test_an_edited_manifest_is_refused_and_an_old_style_record_is_not() -> None:
    m = manifest()
    text = m.to_json()
    digest = hashlib.sha256(text.encode()).hexdigest()
    assert verify_manifest_file(text, {"manifest-sha256": digest}, m) == digest
    with pytest.raises(BackupDefect, match=r"^the manifest was changed after the backup"):
        verify_manifest_file(text + " ", {"manifest-sha256": digest}, m)
    # backup jobs before this fix recorded the structure fingerprint there: nothing to compare, no false alarm
    assert verify_manifest_file(text, {"manifest-sha256": m.structure_sha256}, m) == digest


def test_headline_ranks_lost_data_over_a_corrupt_archive_over_objectives() -> None:
    ranked = sorted(["rto", "restore_errors", "sequences", "min_rows:public.users", "amcheck"], key=severity)
    assert ranked == ["min_rows:public.users", "sequences", "restore_errors", "amcheck", "rto"]
    assert severity("manifest_row_counts") < severity("restore_errors") < severity("rpo_newest_age")
