"""The Spark tasks' half of rating: read a slice of clean CDRs, rate it in bulk, load the rows.

These are the mapInArrow bodies that run in Spark's Python workers (the driver's half, which
plans the slices and swaps a day in, is cdr_platform.lib.rating.job). Spark pickles them by
reference, so a worker imports this module and keeps its rater and warehouse connection from
task to task.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from decimal import Decimal

from cdr_platform.lib.rating.bulk import INPUT_COLUMNS as RATER_INPUT_COLUMNS
from cdr_platform.lib.rating.bulk import BulkRater
from cdr_platform.lib.rating.engine import RatingEngine
from cdr_platform.lib.rating.store import CARRIED_CLEAN_COLUMNS, RATED_COLUMNS, SUSPENSE_COLUMNS, DayLoad
from cdr_platform.lib.reference.tables import SUBSCRIBERS_TABLE
from cdr_platform.lib.schema import CLEAN_RECORD, MEDIATION_BATCH
from cdr_platform.lib.spark.session import arrow_schema_from_ddl
from cdr_platform.lib.warehouse import postgres
from cdr_platform.lib.warehouse.columns import names, spark_ddl

# what the bulk rater reads, plus what the rated rows keep of the clean record and it does not read
INPUT_COLUMNS = (
    "record_id",
    "served_msisdn",
    *RATER_INPUT_COLUMNS,
    *(c for c in names(CARRIED_CLEAN_COLUMNS) if c not in RATER_INPUT_COLUMNS),
)
# their types: clean_cdrs', and the subscriber's segment from the reference table
_INPUT_TYPES = {c.name: c for c in CLEAN_RECORD + MEDIATION_BATCH + SUBSCRIBERS_TABLE.columns}
INPUT_DDL = spark_ddl(_INPUT_TYPES[name] for name in INPUT_COLUMNS)
SUMMARY_DDL = "task_partition int, summary string"
BATCH_ROWS = 50_000
# the same for every row of a run: set as the work tables' column defaults, not sent per row
RUN_CONSTANTS = ("rated_at", "suspended_at", "currency")
OUTPUT_DDL = "kind string, " + spark_ddl(  # rated and suspense rows in one layout (JDBC path)
    {c.name: c for c in RATED_COLUMNS + SUSPENSE_COLUMNS if c.name not in RUN_CONSTANTS}.values()
)


def rated_tables(batch, outcome: dict):
    """(rated rows, suspense rows) of one batch as Arrow tables in the warehouse tables' column order,
    less the run's constants (the work tables' column defaults fill those in)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    start = batch.column("start_time").cast(pa.timestamp("us"))  # UTC, as the warehouse stores it
    # the rater's outcome carries the rating day: the local date of the start (operator's zone)
    columns = {name: batch.column(name) for name in INPUT_COLUMNS} | outcome | {"start_time": start}
    is_rated = pc.equal(outcome["kind"], "rated")
    rated = pa.table({name: columns[name] for name in names(RATED_COLUMNS) if name not in RUN_CONSTANTS})
    suspense = pa.table({name: columns[name] for name in names(SUSPENSE_COLUMNS) if name not in RUN_CONSTANTS})
    return rated.filter(is_rated), suspense.filter(pc.invert(is_rated))


def _summary_of(rated, suspense) -> dict:
    import pyarrow.compute as pc

    revenue = rated.group_by("record_type").aggregate([("cost", "sum")]).to_pylist()
    reasons = suspense.group_by("reason").aggregate([("reason", "count")]).to_pylist()
    return {
        "input": rated.num_rows + suspense.num_rows,
        "rated": rated.num_rows,
        "suspended": suspense.num_rows,
        "revenue_by_type": {r["record_type"]: str(r["cost_sum"]) for r in revenue},
        "suspended_by_reason": {r["reason"]: r["reason_count"] for r in reasons},
        "negative": int(pc.sum(pc.less(rated.column("cost"), 0)).as_py() or 0) if rated.num_rows else 0,
    }


def new_summary() -> dict:
    """Counts of a slice, a run or a day; all zero (a slice or a day may hold no CDR at all)."""
    return {
        "input": 0,
        "rated": 0,
        "suspended": 0,
        "negative": 0,
        "plain_engine_rows": 0,
        "revenue_by_type": {},
        "suspended_by_reason": {},
    }


def merge_summary(total: dict, part: dict) -> dict:
    for key in ("input", "rated", "suspended", "negative"):
        total[key] = total.get(key, 0) + part[key]
    for key, kind in (("revenue_by_type", Decimal), ("suspended_by_reason", int)):
        merged = total.setdefault(key, {})
        for k, v in part[key].items():
            merged[k] = str(Decimal(merged.get(k, "0")) + Decimal(v)) if kind is Decimal else merged.get(k, 0) + v
    return total


