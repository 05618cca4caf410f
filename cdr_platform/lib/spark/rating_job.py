"""Rating: a Spark batch job from clean_cdrs to rating_cdrs and rating_suspense, one day at a time.

    python -m cdr_platform.lib.spark.rating_job --day 2026-11-25

Reads the day's clean CDRs (by call start time, UTC) with each subscriber's segment over JDBC,
in slices of the table's blocks, and the tariff plan as dbt seeded it. Each Spark task rates
its Arrow batches in bulk (rating/bulk.py: the engine's decisions applied to whole columns,
the plain engine for what they cannot settle) and COPYs the rows into the day's work tables
in one transaction. Then one short transaction swaps the work tables in as the day's
partitions of rating_cdrs and rating_suspense: re-running a day replaces it, never double
counts, and readers never see half a day. A record the tariff does not cover goes to
suspense with the reason, never to a zero cost. Under Dagster Pipes it reports the
materialization of rating_cdrs.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from cdr_platform.lib.rating.bulk import BulkRater
from cdr_platform.lib.rating.cdr_rating import CURRENCY
from cdr_platform.lib.rating.engine import RatingEngine
from cdr_platform.lib.rating.store import (RATED_COLUMNS, SUSPENSE_COLUMNS, DayLoad, RatingTables,
                                           load_tariff_from_warehouse)
from cdr_platform.lib.settings import Settings, load_settings
from cdr_platform.lib.spark.session import arrow_schema_from_ddl
from cdr_platform.lib.warehouse import copy_arrow_csv

log = logging.getLogger("cdr_platform.rating")
SUMMARY_PREFIX = "RATING_SUMMARY "
# read from the warehouse: what the rating needs, plus the record id and the served number
INPUT_COLUMNS = ("record_id", "record_type", "direction", "served_msisdn", "served_operator_id", "segment",
                 "other_msisdn", "technology", "start_time", "duration_s", "data_volume_bytes")
INPUT_DDL = ("record_id string, record_type string, direction string, served_msisdn string, served_operator_id string,"
             " segment string, other_msisdn string, technology string,"
             " start_time timestamp, duration_s long, data_volume_bytes long")
SUMMARY_DDL = "task_partition int, summary string"
SLICES_PER_CORE = 3  # at least: small enough slices that every core stays busy to the end
SLICE_BLOCKS = 3000  # at most about 24 MB of clean_cdrs per slice (about 150,000 rows)
BATCH_ROWS = 50_000
# the same for every row of a run: set as the work tables' column defaults, not sent per row
RUN_CONSTANTS = ("rated_at", "suspended_at", "currency")
_OUTPUT_TYPES = {"rating_day": "date", "start_time": "timestamp", "usage_amount": "long", "cost": "decimal(18,6)",
                 "connect_fee": "decimal(18,6)"}
OUTPUT_DDL = ", ".join(["kind string"] + [  # rated and suspense rows in one layout (JDBC path)
    f"{name} {_OUTPUT_TYPES.get(name, 'string')}"
    for name in dict.fromkeys([n for n, _ in RATED_COLUMNS] + [n for n, _ in SUSPENSE_COLUMNS])
    if name not in RUN_CONSTANTS])


def rated_tables(batch, outcome: dict):
    """(rated rows, suspense rows) of one batch as Arrow tables in the warehouse tables' column order,
    less the run's constants (the work tables' column defaults fill those in)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    start = batch.column("start_time").cast(pa.timestamp("us"))  # UTC, as the warehouse stores it
    columns = {name: batch.column(name) for name in INPUT_COLUMNS} | outcome | {
        "start_time": start, "rating_day": start.cast(pa.date32())}
    is_rated = pc.equal(outcome["kind"], "rated")
    rated = pa.table({name: columns[name] for name, _ in RATED_COLUMNS if name not in RUN_CONSTANTS})
    suspense = pa.table({name: columns[name] for name, _ in SUSPENSE_COLUMNS if name not in RUN_CONSTANTS})
    return rated.filter(is_rated), suspense.filter(pc.invert(is_rated))


def _summary_of(rated, suspense) -> dict:
    import pyarrow.compute as pc

    revenue = rated.group_by("record_type").aggregate([("cost", "sum")]).to_pylist()
    reasons = suspense.group_by("reason").aggregate([("reason", "count")]).to_pylist()
    return {"input": rated.num_rows + suspense.num_rows, "rated": rated.num_rows, "suspended": suspense.num_rows,
            "revenue_by_type": {r["record_type"]: str(r["cost_sum"]) for r in revenue},
            "suspended_by_reason": {r["reason"]: r["reason_count"] for r in reasons},
            "negative": int(pc.sum(pc.less(rated.column("cost"), 0)).as_py() or 0) if rated.num_rows else 0}


