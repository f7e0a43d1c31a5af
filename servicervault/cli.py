"""The ``vault`` command: parse arguments, call a service, render the result.

Heavy libraries (dlt, SQLMesh, Great Expectations) are imported inside the services that
need them, so ``vault query`` and ``vault runs`` start fast.
"""

from __future__ import annotations

import json
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from servicervault.errors import VaultError
from servicervault.fast_exit import fast_exit

app = typer.Typer(
    help="ServicerVault: servicing tapes in, validated gold tables and Parquet drops out.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
tenants_app = typer.Typer(help="List and check tenant configurations.", no_args_is_help=True)
app.add_typer(tenants_app, name="tenants")

TenantOpt = Annotated[str, typer.Option("--tenant", "-t", help="Tenant id (tenants/<id>.yaml).")]


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


def _err(message: str) -> None:
    typer.secho(message, fg=typer.colors.RED, err=True)


def _say(message: str) -> None:
    typer.echo(message, err=True)


def _fail(exc: VaultError) -> typer.Exit:
    _err(f"error: {exc}")
    return typer.Exit(1)


def _tenant(tenant_id: str):
    from servicervault.config import load_tenant

    return load_tenant(tenant_id)


def _month_progress(done: int, total: int) -> None:
    if sys.stderr.isatty():
        end = "\n" if done == total else ""
        typer.echo(f"\r  generated month {done}/{total}", err=True, nl=False)
        typer.echo(end, err=True, nl=False)
    elif done == total:
        _say(f"  generated {total} monthly tapes")


def _run(tenant_id: str, stages: tuple[str, ...]) -> list:
    from servicervault.runner import run_stages

    try:
        records = run_stages(_tenant(tenant_id), stages, progress=_say)
    except VaultError as exc:
        raise _fail(exc) from None
    _render_records(records)
    if any(r.status != "ok" for r in records):
        raise typer.Exit(1)
    return records


def _render_records(records: list, with_run_id: bool = False, full: bool = True) -> None:
    """One line per stage record; ``full`` adds the rest of multi-line messages below it."""
    lead = f"{'run id':<24}" if with_run_id else ""
    typer.echo(f"{lead}{'stage':<10} {'status':<7} {'rows':>12} {'seconds':>8}  message")
    for r in records:
        first, *rest = r.message.splitlines() or [""]
        colour = typer.colors.GREEN if r.status == "ok" else typer.colors.RED
        status = typer.style(f"{r.status:<7}", fg=colour)
        run_id = f"{r.run_id:<24}" if with_run_id else ""
        typer.echo(f"{run_id}{r.stage:<10} {status} {r.rows:>12,} {r.seconds:>8.2f}  {first}")
        for line in rest if full else []:
            typer.echo(f"{'':>{len(run_id) + 41}}{line}")


@app.command()
def generate(
    loans: Annotated[int, typer.Option(min=1, help="Number of loans.")],
    months: Annotated[int, typer.Option(min=1, help="Number of reporting months.")],
    out: Annotated[Path, typer.Option(help="Folder for the monthly tape files.")],
    start: Annotated[str, typer.Option(help="First reporting month, YYYY-MM.")] = "2021-01",
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same bytes.")] = 42,
) -> None:
    """Synthetic servicing tapes in the Fannie Mae SFLP combined layout, one file per month."""
    from servicervault.generator import generate_tapes

    try:
        paths = generate_tapes(loans, months, out, start=start, seed=seed, progress=_month_progress)
    except ValueError as exc:
        _err(f"error: {exc}")
        raise typer.Exit(2) from None
    typer.echo(f"wrote {len(paths)} tapes to {out} ({paths[0].name} … {paths[-1].name})")


@app.command()
def extract(tenant: TenantOpt) -> None:
    """Land new tape files from the tenant's inbound prefix as an immutable snapshot."""
    _run(tenant, ("extract",))


@app.command()
def transform(tenant: TenantOpt) -> None:
    """Build bronze, silver and gold with SQLMesh from every committed snapshot."""
    _run(tenant, ("transform",))


@app.command()
def validate(tenant: TenantOpt) -> None:
    """Run the contract-generated Great Expectations suites on silver and gold."""
    _run(tenant, ("validate",))


@app.command()
def publish(tenant: TenantOpt) -> None:
    """Publish the validated build as the read-only analytics database."""
    _run(tenant, ("publish",))


@app.command()
def drop(
    tenant: TenantOpt,
    presign: Annotated[
        str | None,
        typer.Option(help="Also print download links valid this long: 15m, 24h, 7d (S3 only)."),
    ] = None,
) -> None:
    """Write the published gold tables as a Parquet drop with a manifest in the bucket."""
    from servicervault import drops

    seconds = _duration(presign) if presign else None
    records = _run(tenant, ("drop",))
    if seconds:
        try:
            links = drops.presign(_tenant(tenant), records[-1].details["drop_id"], seconds)
        except VaultError as exc:
            raise _fail(exc) from None
        typer.echo(f"\nlinks valid for {presign}:")
        for name, url in links:
            typer.echo(f"  {name}\n    {url}")


def _duration(text: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = (text[:-1], text[-1]) if text[-1:] in units else (text, "s")
    if not number.isdigit() or not 0 < int(number) * units[unit] <= 7 * 86400:
        _err(f"error: --presign {text!r}: use a duration like 15m, 24h or 7d (at most 7 days)")
        raise typer.Exit(2)
    return int(number) * units[unit]


@app.command("verify-drop")
def verify_drop(
    uri: Annotated[str, typer.Argument(help="file://…/drops/<id>/ or s3://bucket/drops/<id>/")],
    tenant: Annotated[
        str | None, typer.Option("--tenant", "-t", help="Use this tenant's S3 endpoint and keys.")
    ] = None,
) -> None:
    """Re-read a drop and check every file against its manifest (bytes, SHA-256, rows, schema)."""
    from servicervault import drops

    try:
        verified = drops.verify(uri, _tenant(tenant) if tenant else None)
    except VaultError as exc:
        raise _fail(exc) from None
    typer.echo(
        f"drop {verified.drop_id}: {verified.files} files and {verified.rows:,} rows "
        "match the manifest"
    )


@app.command()
def run(tenant: TenantOpt) -> None:
    """Extract, transform, validate, publish and drop: the scheduler's one entry point."""
    _run(tenant, ("extract", "transform", "validate", "publish", "drop"))


@app.command()
def demo(
    loans: Annotated[int, typer.Option(min=1, help="Loans in the demo portfolio.")] = 2000,
    months: Annotated[int, typer.Option(min=1, help="Reporting months.")] = 36,
    reset: Annotated[bool, typer.Option(help="Start the demo tenant over.")] = False,
) -> None:
    """Generate a portfolio for tenant `demo`, run the whole pipeline and show where it went."""
    from servicervault.demo import prepare_demo

    try:
        tenant, added = prepare_demo(loans, months, reset, progress=_month_progress)
    except VaultError as exc:
        raise _fail(exc) from None
    _say(f"demo portfolio: {loans:,} loans x {months} months ({len(added)} new tape files)")
    _run(tenant.id, ("extract", "transform", "validate", "publish", "drop"))
    _render_demo_locations(tenant)


def _render_demo_locations(tenant) -> None:
    from servicervault import ledger
    from servicervault.stages.publish import analytics_path

    drop_record = ledger.last(tenant, "drop")
    validate_record = ledger.last(tenant, "validate")
    typer.echo("")
    typer.echo(f"bucket            {tenant.bucket_url}")
    typer.echo(f"analytics db      {analytics_path(tenant)}")
    if drop_record:
        typer.echo(f"latest drop       {tenant.bucket_url}/{drop_record.details['manifest']}")
    if validate_record:
        typer.echo(f"data docs         {validate_record.details['data_docs']}")
    typer.echo(f"run ledger        {ledger.ledger_path(tenant)}")
    typer.echo("")
    typer.echo(
        'try:  vault query --tenant demo "SELECT * FROM gold.portfolio_monthly ORDER BY period"'
    )
    typer.echo(
        f"      duckdb -c \"ATTACH '{analytics_path(tenant)}' AS vault (READ_ONLY); "
        'SELECT * FROM vault.gold.portfolio_monthly"'
    )


@app.command()
def query(
    tenant: TenantOpt,
    sql: Annotated[str, typer.Argument(help="SQL to run against the published database.")],
    format: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.table,
) -> None:
    """Read-only SQL over the tenant's published gold and silver tables."""
    from servicervault.stages.query import query as run_query

    try:
        table = run_query(_tenant(tenant), sql)
    except VaultError as exc:
        raise _fail(exc) from None
    if format is OutputFormat.csv:
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, sys.stdout.buffer)
    elif format is OutputFormat.json:
        typer.echo(json.dumps(table.to_pylist(), default=str, indent=1))
    else:
        import polars as pl

        with pl.Config(
            tbl_rows=-1,
            tbl_cols=-1,
            tbl_hide_dataframe_shape=True,
            fmt_float="full",
            tbl_width_chars=int(os.environ.get("COLUMNS", "200")),
        ):
            typer.echo(pl.from_arrow(table))


@app.command()
def runs(
    tenant: TenantOpt,
    limit: Annotated[int, typer.Option(min=1, help="Show the last N stage records.")] = 30,
) -> None:
    """The run ledger: every stage run for the tenant, newest last."""
    from servicervault import ledger

    try:
        records = ledger.records(_tenant(tenant))[-limit:]
    except VaultError as exc:
        raise _fail(exc) from None
    if not records:
        typer.echo(f"no runs recorded for tenant {tenant!r} yet")
        return
    _render_records(records, with_run_id=True, full=False)


@tenants_app.command("list")
def tenants_list() -> None:
    """Every tenant file with its bucket and sources."""
    from servicervault.config import list_tenant_ids, tenants_dir

    ids = list_tenant_ids()
    if not ids:
        typer.echo(f"no tenant files in {tenants_dir()}")
        return
    for tenant_id in ids:
        try:
            t = _tenant(tenant_id)
        except VaultError as exc:
            typer.echo(f"{tenant_id:<16} INVALID  {exc}")
            continue
        sources = ", ".join(f"{s.name} ({s.layout})" for s in t.sources)
        typer.echo(f"{t.id:<16} {t.name:<28} {t.storage.bucket:<40} {sources}")


@tenants_app.command("provision")
def tenants_provision(
    tenant: Annotated[str, typer.Argument(help="Tenant id (tenants/<id>.yaml).")],
) -> None:
    """Create the tenant's bucket if absent, turn on versioning, check write access, mark it."""
    from servicervault.provision import provision

    try:
        steps = provision(_tenant(tenant))
    except VaultError as exc:
        raise _fail(exc) from None
    for step in steps:
        typer.echo(f"  {step}")
    typer.echo(f"tenant {tenant!r} is ready")


@tenants_app.command("check")
def tenants_check(
    tenant: Annotated[str | None, typer.Argument(help="Tenant id; all tenants if omitted.")] = None,
) -> None:
    """Check tenant files: schema, credentials named in config, bucket reachable."""
    from servicervault.config import list_tenant_ids
    from servicervault.tenant_check import check_tenant

    ids = [tenant] if tenant else list_tenant_ids()
    failed = False
    for tenant_id in ids:
        problems = check_tenant(tenant_id)
        failed |= bool(problems)
        mark = typer.style(
            "ok" if not problems else "FAIL",
            fg=typer.colors.GREEN if not problems else typer.colors.RED,
        )
        typer.echo(f"{tenant_id:<16} {mark}")
        for problem in problems:
            typer.echo(f"    - {problem}")
    if failed:
        raise typer.Exit(1)


@app.command()
def dictionary(
    out: Annotated[
        Path | None,
        typer.Option(
            help="Markdown file to write (default docs/data_dictionary.md); '-' prints it."
        ),
    ] = None,
) -> None:
    """Write the data dictionary (every published table and column) from contracts and models."""
    from servicervault.dictionary import DOC_PATH, data_dictionary, write_dictionary

    if out is not None and str(out) == "-":
        typer.echo(data_dictionary(), nl=False)
        return
    path = write_dictionary(out or DOC_PATH)
    typer.echo(f"wrote {path}")


def main() -> None:
    """The ``vault`` command. Once the command has returned and its output is flushed, the
    process ends without the interpreter's teardown, which frees every module of DuckDB, dlt,
    pyarrow and the rest one by one: about 0.2 s of a nightly run, and of every ``vault query``.
    Whatever the command opened is closed by then. An unexpected error still ends normally,
    with its traceback, and so does a process a profiler, a debugger or a coverage tool is
    watching, which writes its report as the interpreter ends."""
    if sys.getprofile() is not None or sys.gettrace() is not None:
        app()
        return
    try:
        app()
        code: object = 0
    except SystemExit as exit_:
        code = exit_.code
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)  # what ``sys.exit(message)`` does
        code = 1
    fast_exit(code or 0)


if __name__ == "__main__":
    main()