def read_slice(cursor, query: str, schema) -> Iterator:
    """One slice of the day's clean CDRs as Arrow batches: PostgreSQL writes CSV, Arrow parses it."""
    import io

    import pyarrow as pa
    import pyarrow.csv as pacsv

    buffer = io.BytesIO()
    for chunk in postgres.copy_query_csv(cursor, query):
        buffer.write(chunk)
    if not buffer.tell():
        return  # no clean CDR of the day in this slice of the table
    buffer.seek(0)
    # the warehouse's timestamps are UTC without a zone: parse them naive, then label them UTC
    naive = pa.schema([pa.field(f.name, pa.timestamp("us")) if pa.types.is_timestamp(f.type) else f for f in schema])
    table = pacsv.read_csv(
        buffer,
        pacsv.ReadOptions(column_names=schema.names, block_size=16 << 20),
        pacsv.ParseOptions(),
        pacsv.ConvertOptions(column_types=naive, strings_can_be_null=True, quoted_strings_can_be_null=False),
    )  # "" is not NULL
    yield from table.cast(schema).to_batches(max_chunksize=BATCH_ROWS)


_WORKER_STATE: dict = {}  # per Python worker process: the load it serves, its rater, its connection


def _close_worker_connection() -> None:
    conn = _WORKER_STATE.pop("conn", None)
    if conn is not None:
        conn.close()


def rate_and_load(
    slice_ids: Iterator, *, engine: RatingEngine, load: DayLoad, conninfo: str, queries: list[str]
) -> Iterator:
    """mapInArrow body (PostgreSQL), one task per slice of clean_cdrs: read the slice, rate it in
    bulk, COPY the rows into the day's work tables; yields the slice's summary.
    """
    import pyarrow as pa

    # Spark reuses its Python workers from task to task: so do the rater (the routes and band
    # schedules it has learnt) and the warehouse connection, for the tasks of the same load.
    if _WORKER_STATE.get("load_id") != load.load_id:
        _close_worker_connection()
        _WORKER_STATE.update(load_id=load.load_id, rater=BulkRater(engine))
    for ids in slice_ids:
        for slice_id in ids.column(0).to_pylist():
            conn = _WORKER_STATE.get("conn")
            if conn is None or conn.closed:
                conn = _WORKER_STATE["conn"] = postgres.connect(conninfo)
            try:
                summary = load_slice(conn, _WORKER_STATE["rater"], load, slice_id, queries[slice_id])
            except BaseException:
                _close_worker_connection()  # never hand a half-done transaction to the next task
                raise
            yield pa.RecordBatch.from_pydict(
                {"task_partition": [slice_id], "summary": [json.dumps(summary)]},
                schema=arrow_schema_from_ddl(SUMMARY_DDL),
            )


def load_slice(conn, rater: BulkRater, load: DayLoad, slice_id: int, query: str) -> dict:
    """Read, rate and COPY one slice. Its rows and its manifest entry commit in one transaction;
    a retried task whose entry is already there rolls its rows back and returns the stored summary."""
    started = time.perf_counter()
    summary = new_summary()
    timings = {"read_s": 0.0, "rate_s": 0.0, "load_s": 0.0}
    plain_before = rater.plain_rows
    with conn.cursor() as cursor:
        t0 = time.perf_counter()
        for batch in read_slice(cursor, query, arrow_schema_from_ddl(INPUT_DDL)):
            t1 = time.perf_counter()
            rated, suspense = rated_tables(batch, rater.rate(batch))
            merge_summary(summary, _summary_of(rated, suspense))
            t2 = time.perf_counter()
            postgres.copy_arrow_csv(cursor, load.work_rated, rated)
            postgres.copy_arrow_csv(cursor, load.work_suspense, suspense)
            t3 = time.perf_counter()
            timings["read_s"] += t1 - t0
            timings["rate_s"] += t2 - t1
            timings["load_s"] += t3 - t2
            t0 = t3
        timings["task_s"] = time.perf_counter() - started
        summary["plain_engine_rows"] = rater.plain_rows - plain_before
        summary["task_timings"] = {k: round(v, 2) for k, v in timings.items()}
        # which Python worker and warehouse backend served the slice: a run should use one of
        # each per core, whatever its number of slices (the rater and connection are kept)
        summary["served_by"] = [os.getpid(), conn.info.backend_pid]
        stored = cursor.execute(
            f"insert into {load.tables.manifest} (load_id, task_partition, summary)"
            " values (%s, %s, %s) on conflict do nothing returning 1",
            (load.load_id, slice_id, json.dumps(summary)),
        ).fetchone()
        if stored is None:  # this slice was loaded by an earlier attempt of the task
            conn.rollback()
            summary = json.loads(
                cursor.execute(
                    f"select summary from {load.tables.manifest} where load_id = %s and task_partition = %s",
                    (load.load_id, slice_id),
                ).fetchone()[0]
            )
    conn.commit()
    return summary


def rate_batches(batches: Iterator, *, engine: RatingEngine) -> Iterator:
    """mapInArrow body of the JDBC path: each batch rated in bulk, rated and suspense rows in the
    layout of OUTPUT_DDL (kind tells which), for Spark's JDBC writer."""
    import pyarrow as pa

    schema = arrow_schema_from_ddl(OUTPUT_DDL)
    rater = BulkRater(engine)
    for batch in batches:
        rated, suspense = rated_tables(batch, rater.rate(batch))
        for kind, rows in (("rated", rated), ("suspense", suspense)):
            if rows.num_rows:
                columns = {
                    f.name: rows.column(f.name) if f.name in rows.column_names else pa.nulls(rows.num_rows, f.type)
                    for f in schema
                    if f.name != "kind"
                }
                table = pa.table({"kind": pa.repeat(pa.scalar(kind), rows.num_rows), **columns})
                yield from table.cast(schema).to_batches()
