"""Validate DuckDB warehouse tables and views with Great Expectations (GX) 1.x.

GX 1.x ships no DuckDB data source, so this module drives GX's *generic* SQL data
source (``context.data_sources.add_sql``) through SQLAlchemy + duckdb-engine. Every
metric is compiled by GX into SQL and executed inside DuckDB, so validating millions
of rows costs roughly one aggregate query per metric, not a Python scan.

Two incompatibilities between GX 1.24, SQLAlchemy 2.1 and duckdb-engine 0.17 have to
be bridged. Both fixes live in one SQLAlchemy dialect subclass that is only used by
engines created from our own URL scheme (``duckdb+servicervault_buffered://``), so
plain ``duckdb://`` engines and every other GX backend are untouched:

1. **Results read after the connection is closed.** GX's
   ``SqlAlchemyExecutionEngine.execute_query`` returns the ``CursorResult`` from inside
   ``with engine.connect()`` and its callers only call ``.fetchall()`` after the block
   has exited. Closing a SQLAlchemy 2.x connection rolls back its autobegun
   transaction; duckdb-engine's "cursor" *is* the DuckDB connection, which can hold one
   pending result only, so the rollback discards it and every metric sees zero rows
   (``IndexError: list index out of range`` in ``resolve_metric_bundle``). The
   dialect's execution context therefore fetches each row-returning result into a
   ``FullyBufferedCursorFetchStrategy`` right after execution (the mechanism
   SQLAlchemy's own MSSQL dialect uses for results that outlive the conversation).
   GX's metric queries return aggregates or ``LIMIT``-ed samples, so the buffers are
   tiny.
2. **Column reflection fails.** SQLAlchemy 2.1's PostgreSQL column reflection joins
   ``pg_catalog.pg_collation``, which DuckDB does not emulate. GX then falls back to
   ``SELECT * FROM <table> LIMIT 1`` *without the schema*, so every table or view
   outside ``main`` (``gold.*``, ``silver.*``) would fail. The dialect reflects
   columns from DuckDB's ``information_schema.columns`` instead, which covers views
   (SQLMesh exposes ``gold.x`` as views over ``sqlmesh__gold`` tables).

``great_expectations`` takes ~8 s to import and duckdb-engine ~1 s, so both are only
imported inside :func:`check_tables`; importing this module is cheap.
"""

from __future__ import annotations

import json
import logging
import os
import re
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from servicervault.config import DUCKDB_MEMORY_LIMIT
from servicervault.errors import VaultError

if TYPE_CHECKING:
    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResult,
        ExpectationValidationResult,
    )
    from great_expectations.data_context import AbstractDataContext

__all__ = [
    "DatabaseUnavailableError",
    "ExpectationFailure",
    "ValidationOutcome",
    "check_tables",
]

logger = logging.getLogger(__name__)

#: SQLAlchemy driver name of the buffering DuckDB dialect (``duckdb+<driver>://``).
DIALECT_DRIVER = "servicervault_buffered"
_DIALECT_CLASS_NAME = "_BufferedDuckDBDialect"
_DATA_DOCS_SITE = "servicervault"
_DATASOURCE_NAME = "warehouse"
_BATCH_DEFINITION_NAME = "whole_table"
#: ``ExpectationFailure.expectation`` for a suite whose table/view does not exist.
TABLE_MISSING = "table_exists"
_SAMPLE_SIZE = 5  # unexpected values quoted per failure in the readable details
_PASS_OR_FAIL = {"result_format": "BOOLEAN_ONLY"}
_EXPLAINED = {"result_format": "SUMMARY", "partial_unexpected_count": 20}
# Starts the SQL of the rows a filtered suite checks (a GX query asset). GX learns such an asset's
# columns by running its SQL bare and reading only the column names; the dialect runs that bare
# statement with LIMIT 0, as fetching its rows cost seconds a period and a minute after a full
# rebuild (12 M rows buffered into Python).
_QUERY_ASSET_SELECT = "SELECT /* servicervault: the rows a suite checks */ *"
_TABLE_NAME_RE = re.compile(r"^(?:(?P<schema>[A-Za-z_][\w$]*)\.)?(?P<table>[A-Za-z_][\w$]*)$")


# --------------------------------------------------------------------------- results


