"""Rating: a Spark batch job from clean_cdrs to rating_cdrs and rating_suspense, one day at a time.

    cdr rate --day 2026-11-25

Reads the day's clean CDRs (by call start, the operator's local day: CDR_TARIFF_TIMEZONE) with
each subscriber's segment,
in slices of the table's blocks, and the tariff plan as dbt seeded it. Each Spark task (lib.rating.tasks) rates
its Arrow batches in bulk (rating/bulk.py: the engine's decisions applied to whole columns,
the plain engine for what they cannot settle) and COPYs the rows into the day's work tables
in one transaction. Then one short transaction swaps the work tables in as the day's
partitions of rating_cdrs and rating_suspense: re-running a day replaces it, never double
counts, and readers never see half a day. A record the tariff does not cover goes to
suspense with the reason, never to a zero cost. Under Dagster Pipes it reports the
materialization of rating_cdrs.

    cdr rate --from 2026-11-01 --to 2026-11-30

re-rates a range of days (after a tariff correction), in order, in one Spark session. Each day's
swap reads the day's per-subscriber totals before and after it, under the same locks; the
re-rating report (lib.rating.rerating) adds them up over the range and is kept in
rating.rerating_report under the run's id.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from cdr_platform.lib.rating.cdr import CURRENCY
from cdr_platform.lib.rating.engine import RatingEngine
from cdr_platform.lib.rating.rerating import RerateReport, Totals, totals_from_rows
from cdr_platform.lib.rating.store import (
    RATED_COLUMNS,
    SUSPENSE_COLUMNS,
    DayLoad,
    RatingTables,
    load_tariff_from_warehouse,
)
from cdr_platform.lib.rating.tasks import (
    INPUT_COLUMNS,
    OUTPUT_DDL,
    RUN_CONSTANTS,
    SUMMARY_DDL,
    merge_summary,
    new_summary,
    rate_and_load,
    rate_batches,
)
from cdr_platform.lib.reference.tables import SUBSCRIBERS_TABLE
from cdr_platform.lib.schema import CLEAN_CDRS_TABLE
from cdr_platform.lib.settings import Settings, load_settings
from cdr_platform.lib.tariff_clock import TariffClock
from cdr_platform.lib.warehouse import postgres
from cdr_platform.lib.warehouse.columns import names

log = logging.getLogger("cdr_platform.rating")
SUMMARY_PREFIX = "RATING_SUMMARY "
SLICES_PER_CORE = 3  # at least: small enough slices that every core stays busy to the end
SLICE_BLOCKS = 3000  # at most about 24 MB of clean_cdrs per slice (about 150,000 rows)
REPORT_TOP = 20  # the largest changes a summary carries (the warehouse table has them all)


def _day_block_range(conn, clean_table: str, bounds: tuple[datetime, datetime]) -> tuple[int, int, bool] | None:
    """The blocks [first, last + 1) of clean_cdrs that hold the day's CDRs, and whether that band
    runs to the end of the table; None if the day has none.

    clean_cdrs keeps every day, written roughly in arrival order, so a day sits in a narrow band
    of the table: reading only that band keeps a day's rating from growing with the table's
    history. When the planner expects the day to be most of the table, that band is the whole
    table and finding it would cost a scan: the whole table is read instead. (clean_cdrs is
    insert-only, so a row's ctid stays put between this planning and the tasks' reads.)
    """
    blocks, total = postgres.table_blocks(conn, clean_table)
    in_day = "start_time >= %(start)s and start_time < %(end)s"
    bounds = {"start": bounds[0], "end": bounds[1]}
    if total > 0 and postgres.planned_rows(conn, f"select 1 from {clean_table} where {in_day}", bounds) > total / 2:
        return (0, blocks, True) if blocks else None
    span = postgres.block_span(conn, clean_table, in_day, bounds)
    if span is None:
        return None
    first_block, last_block = span
    return first_block, last_block + 1, last_block + 1 >= blocks


def _read_slices(conn, clean_table: str, bounds: tuple[datetime, datetime], cores: int, alias: str) -> list[str]:
    """Predicates that split the day's block range of the clean table (TID range scans)."""
    span = _day_block_range(conn, clean_table, bounds)
    if span is None:
        return ["false"]  # no CDR that day: one task that reads nothing
    first, end, to_table_end = span
    blocks = end - first
    step = -(-blocks // max(SLICES_PER_CORE * cores, -(-blocks // SLICE_BLOCKS)))
    # the last slice of a band that ends the table stays open, as the whole-table slicing did
    return [
        postgres.block_range_predicate(alias, lo, min(lo + step, end) if lo + step < end or not to_table_end else None)
        for lo in range(first, end, step)
    ]


def days_with_clean_cdrs(conn, clean_table: str, clock: TariffClock) -> list[date]:
    """The local days that hold clean CDRs, found from the table's time range and one indexed
    probe per day (no time-zone SQL, so it reads the same on every warehouse)."""
    first, last = conn.execute(f"select min(start_time), max(start_time) from {clean_table}").fetchone()
    if first is None:
        return []
    day, days = clock.local_date(first.replace(tzinfo=UTC)), []
    while day <= clock.local_date(last.replace(tzinfo=UTC)):
        start, end = clock.day_bounds_naive(day)
        if conn.execute(  # exists: stops at the first row, on either engine
            f"select case when exists (select 1 from {clean_table} where start_time >= %(start)s"
            " and start_time < %(end)s) then 1 else 0 end",
            {"start": start, "end": end},
        ).fetchone()[0]:
            days.append(day)
        day += timedelta(days=1)
    return days


def slice_queries(clean_table: str, bounds: tuple[datetime, datetime], slices: list[str]) -> list[str]:
    """The day's clean CDRs (start in [bounds), naive UTC), with each subscriber's segment, one
    query per slice of the table."""
    start, end = (b.isoformat(sep=" ") for b in bounds)
    # in INPUT_COLUMNS' order, which the tasks' schema follows; the segment is the subscriber's
    columns = ", ".join(f"s.{c}" if c == "segment" else f"c.{c}" for c in INPUT_COLUMNS)
    return [
        f"select {columns} from {clean_table} c left join {SUBSCRIBERS_TABLE.qualified} s on s.msisdn = c.served_msisdn"
        f" where c.start_time >= '{start}' and c.start_time < '{end}' and {predicate}"
        for predicate in slices
    ]


def rate_day(
    day: date,
    *,
    settings: Settings | None = None,
    tables: RatingTables | None = None,
    run_id: str | None = None,
    progress=log.info,
    spark=None,
    report: RerateReport | None = None,
) -> dict:
    """Rate one local day of clean CDRs into work tables and swap them in whole as the day's rows.

    `spark`: a session to rate in (a range's; left running), else one of its own. `report`: the
    re-rating report the day's totals before and after its swap are added to.
    """
    from cdr_platform.lib.spark.session import build_spark_session
    from cdr_platform.lib.warehouse import connect

    settings = settings or load_settings()
    tables = tables or RatingTables.for_settings(settings)
    io = _rating_io(tables.dialect, settings.rating_io)
    clean_table = f"{settings.mediation_schema}.{CLEAN_CDRS_TABLE}"
    load = tables.day_load(day, uuid.uuid4().hex[:12])
    clock = TariffClock(settings.tariff_timezone)
    bounds = clock.day_bounds_naive(day)  # the local day, as UTC wall times like start_time
    started = time.perf_counter()
    with connect(settings.warehouse) as lock_conn:
        # One run per day at a time (two would swap over each other's work tables); held to the end.
        lock_conn.execute(tables.lock_sql(day))
        with connect(settings.warehouse) as conn:
            engine = RatingEngine(
                load_tariff_from_warehouse(conn, tables),
                rounding_decimals=settings.rating_rounding_decimals,
                clock=clock,
            )
            _upgrade_tables(conn, tables, clean_table, progress)
            _create_work_tables(conn, load, day, progress)
            slices = _plan_slices(conn, clean_table, bounds, io, settings)

        own_spark = spark is None
        spark = spark or build_spark_session("cdr-rating", settings, bounded=True)
        progress(
            f"Spark up after {time.perf_counter() - started:.1f} s; reading {clean_table} for {day}"
            f" ({settings.tariff_timezone}: {bounds[0]:%Y-%m-%d %H:%M} to {bounds[1]:%Y-%m-%d %H:%M} UTC)"
            f" in {len(slices)} slices ({io})"
        )
        try:
            queries = slice_queries(clean_table, bounds, slices)
            if io == "copy":
                parts = _rate_through_copy(spark, settings.warehouse, engine, load, queries)
            else:
                parts = [_rate_through_jdbc(spark, settings.warehouse, engine, load, queries)]
        finally:
            if own_spark:
                spark.stop()
        rated_seconds = time.perf_counter() - started
        progress(f"rated and loaded into the work tables after {rated_seconds:.1f} s")

        summary = _merge_parts(parts)
        with connect(settings.warehouse) as conn:
            old, new, first_rating = _swap_in(conn, lock_conn, tables, load, day)
        progress(f"swapped in as the {day} rows after {time.perf_counter() - started:.1f} s")
        lock_conn.execute(tables.lock_sql(day, release=True))

    changed = (report if report is not None else RerateReport()).add_day(day, old, new, first_rating=first_rating)
    _complete_summary(summary, day, run_id, time.perf_counter() - started, rated_seconds)
    summary.update(first_rating=first_rating, subscribers_changed=len(changed))
    progress(
        f"rated {day}: {summary['input']:,} clean CDRs -> {summary['rated']:,} rated, "
        f"{summary['suspended']:,} in suspense, revenue {summary['revenue_total']} {CURRENCY}, "
        f"{summary['rows_per_second']:,.0f} rows/s ({summary['plain_engine_rows']:,} by the plain engine)"
    )
    return summary


def _rating_io(dialect, chosen: str) -> str:
    """How the tasks read and write the warehouse: COPY (PostgreSQL's fast path) or JDBC (any
    warehouse); `chosen`: CDR_RATING_IO, empty for the engine's own."""
    io = chosen or ("copy" if dialect.name == "postgres" else "jdbc")
    if io not in ("copy", "jdbc") or (io == "copy" and dialect.name != "postgres"):
        raise ValueError(f"CDR_RATING_IO={io!r}: 'copy' (PostgreSQL) or 'jdbc' (any warehouse)")
    return io


def _upgrade_tables(conn, tables: RatingTables, clean_table: str, progress) -> None:
    """Bring rating tables made by an earlier version to this one's shape (committed with the work tables)."""
    if tables.partitioned:
        _replace_unpartitioned(conn, tables, progress)
    for statement in tables.ddl():
        conn.execute(statement)
    _carry_clean_columns(conn, tables, clean_table, progress)


def _create_work_tables(conn, load: DayLoad, day: date, progress) -> None:
    """Fresh work tables for the day's rows (dropping those of a run that did not finish), committed."""
    for (stale,) in conn.execute(load.stale_work_sql()).fetchall():
        progress(f"dropping {stale}, left by a rating run of {day} that did not finish")
        conn.execute(f"drop table {stale}")
    rated_at = datetime.now(UTC).replace(tzinfo=None)
    constants = {
        "rated_at": rated_at.isoformat(sep=" "),
        "suspended_at": rated_at.isoformat(sep=" "),
        "currency": CURRENCY,
    }
    for statement in load.create_work_sql(constants):
        conn.execute(statement)
    conn.commit()


def _plan_slices(conn, clean_table: str, bounds: tuple[datetime, datetime], io: str, settings: Settings) -> list[str]:
    """One predicate per Spark task: block ranges of the day (COPY), or one per Kafka partition (JDBC)."""
    return (
        _read_slices(conn, clean_table, bounds, _cores(settings), "c")
        if io == "copy"
        else [
            f"c.src_partition = {p}"
            for (p,) in conn.execute(f"select distinct src_partition from {clean_table}").fetchall()
        ]
        or ["1 = 1"]
    )


def _rate_through_copy(spark, warehouse, engine: RatingEngine, load: DayLoad, queries: list[str]) -> list[dict]:
    """The PostgreSQL path: each task reads its slice, rates it and COPYs it into the work tables itself."""
    body = functools.partial(rate_and_load, engine=engine, load=load, conninfo=warehouse.conninfo(), queries=queries)
    # one task per slice: each reads its slice from the warehouse, rates it and loads it
    return [
        json.loads(r.summary)
        for r in spark.range(len(queries), numPartitions=len(queries)).mapInArrow(body, SUMMARY_DDL).collect()
    ]


def _merge_parts(parts: list[dict]) -> dict:
    """One summary of the day from the tasks' (COPY) or the job's (JDBC) partial ones."""
    summary = new_summary()
    for part in parts:
        merge_summary(summary, part)
        summary["plain_engine_rows"] += part["plain_engine_rows"]
    summary["slices"] = len(parts)
    served_by = [part["served_by"] for part in parts if "served_by" in part]
    if served_by:  # the COPY path's tasks report them
        summary["python_workers"] = len({worker for worker, _ in served_by})
        summary["warehouse_connections"] = len({backend for _, backend in served_by})
    return summary


def _swap_in(conn, lock_conn, tables: RatingTables, load: DayLoad, day: date) -> tuple[Totals, Totals, bool]:
    """Replace the day's partitions with the work tables in one transaction, under the month's
    billing lock; the day's per-subscriber totals before and after, and whether it is the day's
    first rating (it had no rated nor suspended row)."""
    attached = postgres.attached_partitions(conn, tables.schema) if tables.partitioned else set()
    conn.commit()  # ends the select's implicit transaction: the swap's below is a real one
    # not while the month is being billed: its bills and their tests read one version of it
    lock_conn.execute(tables.month_lock_sql(day))
    at = {"day": day}
    try:
        # The totals are read under the day's lock (no other run swaps it) and the month's: the
        # old ones in the swap's own transaction, the new ones once it has committed (the swap's
        # exclusive locks are not held for an aggregate).
        with conn.transaction():  # the day is replaced whole, or not at all
            first_rating = not conn.execute(tables.day_was_rated_sql(), at).fetchone()[0]
            old = {} if first_rating else totals_from_rows(conn.execute(tables.day_totals_sql(), at).fetchall())
            for statement in load.swap_sql(attached):
                conn.execute(statement)
        new = totals_from_rows(conn.execute(tables.day_totals_sql(), at).fetchall())
        conn.commit()
    finally:
        lock_conn.execute(tables.month_lock_sql(day, release=True))
    return old, new, first_rating


def rate_days(
    first: date,
    last: date,
    *,
    settings: Settings | None = None,
    tables: RatingTables | None = None,
    run_id: str | None = None,
    progress=log.info,
) -> dict:
    """Rate the local days `first` to `last` (inclusive) in order, in one Spark session; then keep
    the re-rating report under the run's id (`run_id`, else a new one). The range's summary: the
    days' counts added up, `by_day`, and `rerating` (the report's totals, its largest changes)."""
    from cdr_platform.lib.spark.session import build_spark_session

    if first > last:
        raise ValueError(f"the range runs backwards: {first} is after {last}")
    settings = settings or load_settings()
    tables = tables or RatingTables.for_settings(settings)
    report_id = run_id or f"cli-{uuid.uuid4().hex[:12]}"
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    report, summaries, started = RerateReport(), [], time.perf_counter()
    # a day's own lines (Spark, load, swap) for a single day; a range has one line per day
    day_progress = progress if len(days) == 1 else log.debug
    spark = build_spark_session("cdr-rating", settings, bounded=True)
    try:
        for n, day in enumerate(days, 1):
            summary = rate_day(
                day, settings=settings, tables=tables, run_id=run_id, progress=day_progress, spark=spark, report=report
            )
            summaries.append(summary)
            progress(f"[{n}/{len(days)}] {_day_line(summary)}")
    except BaseException:
        # the days swapped in so far stay re-rated: their changes are kept, or a retry (finding
        # them already at the new tariff) would report none
        if report.rated_days:
            progress(f"rating stopped after {report.rated_days[-1]}: keeping the report of the days swapped in")
            try:
                _write_report(settings, tables, report_id, first, last, report)
            except Exception:  # the rating's own failure is what is raised
                log.exception("the report of the days swapped in could not be kept")
        raise
    finally:
        spark.stop()
    report_rows = _write_report(settings, tables, report_id, first, last, report)
    summary = _range_summary(summaries, report, first, last, run_id, time.perf_counter() - started)
    summary["rerating"].update(
        report_id=report_id, report_rows=report_rows, report_table=tables.rerating_report.qualified
    )
    progress(_range_line(summary))
    return summary


def _write_report(settings: Settings, tables: RatingTables, report_id: str, first: date, last: date, report) -> int:
    """The report's rows into the warehouse under `report_id` (replacing that id's); their count."""
    from cdr_platform.lib.warehouse import connect

    with connect(settings.warehouse) as conn:
        return tables.write_rerating_report(
            conn, report_id, first, last, report.rows, datetime.now(UTC).replace(tzinfo=None)
        )


def _day_line(s: dict) -> str:
    """One day of a range, in a line."""
    how = "first rating" if s["first_rating"] else f"re-rated: {s['subscribers_changed']:,} subscriber(s) changed"
    return (
        f"{s['day']}: {s['input']:,} clean CDRs -> {s['rated']:,} rated, {s['suspended']:,} in suspense, "
        f"revenue {s['revenue_total']} {CURRENCY}; {how} ({s['seconds']:.1f} s)"
    )


def _range_line(s: dict) -> str:
    r = s["rerating"]
    first = f"; first rating of {len(r['first_rated_days'])} day(s)" if r["first_rated_days"] else ""
    return (
        f"rated {s['from']} to {s['to']} ({s['days']} day(s)): {s['input']:,} clean CDRs -> {s['rated']:,} rated, "
        f"{s['suspended']:,} in suspense, revenue {s['revenue_total']} {CURRENCY} in {s['seconds']:.1f} s; "
        f"re-rating of {len(r['rerated_days'])} day(s): {r['subscribers_changed']:,} subscriber(s) changed, "
        f"old total {r['old_total']}, new total {r['new_total']}, delta {r['delta']}{first}"
    )


def _range_summary(
    summaries: list[dict], report: RerateReport, first: date, last: date, run_id: str | None, seconds: float
) -> dict:
    """The days' summaries added up (as one day's reads: a one-day range has the day's counts),
    with each day's line in `by_day` and the re-rating report's totals and largest changes."""
    total = new_summary()
    for s in summaries:
        merge_summary(total, s)
        total["plain_engine_rows"] += s["plain_engine_rows"]
    revenue_total = sum((Decimal(s["revenue_total"]) for s in summaries), Decimal(0))
    for key in ("warehouse_connections", "python_workers"):  # per day's session: the most any day used
        if any(key in s for s in summaries):
            total[key] = max(s.get(key, 0) for s in summaries)
    total.update(
        {
            "from": first.isoformat(),
            "to": last.isoformat(),
            "days": len(summaries),
            **({"day": first.isoformat()} if first == last else {}),
            "run_id": run_id,
            "revenue_by_type": dict(sorted(total["revenue_by_type"].items())),
            "revenue_total": str(revenue_total),
            "currency": CURRENCY,
            "slices": sum(s["slices"] for s in summaries),
            "seconds": round(seconds, 2),
            "rows_per_second": round(total["input"] / seconds, 1) if seconds else 0.0,
            "rating_seconds": round(sum(s["rating_seconds"] for s in summaries), 2),
            "by_day": [
                {
                    k: s[k]
                    for k in (
                        "day",
                        "input",
                        "rated",
                        "suspended",
                        "revenue_total",
                        "first_rating",
                        "subscribers_changed",
                        "seconds",
                    )
                }
                for s in summaries
            ],
            "rerating": {**report.summary(), "top": [r.as_dict() for r in report.top(REPORT_TOP)]},
        }
    )
    return total


def _complete_summary(summary: dict, day: date, run_id: str | None, seconds: float, rated_seconds: float) -> None:
    """Add the run's identity, totals and timings to the merged summary, as `cdr rate` reports it."""
    revenue_total = sum((Decimal(v) for v in summary["revenue_by_type"].values()), Decimal(0))
    summary.update(
        {
            "day": day.isoformat(),
            "run_id": run_id,
            "revenue_by_type": dict(sorted(summary.get("revenue_by_type", {}).items())),
            "suspended_by_reason": summary.get("suspended_by_reason", {}),
            "revenue_total": str(revenue_total),
            "currency": CURRENCY,
            "seconds": round(seconds, 2),
            "rows_per_second": round(summary["input"] / seconds, 1) if seconds else 0.0,
            "rating_seconds": round(rated_seconds, 2),
        }
    )


def _rate_through_jdbc(spark, warehouse, engine: RatingEngine, load: DayLoad, queries: list[str]) -> dict:
    """The portable path (SQL Server; runs on PostgreSQL too): Spark's JDBC reader, the bulk rater
    in the tasks, Spark's JDBC writer into the work tables (bulk copy on SQL Server)."""
    from pyspark.sql import functions as F

    options = {"fetchsize": "20000", **warehouse.jdbc_options()}
    clean = functools.reduce(
        lambda a, b: a.unionAll(b),
        [spark.read.jdbc(warehouse.jdbc_url, f"({query}) t", properties=options) for query in queries],
    )
    rated = (
        clean.select(*INPUT_COLUMNS).mapInArrow(functools.partial(rate_batches, engine=engine), OUTPUT_DDL).persist()
    )
    try:
        for kind, table, columns in (
            ("rated", load.work_rated, RATED_COLUMNS),
            ("suspense", load.work_suspense, SUSPENSE_COLUMNS),
        ):
            (
                rated.where(F.col("kind") == kind)
                .select(*[n for n in names(columns) if n not in RUN_CONSTANTS])
                .write.jdbc(warehouse.jdbc_url, table, mode="append", properties=options)
            )
        totals = (
            rated.groupBy("kind", "record_type", "reason")
            .agg(
                F.count(F.lit(1)).alias("n"),
                F.sum("cost").alias("cost"),
                F.sum(F.when(F.col("cost") < 0, 1).otherwise(0)).alias("negative"),
            )
            .collect()
        )
    finally:
        rated.unpersist()
    summary = new_summary()
    for row in totals:
        summary["input"] += row.n
        if row.kind == "rated":
            summary["rated"] += row.n
            summary["negative"] += row.negative
            summary["revenue_by_type"][row.record_type] = str(
                Decimal(summary["revenue_by_type"].get(row.record_type, "0")) + (row.cost or Decimal(0))
            )
        else:
            summary["suspended"] += row.n
            summary["suspended_by_reason"][row.reason] = summary["suspended_by_reason"].get(row.reason, 0) + row.n
    return summary


def _cores(settings: Settings) -> int:
    master = settings.spark_master
    if master.startswith("local["):
        inner = master[len("local[") :].rstrip("]").split(",")[0]
        return os.cpu_count() or 2 if inner == "*" else int(inner)
    return settings.spark_cores


def _carry_clean_columns(conn, tables: RatingTables, clean_table: str, progress) -> None:
    """A rating_cdrs made by an earlier version lacks the clean columns billing reads: they are
    added and filled from clean_cdrs (once; with the run's DDL, in its transaction)."""
    present = {r[0] for r in conn.execute(tables.rated_columns_sql()).fetchall()}
    statements = tables.carry_clean_columns_sql(clean_table, present)
    if statements:
        progress(f"{tables.rated} was made by an earlier version: adding and filling its clean columns")
    for statement in statements:
        conn.execute(statement)


def _replace_unpartitioned(conn, tables: RatingTables, progress) -> None:
    """Tables made by an earlier version were not partitioned by day: rated data is derived, so
    they are dropped (with a message) and the days re-rated on demand."""
    for table in (tables.rated, tables.suspense):
        if postgres.relation_kind(conn, table) == "r":
            progress(
                f"{table} was made by an earlier version (not partitioned by day): dropping it; "
                "re-rate the days you need"
            )
            conn.execute(f"drop table {table}")
