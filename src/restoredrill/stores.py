"""Where dumps live: an S3 bucket (boto3, default credential chain) or a local folder.

Both read in constant memory: a download streams to disk and computes SHA-256 on the way.
The drills only read; writing (upload, prune) is for the backup job.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

from restoredrill.errors import BackupDefect, ConfigError, CouldNotVerify

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int


@dataclass(frozen=True)
class Encryption:
    """What head_object says about one object's server-side encryption."""

    algorithm: str | None  # AES256, aws:kms, aws:kms:dsse; None: stored in clear
    kms_key_id: str | None


@dataclass(frozen=True)
class BucketProtection:
    """What the bucket itself says: versioning status and whether object lock is on (and its default rule)."""

    versioning: str  # Enabled, Suspended, or "never enabled"
    object_lock: bool
    lock_rule: str | None


@dataclass(frozen=True)
class Download:
    path: Path
    size_bytes: int
    sha256: str


class Store(Protocol):
    url: str

    def list(self, prefix: str = "") -> Iterator[StoredObject]: ...
    def metadata(self, key: str) -> dict[str, str]: ...
    def read_text(self, key: str) -> str | None: ...
    def download(self, key: str, dest: Path) -> Download: ...
    def location(self, key: str) -> str: ...
    def upload(self, path: Path, key: str, metadata: Mapping[str, str]) -> None: ...
    def put_text(self, key: str, text: str, metadata: Mapping[str, str]) -> None: ...
    def delete(self, keys: list[str]) -> None: ...