@dataclass
class ExpectationFailure:
    """One failed (or unevaluable) expectation, phrased for humans.

    Attributes:
        table: Qualified table name as given in ``suites`` (``"gold.portfolio_monthly"``).
        expectation: GX snake_case expectation type, or :data:`TABLE_MISSING` when the
            table/view itself is absent (its suite could not be evaluated).
        column: Column (or ``"a, b"`` for compound expectations) or ``None``.
        details: E.g. ``"12 of 5,000 rows unexpected, e.g. ['ZZ', 'QQ']"``.
    """

    table: str
    expectation: str
    column: str | None
    details: str

    def __str__(self) -> str:
        where = f"{self.table}.{self.column}" if self.column else self.table
        return f"{where}: {self.expectation}: {self.details}"


@dataclass
class ValidationOutcome:
    """Result of one :func:`check_tables` run.

    Attributes:
        success: ``True`` only if every expectation of every suite passed.
        evaluated: Number of expectations evaluated (all suites).
        failed: Readable failures, in suite order.
        results_json: All suite results (GX's JSON plus our summary) for auditing.
        data_docs_index: Data Docs ``index.html`` for browsing the run.
        run_name: The run's name, echoed for the summary.
        tables: Suite tables in the order given, echoed for the summary.
        rows_checked: Rows each existing table's suite saw (all of them, or those its row
            filter selects).
    """

    success: bool
    evaluated: int
    failed: list[ExpectationFailure]
    results_json: Path
    data_docs_index: Path
    run_name: str = ""
    tables: list[str] = field(default_factory=list)
    rows_checked: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        """Multi-line report, failures first, so a log tail shows what broke."""
        lines: list[str] = []
        if self.failed:
            missing = sum(1 for f in self.failed if f.expectation == TABLE_MISSING)
            headline = (
                f"FAILED: {len(self.failed) - missing} of {self.evaluated} expectations failed"
            )
            if missing:
                headline += f"; {missing} table(s) missing"
            lines.append(headline)
            lines.extend(f"  - {failure}" for failure in self.failed)
        else:
            lines.append(f"PASSED: all {self.evaluated} expectations passed")
        if self.run_name:
            lines.append(f"run: {self.run_name}")
        if self.tables:
            lines.append(f"tables: {', '.join(self.tables)}")
        lines.append(f"results: {self.results_json}")
        lines.append(f"data docs: {self.data_docs_index}")
        return "\n".join(lines)


# ------------------------------------------------------------------------ public API


class DatabaseUnavailableError(VaultError):
    """The DuckDB file cannot be opened read-only (usually: someone holds it read-write)."""


