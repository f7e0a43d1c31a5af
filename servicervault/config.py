"""Where state lives (``VAULT_HOME``) and what a tenant is (``tenants/<id>.yaml``).

Tenant files are strict on purpose: an unknown key is far more often a typo than an
intention, and a typo in a storage block could point a tenant at the wrong bucket.
Credentials appear only as the *names* of environment variables, so a tenant file can be
committed and a secret manager (``doppler run --``) supplies the values at run time.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from servicervault.errors import VaultError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# What one DuckDB of a stage may hold in memory before spilling to disk: with the Python
# process around it, every stage stays under 2 GiB of RSS whatever the portfolio's size.
DUCKDB_MEMORY_LIMIT = "1GB"

# Bucket-name compatible, so a tenant id can name its own S3 bucket; no dots, slashes or `..`.
TENANT_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
SOURCE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
PREFIX = re.compile(r"^(?:[A-Za-z0-9_.-]+/)+$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ENDPOINT = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?$")
REGION = re.compile(r"^[a-z0-9-]{1,32}$")


class ConfigError(VaultError):
    """A tenant file or setting is wrong; the message says which file and what to change."""


def vault_home() -> Path:
    """Root of all local state for the embedded default (``VAULT_HOME``, default ``./.vault``).

    A quote is refused: SQLMesh writes the warehouse path into SQL unescaped.
    """
    home = Path(os.environ.get("VAULT_HOME", ".vault")).expanduser().resolve()
    if "'" in str(home):
        raise ConfigError(f"VAULT_HOME {home} contains a quote ('); choose a path without one")
    return home


def tenants_dir() -> Path:
    """Folder of tenant YAML files (``VAULT_TENANTS_DIR``, default the repo's ``tenants/``)."""
    return Path(os.environ.get("VAULT_TENANTS_DIR", PROJECT_ROOT / "tenants")).resolve()


def check_tenant_id(tenant_id: str) -> str:
    """Reject ids that could escape a folder or bucket (``..``, ``/``) before any path is built."""
    if not TENANT_ID.match(tenant_id):
        raise ConfigError(
            f"invalid tenant id {tenant_id!r}: use 1-63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return tenant_id


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Storage(_Strict):
    """Where the tenant's bucket is and which environment variables hold its keys."""

    bucket: str
    endpoint: str | None = None
    region: str | None = None
    url_style: Literal["path", "vhost"] | None = None
    access_key_id_env: str | None = None
    secret_access_key_env: str | None = None

    @field_validator("bucket")
    @classmethod
    def _bucket_scheme(cls, value: str) -> str:
        if not value.startswith(("file://", "s3://")):
            raise ValueError("must start with file:// or s3://")
        if ".." in value.split("://", 1)[1].split("/"):
            raise ValueError("must not contain '..'")
        return value

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is not None and not ENDPOINT.match(value):
            raise ValueError("must be http(s)://host[:port], e.g. http://127.0.0.1:7480")
        return value

    @field_validator("region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        if value is not None and not REGION.match(value):
            raise ValueError("must be a region name such as us-east-1 or auto")
        return value

    @field_validator("access_key_id_env", "secret_access_key_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not ENV_NAME.match(value):
            raise ValueError("must be the NAME of an environment variable, not a key")
        return value


class DelimitedSpec(_Strict):
    """A generic delimited tape: header names mapped onto canonical contract columns."""

    delimiter: str = ","
    date_format: str = "%Y-%m-%d"
    null_tokens: list[str] = Field(default_factory=lambda: ["", "NA", "NULL"])
    columns: dict[str, str] = Field(min_length=1)
    code_maps: dict[str, dict[str, str]] = Field(default_factory=dict)

    @field_validator("delimiter")
    @classmethod
    def _one_char(cls, value: str) -> str:
        if len(value) != 1 or value in {'"', "\n", "\r"}:
            raise ValueError("must be one character (not a quote or newline)")
        return value

    @field_validator("columns")
    @classmethod
    def _canonical(cls, value: dict[str, str]) -> dict[str, str]:
        from servicervault.contracts import contract

        known = {
            c.name
            for table in ("silver.loan", "silver.loan_month")
            for c in contract(table).columns
            if c.source
        }
        unknown = sorted(set(value.values()) - known)
        if unknown:
            raise ValueError(f"maps onto unknown canonical columns {unknown}")
        required = {"loan_id", "period", "orig_rate", "orig_upb", "orig_term", "first_pay_date"}
        missing = sorted(required - set(value.values()))
        if missing:
            raise ValueError(f"must map the required canonical columns {missing}")
        return value

    @model_validator(mode="after")
    def _unambiguous(self) -> DelimitedSpec:
        targets = list(self.columns.values())
        twice = sorted({t for t in targets if targets.count(t) > 1})
        if twice:
            raise ValueError(f"columns: several header names map onto {twice}")
        unmapped = sorted(set(self.code_maps) - set(targets))
        if unmapped:
            raise ValueError(f"code_maps: {unmapped} are not mapped in columns")
        return self


class Source(_Strict):
    """One delivery stream of tapes landing under a prefix of the tenant's bucket."""

    name: str
    layout: Literal["fannie_sflp", "fannie_legacy", "freddie_sflld", "delimited"]
    inbound: str
    delimited: DelimitedSpec | None = None
    quarantine_limit_pct: float = Field(default=1.0, ge=0, le=100)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not SOURCE_NAME.match(value):
            raise ValueError("use lowercase letters, digits and '_', starting with a letter")
        return value

    @field_validator("inbound")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not PREFIX.match(value) or any(part in {".", ".."} for part in value.split("/")):
            raise ValueError(
                "must be a relative prefix inside the bucket ending in '/', e.g. inbound/tape/"
            )
        return value

    @model_validator(mode="after")
    def _delimited_mapping(self) -> Source:
        if (self.layout == "delimited") != (self.delimited is not None):
            raise ValueError("a `delimited` block is required for layout delimited, and only there")
        return self


class Tenant(_Strict):
    """A servicer: its id, display name, bucket and sources."""

    id: str
    name: str
    storage: Storage
    sources: list[Source] = Field(min_length=1)

    @field_validator("sources")
    @classmethod
    def _distinct_sources(cls, value: list[Source]) -> list[Source]:
        names = [s.name for s in value]
        if len(set(names)) != len(names):
            raise ValueError("source names must be distinct (each has its own snapshots/<name>/)")
        return value

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        try:
            return check_tenant_id(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc

    @property
    def bucket_url(self) -> str:
        """The bucket URL with ``${VAULT_HOME}`` expanded (the only variable allowed there)."""
        return self.storage.bucket.replace("${VAULT_HOME}", str(vault_home()))

    @property
    def home(self) -> Path:
        """This tenant's local state: warehouse, analytics database, validations, run ledger."""
        return vault_home() / "tenants" / self.id

    def source(self, name: str) -> Source:
        for source in self.sources:
            if source.name == name:
                return source
        raise ConfigError(f"tenant {self.id!r} has no source {name!r}")


def load_tenant(tenant_id: str) -> Tenant:
    """Load and check ``tenants/<id>.yaml``; every problem is reported with the file's path."""
    check_tenant_id(tenant_id)
    path = tenants_dir() / f"{tenant_id}.yaml"
    if not path.is_file():
        known = ", ".join(list_tenant_ids()) or "none"
        raise ConfigError(f"no tenant {tenant_id!r}: {path} does not exist (known: {known})")
    return parse_tenant_file(path)


def load_yaml(text: str) -> Any:
    """Safe YAML through libyaml, PyYAML's C loader: in pure Python the contracts alone took
    0.1-0.3 s, in every stage process that reads them."""
    return yaml.load(text, Loader=yaml.CSafeLoader)


def parse_tenant_file(path: Path) -> Tenant:
    """Parse one tenant file, turning YAML and schema errors into one readable message."""
    try:
        raw = load_yaml(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with id, name, storage and sources")
    try:
        tenant = Tenant.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {_plain(err)}" for err in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from None
    if tenant.id != path.stem:
        raise ConfigError(f"{path}: id {tenant.id!r} does not match the file name {path.stem!r}")
    return tenant


def _plain(err: dict) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "literal_error":
        return f"{err['msg'].lower()} (got {err['input']!r})"
    return str(err["msg"]).removeprefix("Value error, ")


def list_tenant_ids() -> list[str]:
    folder = tenants_dir()
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
