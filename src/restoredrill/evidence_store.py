"""The durable evidence store: `evidence_store = "s3://bucket/prefix"` in drills.toml.

CI artifacts expire (90 days on public GitHub repositories); an audit period is a year. So every run also
writes its evidence to a bucket, and history (trends, drift, coverage, the hash chain) is read back from it.

Layout under the prefix:
- `history/<seq, 8 digits>.json`: one object per history line, its exact bytes (restoredrill.history_chain);
- `reports/<run_id>/<path>`: the run's files with the same relative paths as in reports_dir (records,
  run context, JUnit, the HTML report, its manifest, signature and DSSE envelope), so a downloaded
  `reports/<run_id>/` folder verifies with `restoredrill verify-report` as it is;
- `reports/<run_id>/evidence-store.json`: the receipt, written last: what was written and the bucket's
  versioning and object lock as found.

Write-once: every put is conditional (`If-None-Match: *`), so an object is never overwritten; an object
already there with the same bytes counts as written (a retried publish), with other bytes it is refused.
Two runs taking the same history `seq` at once: the loser re-reads the store and chains its lines after
the winner's. A store that cannot be read or written makes the run could-not-verify (exit 3), one sentence.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from restoredrill import history_chain
from restoredrill.errors import CouldNotVerify, RestoreDrillError
from restoredrill.stores import S3Store, open_store

if TYPE_CHECKING:
    from restoredrill.config import DrillConfig

HISTORY = "history/"
RECEIPT = "evidence-store.json"
_RETRIES = 5
_EXISTS = {"PreconditionFailed", "412", "ConditionalRequestConflict"}  # If-None-Match: * met an object
Put = Literal["written", "present", "conflict"]


@dataclass(frozen=True)
class BucketStatus:
    versioning: str  # Enabled | Suspended | off
    object_lock: str  # e.g. "COMPLIANCE, 365 days by default" | "enabled, no default retention" | "off"

    def sentence(self) -> str:
        text = f"versioning {self.versioning}, object lock {self.object_lock}"
        if self.versioning != "Enabled":
            text += (
                " (write-once rests on conditional puts alone: anyone allowed s3:DeleteObject can remove evidence; "
                "enable versioning and object lock for an audit trail)"
            )
        return text


@dataclass
class Published:
    written: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)  # already there with the same bytes


class EvidenceStore:
    def __init__(self, url: str, endpoint_url: str | None, region: str | None, profile: str | None) -> None:
        store, self.prefix = open_store(url, endpoint_url=endpoint_url, region=region, profile=profile)
        assert isinstance(store, S3Store)
        self.s3 = store
        self.url = url

    def _fail(self, exc: Exception, doing: str) -> CouldNotVerify:
        """One sentence, whatever S3 said; the URL is the configured one, never a credential."""
        import botocore.exceptions as bex

        if isinstance(exc, bex.ClientError) and exc.response.get("Error", {}).get("Code") in {"AccessDenied", "403"}:
            return CouldNotVerify(
                f"the evidence store {self.url} cannot be used: S3 denied access while {doing} (the drill role "
                "needs s3:GetBucketVersioning, s3:GetBucketObjectLockConfiguration, s3:ListBucket, s3:GetObject "
                "and s3:PutObject on the prefix)"
            )
        if isinstance(exc, bex.BotoCoreError | bex.ClientError):
            exc = self.s3._explain(exc, doing)
        if isinstance(exc, RestoreDrillError):
            return CouldNotVerify(f"the evidence store {self.url} cannot be used: {exc}")
        return CouldNotVerify(f"the evidence store {self.url} cannot be used while {doing}: {exc}")

    def _call(self, doing: str, method: str, **kwargs: Any) -> Any:
        import botocore.exceptions as bex

        try:
            return getattr(self.s3.client, method)(Bucket=self.s3.bucket, **kwargs)
        except (bex.BotoCoreError, bex.ClientError) as exc:
            raise self._fail(exc, doing) from None

    def status(self) -> BucketStatus:
        """The bucket's versioning and object lock, read before anything is written (and reported)."""
        import botocore.exceptions as bex

        doing = f"reading the settings of s3://{self.s3.bucket}"
        versioning = self._call(doing, "get_bucket_versioning").get("Status") or "off"
        try:
            config = self.s3.client.get_object_lock_configuration(Bucket=self.s3.bucket)["ObjectLockConfiguration"]
        except bex.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ObjectLockConfigurationNotFoundError":
                raise self._fail(exc, doing) from None
            return BucketStatus(versioning, "off")
        except bex.BotoCoreError as exc:
            raise self._fail(exc, doing) from None
        retention = config.get("Rule", {}).get("DefaultRetention", {})
        if config.get("ObjectLockEnabled") != "Enabled":
            return BucketStatus(versioning, "off")
        if not retention:
            return BucketStatus(versioning, "enabled, no default retention")
        period = f"{retention['Days']} days" if "Days" in retention else f"{retention.get('Years')} years"
        return BucketStatus(versioning, f"{retention.get('Mode')}, {period} by default")

    def _read(self, key: str) -> bytes:
        return bytes(self._call(f"reading {self.s3.location(key)}", "get_object", Key=key)["Body"].read())

    def put_once(self, key: str, body: bytes) -> Put:
        """Write `body` at `key` unless an object is there: never overwrites."""
        import botocore.exceptions as bex

        full = self.prefix + key
        doing = f"writing {self.s3.location(full)}"
        try:
            self.s3.client.put_object(
                Bucket=self.s3.bucket,
                Key=full,
                Body=body,
                IfNoneMatch="*",
                # Object lock buckets refuse a put without an integrity header.
                ContentMD5=_md5_b64(body),
            )
        except bex.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in {
                "PreconditionFailed",
                "412",
                "ConditionalRequestConflict",
            }:
                raise self._fail(exc, doing) from None
            same = hashlib.sha256(self._read(full)).digest() == hashlib.sha256(body).digest()
            return "present" if same else "conflict"
        except bex.BotoCoreError as exc:
            raise self._fail(exc, doing) from None
        return "written"

    def _history_keys(self) -> list[str]:
        doing = f"listing {self.s3.location(self.prefix + HISTORY)}"
        keys: list[str] = []
        try:
            for item in self.s3.list(self.prefix + HISTORY):
                keys.append(item.key)
        except RestoreDrillError as exc:
            raise self._fail(exc, doing) from None
        return sorted(keys)

    def _stored(self) -> list[tuple[int, bytes]]:
        """(seq from the key, bytes) of every `history/<seq>.json`, in order; other keys are not ours."""
        found = []
        for key in self._history_keys():
            name = key.rsplit("/", 1)[-1].removesuffix(".json")
            if name.isdigit():
                found.append((int(name), self._read(key).rstrip(b"\n")))
        return sorted(found)

    def history_lines(self) -> list[bytes]:
        """The store's chain in `seq` order."""
        return [raw for _seq, raw in self._stored()]

    def verify(self) -> history_chain.ChainCheck:
        """The store's own chain (`history/<seq>.json`), anchored by the head every stored manifest recorded:
        what `verify-report --evidence-store` checks, so an audit needs no CI artifact."""
        from restoredrill.report.integrity import manifest_head

        lines, replaced = self._stored(), []
        for number, raw in lines:
            try:
                seq = json.loads(raw).get("seq")
            except (ValueError, AttributeError):
                seq = None
            if seq is not None and seq != number:
                replaced.append(f"history/{number:08d}.json holds history entry #{seq}: the object was replaced")
        heads: dict[str, tuple[int, str]] = {}
        try:
            manifests = [o.key for o in self.s3.list(self.prefix + "reports/") if o.key.endswith(".manifest.json")]
        except RestoreDrillError as exc:
            raise self._fail(exc, f"listing {self.s3.location(self.prefix + 'reports/')}") from None
        for key in manifests:
            try:
                data = json.loads(self._read(key))
            except ValueError:
                replaced.append(f"{key} is not a readable manifest")
                continue
            head = manifest_head(data) if isinstance(data, dict) else None
            if head is not None:
                heads[key.removeprefix(self.prefix)] = head
        check = history_chain.verify(history_chain.parse_lines(lines), heads)
        check.problems = replaced + check.problems
        return check

    def pull_history(self, reports_dir: Path) -> list[bytes]:
        """The store's chain becomes the working copy. Local lines after it (a run whose publish failed, or
        runs before the store was configured) are kept after the store's lines and re-chained, so nothing
        local is lost and the next publish heals the store. Returns the store's lines."""
        stored = self.history_lines()
        with history_chain.locked(reports_dir):
            local = [e.raw for e in history_chain.parse(reports_dir / history_chain.HISTORY_FILE).entries]
            if local[: len(stored)] != stored:
                known = set(stored)
                history_chain.rewrite(reports_dir, _rechained(stored, [raw for raw in local if raw not in known]))
        return stored

    def publish_history(self, reports_dir: Path) -> Published:
        """Every local line the store lacks, as `history/<seq>.json`; on a race, re-chain after the winner."""
        result = Published()
        for _attempt in range(_RETRIES):
            stored = len(self.pull_history(reports_dir))
            log = history_chain.parse(reports_dir / history_chain.HISTORY_FILE)
            raced = False
            for seq, entry in enumerate(log.entries[stored:], start=stored + 1):
                key = f"{HISTORY}{seq:08d}.json"
                outcome = self.put_once(key, entry.raw)
                if outcome == "conflict":
                    raced = True  # another run took this seq: re-read and chain after it
                    break
                getattr(result, outcome).append(key)
            if not raced:
                return result
        raise CouldNotVerify(
            f"the evidence store {self.url} cannot be used: its history kept changing under {_RETRIES} attempts to "
            "append to it (are many runs publishing at once?)"
        )

    def publish_run(self, reports_dir: Path, run_id: str, files: list[Path], status: BucketStatus) -> Published:
        """The run's files under reports/<run_id>/, then the receipt; any object in the way is refused."""
        result = Published()
        base = f"reports/{run_id}/"
        for path in sorted(set(files)):
            key = base + path.relative_to(reports_dir).as_posix()
            outcome = self.put_once(key, path.read_bytes())
            if outcome == "conflict":
                raise CouldNotVerify(
                    f"the evidence store {self.url} already holds {key} with other content: it is write-once, so "
                    "the object was not overwritten and this run's evidence is not stored"
                )
            getattr(result, outcome).append(key)
        receipt = {
            "run_id": run_id,
            "store": self.url,
            "versioning": status.versioning,
            "object_lock": status.object_lock,
            "objects": sorted(result.written + result.present),
        }
        self.put_once(base + RECEIPT, (json.dumps(receipt, indent=2, sort_keys=True) + "\n").encode())
        return result


