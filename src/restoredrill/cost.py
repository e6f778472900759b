"""The monthly storage cost of each layer's backups, from sizes measured in the run and configured prices.

Evidence, not a bill: the sizes are what the drill saw (the dump store's listing, pgBackRest's own sizes,
RDS's AllocatedStorage), priced per GiB-month with `[cost]` (defaults: eu-west-1 list prices, config.py).
"""

from __future__ import annotations

from restoredrill.config import CostPrices
from restoredrill.evidence import StorageCost
from restoredrill.layers.logical_keys import DumpKey
from restoredrill.stores import StoredObject

GIB = 1024**3


def priced(storage: str, size_bytes: int, basis: str, price: float, prices: CostPrices) -> StorageCost:
    return StorageCost(
        storage=storage,
        size_bytes=size_bytes,
        basis=basis,
        price_gb_month=price,
        currency=prices.currency,
        monthly=round(size_bytes / GIB * price, 4),
    )


def logical_storage(source: str, dumps: list[DumpKey], objects: list[StoredObject], prices: CostPrices) -> StorageCost:
    """This database's dumps and their manifests under the prefix (other databases' objects are theirs)."""
    own = {d.key for d in dumps} | {d.manifest_key for d in dumps}
    size = sum(o.size for o in objects if o.key in own)
    basis = f"{len(dumps)} dump(s) and their manifests listed under {source}"
    if source.startswith("s3://"):
        return priced("S3 Standard", size, basis, prices.s3_gb_month, prices)
    return priced("block volume (EBS gp3)", size, basis, prices.volume_gb_month, prices)


def pgbackrest_storage(repo_type: str, set_bytes: list[int], wal_bytes: int, prices: CostPrices) -> StorageCost:
    """The repository: each set's own files (pgBackRest's `repository delta`) plus the archived WAL."""
    size = sum(set_bytes) + wal_bytes
    basis = f"{len(set_bytes)} backup set(s) (their own files, from pgbackrest info) and {wal_bytes} bytes of WAL"
    if repo_type == "s3":
        return priced("S3 Standard", size, basis, prices.s3_gb_month, prices)
    return priced(f"block volume (EBS gp3), repo1-type={repo_type}", size, basis, prices.volume_gb_month, prices)


def rds_storage(snapshots: list[dict[str, object]], prices: CostPrices) -> StorageCost:
    """Every snapshot of the instance at its AllocatedStorage: the API gives no incremental size, so this is
    an upper bound (AWS bills the changed blocks, and backup storage up to the instance's size is free)."""
    gib = sum(int(str(s.get("AllocatedStorage") or 0)) for s in snapshots)
    basis = f"{len(snapshots)} snapshot(s), AllocatedStorage {gib} GiB in all (an upper bound)"
    return priced("RDS backup storage", gib * GIB, basis, prices.rds_snapshot_gb_month, prices)
