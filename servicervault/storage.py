"""A tenant's bucket: the only way stages read and write tenant objects.

Two backends behind one interface: a local folder (``file://``, the embedded default) and
any S3-compatible store (``s3://``: AWS, Tigris, MinIO, R2, Ceph RGW). Objects under
``snapshots/`` and ``drops/`` are write-once: ``put_*`` refuses to replace an existing key,
and every put is atomic, so a reader never sees half an object. Manifests are written last,
which is what makes a snapshot or a drop visible as complete.

Isolation is enforced twice: by the server (each tenant's keys only reach its own bucket)
and by construction here. A tenant's bucket carries a marker object naming its tenant, and
``for_tenant`` refuses a bucket whose marker names someone else, so a tenant config that
points at another tenant's bucket fails before anything is read or written.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from servicervault.config import ConfigError, Tenant
from servicervault.errors import VaultError

MARKER = ".vault-tenant.json"
ADDRESSING = {"path": "path", "vhost": "virtual"}
S3_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class StorageError(VaultError):
    """A bucket operation failed; the message names the bucket and the key."""


def _check_key(url: str, key: str) -> list[str]:
    parts = key.strip("/").split("/")
    if any(p in {"", ".", ".."} for p in parts):
        raise StorageError(f"bucket {url}: invalid key {key!r}")
    return parts


class Bucket(ABC):
    """Keys are ``/``-separated paths relative to the bucket root."""

    url: str

    @classmethod
    def for_tenant(cls, tenant: Tenant) -> Bucket:
        """The tenant's bucket, after checking it belongs to this tenant."""
        bucket = open_bucket(tenant.bucket_url, tenant)
        bucket.check_owner(tenant.id)
        return bucket

    @abstractmethod
    def uri(self, key: str) -> str:
        """A location DuckDB can read directly (a local path, or ``s3://bucket/key``)."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def list(self, prefix: str) -> list[str]:
        """Keys of every complete object under ``prefix``, sorted."""

    @abstractmethod
    def etags(self, prefix: str) -> dict[str, str]:
        """A tag per object under ``prefix`` that changes whenever the object is rewritten,
        so files already landed are recognised without being downloaded or hashed again."""

    @abstractmethod
    def read_bytes(self, key: str) -> bytes: ...

    @abstractmethod
    def fetch(self, key: str, folder: Path) -> Path:
        """A local file with the object's bytes (the object itself for local buckets)."""

    @abstractmethod
    def put_file(self, source: Path, key: str) -> None:
        """Store ``source`` at ``key`` atomically; refuse to overwrite an existing object."""

    @abstractmethod
    def put_bytes(self, data: bytes, key: str) -> None: ...

    def check_owner(self, tenant_id: str) -> None:
        """Refuse a bucket that is marked as another tenant's, or not marked at all."""
        if not self.exists(MARKER):
            self._unmarked(tenant_id)
            return
        owner = json.loads(self.read_bytes(MARKER)).get("tenant")
        if owner != tenant_id:
            raise StorageError(
                f"bucket {self.url} belongs to tenant {owner!r}, not {tenant_id!r}; "
                f"check storage.bucket in tenants/{tenant_id}.yaml. Nothing was read or written."
            )

    def _unmarked(self, tenant_id: str) -> None:
        raise StorageError(
            f"bucket {self.url} is not provisioned for tenant {tenant_id!r}; "
            f"run `vault tenants provision {tenant_id}`"
        )

    def mark_owner(self, tenant_id: str) -> None:
        if not self.exists(MARKER):
            self.put_bytes(json.dumps({"tenant": tenant_id}).encode(), MARKER)