def check_tables(
    database: Path,
    suites: dict[str, list[dict]],
    out_dir: Path,
    run_name: str,
    row_filters: Mapping[str, str] | None = None,
) -> tuple[ValidationOutcome, Callable[[], None]]:
    """Validate tables/views of a DuckDB file against GX expectation suites.

    Returns the outcome at once, and the function that writes the ``results.json`` and Data
    Docs it names: a run publishes a passed build while its reports are written (Data Docs
    take 0.5 s, as long as publishing and dropping together).

    The database is opened read-only, so validation can run beside other readers (but
    not while another process holds the file open read-write: DuckDB's file lock
    forbids that). All connections are disposed before returning, so the caller may
    reopen the file read-write afterwards.

    Args:
        database: DuckDB database file.
        suites: Qualified table name (``"gold.portfolio_monthly"``; bare names mean
            schema ``main``) -> list of expectation configs
            ``{"type": "expect_...", "kwargs": {...}, "meta": {...}}``.
        out_dir: Receives ``results.json`` and ``data_docs/``; created if missing.
        run_name: Names the GX run (shown in Data Docs and ``results.json``).
        row_filters: Table name -> SQL condition: that table's suite checks only the rows
            meeting it (e.g. the periods rebuilt since the last validation).

    Returns:
        The outcome, and the function writing its reports; it does not raise on data
        failures. A table that does not exist is reported as a failure rather than an
        exception.

    Raises:
        FileNotFoundError: ``database`` does not exist.
        ValueError: A table name or expectation config is malformed or unknown to GX.
    """
    database = Path(database).resolve()
    out_dir = Path(out_dir).resolve()
    if not database.is_file():
        raise FileNotFoundError(f"DuckDB database not found: {database}")
    if not suites:
        raise ValueError("suites is empty: nothing to validate")
    parsed_tables = {name: _split_table_name(name) for name in suites}
    row_filters = dict(row_filters or {})
    unknown = set(row_filters) - set(suites)
    if unknown:
        raise ValueError(f"row_filters name tables without a suite: {sorted(unknown)}")
    _check_readable(database)  # before the 8 s GX import, so a locked file fails fast
    out_dir.mkdir(parents=True, exist_ok=True)

    _disable_gx_network_features()
    with _quiet_gx():
        import great_expectations as gx
        from great_expectations.core.run_identifier import RunIdentifier
        from great_expectations.expectations.expectation_configuration import (
            ExpectationConfiguration,
        )

        _register_dialect()
        context = _make_context(out_dir)

        # Build every suite before touching the database so a typo in a config fails
        # fast, with a message naming the table, instead of after minutes of work.
        # Given to the suite whole: add_expectation compares each new expectation with every
        # one before it (0.4 s for 285), to drop duplicates our generated suites never have.
        gx_suites = {
            table: gx.ExpectationSuite(
                name=table,
                expectations=[
                    _to_expectation(ExpectationConfiguration, table, index, config)
                    for index, config in enumerate(configs)
                ],
            )
            for table, configs in suites.items()
        }

        missing: dict[str, ExpectationFailure] = {}
        rows_checked: dict[str, int] = {}
        validation_definitions = []
        config_order: dict[str, dict[str | None, int]] = {}
        run_results: dict[str, ExpectationSuiteValidationResult] = {}
        statistics: dict[str, Any] = {}
        datasource = None
        try:
            datasource = context.data_sources.add_sql(
                name=_DATASOURCE_NAME,
                connection_string=f"duckdb+{DIALECT_DRIVER}:///{database}",
                kwargs={
                    "connect_args": {
                        "read_only": True,
                        # Never reach for the network from a validation run: a missing
                        # extension should fail at once, not wait on a download. The memory
                        # limit keeps a 12 M-row uniqueness check under 2 GiB of RSS.
                        "config": {
                            "autoinstall_known_extensions": False,
                            "memory_limit": DUCKDB_MEMORY_LIMIT,
                        },
                    }
                },
            )
            engine = datasource.get_engine()
            existing = _existing_relations(engine, parsed_tables)
            for table, (schema, table_name) in parsed_tables.items():
                if table not in existing:
                    missing[table] = ExpectationFailure(
                        table=table,
                        expectation=TABLE_MISSING,
                        column=None,
                        details=f"no table or view {schema or 'main'}.{table_name}"
                        f" in {database.name}; its {len(suites[table])} expectations"
                        " were not evaluated",
                    )
                    continue
                asset = (
                    datasource.add_query_asset(
                        name=table, query=_rows_sql(schema, table_name, row_filters[table])
                    )
                    if table in row_filters
                    else _add_table_asset(datasource, table, schema, table_name)
                )
                batch_definition = asset.add_batch_definition_whole_table(_BATCH_DEFINITION_NAME)
                suite = context.suites.add(gx_suites[table])
                # GX reports results grouped by metric, not in suite order; remember
                # the caller's order (ids are assigned when the suite is stored).
                config_order[table] = {e.id: i for i, e in enumerate(suite.expectations)}
                validation_definitions.append(
                    context.validation_definitions.add(
                        gx.ValidationDefinition(name=table, data=batch_definition, suite=suite)
                    )
                )

            if validation_definitions:
                rows_checked = _count_rows(engine, parsed_tables, existing, row_filters)
                # Pass or fail needs no samples of unexpected values: fetching them costs a
                # query per column expectation (1.7 s of a 7 s validation). A suite that fails
                # runs again with them, under the same run id, so its detailed result replaces
                # the bare one in Data Docs and explains the failure.
                run_id = RunIdentifier(run_name=run_name)
                run_results = _run_validations(validation_definitions, _PASS_OR_FAIL, run_id)
                statistics = _statistics(run_results)
                failed = [v for v in validation_definitions if not run_results[v.name].success]
                if failed:
                    run_results |= _run_validations(failed, _EXPLAINED, run_id)
        finally:
            if datasource is not None:
                _dispose_engines(datasource)

    failures: list[ExpectationFailure] = []
    evaluated = 0
    for table in suites:  # report in the caller's suite order
        if table in missing:
            failures.append(missing[table])
        result = run_results.get(table)
        if result is None:
            continue
        order = config_order.get(table, {})
        ordered = sorted(
            result.results,
            key=lambda r: order.get(r.expectation_config.id if r.expectation_config else None, 0),
        )
        for expectation_result in ordered:
            evaluated += 1
            if not expectation_result.success:
                failures.append(_describe_failure(table, expectation_result))

    data_docs_index = out_dir / "data_docs" / "index.html"
    results_json = out_dir / "results.json"
    outcome = ValidationOutcome(
        success=not failures,
        evaluated=evaluated,
        failed=failures,
        results_json=results_json,
        data_docs_index=data_docs_index,
        run_name=run_name,
        tables=list(suites),
        rows_checked=rows_checked,
    )
    validated_at = datetime.now(UTC).isoformat(timespec="seconds")

    def write_reports() -> None:
        payload = {
            "run_name": run_name,
            "validated_at": validated_at,
            "database": str(database),
            "success": outcome.success,
            "evaluated": evaluated,
            "failures": [asdict(failure) for failure in failures],
            "row_filters": row_filters,
            "rows_checked": rows_checked,
            "statistics": statistics,
            "suites": {name: result.to_json_dict() for name, result in run_results.items()},
        }
        results_json.write_text(json.dumps(payload, indent=2, default=str) + "\n")
        with _quiet_gx():
            # Once for the whole run: GX's UpdateDataDocsAction rebuilt the site after every
            # table's validation (4 s of a 9 s run for ten tables).
            context.build_data_docs(site_names=[_DATA_DOCS_SITE])

    return outcome, write_reports


