"""Versioned loads of the reference data into the warehouse (reference.reference_loads).

A load of a dataset - numbering-plan, cells or subscribers - is ONE transaction: it replaces the
dataset's rows and records a version in reference.reference_loads (dataset, version 1, 2, ... per
dataset, file name, SHA-256 of the file's bytes, rows, when, by whom, from where). A file whose
SHA-256 is that of the dataset's current version is not loaded again: "unchanged". A refused
file (operator_files.ReferenceFileError) leaves every table as it was. The code's own data,
loaded when the operator gives no file, is a version like the others (file name "generated",
the SHA-256 of its export in the documented format), so a file loaded after it is a change even
if the same file was loaded before it.

Subscribers: their periods go to reference.subscriber_periods; reference.subscribers (what dbt
reads) gets one row per subscriber, the period in force on the day of the load, else the latest,
with the operator's name (reference.numbering_plan) and the home cell's region
(reference.cell_catalogue). A subscribers file is checked against the cell catalogue in the
warehouse. Loading the unchanged file again re-picks those rows for its day (a period may have
started or ended since) and writes them only if they differ.

Every statement is plain SQL PostgreSQL and SQL Server both run, what differs from a Dialect;
the rows go in by the engine's bulk path (lib.warehouse.bulk_insert: COPY on PostgreSQL, array-bound
executemany batches on SQL Server). Two loads of one dataset at once cannot both take a version: the primary key
(dataset, version) fails the second, which changes nothing.
"""

from __future__ import annotations

import getpass
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from cdr_platform.lib.reference.numbering_plan import NATIONAL_OPERATORS
from cdr_platform.lib.reference.operator_files import (
    DATASETS,
    GENERATED,
    HomeCell,
    SubscriberPeriod,
    generated_cells,
    generated_csv,
    parse,
    subscribers_in_force,
)
from cdr_platform.lib.reference.subscribers import DEFAULT_SUBSCRIBER_COUNT, DEFAULT_SUBSCRIBER_SEED
from cdr_platform.lib.reference.tables import (
    CELL_CATALOGUE_TABLE,
    NUMBERING_PLAN_TABLE,
    REFERENCE_LOADS_TABLE,
    SUBSCRIBER_PERIODS_TABLE,
    SUBSCRIBERS_TABLE,
)
from cdr_platform.lib.warehouse import COLUMNS_SQL, TableSpec, add_missing_columns, bulk_insert, sqlserver
from cdr_platform.lib.warehouse.dialects import POSTGRES, Dialect

SCHEMA = "reference"
# the table a load of each dataset replaces (subscribers: reference.subscribers too, derived)
DATASET_TABLES: dict[str, TableSpec] = {
    "numbering-plan": NUMBERING_PLAN_TABLE,
    "cells": CELL_CATALOGUE_TABLE,
    "subscribers": SUBSCRIBER_PERIODS_TABLE,
}
TABLES = (
    NUMBERING_PLAN_TABLE,
    CELL_CATALOGUE_TABLE,
    SUBSCRIBERS_TABLE,
    SUBSCRIBER_PERIODS_TABLE,
    REFERENCE_LOADS_TABLE,
)
_PERIOD_COLUMNS = SUBSCRIBER_PERIODS_TABLE.column_names[:-1]  # without the version


class ReferenceLoadError(RuntimeError):
    """A load that cannot be made whatever the file holds (subscribers before any cell)."""


@dataclass(frozen=True)
class LoadRecord:
    """A row of reference.reference_loads."""

    dataset: str
    version: int
    file_name: str
    sha256: str
    row_count: int
    loaded_at: datetime
    loaded_by: str
    source: str


@dataclass(frozen=True)
class LoadResult:
    dataset: str
    version: int  # the version the tables hold now
    file_name: str  # of that version
    sha256: str
    rows: int
    unchanged: bool  # the file was that version already: nothing loaded
    repicked: int = 0  # subscribers: rows of reference.subscribers re-picked for the day of the load

    def summary(self) -> str:
        what = f"({self.rows:,} rows, sha256 {self.sha256[:12]})"
        if self.unchanged:
            return f"{self.dataset}: unchanged, version {self.version} is {self.file_name} already {what}"
        return f"{self.dataset}: version {self.version} loaded from {self.file_name} {what}"