class LocalBucket(Bucket):
    """A folder; puts go through a temporary file and a hard link, which is atomic and
    fails if the key exists, so write-once holds without a race."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.root = Path(url.removeprefix("file://")).resolve()

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*_check_key(self.url, key))

    def local_path(self, key: str) -> Path:
        return self._path(key)

    def uri(self, key: str) -> str:
        return str(self._path(key))

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def _files(self, prefix: str) -> dict[str, Path]:
        base = self._path(prefix)
        if not base.is_dir():
            return {}
        return {
            p.relative_to(self.root).as_posix(): p
            for p in base.rglob("*")
            if p.is_file() and ".tmp-" not in p.name
        }

    def list(self, prefix: str) -> list[str]:
        return sorted(self._files(prefix))

    def etags(self, prefix: str) -> dict[str, str]:
        """Size and modification time, in nanoseconds: what a rewrite changes. Hashing every
        landed tape again took seconds per run at a few gigabytes of history."""
        tags = {}
        for key, path in self._files(prefix).items():
            stat = path.stat()
            tags[key] = f"{stat.st_size}-{stat.st_mtime_ns}"
        return tags

    def read_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise StorageError(f"bucket {self.url}: no object {key!r}") from None

    def fetch(self, key: str, folder: Path) -> Path:
        return self._path(key)

    def put_file(self, source: Path, key: str) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex}")
        shutil.copyfile(source, tmp)
        self._publish(tmp, target, key)

    def put_bytes(self, data: bytes, key: str) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex}")
        with tmp.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        self._publish(tmp, target, key)

    def _publish(self, tmp: Path, target: Path, key: str) -> None:
        try:
            os.link(tmp, target)
        except FileExistsError:
            raise StorageError(
                f"bucket {self.url}: {key!r} already exists and objects are write-once"
            ) from None
        finally:
            tmp.unlink(missing_ok=True)

    def _unmarked(self, tenant_id: str) -> None:
        # A local bucket is provisioned on first use: there is no server to create it on.
        self.root.mkdir(parents=True, exist_ok=True)
        self.mark_owner(tenant_id)


class S3Bucket(Bucket):
    """An S3-compatible bucket through boto3, with retries and backoff on transient faults."""

    def __init__(self, url: str, client: Any, settings: dict[str, Any]) -> None:
        self.url = url.rstrip("/")
        self._settings = settings
        self.name, _, prefix = url.removeprefix("s3://").partition("/")
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.client = client

    def _key(self, key: str) -> str:
        return self.prefix + "/".join(_check_key(self.url, key))

    def uri(self, key: str) -> str:
        return f"s3://{self.name}/{self._key(key)}"

    def call(self, what: str, key: str, fn: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            return fn(**kwargs)
        except NoCredentialsError:
            raise StorageError(
                f"bucket {self.url}: no S3 credentials; name the tenant (--tenant) or set "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            ) from None
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in {"AccessDenied", "403", "Forbidden", "InvalidAccessKeyId"} or status == 403:
                raise StorageError(
                    f"bucket {self.url}: access denied ({code or status}) to {what} {key!r}: "
                    "these credentials cannot use this bucket"
                ) from None
            if code in {"NoSuchBucket"}:
                raise StorageError(
                    f"bucket {self.url} does not exist; run `vault tenants provision <tenant>`"
                ) from None
            if code in {"NoSuchKey", "404", "NotFound"}:
                raise StorageError(f"bucket {self.url}: no object {key!r}") from None
            raise StorageError(f"bucket {self.url}: {what} {key!r} failed: {exc}") from None
        except BotoCoreError as exc:
            raise StorageError(
                f"bucket {self.url}: {what} {key!r} failed after retries: {exc}"
            ) from None

    def exists(self, key: str) -> bool:
        try:
            self.call("read", key, self.client.head_object, Bucket=self.name, Key=self._key(key))
        except StorageError as exc:
            if "no object" in str(exc):
                return False
            raise
        return True

    def list(self, prefix: str) -> list[str]:
        return sorted(self.etags(prefix))

    def etags(self, prefix: str) -> dict[str, str]:
        found: dict[str, str] = {}
        token: dict[str, str] = {}
        while True:
            page = self.call(
                "list",
                prefix,
                self.client.list_objects_v2,
                Bucket=self.name,
                Prefix=self._key(prefix) + "/",
                **token,
            )
            for obj in page.get("Contents", []):
                found[obj["Key"].removeprefix(self.prefix)] = obj["ETag"].strip('"')
            if not page.get("IsTruncated"):
                return found
            token = {"ContinuationToken": page["NextContinuationToken"]}

    def read_bytes(self, key: str) -> bytes:
        response = self.call(
            "read", key, self.client.get_object, Bucket=self.name, Key=self._key(key)
        )
        return response["Body"].read()

    def fetch(self, key: str, folder: Path) -> Path:
        target = folder.joinpath("fetched", *_check_key(self.url, key))
        target.parent.mkdir(parents=True, exist_ok=True)
        self.call(
            "read",
            key,
            self.client.download_file,
            Bucket=self.name,
            Key=self._key(key),
            Filename=str(target),
        )
        return target

    def _refuse_overwrite(self, key: str) -> None:
        # RGW and older S3 servers ignore If-None-Match on PUT, so check first; the tenant
        # lock makes this process the only writer, and object versions prove the outcome.
        if self.exists(key):
            raise StorageError(
                f"bucket {self.url}: {key!r} already exists and objects are write-once"
            )

    def put_file(self, source: Path, key: str) -> None:
        self._refuse_overwrite(key)
        self.call(
            "write",
            key,
            self.client.upload_file,
            Filename=str(source),
            Bucket=self.name,
            Key=self._key(key),
        )

    def put_bytes(self, data: bytes, key: str) -> None:
        self._refuse_overwrite(key)
        self.call(
            "write", key, self.client.put_object, Bucket=self.name, Key=self._key(key), Body=data
        )

    def duckdb_secret(self) -> dict[str, str]:
        """A DuckDB S3 secret SCOPEd to this bucket, so one session can hold several tenants'
        credentials and each is only ever sent to its own bucket.

        The scope ends with '/' (a bare ``s3://acme`` would also match ``s3://acme-archive``),
        and every value is SQL-escaped: SQLMesh writes them into CREATE SECRET as literals, and
        a quote in a key must neither break the statement nor surface the key in an error."""
        endpoint = self._settings["endpoint"] or ""
        secret = {
            "type": "s3",
            "key_id": self._settings["key_id"],
            "secret": self._settings["secret"],
            "region": self._settings["region"],
            "scope": f"s3://{self.name}/{self.prefix}",
        }
        if endpoint:
            secret["endpoint"] = endpoint.split("://", 1)[-1].rstrip("/")
            secret["use_ssl"] = "false" if endpoint.startswith("http://") else "true"
            secret["url_style"] = self._settings["url_style"] or "path"
        elif self._settings["url_style"]:
            secret["url_style"] = self._settings["url_style"]
        return {name: value.replace("'", "''") for name, value in secret.items()}

    def presign(self, key: str, seconds: int) -> str:
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.name, "Key": self._key(key)}, ExpiresIn=seconds
        )


def s3_settings(tenant: Tenant | None) -> dict[str, Any]:
    """Endpoint, region, URL style and keys for a tenant (or the standard AWS variables)."""
    if tenant is None:
        return {
            "endpoint": os.environ.get("AWS_ENDPOINT_URL"),
            "region": os.environ.get("AWS_REGION", "us-east-1"),
            "url_style": None,
            "key_id": None,
            "secret": None,
        }
    storage = tenant.storage
    keys = {}
    for field in ("access_key_id_env", "secret_access_key_env"):
        name = getattr(storage, field)
        if not name:
            raise ConfigError(f"tenant {tenant.id!r}: s3:// buckets need storage.{field}")
        if not os.environ.get(name):
            raise ConfigError(
                f"tenant {tenant.id!r}: environment variable {name} (storage.{field}) is not set"
            )
        keys[field] = os.environ[name]
    return {
        "endpoint": storage.endpoint,
        "region": storage.region or "us-east-1",
        "url_style": storage.url_style,
        "key_id": keys["access_key_id_env"],
        "secret": keys["secret_access_key_env"],
    }


def s3_client(settings: dict[str, Any]) -> Any:
    import boto3
    from botocore.config import Config

    # Transient faults (a restarting server, a dropped connection) are retried with backoff.
    max_attempts = int(os.environ.get("VAULT_S3_MAX_ATTEMPTS", "8"))
    config = Config(
        region_name=settings["region"],
        s3={"addressing_style": ADDRESSING.get(settings["url_style"], "auto")},
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=5,
        read_timeout=60,
        # Newer botocore sends checksums some S3-compatible servers reject.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return boto3.client(
        "s3",
        endpoint_url=settings["endpoint"],
        aws_access_key_id=settings["key_id"],
        aws_secret_access_key=settings["secret"],
        config=config,
    )


def open_bucket(url: str, tenant: Tenant | None = None) -> Bucket:
    """A bucket by URL; S3 credentials from the tenant's named variables (or AWS_*)."""
    if url.startswith("file://"):
        return LocalBucket(url)
    if url.startswith("s3://"):
        name = url.removeprefix("s3://").split("/", 1)[0]
        if not S3_BUCKET_NAME.match(name):
            raise ConfigError(f"{url}: {name!r} is not a valid S3 bucket name")
        settings = s3_settings(tenant)
        return S3Bucket(url, s3_client(settings), settings)
    raise StorageError(f"{url}: buckets are file:// or s3:// URLs")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