# ------------------------------------------------------------------- GX environment


def _check_readable(database: Path) -> None:
    """Open and close the file read-only once, turning lock errors into a clear message.

    DuckDB allows many read-only processes *or* one read-write process per file, and
    within one process all connections to a file must share the same configuration.
    """
    import duckdb

    try:
        duckdb.connect(str(database), read_only=True).close()
    except duckdb.Error as exc:
        raise DatabaseUnavailableError(
            f"cannot open {database} read-only for validation: {_first_line(exc)} "
            "(close read-write connections to it, in this or any other process, first)"
        ) from exc


def _disable_gx_network_features() -> None:
    """Keep GX offline: this machine has no network and nothing may block on it.

    GX 1.24 no longer ships its usage-statistics client, but the documented opt-out is
    cheap insurance against a version that does. ``setdefault`` respects an operator who
    deliberately set the variable.
    """
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")


@contextmanager
def _quiet_gx() -> Iterator[None]:
    """Silence GX's chatter that would otherwise drown a pipeline log.

    GX logs at INFO/WARNING while it falls back between reflection strategies and emits
    deprecation warnings about its own internals; none of it is actionable here.
    """
    gx_logger = logging.getLogger("great_expectations")
    previous = gx_logger.level
    gx_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.filterwarnings("ignore", module="great_expectations")
            yield
    finally:
        gx_logger.setLevel(previous)


def _make_context(out_dir: Path) -> AbstractDataContext:
    """Ephemeral context (nothing persisted but what we write) with Data Docs in out_dir."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    _thread_lock_for_progress_bars()
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        data_docs_sites={
            _DATA_DOCS_SITE: {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(out_dir / "data_docs"),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            }
        },
        analytics_enabled=False,
        # tqdm bars write to stderr for every metric batch; useless in pipeline logs.
        progress_bars=ProgressBarsConfig(globally=False),
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def _thread_lock_for_progress_bars() -> None:
    """GX creates a tqdm bar (disabled here) for each batch of metrics, and tqdm's default lock
    holds a multiprocessing semaphore. A validation worker ends with ``os._exit`` once it has
    sent its last message (see ``stage_worker._end_now``), so that semaphore would be left for
    multiprocessing to warn about; no bar is shared between processes, so a thread lock does."""
    import threading

    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())


def _to_expectation(
    configuration_cls: Any, table: str, index: int, config: Mapping[str, Any]
) -> Any:
    """Turn one ``{"type", "kwargs", "meta"}`` dict into a GX Expectation object."""
    if not isinstance(config, Mapping) or not isinstance(config.get("type"), str):
        raise ValueError(f"{table}: expectation #{index} needs a string 'type': {config!r}")
    unknown = set(config) - {"type", "kwargs", "meta", "notes", "description"}
    if unknown:
        raise ValueError(f"{table}: expectation #{index} has unknown keys {sorted(unknown)}")
    try:
        return configuration_cls(
            type=config["type"],
            kwargs=dict(config.get("kwargs") or {}),
            meta=dict(config.get("meta") or {}),
            notes=config.get("notes"),
            description=config.get("description"),
        ).to_domain_obj()
    except Exception as exc:
        raise ValueError(
            f"{table}: invalid expectation #{index} {config['type']!r}: {_first_line(exc)}"
        ) from exc


def _add_table_asset(datasource: Any, name: str, schema: str | None, table_name: str) -> Any:
    """Add a table asset; views work too (GX only issues SELECTs against it).

    ``schema_name`` is deprecated since GX 1.14 in favour of a schema in the data
    source's connection configuration, which cannot express "one DuckDB file, several
    schemas" (and the generic SQL data source has no schema setting at all), so the
    deprecation warning is suppressed here deliberately.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return datasource.add_table_asset(
            name=name, table_name=table_name, schema_name=schema or "main"
        )