@dataclass(frozen=True)
class ReferenceStore:
    """The statements of the reference tables, in one dialect."""

    dialect: Dialect = POSTGRES

    def ddl(self) -> list[str]:
        return [self.dialect.create_schema(SCHEMA), *(t.create_table_sql(self.dialect) for t in TABLES)]

    def add_column_sql(self, table: TableSpec, name: str) -> str:
        """What add_missing_columns runs for a column an older table lacks."""
        column = next(c for c in table.columns if c.name == name)
        return self.dialect.add_column_if_missing(table.qualified, column.name, column.sql_type(self.dialect))

    def loads_sql(self, one_dataset: bool) -> str:
        where = " where dataset = %(dataset)s" if one_dataset else ""
        return (
            f"select {', '.join(REFERENCE_LOADS_TABLE.column_names)} from {REFERENCE_LOADS_TABLE.qualified}{where}"
            " order by dataset, version"
        )

    def insert_load_sql(self) -> str:
        columns = [c for c in REFERENCE_LOADS_TABLE.column_names if c != "loaded_at"]
        return (
            f"insert into {REFERENCE_LOADS_TABLE.qualified} ({', '.join(columns)}, loaded_at)"
            f" values ({', '.join(f'%({c})s' for c in columns)}, {self.dialect.utc_now})"
        )

    def select_sql(self, table: TableSpec, columns: Sequence[str] | None = None) -> str:
        return f"select {', '.join(columns or table.column_names)} from {table.qualified}"

    def delete_sql(self, table: TableSpec) -> str:
        return f"delete from {table.qualified}"

    def insert_sql(self, table: TableSpec) -> str:
        """The bulk insert's statement on SQL Server (PostgreSQL's COPY has none to check)."""
        return sqlserver.insert_statement(table.qualified, table.column_names)

    def operator_names_sql(self) -> str:
        return (
            f"select distinct operator_id, operator_name from {NUMBERING_PLAN_TABLE.qualified}"
            " where operator_id is not null and operator_name is not null"
        )

    def statements(self) -> list[str]:
        """Every statement a load can run (the SQL Server lint checks them all)."""
        return [
            *self.ddl(),
            COLUMNS_SQL,
            self.add_column_sql(CELL_CATALOGUE_TABLE, "network"),
            self.loads_sql(True),
            self.loads_sql(False),
            self.insert_load_sql(),
            self.operator_names_sql(),
            *(self.select_sql(t) for t in TABLES),
            *(self.delete_sql(t) for t in TABLES),
            *(self.insert_sql(t) for t in TABLES),
        ]


def _account() -> str:
    try:
        return getpass.getuser()[:64]
    except Exception:  # no login name (a container's uid without a passwd entry)
        return "unknown"


def _prepare(conn, store: ReferenceStore) -> None:
    """Create what is missing: the schema, the tables, and the nullable columns an older table lacks
    (cell_catalogue's network, valid_from, valid_to)."""
    for sql in store.ddl():
        conn.execute(sql)
    for table in TABLES:
        add_missing_columns(conn, table, store.dialect)


def _insert(conn, store: ReferenceStore, table: TableSpec, rows: Sequence[tuple]) -> int:
    return bulk_insert(conn, store.dialect, table, rows)


def _replace(conn, store: ReferenceStore, table: TableSpec, rows: Sequence[tuple]) -> int:
    conn.execute(store.delete_sql(table))
    return _insert(conn, store, table, rows)


def _history(conn, store: ReferenceStore, dataset: str | None) -> list[LoadRecord]:
    sql = store.loads_sql(dataset is not None)
    rows = conn.execute(sql, {"dataset": dataset}).fetchall() if dataset else conn.execute(sql).fetchall()
    return [LoadRecord(*row) for row in rows]


def _warehouse_cells(conn, store: ReferenceStore) -> dict[str, HomeCell]:
    sql = store.select_sql(CELL_CATALOGUE_TABLE, ("cell_id", "operator_id", "region"))
    return {cell_id: HomeCell(operator_id, region) for cell_id, operator_id, region in conn.execute(sql).fetchall()}


def _subscriber_rows(conn, store: ReferenceStore, periods, day: date) -> list[tuple]:
    """reference.subscribers' rows: per subscriber the period in force on `day` (else the latest),
    named from the numbering plan, placed by the cell catalogue (the generated ones' as fallback)."""
    names = {op.operator_id: op.name for op in NATIONAL_OPERATORS}
    names.update(dict(conn.execute(store.operator_names_sql()).fetchall()))
    cells = {**generated_cells(), **_warehouse_cells(conn, store)}
    return [
        (
            p.msisdn,
            p.operator_id,
            names.get(p.operator_id, p.operator_id),
            p.segment,
            p.plan,
            p.home_cell_id,
            cells[p.home_cell_id].region if p.home_cell_id in cells else "",
        )
        for p in subscribers_in_force(periods, day)
    ]


