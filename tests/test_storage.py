"""Buckets: write-once, atomic puts, and keys that cannot escape the bucket."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from servicervault.storage import LocalBucket, StorageError, open_bucket


def test_put_is_write_once_and_lists_only_complete_objects(tmp_path: Path) -> None:
    bucket = LocalBucket(f"file://{tmp_path}/b")
    bucket.put_bytes(b"first", "snapshots/s1/manifest.json")
    with pytest.raises(StorageError, match="already exists and objects are write-once"):
        bucket.put_bytes(b"second", "snapshots/s1/manifest.json")
    assert bucket.read_bytes("snapshots/s1/manifest.json") == b"first"
    # An in-flight temporary (as left by a killed put) is never listed as an object.
    (tmp_path / "b/snapshots/s1/.x.parquet.tmp-abc").write_bytes(b"partial")
    assert bucket.list("snapshots/") == ["snapshots/s1/manifest.json"]


@pytest.mark.parametrize("key", ["../escape", "a/../../b", "/", "a//b", "./a"])
def test_keys_cannot_escape_the_bucket(tmp_path: Path, key: str) -> None:
    bucket = LocalBucket(f"file://{tmp_path}/b")
    with pytest.raises(StorageError, match="invalid key"):
        bucket.put_bytes(b"x", key)


def test_missing_object_and_unsupported_scheme_are_clear(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no object 'nope'"):
        LocalBucket(f"file://{tmp_path}").read_bytes("nope")
    with pytest.raises(StorageError, match="buckets are file:// or s3:// URLs"):
        open_bucket("ftp://bucket")


def test_local_tags_change_when_a_file_is_rewritten(tmp_path: Path) -> None:
    """Extract trusts a matching tag instead of hashing a landed file again."""
    bucket = LocalBucket((tmp_path / "b").as_uri())
    bucket.put_bytes(b"month 1\n", "inbound/a.txt")
    bucket.put_bytes(b"month 2\n", "inbound/b.txt")
    bucket.put_bytes(b"x", "elsewhere/c.txt")
    tags = bucket.etags("inbound")
    assert sorted(tags) == ["inbound/a.txt", "inbound/b.txt"]
    assert bucket.etags("inbound") == tags  # stable while nothing changes
    path = bucket.local_path("inbound/a.txt")
    stat = path.stat()
    path.write_bytes(b"month 9\n")  # the same size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))  # however quick the rewrite
    again = bucket.etags("inbound")
    assert again["inbound/a.txt"] != tags["inbound/a.txt"]
    assert again["inbound/b.txt"] == tags["inbound/b.txt"]