def _existing_relations(engine: Any, tables: Mapping[str, tuple[str | None, str]]) -> set[str]:
    """Which requested names exist as a table or view (one catalog query).

    Checked up front because GX's own check words a missing table as a missing schema.
    """
    from sqlalchemy import text

    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT table_schema, table_name FROM information_schema.tables"
                " WHERE table_catalog = current_database()"
            )
        ).fetchall()
    # DuckDB resolves identifiers case-insensitively, so compare the same way.
    present = {(schema.casefold(), name.casefold()) for schema, name in rows}
    return {
        qualified
        for qualified, (schema, name) in tables.items()
        if ((schema or "main").casefold(), name.casefold()) in present
    }


def _dispose_engines(datasource: Any) -> None:
    """Close every pooled DuckDB connection so the file is free when we return.

    GX caches one engine on the data source and one on its execution engine and relies
    on garbage collection to close them; DuckDB refuses to reopen a file read-write in
    this process while a read-only connection to it is still alive.
    """
    engines = []
    engine = getattr(datasource, "_engine", None)
    if engine is not None:
        engines.append(engine)
    execution_engine = getattr(datasource, "_execution_engine", None)
    if execution_engine is not None:
        engines.append(execution_engine.engine)
        try:
            execution_engine.close()
        except Exception:  # best effort: disposal below is what matters
            logger.debug("closing GX execution engine failed", exc_info=True)
    for engine in engines:
        engine.dispose()


def _run_validations(
    validation_definitions: list[Any], result_format: dict[str, Any], run_id: Any
) -> dict[str, ExpectationSuiteValidationResult]:
    """Each suite's result, by table. The definitions run one by one, as a GX Checkpoint
    would run them: a Checkpoint adds actions, which we have none of, and first checks that
    every definition is unchanged since it was stored (0.2 s of a nightly month's 2.3 s)."""
    with _configurations_built_once():
        return {
            v.name: v.run(result_format=result_format, run_id=run_id)
            for v in validation_definitions
        }


@contextmanager
def _configurations_built_once() -> Iterator[None]:
    """While suites run, each GX expectation builds its configuration once.

    GX's ``Expectation.configuration`` is a property that builds a new
    ``ExpectationConfiguration`` (a pydantic ``dict()`` of the expectation and a class-name
    conversion) at every read, and a validation reads it about 80 times per expectation, once
    for each keyword argument it looks up: 23,000 reads for 285 expectations. Built once, a
    nightly month's validation at 12 M took 1.55 s instead of 1.80 s (six alternating pairs),
    and one of every period 5.2 s instead of 5.8 s. Nothing changes an expectation while its
    suite runs (GX validates copies it makes for the run), so the first configuration built is
    the one every later read gets. Outside this block the property is GX's own again, and the
    configurations built are let go. The property is swapped on GX's class, so a process runs
    one validation at a time (a run's worker and ``vault validate`` do)."""
    from great_expectations.expectations.expectation import Expectation

    build = Expectation.configuration
    # By id(), kept with the expectation itself so that no other object takes its id meanwhile.
    built: dict[int, tuple[Any, Any]] = {}

    def configuration(expectation: Any) -> Any:
        kept = built.get(id(expectation))
        if kept is None:
            kept = built[id(expectation)] = (expectation, build.fget(expectation))
        return kept[1]

    Expectation.configuration = property(configuration)  # type: ignore[method-assign]
    try:
        yield
    finally:
        Expectation.configuration = build  # type: ignore[method-assign]


