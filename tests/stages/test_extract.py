"""Extract: new files land once as a committed snapshot; bad files land nothing."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import sys
import threading
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from pipelines.servicing_tape import inspection
from pipelines.servicing_tape.delivery import QuarantineLimitExceeded
from servicervault.stages import extract as extract_stage
from servicervault.stages.extract import ExtractError, extract, read_manifests
from servicervault.storage import Bucket, sha256_file
from tests.conftest import Deliver, MakeTenant
from tests.pipelines.servicing_tape.test_parser import FREDDIE_ORIG, FREDDIE_SVCG, line


def test_files_land_once_with_a_complete_manifest(
    make_tenant: MakeTenant, deliver: Deliver, small_tapes: list[Path]
) -> None:
    tenant = make_tenant()
    deliver(tenant, small_tapes[:3])
    [first] = extract(tenant)
    bucket = Bucket.for_tenant(tenant)
    [manifest] = read_manifests(bucket, "servicing_tape")
    assert manifest["snapshot_id"] == first.snapshot_id
    assert manifest["dlt_load_id"] == first.load_id
    assert [f["sha256"] for f in manifest["files"]] == [sha256_file(p) for p in small_tapes[:3]]
    rows_in = sum(len(p.read_text().splitlines()) for p in small_tapes[:3])
    assert sum(f["rows_in"] for f in manifest["files"]) == rows_in
    assert manifest["rows_landed"] + manifest["rows_quarantined"] == rows_in
    for table, spec in manifest["tables"].items():
        for f in spec["files"]:
            path = bucket.local_path(f["key"])
            assert sha256_file(path) == f["sha256"], table
            assert pq.read_metadata(path).num_rows == f["rows"]
    assert manifest["tables"]["loan_month"]["rows"] == manifest["rows_landed"]
    assert len(manifest["schema_fingerprint"]) == 64

    # Nothing new: nothing lands. The same bytes under a new name are not landed twice.
    [again] = extract(tenant)
    assert again.snapshot_id is None and len(again.already_landed) == 3
    bucket.put_file(small_tapes[0], "inbound/servicing_tape/resent_copy.txt")
    [resent] = extract(tenant)
    assert resent.snapshot_id is None and len(resent.already_landed) == 4

    # A new month lands exactly its own rows as a second snapshot.
    deliver(tenant, small_tapes[3:4])
    [second] = extract(tenant)
    assert second.rows_landed == len(small_tapes[3].read_text().splitlines())
    assert len(read_manifests(bucket, "servicing_tape")) == 2

    # Landed files are recognised by their tag; a file rewritten under the same name is new.
    inbound = bucket.local_path(f"{tenant.sources[0].inbound}{small_tapes[3].name}")
    resent_lines = inbound.read_text().splitlines(keepends=True)[:-1]
    inbound.write_text("".join(resent_lines))
    [third] = extract(tenant)
    assert third.snapshot_id is not None and len(third.already_landed) == 4
    assert third.rows_landed == len(resent_lines)


def test_dlt_is_imported_while_the_delivery_is_parsed(
    make_tenant: MakeTenant,
    deliver: Deliver,
    small_tapes: list[Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only the load after parsing needs dlt, so its import, and that of what the load imports,
    is started before the parse."""
    events: list[str] = []
    importers: list[threading.Thread] = []
    start_import, parse = extract_stage._import_dlt_meanwhile, extract_stage._parse_delivery

    def import_meanwhile() -> threading.Thread:
        events.append("import dlt")
        importers.append(start_import())
        return importers[-1]

    def parse_after(*args: object) -> dict[str, Path]:
        events.append("parse")
        return parse(*args)

    monkeypatch.setattr(extract_stage, "_import_dlt_meanwhile", import_meanwhile)
    monkeypatch.setattr(extract_stage, "_parse_delivery", parse_after)
    tenant = make_tenant()
    deliver(tenant, small_tapes[:1])
    [landed] = extract(tenant)
    assert landed.snapshot_id is not None
    assert events == ["import dlt", "parse"]
    [importer] = importers
    assert importer.name == "import dlt" and importer.daemon
    importer.join()
    assert "dlt.pipeline" in sys.modules
    # A name that is not a module would end the thread early, and the load would import it.
    assert [name for name in extract_stage.DLT_MODULES if name not in sys.modules] == []

    # Nothing new to land: nothing is parsed, and dlt is not wanted.
    events.clear()
    [again] = extract(tenant)
    assert again.snapshot_id is None and events == []


