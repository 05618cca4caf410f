"""Throw-away warehouse contents for the benchmarks: clean CDRs from the generator through the
mediation rules, multiplied in SQL, and a quiet warehouse between timed runs."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from cdr_platform.lib.ingest.generator import CdrGenerator, GeneratorConfig
from cdr_platform.lib.mediation.rules import mediate
from cdr_platform.lib.mediation.store import CLEAN_COLUMN_NAMES, MediationTables
from cdr_platform.lib.reference.subscribers import generate_subscribers
from cdr_platform.lib.reference.tables import (
    NUMBERING_PLAN_TABLE,
    SUBSCRIBER_PERIODS_TABLE,
    SUBSCRIBERS_TABLE,
    numbering_plan_rows,
    subscriber_period_rows,
    subscriber_rows,
)
from cdr_platform.lib.schema import CLEAN_COLUMNS
from cdr_platform.lib.warehouse import replace_table

RECEIVED = datetime(2026, 12, 3, tzinfo=UTC)  # the Kafka timestamp the rows carry (after every start time)
CLEAN_LOAD_COLUMNS = [*CLEAN_COLUMN_NAMES, "query_id", "batch_id", "mediated_at"]  # a row of clean_cdrs


def load_reference(conn) -> None:
    """The subscribers (and their one open period each) and the numbering plan the rating job and the
    billing models read."""
    conn.execute("create schema if not exists reference")
    replace_table(conn, SUBSCRIBERS_TABLE, subscriber_rows(generate_subscribers()))
    replace_table(conn, SUBSCRIBER_PERIODS_TABLE, subscriber_period_rows(generate_subscribers()))
    replace_table(conn, NUMBERING_PLAN_TABLE, numbering_plan_rows())


def fill_clean_cdrs(conn, tables: MediationTables, config: GeneratorConfig, keep_sample: int = 0) -> tuple[int, list]:
    """Create the mediation tables and COPY the generator's valid CDRs (through the mediation
    rules) into clean_cdrs; returns the row count and the first `keep_sample` records."""
    for statement in tables.ddl():
        conn.execute(statement)
    n, sample = 0, []
    with conn.cursor().copy(f"copy {tables.clean} ({', '.join(CLEAN_LOAD_COLUMNS)}) from stdin") as copy:
        for chunk in CdrGenerator(config).chunks():
            for value in chunk.values:
                record = mediate(value, RECEIVED).record
                if record is None:
                    continue  # the generator's injected errors (none at error_rate 0)
                copy.write_row((*(record[c] for c in CLEAN_COLUMNS), n % 3, n, RECEIVED, "bench", 0, RECEIVED))
                if len(sample) < keep_sample:
                    sample.append(record)
                n += 1
    return n, sample


def fan_out(conn, table: str, columns: list[str], copies: int, shift_days: int = 0) -> None:
    """Add `copies` copies of every row of `table` with new record ids (`<id>-<k>`); with
    `shift_days`, copy k also moves start_time (and rating_day, if the table has it) k x
    shift_days later, so a few generated days become a month."""
    if copies < 1:
        return
    moved = {"start_time": f"start_time + make_interval(days => k * {shift_days})"}
    if "rating_day" in columns:
        moved["rating_day"] = f"rating_day + k * {shift_days}"
    values = ["record_id || '-' || k" if c == "record_id" else moved.get(c, c) if shift_days else c for c in columns]
    conn.execute(
        f"insert into {table} ({', '.join(columns)}) select {', '.join(values)}"
        f" from {table}, generate_series(1, {copies}) k"
    )


def record_ledger(conn, tables: MediationTables, committed_day) -> None:
    """The mediation ledger's rows for what clean_cdrs holds, as if each batch had committed on
    `committed_day` with no rejects: the revenue-assurance mart joins clean_cdrs to it."""
    conn.execute(
        f"insert into {tables.ledger} (query_id, batch_id, rows_in, clean, rejected, duplicates,"
        " rejected_by_reason, committed_at, committed_day)"
        f" select query_id, batch_id, count(*), count(*), 0, 0, '{{}}', max(mediated_at), %s"
        f" from {tables.clean} group by query_id, batch_id",
        (committed_day,),
    )


def quiet_warehouse(conninfo: str, timeout_s: float = 300) -> None:
    """Wait for autovacuum to finish with the last run's writes, then checkpoint, so every run
    starts from the same quiet warehouse (a day is rated, a month billed, once, not back to back)."""
    import psycopg

    deadline = time.monotonic() + timeout_s
    with psycopg.connect(conninfo, autocommit=True) as conn:
        while (
            time.monotonic() < deadline
            and conn.execute(
                "select count(*) from pg_stat_activity where backend_type = 'autovacuum worker'"
            ).fetchone()[0]
        ):
            time.sleep(2)
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute("checkpoint")
    except psycopg.errors.InsufficientPrivilege:
        print("(no privilege for CHECKPOINT: runs may pay for each other's writes)", flush=True)