def _copy_hashing(source: Any, dest: Path) -> Download:
    digest = hashlib.sha256()
    size = 0
    with dest.open("wb") as out:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
    return Download(dest, size, digest.hexdigest())


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class LocalStore:
    """A folder laid out like the bucket; metadata lives in `<key>.meta.json` beside each object."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.root = Path(unquote(urlparse(url).path))

    def _path(self, key: str) -> Path:
        return self.root / key

    def location(self, key: str) -> str:
        return f"file://{self._path(key)}"

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        if not self.root.is_dir():
            raise BackupDefect(f"backup folder {self.root} does not exist")
        base = self.root / prefix
        if not base.exists():
            return
        for path in sorted(p for p in base.rglob("*") if p.is_file()):
            yield StoredObject(path.relative_to(self.root).as_posix(), path.stat().st_size)

    def metadata(self, key: str) -> dict[str, str]:
        import json

        sidecar = self._path(key + ".meta.json")
        return json.loads(sidecar.read_text()) if sidecar.exists() else {}

    def read_text(self, key: str) -> str | None:
        path = self._path(key)
        return path.read_text(encoding="utf-8") if path.exists() else None

    def download(self, key: str, dest: Path) -> Download:
        try:
            with self._path(key).open("rb") as source:
                return _copy_hashing(source, dest)
        except FileNotFoundError:
            raise BackupDefect(f"{self.location(key)} disappeared before it could be read") from None

    def upload(self, path: Path, key: str, metadata: Mapping[str, str]) -> None:
        import json

        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        shutil.copyfile(path, partial)
        os.replace(partial, target)
        self._path(key + ".meta.json").write_text(json.dumps(dict(metadata), indent=1, sort_keys=True))

    def put_text(self, key: str, text: str, metadata: Mapping[str, str]) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            for path in (self._path(key), self._path(key + ".meta.json")):
                path.unlink(missing_ok=True)
        for folder in sorted({self._path(k).parent for k in keys}, reverse=True):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()


class S3Store:
    """An S3 bucket (or any S3 API) through boto3's default credential chain."""

    def __init__(
        self,
        url: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        profile: str | None = None,
        sse: str | None = None,
        kms_key_id: str | None = None,
    ) -> None:
        import boto3
        import botocore.config
        import botocore.exceptions

        parsed = urlparse(url)
        self.url = url
        self.bucket = parsed.netloc
        self.endpoint_url = endpoint_url
        self.sse = sse
        self.kms_key_id = kms_key_id
        try:
            session = boto3.session.Session(profile_name=profile, region_name=region)
        except botocore.exceptions.ProfileNotFound:
            raise ConfigError(f"AWS profile '{profile}' is not configured") from None
        self.client = session.client(
            "s3",
            endpoint_url=endpoint_url,
            config=botocore.config.Config(
                connect_timeout=5, read_timeout=60, retries={"max_attempts": 2, "mode": "standard"}
            ),
        )

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def _explain(self, exc: Exception, doing: str) -> Exception:
        """One sentence for an S3 failure: a defect of the backups, or a drill that could not run."""
        import botocore.exceptions as bex

        where = self.endpoint_url or "AWS S3"
        if isinstance(exc, bex.NoCredentialsError):
            return CouldNotVerify(f"no AWS credentials found while {doing} (set a profile, env or role)")
        if isinstance(exc, bex.EndpointConnectionError | bex.ConnectTimeoutError | bex.ReadTimeoutError):
            return CouldNotVerify(f"cannot reach the S3 endpoint {where} while {doing}")
        if isinstance(exc, bex.ClientError):
            error = exc.response.get("Error", {})
            code = error.get("Code", "Unknown")
            if code in {"NoSuchBucket"}:
                return BackupDefect(f"bucket {self.bucket} does not exist ({doing})")
            if code in {"NoSuchKey", "404"}:
                return BackupDefect(f"object not found while {doing}")
            if code in {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"}:
                return CouldNotVerify(f"S3 refused the credentials ({code}) while {doing}")
            if code in {"AccessDenied", "403", "AllAccessDisabled"}:
                return CouldNotVerify(
                    f"S3 denied access ({code}) while {doing}: the role needs s3:ListBucket "
                    "and s3:GetObject on this prefix"
                )
            return CouldNotVerify(f"S3 answered {code} while {doing}")
        if isinstance(exc, bex.BotoCoreError):
            return CouldNotVerify(f"S3 client error while {doing}: {exc}")
        return exc

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        import botocore.exceptions as bex

        doing = f"listing s3://{self.bucket}/{prefix}"
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
            for page in pages:
                for item in page.get("Contents", []):
                    yield StoredObject(item["Key"], int(item["Size"]))
        except (bex.BotoCoreError, bex.ClientError) as exc:
            raise self._explain(exc, doing) from None

    def metadata(self, key: str) -> dict[str, str]:
        import botocore.exceptions as bex

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except (bex.BotoCoreError, bex.ClientError) as exc:
            raise self._explain(exc, f"reading metadata of {self.location(key)}") from None
        meta = dict(head.get("Metadata", {}))
        if head.get("ServerSideEncryption"):
            meta["x-server-side-encryption"] = head["ServerSideEncryption"]
        return meta

    def encryption(self, key: str) -> Encryption:
        """Server-side encryption of one object, read with head_object (read-only)."""
        import botocore.exceptions as bex

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except (bex.BotoCoreError, bex.ClientError) as exc:
            raise self._explain(exc, f"reading the encryption of {self.location(key)}") from None
        return Encryption(head.get("ServerSideEncryption"), head.get("SSEKMSKeyId"))

    def protection(self) -> BucketProtection:
        """The bucket's versioning and object lock (s3:GetBucketVersioning, s3:GetBucketObjectLockConfiguration)."""
        import botocore.exceptions as bex

        doing = f"reading the versioning and object lock of s3://{self.bucket}"
        try:
            versioning = self.client.get_bucket_versioning(Bucket=self.bucket).get("Status") or "never enabled"
        except (bex.BotoCoreError, bex.ClientError) as exc:
            raise self._explain(exc, doing) from None
        try:
            lock = self.client.get_object_lock_configuration(Bucket=self.bucket).get("ObjectLockConfiguration", {})
        except bex.ClientError as exc:
            # A bucket created without object lock answers with this error: not a failure to read, a "no".
            if exc.response.get("Error", {}).get("Code") == "ObjectLockConfigurationNotFoundError":
                return BucketProtection(versioning, False, None)
            raise self._explain(exc, doing) from None
        except bex.BotoCoreError as exc:
            raise self._explain(exc, doing) from None
        retention = (lock.get("Rule") or {}).get("DefaultRetention") or {}
        rule = None
        if retention:
            span = f"{retention['Days']} day(s)" if "Days" in retention else f"{retention.get('Years')} year(s)"
            rule = f"{retention.get('Mode', '?')} for {span}"
        return BucketProtection(versioning, lock.get("ObjectLockEnabled") == "Enabled", rule)

    def read_text(self, key: str) -> str | None:
        import botocore.exceptions as bex

        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            return body.read().decode("utf-8")
        except bex.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
                return None
            raise self._explain(exc, f"reading {self.location(key)}") from None
        except bex.BotoCoreError as exc:
            raise self._explain(exc, f"reading {self.location(key)}") from None

    def download(self, key: str, dest: Path) -> Download:
        import botocore.exceptions as bex

        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            return _copy_hashing(body, dest)
        except (bex.BotoCoreError, bex.ClientError) as exc:
            raise self._explain(exc, f"downloading {self.location(key)}") from None

    def _encryption(self) -> dict[str, str]:
        if not self.sse:
            return {}
        extra = {"ServerSideEncryption": self.sse}
        if self.sse == "aws:kms" and self.kms_key_id:
            extra["SSEKMSKeyId"] = self.kms_key_id
        return extra

    def upload(self, path: Path, key: str, metadata: Mapping[str, str]) -> None:
        import botocore.exceptions as bex

        try:
            self.client.upload_file(
                str(path), self.bucket, key, ExtraArgs={**self._encryption(), "Metadata": dict(metadata)}
            )
        except (bex.BotoCoreError, bex.ClientError) as exc:
            raise self._explain(exc, f"uploading {self.location(key)}") from None
        except Exception as exc:  # s3transfer wraps client errors in its own type
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, bex.BotoCoreError | bex.ClientError):
                raise self._explain(cause, f"uploading {self.location(key)}") from None
            raise

    def put_text(self, key: str, text: str, metadata: Mapping[str, str]) -> None:
        import botocore.exceptions as bex

        try:
            self.client.put_object(
                Bucket=self.bucket, Key=key, Body=text.encode(), Metadata=dict(metadata), **self._encryption()
            )
        except (bex.BotoCoreError, bex.ClientError) as exc:
            raise self._explain(exc, f"uploading {self.location(key)}") from None

    def delete(self, keys: list[str]) -> None:
        import botocore.exceptions as bex

        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start : start + 1000]]
            try:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
            except (bex.BotoCoreError, bex.ClientError) as exc:
                raise self._explain(exc, f"deleting from s3://{self.bucket}") from None


def open_store(
    url: str,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    profile: str | None = None,
    sse: str | None = None,
    kms_key_id: str | None = None,
) -> tuple[Store, str]:
    """The store behind a source URL and the key prefix inside it (always ending in '/' or empty)."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return LocalStore(f"file://{parsed.path.rstrip('/') or '/'}"), ""
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ConfigError(f"{url} names no bucket")
        prefix = parsed.path.lstrip("/")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        store = S3Store(
            f"s3://{parsed.netloc}",
            endpoint_url=endpoint_url,
            region=region,
            profile=profile,
            sse=sse,
            kms_key_id=kms_key_id,
        )
        return store, prefix
    raise ConfigError(f"{url}: a backup source must start with s3:// or file://")