def test_new_files_are_fingerprinted_two_at_a_time_and_kept_in_order(
    make_tenant: MakeTenant,
    deliver: Deliver,
    small_tapes: list[Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Hashing releases the GIL, so two files are hashed at once; the delivery keeps its order."""
    both_hashing = threading.Barrier(2, timeout=30)  # broken if the files are hashed one by one
    real = inspection.fingerprint

    def fingerprint_beside_another(path: Path, name: str) -> inspection.FileFacts:
        both_hashing.wait()
        return real(path, name)

    monkeypatch.setattr(inspection, "fingerprint", fingerprint_beside_another)
    tenant = make_tenant()
    deliver(tenant, small_tapes[:4])
    [landed] = extract(tenant)
    [manifest] = read_manifests(Bucket.for_tenant(tenant), "servicing_tape")
    assert landed.snapshot_id == manifest["snapshot_id"]
    assert [f["sha256"] for f in manifest["files"]] == [sha256_file(p) for p in small_tapes[:4]]


def test_an_unreadable_file_lands_nothing_and_is_kept(
    make_tenant: MakeTenant, deliver: Deliver, small_tapes: list[Path], tmp_path: Path
) -> None:
    tenant = make_tenant()
    bad = tmp_path / "sflp_broken.txt"
    bad.write_bytes(b"")
    deliver(tenant, [small_tapes[0], bad])
    message = r"nothing landed:\n  inbound/servicing_tape/sflp_broken\.txt: the file is empty"
    with pytest.raises(ExtractError, match=message):
        extract(tenant)
    bucket = Bucket.for_tenant(tenant)
    assert read_manifests(bucket, "servicing_tape") == []
    assert bucket.list("snapshots/") == []
    assert bucket.exists("inbound/servicing_tape/sflp_broken.txt")
    # Once the servicer replaces the file, the good one lands along with it.
    bucket.local_path("inbound/servicing_tape/sflp_broken.txt").unlink()
    [result] = extract(tenant)
    assert [f["key"] for f in result.files] == [f"inbound/servicing_tape/{small_tapes[0].name}"]
    assert json.loads(bucket.read_bytes(result.manifest_key or ""))["rows_quarantined"] == 0


def test_a_file_may_hold_many_months(
    make_tenant: MakeTenant, deliver: Deliver, small_tapes: list[Path], tmp_path: Path
) -> None:
    """Fannie publishes one file per acquisition quarter holding every month of its loans."""
    combined = tmp_path / "quarter.txt"
    combined.write_text("".join(p.read_text() for p in small_tapes[:3]))
    tenant = make_tenant()
    deliver(tenant, [combined])
    [result] = extract(tenant)
    assert result.rows_landed == len(combined.read_text().splitlines())
    bucket = Bucket.for_tenant(tenant)
    [manifest] = read_manifests(bucket, "servicing_tape")
    loan_files = [bucket.local_path(f["key"]) for f in manifest["tables"]["loan"]["files"]]
    loans = pq.read_table(loan_files).to_pylist()
    # One attribute row per loan, taken from its latest month in the file.
    latest: dict[str, dt.date] = {}
    for text in combined.read_text().splitlines():
        _, loan_id, period = text.split("|", 3)[:3]
        month = dt.date(int(period[2:]), int(period[:2]), 1)
        latest[loan_id] = max(month, latest.get(loan_id, month))
    assert {row["loan_id"]: row["as_of_period"] for row in loans} == latest
    assert len(loans) == len(latest)


def _tape(tmp_path: Path, name: str, lines: list[str], gz: bool = False) -> Path:
    path = tmp_path / name
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def test_a_freddie_delivery_lands_loans_and_months_and_builds(
    make_tenant: MakeTenant, deliver: Deliver, tmp_path: Path
) -> None:
    tenant = make_tenant(sources=[{"name": "fhlmc", "layout": "freddie_sflld", "inbound": "in/"}])
    orig = _tape(tmp_path, "orig.txt", [line("fhlmc_sflld_orig.csv", FREDDIE_ORIG)])
    months = [
        line("fhlmc_sflld_svcg.csv", FREDDIE_SVCG, 32, **{"Monthly Reporting Period": p,
             "Current Loan Delinquency Status": d})
        for p, d in [("202104", "0"), ("202105", "1"), ("202106", "RA")]
    ]  # fmt: skip
    svcg = _tape(tmp_path, "svcg.txt.gz", months, gz=True)
    bucket = Bucket.for_tenant(tenant)
    for path in (orig, svcg):
        bucket.put_file(path, f"in/{path.name}")
    [result] = extract(tenant)
    kinds = {f["key"]: (f["kind"], f["gzip"], f["rows_landed"]) for f in result.files}
    assert kinds == {
        "in/orig.txt": ("origination", False, 1),
        "in/svcg.txt.gz": ("servicing", True, 3),
    }

    from servicervault.stages.transform import transform
    from servicervault.stages.validate import warehouse_path

    transform(tenant)
    con = duckdb.connect(str(warehouse_path(tenant)), read_only=True)
    statuses = con.execute("SELECT status FROM silver.loan_month ORDER BY period").fetchall()
    loan = con.execute("SELECT fico, purpose, zip3 FROM silver.loan").fetchone()
    con.close()
    assert [s for (s,) in statuses] == ["current", "dpd30", "dpd90p"]
    assert loan == (None, "R", "750")


def test_files_of_the_wrong_layout_land_nothing_and_every_problem_is_listed(
    make_tenant: MakeTenant, deliver: Deliver, small_tapes: list[Path], tmp_path: Path
) -> None:
    tenant = make_tenant(sources=[{"name": "legacy", "layout": "fannie_legacy", "inbound": "in/"}])
    bucket = Bucket.for_tenant(tenant)
    bucket.put_file(small_tapes[0], "in/monthly.txt")
    bucket.put_file(_tape(tmp_path, "bin.txt", ["ok"]), "in/also_bad.txt")
    bucket.local_path("in/also_bad.txt").write_bytes(b"\x00\x01binary")
    with pytest.raises(ExtractError) as err:
        extract(tenant)
    message = str(err.value)
    assert "in/monthly.txt: does not match layout fannie_legacy: its lines have 108" in message
    assert "in/also_bad.txt: binary content" in message
    assert bucket.list("snapshots/") == [] and bucket.exists("in/monthly.txt")


def test_the_quarantine_limit_lands_nothing_above_it_and_everything_below(
    make_tenant: MakeTenant, small_tapes: list[Path], tmp_path: Path
) -> None:
    lines = small_tapes[0].read_text().splitlines()
    broken = [ln.replace("|R|", "|Z|", 1) if i % 20 == 0 else ln for i, ln in enumerate(lines)]
    bad_rows = sum(1 for a, b in zip(lines, broken, strict=True) if a != b)
    tape = _tape(tmp_path, "sflp_202101.txt", broken)
    source = {"name": "servicing_tape", "layout": "fannie_sflp", "inbound": "in/"}
    strict = make_tenant("strict", sources=[source])
    Bucket.for_tenant(strict).put_file(tape, "in/sflp_202101.txt")
    with pytest.raises(QuarantineLimitExceeded, match="above the limit of 1 %"):
        extract(strict)
    assert Bucket.for_tenant(strict).list("snapshots/") == []

    lenient = make_tenant("lenient", sources=[{**source, "quarantine_limit_pct": 10}])
    bucket = Bucket.for_tenant(lenient)
    bucket.put_file(tape, "in/sflp_202101.txt")
    [result] = extract(lenient)
    assert result.rows_quarantined == bad_rows > 0
    assert result.rows_landed + result.rows_quarantined == len(lines)
    [manifest] = read_manifests(bucket, "servicing_tape")
    [q] = manifest["tables"]["quarantine"]["files"]
    reasons = pq.read_table(bucket.local_path(q["key"])).to_pylist()
    assert {r["check"] for r in reasons} == {"not_allowed"} and len(reasons) == bad_rows


def test_a_delimited_tenant_maps_its_own_columns(make_tenant: MakeTenant, tmp_path: Path) -> None:
    mapping = {
        "delimiter": ";",
        "date_format": "%d.%m.%Y",
        "columns": {
            "Darlehen": "loan_id", "Stichtag": "period", "Zins": "orig_rate",
            "Betrag": "orig_upb", "Laufzeit": "orig_term", "Erste Rate": "first_pay_date",
            "Saldo": "current_upb", "Verzug": "dlq_status",
        },
        "code_maps": {"dlq_status": {"keiner": "00", "30": "01"}},
    }  # fmt: skip
    source = {"name": "bank", "layout": "delimited", "inbound": "in/", "delimited": mapping}
    tenant = make_tenant(sources=[source])
    tape = _tape(tmp_path, "bestand.csv", [
        "Darlehen;Stichtag;Zins;Betrag;Laufzeit;Erste Rate;Saldo;Verzug",
        "D1;01.02.2024;4.5;100000;240;01.01.2024;99600.5;keiner",
        "D2;01.02.2024;5;200000;360;01.01.2024;199000;30",
    ])  # fmt: skip
    Bucket.for_tenant(tenant).put_file(tape, "in/bestand.csv")
    [result] = extract(tenant)
    assert (result.rows_landed, result.rows_quarantined) == (2, 0)
    [manifest] = read_manifests(Bucket.for_tenant(tenant), "bank")
    [part] = manifest["tables"]["loan_month"]["files"]
    rows = pq.read_table(Bucket.for_tenant(tenant).local_path(part["key"])).to_pylist()
    assert [(r["loan_id"], r["period"], r["dlq_status"]) for r in rows] == [
        ("D1", dt.date(2024, 2, 1), "00"),
        ("D2", dt.date(2024, 2, 1), "01"),
    ]


def test_a_delimited_mapping_must_cover_the_required_columns(make_tenant: MakeTenant) -> None:
    from servicervault.config import ConfigError

    bad = {"columns": {"Loan": "loan_id", "Month": "period", "Colour": "paint"}}
    with pytest.raises(ConfigError) as err:
        make_tenant(
            sources=[{"name": "b", "layout": "delimited", "inbound": "in/", "delimited": bad}]
        )
    assert "maps onto unknown canonical columns ['paint']" in str(err.value)
