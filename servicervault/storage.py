"""A tenant's bucket: the only way stages read and write tenant objects.

Objects under ``snapshots/`` and ``drops/`` are write-once: ``put_file`` refuses to replace an
existing key, and every put is atomic, so a reader never sees half an object. Manifests are
written last, which is what makes a snapshot or a drop visible as complete.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from pathlib import Path

from servicervault.config import Tenant
from servicervault.errors import VaultError


class StorageError(VaultError):
    """A bucket operation failed; the message names the bucket and the key."""


class Bucket:
    """Keys are ``/``-separated paths relative to the bucket root."""

    def __init__(self, url: str) -> None:
        if not url.startswith("file://"):
            raise StorageError(
                f"bucket {url}: only file:// buckets are supported by this build "
                "(S3-compatible storage is tracked separately)"
            )
        self.url = url.rstrip("/")
        self.root = Path(url.removeprefix("file://")).resolve()

    @classmethod
    def for_tenant(cls, tenant: Tenant) -> Bucket:
        return cls(tenant.bucket_url)

    def _path(self, key: str) -> Path:
        parts = key.strip("/").split("/")
        if any(p in {"", ".", ".."} for p in parts):
            raise StorageError(f"bucket {self.url}: invalid key {key!r}")
        return self.root.joinpath(*parts)

    def uri(self, key: str) -> str:
        """A location DuckDB and dlt can read directly (a local path for file buckets)."""
        return str(self._path(key))

    def local_path(self, key: str) -> Path:
        return self._path(key)

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def list(self, prefix: str) -> list[str]:
        """Keys of every object under ``prefix``, sorted, skipping in-flight temporaries."""
        base = self._path(prefix)
        if not base.is_dir():
            return []
        return sorted(
            p.relative_to(self.root).as_posix()
            for p in base.rglob("*")
            if p.is_file() and ".tmp-" not in p.name
        )

    def read_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise StorageError(f"bucket {self.url}: no object {key!r}") from None

    def put_file(self, source: Path, key: str) -> None:
        """Copy ``source`` to ``key`` atomically; refuse to overwrite an existing object."""
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
        # A hard link fails if the target exists, which gives write-once without a race.
        try:
            os.link(tmp, target)
        except FileExistsError:
            raise StorageError(
                f"bucket {self.url}: {key!r} already exists and objects are write-once"
            ) from None
        finally:
            tmp.unlink(missing_ok=True)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