def _md5_b64(body: bytes) -> str:
    import base64

    return base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()


def _rechained(stored: list[bytes], extra: list[bytes]) -> list[bytes]:
    """`stored` verbatim, then each of `extra`'s payloads chained after it."""
    lines = list(stored)
    for raw in extra:
        try:
            payload = json.loads(raw)
        except ValueError:
            continue  # an unreadable local line cannot be chained; the store's copy is the record
        if isinstance(payload, dict):
            lines.append(history_chain.chain_entry(payload, (len(lines), lines[-1]) if lines else None))
    return lines


def run_files(reports_dir: Path, run_id: str) -> list[Path]:
    """What a run leaves in reports_dir: its records, context, JUnit, and each report of it (the manifest,
    what it lists, its signature and DSSE envelope)."""
    files = [
        *(reports_dir / "evidence").glob(f"{run_id}--*.json"),
        # The chain as of this run, so a downloaded reports/<run_id>/ verifies whole, history included.
        *[p for p in (reports_dir / history_chain.HISTORY_FILE,) if p.is_file()],
        *[p for p in (reports_dir / "runs" / f"{run_id}.json", reports_dir / "junit" / f"{run_id}.xml") if p.is_file()],
    ]
    for manifest in reports_dir.glob("*.manifest.json"):
        try:
            data = json.loads(manifest.read_bytes())
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict) or data.get("run_id") != run_id:
            continue
        base = manifest.name.removesuffix(".manifest.json")
        siblings = [reports_dir / f"{base}{suffix}" for suffix in (".manifest.sig", ".dsse.json")]
        listed = [reports_dir / str(entry.get("path")) for entry in data.get("files", []) if isinstance(entry, dict)]
        files += [
            manifest,
            *[p for p in [*siblings, *listed] if p.is_file() and p.resolve().is_relative_to(reports_dir.resolve())],
        ]
    return files