def _statistics(run_results: Mapping[str, ExpectationSuiteValidationResult]) -> dict[str, Any]:
    """The run's totals, as a GX Checkpoint result describes them."""
    passed = sum(1 for result in run_results.values() if result.success)
    return {
        "evaluated_validations": len(run_results),
        "success_percent": passed / len(run_results) * 100,
        "successful_validations": passed,
        "unsuccessful_validations": len(run_results) - passed,
    }


def _count_rows(
    engine: Any,
    tables: Mapping[str, tuple[str | None, str]],
    existing: set[str],
    row_filters: Mapping[str, str],
) -> dict[str, int]:
    """Rows each existing table's suite sees: the whole table, or what its filter selects."""
    from sqlalchemy import text

    counts = {}
    with engine.connect() as connection:
        for name, (schema, table) in tables.items():
            if name in existing:
                rows = _rows_sql(schema, table, row_filters.get(name))
                query = f"SELECT count(*) FROM ({rows})"
                counts[name] = int(connection.execute(text(query)).scalar_one())
    return counts


def _rows_sql(schema: str | None, table: str, condition: str | None) -> str:
    """The rows a suite checks: the table's, or those meeting its row filter. Run bare through
    our dialect it yields only its columns (see _QUERY_ASSET_SELECT); wrap it to read rows."""
    where = f" WHERE {condition}" if condition else ""
    return f"{_QUERY_ASSET_SELECT} FROM {schema or 'main'}.{table}{where}"


# ----------------------------------------------------------- readable failure texts


def _describe_failure(table: str, result: ExpectationValidationResult) -> ExpectationFailure:
    """Condense one GX result into a sentence a servicing analyst can act on."""
    config = result.expectation_config
    expectation = config.type if config is not None else "unknown_expectation"
    kwargs = dict(config.kwargs) if config is not None else {}
    column = kwargs.get("column")
    if column is None and kwargs.get("column_list"):
        column = ", ".join(map(str, kwargs["column_list"]))
    if column is None and kwargs.get("column_A") and kwargs.get("column_B"):
        column = f"{kwargs['column_A']}, {kwargs['column_B']}"
    return ExpectationFailure(
        table=table,
        expectation=expectation,
        column=str(column) if column is not None else None,
        details=_failure_details(result, kwargs),
    )


def _failure_details(result: ExpectationValidationResult, kwargs: dict[str, Any]) -> str:
    info = result.exception_info or {}
    if _raised(info):
        return f"could not evaluate: {_exception_message(info)}"
    payload: dict[str, Any] = dict(result.result or {})
    config = result.expectation_config
    if not payload and config is not None and config.type == "expect_column_to_exist":
        return f"column {kwargs.get('column')!r} does not exist"
    if payload.get("unexpected_count") is not None:
        unexpected = int(payload["unexpected_count"])
        total = payload.get("element_count")
        text = (
            f"{unexpected:,} of {int(total):,} rows unexpected"
            if total is not None
            else f"{unexpected:,} rows unexpected"
        )
        sample = _sample(payload.get("partial_unexpected_list") or [])
        if sample:
            text += f", e.g. {sample}"
        expected = _expected_phrase(kwargs)
        return f"{text} ({expected})" if expected else text
    if "observed_value" in payload:
        text = f"observed {_short(payload['observed_value'])}"
        mismatched = (payload.get("details") or {}).get("mismatched")
        if mismatched:
            text += f"; mismatched {_short(mismatched)}"
        expected = _expected_phrase(kwargs)
        return f"{text}, expected {expected}" if expected else text
    return "failed" + (f" ({_expected_phrase(kwargs)})" if _expected_phrase(kwargs) else "")


def _expected_phrase(kwargs: dict[str, Any]) -> str:
    parts = []
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    if low is not None and high is not None:
        parts.append(f"between {_format_value(low)} and {_format_value(high)}")
    elif low is not None:
        parts.append(f">= {_format_value(low)}")
    elif high is not None:
        parts.append(f"<= {_format_value(high)}")
    if kwargs.get("value_set") is not None:
        parts.append(f"in {_short(sorted(map(str, kwargs['value_set'])))}")
    if kwargs.get("type_") is not None:
        parts.append(f"type {kwargs['type_']}")
    if kwargs.get("type_list") is not None:
        parts.append(f"one of types {_short(list(kwargs['type_list']))}")
    if kwargs.get("column_set") is not None:
        parts.append(f"columns {_short(sorted(map(str, kwargs['column_set'])))}")
    if kwargs.get("mostly") is not None:
        parts.append(f"mostly={kwargs['mostly']}")
    return "; ".join(parts)