def new_summary() -> dict:
    """Counts of a slice, a run or a day; all zero (a slice or a day may hold no CDR at all)."""
    return {"input": 0, "rated": 0, "suspended": 0, "negative": 0, "plain_engine_rows": 0,
            "revenue_by_type": {}, "suspended_by_reason": {}}


def _merge(total: dict, part: dict) -> dict:
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
    with cursor.copy(f"copy ({query}) to stdout (format csv)") as copy:
        for chunk in copy:
            buffer.write(chunk)
    if not buffer.tell():
        return  # no clean CDR of the day in this slice of the table
    buffer.seek(0)
    # the warehouse's timestamps are UTC without a zone: parse them naive, then label them UTC
    naive = pa.schema([pa.field(f.name, pa.timestamp("us")) if pa.types.is_timestamp(f.type) else f for f in schema])
    table = pacsv.read_csv(buffer, pacsv.ReadOptions(column_names=schema.names, block_size=16 << 20),
                           pacsv.ParseOptions(), pacsv.ConvertOptions(column_types=naive, strings_can_be_null=True,
                                                quoted_strings_can_be_null=False))  # "" is not NULL
    yield from table.cast(schema).to_batches(max_chunksize=BATCH_ROWS)


_WORKER_STATE: dict = {}  # per Python worker process: the load it serves, its rater, its connection


def _close_worker_connection() -> None:
    conn = _WORKER_STATE.pop("conn", None)
    if conn is not None:
        conn.close()


def rate_and_load(slice_ids: Iterator, *, engine: RatingEngine, load: DayLoad,
                  conninfo: str, queries: list[str]) -> Iterator:
    """mapInArrow body (PostgreSQL), one task per slice of clean_cdrs: read the slice, rate it in
    bulk, COPY the rows into the day's work tables; yields the slice's summary.
    """
    import psycopg
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
                conn = _WORKER_STATE["conn"] = psycopg.connect(conninfo)
            try:
                summary = load_slice(conn, _WORKER_STATE["rater"], load, slice_id, queries[slice_id])
            except BaseException:
                _close_worker_connection()  # never hand a half-done transaction to the next task
                raise
            yield pa.RecordBatch.from_pydict({"task_partition": [slice_id], "summary": [json.dumps(summary)]},
                                             schema=arrow_schema_from_ddl(SUMMARY_DDL))


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
            _merge(summary, _summary_of(rated, suspense))
            t2 = time.perf_counter()
            copy_arrow_csv(cursor, load.work_rated, rated)
            copy_arrow_csv(cursor, load.work_suspense, suspense)
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
        stored = cursor.execute(f"insert into {load.tables.manifest} (load_id, task_partition, summary)"
                                " values (%s, %s, %s) on conflict do nothing returning 1",
                                (load.load_id, slice_id, json.dumps(summary))).fetchone()
        if stored is None:  # this slice was loaded by an earlier attempt of the task
            conn.rollback()
            summary = json.loads(cursor.execute(
                f"select summary from {load.tables.manifest} where load_id = %s and task_partition = %s",
                (load.load_id, slice_id)).fetchone()[0])
    conn.commit()
    return summary


def _day_block_range(conn, clean_table: str, day: date) -> tuple[int, int, bool] | None:
    """The blocks [first, last + 1) of clean_cdrs that hold the day's CDRs, and whether that band
    runs to the end of the table; None if the day has none.

    clean_cdrs keeps every day, written roughly in arrival order, so a day sits in a narrow band
    of the table: reading only that band keeps a day's rating from growing with the table's
    history. When the planner expects the day to be most of the table, that band is the whole
    table and finding it would cost a scan: the whole table is read instead. (clean_cdrs is
    insert-only, so a row's ctid stays put between this planning and the tasks' reads.)
    """
    blocks, total = conn.execute("select pg_relation_size(oid) / current_setting('block_size')::int, reltuples"
                                 " from pg_class where oid = %s::regclass", (clean_table,)).fetchone()
    in_day = "start_time >= %(start)s and start_time < %(end)s"
    bounds = {"start": day, "end": day + timedelta(days=1)}
    plan = conn.execute(f"explain (format json) select 1 from {clean_table} where {in_day}", bounds).fetchone()[0]
    if total > 0 and plan[0]["Plan"]["Plan Rows"] > total / 2:
        return (0, blocks, True) if blocks else None
    first, last = conn.execute(f"select min(ctid)::text, max(ctid)::text from {clean_table} where {in_day}",
                               bounds).fetchone()
    if first is None:
        return None
    first_block, last_block = (int(tid.strip("()").split(",")[0]) for tid in (first, last))  # "(block,offset)"
    return first_block, last_block + 1, last_block + 1 >= blocks