def _repick_subscribers(conn, store: ReferenceStore, day: date) -> int:
    """reference.subscribers for `day` from the stored periods; rewritten only if it differs.
    Returns how many subscribers' rows changed."""
    periods = [
        SubscriberPeriod(*row)
        for row in conn.execute(store.select_sql(SUBSCRIBER_PERIODS_TABLE, _PERIOD_COLUMNS)).fetchall()
    ]
    wanted = _subscriber_rows(conn, store, periods, day)
    current = {tuple(row) for row in conn.execute(store.select_sql(SUBSCRIBERS_TABLE)).fetchall()}
    changed = {row[0] for row in current.symmetric_difference(wanted)}
    if changed:
        _replace(conn, store, SUBSCRIBERS_TABLE, wanted)
    return len(changed)


def load(
    conn,
    dataset: str,
    data: bytes,
    file: str,
    *,
    source: str,
    day: date | None = None,
    loaded_by: str | None = None,
    dialect: Dialect = POSTGRES,
    generated: bool = False,
) -> LoadResult:
    """Load a file's bytes as the next version of `dataset`, in one transaction of `conn` (a
    connection with no transaction open); `day`: the day whose subscriber periods are in force
    (default: today, UTC).

    Raises operator_files.ReferenceFileError (a refused file) or ReferenceLoadError; either way
    nothing changed. `generated`: the code's own data (checked against the generated cells)."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}: one of {', '.join(DATASETS)}")
    store = ReferenceStore(dialect)
    sha256 = hashlib.sha256(data).hexdigest()
    day = day or datetime.now(UTC).date()
    with conn.transaction():
        _prepare(conn, store)
        history = _history(conn, store, dataset)
        latest = history[-1] if history else None
        if latest is not None and latest.sha256 == sha256:
            repicked = _repick_subscribers(conn, store, day) if dataset == "subscribers" else 0
            return LoadResult(
                dataset, latest.version, latest.file_name, sha256, latest.row_count, unchanged=True, repicked=repicked
            )
        cells = None
        if dataset == "subscribers" and not generated:
            cells = _warehouse_cells(conn, store)
            if not cells:
                raise ReferenceLoadError(
                    f"{CELL_CATALOGUE_TABLE.qualified} is empty: load the cells first "
                    "(`cdr reference load cells FILE`, or materialize the cell_catalogue asset)"
                )
        parsed = parse(dataset, data, file, cells=cells)
        version = (latest.version if latest else 0) + 1
        if dataset == "subscribers":
            rows = _replace(conn, store, SUBSCRIBER_PERIODS_TABLE, [p.table_row(version) for p in parsed.rows])
            _replace(conn, store, SUBSCRIBERS_TABLE, _subscriber_rows(conn, store, parsed.rows, day))
        else:
            rows = _replace(conn, store, DATASET_TABLES[dataset], [r.table_row() for r in parsed.rows])
        conn.execute(
            store.insert_load_sql(),
            {
                "dataset": dataset,
                "version": version,
                "file_name": parsed.file_name[:255],
                "sha256": sha256,
                "row_count": rows,
                "loaded_by": (loaded_by or _account())[:64],
                "source": source[:128],
            },
        )
    return LoadResult(dataset, version, parsed.file_name, sha256, rows, unchanged=False)


def load_generated(
    conn,
    dataset: str,
    *,
    source: str,
    day: date | None = None,
    subscriber_count: int = DEFAULT_SUBSCRIBER_COUNT,
    seed: int = DEFAULT_SUBSCRIBER_SEED,
    dialect: Dialect = POSTGRES,
) -> LoadResult:
    """The code's own data of `dataset` as its next version (unchanged if it is the current one)."""
    data = generated_csv(dataset, subscriber_count, seed)
    return load(conn, dataset, data, GENERATED, source=source, day=day, dialect=dialect, generated=True)


def history(conn, dataset: str | None = None, dialect: Dialect = POSTGRES) -> list[LoadRecord]:
    """Every accepted load (of one dataset), oldest first; empty before the first."""
    store = ReferenceStore(dialect)
    with conn.transaction():
        _prepare(conn, store)
        return _history(conn, store, dataset)