def _sample(values: Sequence[Any]) -> str:
    """First distinct unexpected values, in the order GX reported them."""
    seen: list[str] = []
    for value in values:
        shown = _format_value(value)
        if shown not in seen:
            seen.append(shown)
        if len(seen) >= _SAMPLE_SIZE:
            break
    return f"[{', '.join(seen)}]" if seen else ""


def _format_value(value: Any) -> str:
    """Render a value the way an analyst would type it (no ``Decimal('1.0')`` noise)."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, Mapping):  # compound-key samples arrive as {column: value}
        return "{" + ", ".join(f"{k}={_format_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, date | datetime):
        return value.isoformat()
    if value is None:
        return "NULL"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # GX turns a configured 0 into 0.0
    return str(value)


def _short(value: Any, limit: int = 200) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _raised(info: Mapping[str, Any]) -> bool:
    """GX nests exception info either flat or keyed by metric id."""
    if info.get("raised_exception"):
        return True
    return any(isinstance(v, Mapping) and v.get("raised_exception") for v in info.values())


def _exception_message(info: Mapping[str, Any]) -> str:
    messages = [info.get("exception_message")] if info.get("raised_exception") else []
    messages += [
        v.get("exception_message")
        for v in info.values()
        if isinstance(v, Mapping) and v.get("raised_exception")
    ]
    unique = list(dict.fromkeys(_first_line(m) for m in messages if m))
    return "; ".join(unique) or "unknown error"


def _first_line(message: object) -> str:
    text = str(message).strip()
    return text.splitlines()[0] if text else type(message).__name__


def _split_table_name(name: str) -> tuple[str | None, str]:
    match = _TABLE_NAME_RE.match(name)
    if match is None:
        raise ValueError(f"table name must look like 'schema.table', got {name!r}")
    return match["schema"], match["table"]


# ------------------------------------------------------- the buffering DuckDB dialect


def _register_dialect() -> None:
    """Make ``duckdb+servicervault_buffered://`` resolve to our dialect (idempotent)."""
    from sqlalchemy.dialects import registry

    registry.register(f"duckdb.{DIALECT_DRIVER}", __name__, _DIALECT_CLASS_NAME)


_dialect_cls: type | None = None