def _read_slices(conn, clean_table: str, day: date, cores: int, alias: str) -> list[str]:
    """Predicates that split the day's block range of the clean table (TID range scans)."""
    span = _day_block_range(conn, clean_table, day)
    if span is None:
        return ["false"]  # no CDR that day: one task that reads nothing
    first, end, to_table_end = span
    blocks = end - first
    step = -(-blocks // max(SLICES_PER_CORE * cores, -(-blocks // SLICE_BLOCKS)))
    # the last slice of a band that ends the table stays open, as the whole-table slicing did
    return [f"{alias}.ctid >= '({lo},0)'::tid" + (f" and {alias}.ctid < '({min(lo + step, end)},0)'::tid"
                                                  if lo + step < end or not to_table_end else "")
            for lo in range(first, end, step)]


def slice_queries(clean_table: str, day: date, slices: list[str]) -> list[str]:
    """The day's clean CDRs, with each subscriber's segment, one query per slice of the table."""
    start, end = day.isoformat(), (day + timedelta(days=1)).isoformat()
    return [f"select c.record_id, c.record_type, c.direction, c.served_msisdn, c.served_operator_id,"
            f" s.segment, c.other_msisdn, c.technology, c.start_time, c.duration_s, c.data_volume_bytes"
            f" from {clean_table} c left join reference.subscribers s on s.msisdn = c.served_msisdn"
            f" where c.start_time >= '{start}' and c.start_time < '{end}' and {predicate}" for predicate in slices]


def rate_day(day: date, *, settings: Settings | None = None, tables: RatingTables | None = None,
             run_id: str | None = None, progress=log.info) -> dict:
    from cdr_platform.lib.mediation_store import DIALECTS, tables_for
    from cdr_platform.lib.spark.session import build_spark_session
    from cdr_platform.lib.warehouse import connect

    settings = settings or load_settings()
    dialect = DIALECTS[settings.warehouse.kind]
    tables = tables or RatingTables(os.environ.get("CDR_RATING_SCHEMA", "rating"), dialect,
                                    tariff_schema=os.environ.get("CDR_TARIFF_SCHEMA", "tariffs"))
    io = os.environ.get("CDR_RATING_IO") or ("copy" if dialect.name == "postgres" else "jdbc")
    if io not in ("copy", "jdbc") or (io == "copy" and dialect.name != "postgres"):
        raise ValueError(f"CDR_RATING_IO={io!r}: 'copy' (PostgreSQL) or 'jdbc' (any warehouse)")
    mediation = tables_for(settings)
    load = tables.day_load(day, uuid.uuid4().hex[:12])
    started = time.perf_counter()
    with connect(settings.warehouse) as lock_conn:
        # One run per day at a time (two would swap over each other's work tables); held to the end.
        lock_conn.execute(tables.lock_sql(day))
        with connect(settings.warehouse) as conn:
            engine = RatingEngine(load_tariff_from_warehouse(conn, tables),
                                  rounding_decimals=int(os.environ.get("CDR_RATING_ROUNDING_DECIMALS", "5")))
            if tables.partitioned:
                _replace_unpartitioned(conn, tables, progress)
            for statement in tables.ddl():
                conn.execute(statement)
            for (stale,) in conn.execute(load.stale_work_sql()).fetchall():
                progress(f"dropping {stale}, left by a rating run of {day} that did not finish")
                conn.execute(f"drop table {stale}")
            rated_at = datetime.now(timezone.utc).replace(tzinfo=None)
            constants = {"rated_at": rated_at.isoformat(sep=" "), "suspended_at": rated_at.isoformat(sep=" "),
                         "currency": CURRENCY}
            for statement in load.create_work_sql(constants):
                conn.execute(statement)
            conn.commit()
            slices = _read_slices(conn, mediation.clean, day, _cores(settings), "c") if io == "copy" else [
                f"c.src_partition = {p}" for (p,) in conn.execute(
                    f"select distinct src_partition from {mediation.clean}").fetchall()] or ["1 = 1"]

        spark = build_spark_session("cdr-rating", settings, bounded=True)
        progress(f"Spark up after {time.perf_counter() - started:.1f} s; reading {mediation.clean} for {day}"
                 f" in {len(slices)} slices ({io})")
        try:
            queries = slice_queries(mediation.clean, day, slices)
            if io == "copy":
                body = functools.partial(rate_and_load, engine=engine, load=load,
                                         conninfo=settings.warehouse.conninfo(), queries=queries)
                # one task per slice: each reads its slice from the warehouse, rates it and loads it
                parts = [json.loads(r.summary) for r in
                         spark.range(len(queries), numPartitions=len(queries)).mapInArrow(body, SUMMARY_DDL).collect()]
            else:
                parts = [_rate_through_jdbc(spark, settings.warehouse, engine, load, queries)]
        finally:
            spark.stop()
        rated_seconds = time.perf_counter() - started
        progress(f"rated and loaded into the work tables after {rated_seconds:.1f} s")

        summary = new_summary()
        for part in parts:
            _merge(summary, part)
            summary["plain_engine_rows"] += part["plain_engine_rows"]
        summary["slices"] = len(parts)
        served_by = [part["served_by"] for part in parts if "served_by" in part]
        if served_by:  # the COPY path's tasks report them
            summary["python_workers"] = len({worker for worker, _ in served_by})
            summary["warehouse_connections"] = len({backend for _, backend in served_by})
        with connect(settings.warehouse) as conn:
            attached = ({r[0] for r in conn.execute(tables.attached_partitions_sql()).fetchall()}
                        if tables.partitioned else set())
            with conn.transaction():  # the day is replaced whole, or not at all
                for statement in load.swap_sql(attached):
                    conn.execute(statement)
        progress(f"swapped in as the {day} rows after {time.perf_counter() - started:.1f} s")
        lock_conn.execute(tables.lock_sql(day, release=True))

    seconds = time.perf_counter() - started
    revenue_total = sum((Decimal(v) for v in summary["revenue_by_type"].values()), Decimal(0))
    summary.update({"day": day.isoformat(), "run_id": run_id,
                    "revenue_by_type": dict(sorted(summary.get("revenue_by_type", {}).items())),
                    "suspended_by_reason": summary.get("suspended_by_reason", {}),
                    "revenue_total": str(revenue_total), "currency": CURRENCY, "seconds": round(seconds, 2),
                    "rows_per_second": round(summary["input"] / seconds, 1) if seconds else 0.0,
                    "rating_seconds": round(rated_seconds, 2)})
    progress(f"rated {day}: {summary['input']:,} clean CDRs -> {summary['rated']:,} rated, "
             f"{summary['suspended']:,} in suspense, revenue {summary['revenue_total']} {CURRENCY}, "
             f"{summary['rows_per_second']:,.0f} rows/s ({summary['plain_engine_rows']:,} by the plain engine)")
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
                columns = {f.name: rows.column(f.name) if f.name in rows.column_names
                           else pa.nulls(rows.num_rows, f.type) for f in schema if f.name != "kind"}
                table = pa.table({"kind": pa.repeat(pa.scalar(kind), rows.num_rows), **columns})
                yield from table.cast(schema).to_batches()


def _rate_through_jdbc(spark, warehouse, engine: RatingEngine, load: DayLoad, queries: list[str]) -> dict:
    """The portable path (SQL Server; runs on PostgreSQL too): Spark's JDBC reader, the bulk rater
    in the tasks, Spark's JDBC writer into the work tables (bulk copy on SQL Server)."""
    from pyspark.sql import functions as F

    options = {"fetchsize": "20000", **warehouse.jdbc_options()}
    clean = functools.reduce(lambda a, b: a.unionAll(b), [
        spark.read.jdbc(warehouse.jdbc_url, f"({query}) t", properties=options) for query in queries])
    rated = (clean.select(*INPUT_COLUMNS)
             .mapInArrow(functools.partial(rate_batches, engine=engine), OUTPUT_DDL).persist())
    try:
        for kind, table, columns in (("rated", load.work_rated, RATED_COLUMNS),
                                     ("suspense", load.work_suspense, SUSPENSE_COLUMNS)):
            (rated.where(F.col("kind") == kind).select(*[n for n, _ in columns if n not in RUN_CONSTANTS])
             .write.jdbc(warehouse.jdbc_url, table, mode="append", properties=options))
        totals = rated.groupBy("kind", "record_type", "reason").agg(
            F.count(F.lit(1)).alias("n"), F.sum("cost").alias("cost"),
            F.sum(F.when(F.col("cost") < 0, 1).otherwise(0)).alias("negative")).collect()
    finally:
        rated.unpersist()
    summary = new_summary()
    for row in totals:
        summary["input"] += row.n
        if row.kind == "rated":
            summary["rated"] += row.n
            summary["negative"] += row.negative
            summary["revenue_by_type"][row.record_type] = str(
                Decimal(summary["revenue_by_type"].get(row.record_type, "0")) + (row.cost or Decimal(0)))
        else:
            summary["suspended"] += row.n
            summary["suspended_by_reason"][row.reason] = summary["suspended_by_reason"].get(row.reason, 0) + row.n
    return summary


def _cores(settings: Settings) -> int:
    master = settings.spark_master
    if master.startswith("local["):
        inner = master[len("local["):].rstrip("]").split(",")[0]
        return os.cpu_count() or 2 if inner == "*" else int(inner)
    return int(os.environ.get("CDR_SPARK_CORES", "8"))


def _replace_unpartitioned(conn, tables: RatingTables, progress) -> None:
    """Tables made by an earlier version were not partitioned by day: rated data is derived, so
    they are dropped (with a message) and the days re-rated on demand."""
    for table in (tables.rated, tables.suspense):
        kind = conn.execute("select c.relkind from pg_class c join pg_namespace n on n.oid = c.relnamespace"
                            " where n.nspname || '.' || c.relname = %s", (table,)).fetchone()
        if kind and kind[0] == "r":
            progress(f"{table} was made by an earlier version (not partitioned by day): dropping it; "
                     "re-rate the days you need")
            conn.execute(f"drop table {table}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--day", required=True, type=date.fromisoformat, help="YYYY-MM-DD (UTC)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    logging.getLogger("py4j").setLevel(logging.WARNING)
    from dagster_pipes import DAGSTER_PIPES_CONTEXT_ENV_VAR, open_dagster_pipes

    under_dagster = DAGSTER_PIPES_CONTEXT_ENV_VAR in os.environ
    with (open_dagster_pipes() if under_dagster else contextlib.nullcontext()) as pipes:
        try:
            summary = rate_day(args.day, run_id=os.environ.get("CDR_RUN_ID"),
                               progress=pipes.log.info if pipes else log.info)
        except Exception as exc:
            log.exception("rating failed")
            print(f"rating failed: {exc}".splitlines()[0][:2000], file=sys.stderr)
            return 1
        print(SUMMARY_PREFIX + json.dumps(summary), flush=True)
        if pipes:
            revenue = "\n".join(["| record type | revenue (MAD) |", "|---|---|"] +
                                [f"| {k} | {v} |" for k, v in summary["revenue_by_type"].items()])
            suspense = "\n".join(["| reason | records |", "|---|---|"] +
                                 [f"| {k} | {v:,} |" for k, v in sorted(summary["suspended_by_reason"].items())])
            pipes.report_asset_materialization(asset_key="rating_cdrs", metadata={
                "dagster/row_count": {"raw_value": summary["rated"], "type": "int"},
                "input": summary["input"], "rated": summary["rated"], "suspended": summary["suspended"],
                "revenue_total": {"raw_value": float(Decimal(summary["revenue_total"])), "type": "float"},
                "revenue_by_type": {"raw_value": revenue, "type": "md"},
                "suspended_by_reason": {"raw_value": suspense if summary["suspended"] else "_(none)_", "type": "md"},
                "rows_per_second": summary["rows_per_second"], "seconds": summary["seconds"],
                "rated_by_plain_engine": summary["plain_engine_rows"], "slices": summary["slices"],
                **({"warehouse_connections": summary["warehouse_connections"]}
                   if "warehouse_connections" in summary else {})})
    return 0


if __name__ == "__main__":
    # Run the module's own copy, not this __main__ one: Spark pickles the task functions of
    # __main__ by value, with fresh globals per task, which would defeat per-worker state
    # (the rater and connection kept in _WORKER_STATE) and re-ship the code with every task.
    from cdr_platform.lib.spark.rating_job import main as module_main

    sys.exit(module_main())
