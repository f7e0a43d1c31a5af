"""Buckets: write-once, atomic puts, and keys that cannot escape the bucket."""

from __future__ import annotations

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