@dataclass(frozen=True)
class Opened:
    store: EvidenceStore
    status: BucketStatus


def start(config: DrillConfig, reports_dir: Path, say: Callable[[str], object]) -> Opened | None:
    """At run start: the bucket is readable, its settings are reported, and its history is the working copy.
    Raises CouldNotVerify (exit 3) before any drill runs: hours of drills whose evidence cannot be kept
    prove nothing to an auditor."""
    store = open_evidence_store(config)
    if store is None:
        return None
    status = store.status()
    stored = store.pull_history(reports_dir)
    say(f"evidence store {store.url}: {status.sentence()}; {len(stored)} history line(s) read back")
    return Opened(store, status)


def publish_history(opened: Opened | None, reports_dir: Path, say: Callable[[str], object]) -> bool:
    """Before the report is built (its manifest records the chain's head, which a race may move)."""
    if opened is None:
        return True
    try:
        opened.store.publish_history(reports_dir)
    except CouldNotVerify as exc:
        say(f"restoredrill: COULD NOT VERIFY: {exc}")
        return False
    return True


def publish_run(opened: Opened | None, reports_dir: Path, run_id: str, say: Callable[[str], object]) -> bool:
    if opened is None:
        return True
    try:
        published = opened.store.publish_run(reports_dir, run_id, run_files(reports_dir, run_id), opened.status)
    except CouldNotVerify as exc:
        say(f"restoredrill: COULD NOT VERIFY: {exc}")
        return False
    say(
        f"evidence store: {len(published.written)} object(s) written under "
        f"{opened.store.url.rstrip('/')}/reports/{run_id}/ (write-once; {opened.status.sentence()})"
    )
    return True


def open_evidence_store(config: DrillConfig) -> EvidenceStore | None:
    """THE way to get the configured store (None without one); pass it to history_chain.read_history."""
    if config.evidence_store is None:
        return None
    return EvidenceStore(
        config.evidence_store,
        config.evidence_store_endpoint_url,
        config.evidence_store_region,
        config.evidence_store_profile,
    )