def _build_dialect() -> type:
    """Create the dialect class on first use (duckdb-engine costs ~1 s to import)."""
    from duckdb_engine import Dialect as DuckDBDialect
    from sqlalchemy import text
    from sqlalchemy import types as sqltypes
    from sqlalchemy.engine import reflection
    from sqlalchemy.engine.cursor import FullyBufferedCursorFetchStrategy
    from sqlalchemy.exc import NoSuchTableError

    base_context = DuckDBDialect.execution_ctx_cls

    class _BufferedExecutionContext(base_context):  # type: ignore[misc,valid-type]
        """Fetch every row-returning result before the statement's connection closes.

        See the module docstring (1.): GX reads results after ``with connect()`` has
        exited, and closing rolls back on the same DuckDB connection that holds the
        pending result. ``post_exec`` runs after ``cursor.execute`` and before SQLAlchemy
        builds the ``CursorResult``, so swapping the fetch strategy here is enough.
        """

        def post_exec(self) -> None:
            super().post_exec()
            description = self.cursor.description
            if description:
                self.cursor_fetch_strategy = FullyBufferedCursorFetchStrategy(
                    self.cursor, alternate_description=description
                )

    # DuckDB's information_schema spelling -> SQLAlchemy's upper-case SQL types, so GX's
    # isinstance-based type expectations accept the names analysts see in DuckDB
    # ("VARCHAR", "DECIMAL", "DOUBLE") as well as generic ones ("String", "Numeric").
    duckdb_types: dict[str, Any] = {
        "varchar": sqltypes.VARCHAR,
        "bigint": sqltypes.BIGINT,
        "integer": sqltypes.INTEGER,
        "smallint": sqltypes.SMALLINT,
        "double": sqltypes.DOUBLE,
        "float": sqltypes.REAL,  # DuckDB FLOAT is 4-byte
        "boolean": sqltypes.BOOLEAN,
        "date": sqltypes.DATE,
        "time": sqltypes.TIME,
        "timestamp": sqltypes.TIMESTAMP,
        "timestamp with time zone": lambda: sqltypes.TIMESTAMP(timezone=True),
        "blob": sqltypes.BLOB,
        "uuid": sqltypes.UUID,
        "interval": sqltypes.Interval,
        "json": sqltypes.JSON,
    }
    decimal_re = re.compile(r"^(?:decimal|numeric)\((\d+),\s*(\d+)\)$")

    class _BufferedDuckDBDialect(DuckDBDialect):  # type: ignore[misc,valid-type]
        """duckdb-engine dialect with buffered results and information_schema reflection."""

        execution_ctx_cls = _BufferedExecutionContext
        # Declared explicitly: SQLAlchemy warns about subclasses that don't. Same value
        # as duckdb-engine (its statements aren't cache-safe).
        supports_statement_cache = False

        def do_execute(
            self, cursor: Any, statement: str, parameters: Any, context: Any = None
        ) -> None:
            """Run GX's bare run of a query asset for its columns only (_QUERY_ASSET_SELECT)."""
            if statement.lstrip().startswith(_QUERY_ASSET_SELECT):
                statement = f"SELECT * FROM ({statement}) LIMIT 0"
            super().do_execute(cursor, statement, parameters, context)

        def _column_type(self, data_type: str) -> Any:
            lowered = data_type.strip().lower()
            decimal = decimal_re.match(lowered)
            if decimal:
                return sqltypes.DECIMAL(int(decimal[1]), int(decimal[2]))
            # duckdb-engine's names cover the exotic integers (HUGEINT, UBIGINT, ...);
            # nested types (LIST, STRUCT, MAP) stay untyped, which GX tolerates.
            factory = duckdb_types.get(lowered) or self.ischema_names.get(lowered)
            return factory() if factory is not None else sqltypes.NullType()

        @reflection.cache  # type: ignore[misc]
        def get_columns(
            self, connection: Any, table_name: str, schema: str | None = None, **kw: Any
        ) -> list[dict[str, Any]]:
            """Reflect columns of a table *or view* via information_schema (module doc 2.)."""
            catalog = None
            if schema and "." in schema:
                catalog, schema = schema.split(".", 1)
            rows = connection.execute(
                text(
                    "SELECT column_name, data_type, is_nullable, column_default"
                    " FROM information_schema.columns"
                    # DuckDB identifiers are case-insensitive; GX lower-cases names.
                    " WHERE table_catalog = coalesce(:catalog, current_database())"
                    " AND lower(table_schema) = lower(coalesce(:schema, current_schema()))"
                    " AND lower(table_name) = lower(:table)"
                    " ORDER BY ordinal_position"
                ),
                {"catalog": catalog, "schema": schema, "table": str(table_name)},
            ).fetchall()
            if not rows:
                raise NoSuchTableError(f"{schema}.{table_name}" if schema else table_name)
            return [
                {
                    "name": name,
                    "type": self._column_type(data_type),
                    "nullable": is_nullable == "YES",
                    "default": default,
                    "autoincrement": False,
                }
                for name, data_type, is_nullable, default in rows
            ]

        @reflection.cache  # type: ignore[misc]
        def get_pk_constraint(
            self, connection: Any, table_name: str, schema: str | None = None, **kw: Any
        ) -> dict[str, Any]:
            """Primary key from duckdb_constraints(); PG's version needs REGCLASS casts."""
            if schema and "." in schema:
                schema = schema.split(".", 1)[1]
            row = connection.execute(
                text(
                    "SELECT constraint_column_names FROM duckdb_constraints()"
                    " WHERE constraint_type = 'PRIMARY KEY'"
                    " AND database_name = current_database()"
                    " AND lower(schema_name) = lower(coalesce(:schema, current_schema()))"
                    " AND lower(table_name) = lower(:table)"
                ),
                {"schema": schema, "table": str(table_name)},
            ).first()
            return {"constrained_columns": list(row[0]) if row else [], "name": None}

    _BufferedDuckDBDialect.__name__ = _DIALECT_CLASS_NAME
    _BufferedDuckDBDialect.__qualname__ = _DIALECT_CLASS_NAME
    return _BufferedDuckDBDialect


def __getattr__(name: str) -> Any:
    """Lazily provide the dialect class to SQLAlchemy's registry (PEP 562)."""
    global _dialect_cls
    if name == _DIALECT_CLASS_NAME:
        if _dialect_cls is None:
            _dialect_cls = _build_dialect()
        return _dialect_cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
