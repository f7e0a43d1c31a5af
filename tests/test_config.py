"""Tenant configuration: strict schema, safe ids and prefixes, readable errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from servicervault.config import ConfigError, check_tenant_id, load_tenant

VALID = """\
id: acme
name: Acme Servicing
storage:
  bucket: file://${VAULT_HOME}/buckets/acme
  access_key_id_env: ACME_KEY_ID
  secret_access_key_env: ACME_SECRET
sources:
  - name: servicing_tape
    layout: fannie_sflp
    inbound: inbound/servicing_tape/
"""


def write(vault_home: Path, text: str, tenant_id: str = "acme") -> Path:
    path = vault_home.parent / "tenants" / f"{tenant_id}.yaml"
    path.write_text(text)
    return path


def test_a_valid_tenant_loads_with_vault_home_expanded(vault_home: Path) -> None:
    write(vault_home, VALID)
    tenant = load_tenant("acme")
    assert tenant.bucket_url == f"file://{vault_home}/buckets/acme"
    assert tenant.home == vault_home / "tenants" / "acme"
    assert tenant.storage.access_key_id_env == "ACME_KEY_ID"
    assert tenant.source("servicing_tape").layout == "fannie_sflp"


def test_the_shipped_demo_tenant_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VAULT_TENANTS_DIR", raising=False)
    assert load_tenant("demo").sources[0].name == "servicing_tape"


@pytest.mark.parametrize("bad_id", ["../etc", "a/b", "..", "Acme", "-acme", "acme-", "", "a" * 64])
def test_unsafe_tenant_ids_are_rejected(bad_id: str) -> None:
    with pytest.raises(ConfigError, match="invalid tenant id"):
        check_tenant_id(bad_id)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("  access_key_id_env: ACME_KEY_ID", "  access_key_id: AKIA123"),
            "storage.access_key_id: unknown key",
        ),
        (
            ("layout: fannie_sflp", "layout: cobol"),
            "sources.0.layout: input should be 'fannie_sflp'",
        ),
        (
            ("inbound/servicing_tape/", "../other-tenant/"),
            "sources.0.inbound: must be a relative prefix",
        ),
        (("inbound/servicing_tape/", "/abs/"), "sources.0.inbound: must be a relative prefix"),
        (
            ("file://${VAULT_HOME}/buckets/acme", "ftp://x"),
            "storage.bucket: must start with file:// or s3://",
        ),
        (("file://${VAULT_HOME}/buckets/acme", "file:///x/../y"), "must not contain '..'"),
        (
            ("secret_access_key_env: ACME_SECRET", "secret_access_key_env: wJalr/XUtnFEMI"),
            "NAME of an environment variable",
        ),
        (("id: acme", "id: other"), "does not match the file name"),
    ],
)
def test_bad_config_names_the_file_and_the_problem(
    vault_home: Path, change: tuple[str, str], message: str
) -> None:
    path = write(vault_home, VALID.replace(*change))
    with pytest.raises(ConfigError) as err:
        load_tenant("acme")
    assert str(path) in str(err.value)
    assert message.lower() in str(err.value).lower()


def test_invalid_yaml_and_missing_tenant_are_clear(vault_home: Path) -> None:
    write(vault_home, "id: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_tenant("acme")
    with pytest.raises(ConfigError, match=r"no tenant 'ghost'.*known: acme"):
        load_tenant("ghost")


@pytest.mark.parametrize(
    ("delimited", "message"),
    [
        ({"code_maps": {"dlq_statu": {"C": "00"}}}, "code_maps: ['dlq_statu'] are not mapped"),
        ({"columns": {"Rate2": "orig_rate"}}, "several header names map onto ['orig_rate']"),
    ],
)
def test_a_delimited_mapping_must_be_unambiguous(
    vault_home: Path, delimited: dict, message: str
) -> None:
    import yaml

    columns = {"L": "loan_id", "P": "period", "R": "orig_rate", "U": "orig_upb", "T": "orig_term",
               "F": "first_pay_date"}  # fmt: skip
    spec = {"columns": {**columns, **delimited.pop("columns", {})}, **delimited}
    source = {"name": "tape", "layout": "delimited", "inbound": "in/", "delimited": spec}
    tenant = {
        "id": "acme",
        "name": "A",
        "storage": {"bucket": "file:///tmp/a"},
        "sources": [source],
    }
    write(vault_home, yaml.safe_dump(tenant))
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_tenant("acme")


def test_source_names_must_be_distinct(vault_home: Path) -> None:
    doubled = VALID + "  - name: servicing_tape\n    layout: fannie_sflp\n    inbound: other/\n"
    write(vault_home, doubled)
    with pytest.raises(ConfigError, match="source names must be distinct"):
        load_tenant("acme")
