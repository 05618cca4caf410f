"""Rating: a Spark batch job from clean_cdrs to rating_cdrs and rating_suspense, one day at a time.

    python -m cdr_platform.lib.spark.rating_job --day 2026-11-25

Reads the day's clean CDRs (by call start time, UTC) with each subscriber's segment, and the
tariff plan as dbt seeded it; rates every record with the rating engine applied to Arrow
batches in the Spark tasks; then replaces the day in one warehouse transaction (delete the
day, COPY the rated rows and the suspense rows), so re-running a day replaces it and never
double counts. A record the tariff does not cover goes to suspense with the reason, never
to a zero cost. Under Dagster Pipes it reports the materialization of rating_cdrs.
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
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from cdr_platform.lib.rating.cdr_rating import CURRENCY, rate_cdr, usage_of
from cdr_platform.lib.rating.engine import NotRated, RatingEngine
from cdr_platform.lib.rating.store import RATED_COLUMNS, SUSPENSE_COLUMNS, RatingTables, load_tariff_from_warehouse
from cdr_platform.lib.settings import Settings, load_settings
from cdr_platform.lib.spark.session import arrow_schema_from_ddl

log = logging.getLogger("cdr_platform.rating")
SUMMARY_PREFIX = "RATING_SUMMARY "
INPUT_COLUMNS = ("record_id", "record_type", "direction", "served_msisdn", "served_operator_id", "segment",
                 "other_msisdn", "destination_class", "technology", "start_time", "duration_s", "data_volume_bytes")
OUTPUT_DDL = ", ".join(
    ["kind string", "reason string", "detail string"]
    + [f"{name} {'decimal(18,6)' if name in ('cost', 'connect_fee') else {'rating_day': 'date', 'start_time': 'timestamp', 'rated_at': 'timestamp', 'usage_amount': 'long'}.get(name, 'string')}"
       for name, _ in RATED_COLUMNS])


def rate_batches(batches: Iterator, *, engine: RatingEngine, rated_at: datetime) -> Iterator:
    """mapInArrow body: every input row comes out once, rated or in suspense (kind)."""
    import pyarrow as pa

    schema = arrow_schema_from_ddl(OUTPUT_DDL)
    for batch in batches:
        out = {n: [] for n in schema.names}
        for row in batch.to_pylist():
            start = row["start_time"] if row["start_time"].tzinfo else row["start_time"].replace(tzinfo=timezone.utc)
            base = {"record_id": row["record_id"], "rating_day": start.date(), "start_time": start,
                    "record_type": row["record_type"], "direction": row["direction"],
                    "served_msisdn": row["served_msisdn"], "served_operator_id": row["served_operator_id"],
                    "segment": row["segment"], "other_msisdn": row["other_msisdn"],
                    "destination_class": row["destination_class"], "technology": row["technology"],
                    "rated_at": rated_at, "currency": CURRENCY}
            try:
                r = rate_cdr(engine, record_type=row["record_type"], direction=row["direction"],
                             served_operator_id=row["served_operator_id"], segment=row["segment"],
                             other_msisdn=row["other_msisdn"], technology=row["technology"], start_time=start,
                             duration_s=row["duration_s"], data_volume_bytes=row["data_volume_bytes"])
                base.update(kind="rated", reason=None, detail=None, usage_amount=r.usage_amount,
                            usage_unit=r.usage_unit, tenant=r.tenant, category=r.category, subject=r.subject,
                            rating_plan_id=r.rating_plan_id, destination_id=r.destination_id,
                            cost=r.cost, connect_fee=r.connect_fee)
            except NotRated as exc:
                _, amount, unit = usage_of(row["record_type"], row["duration_s"], row["data_volume_bytes"])
                base.update(kind="suspense", reason=exc.reason, detail=exc.detail[:400], usage_amount=amount,
                            usage_unit=unit, tenant=row["served_operator_id"], category="", subject="",
                            rating_plan_id="", destination_id="", cost=Decimal(0), connect_fee=Decimal(0))
            for n in schema.names:
                out[n].append(base[n])
        yield pa.RecordBatch.from_pydict(out, schema=schema)


def _copy(conn, table: str, columns: list[str], rows) -> int:
    n = 0
    with conn.cursor().copy(f"copy {table} ({', '.join(columns)}) from stdin") as copy:
        for row in rows:
            copy.write_row(row)
            n += 1
    return n


def rate_day(day: date, *, settings: Settings | None = None, tables: RatingTables | None = None,
             run_id: str | None = None, progress=log.info) -> dict:
    from cdr_platform.lib.mediation_store import tables_for
    from cdr_platform.lib.spark.session import build_spark_session
    from cdr_platform.lib.warehouse import connect

    settings = settings or load_settings()
    tables = tables or RatingTables(os.environ.get("CDR_RATING_SCHEMA", "rating"),
                                    tariff_schema=os.environ.get("CDR_TARIFF_SCHEMA", "tariffs"))
    mediation = tables_for(settings)
    started = time.perf_counter()
    with connect(settings.warehouse) as conn:
        engine = RatingEngine(load_tariff_from_warehouse(conn, tables),
                              rounding_decimals=int(os.environ.get("CDR_RATING_ROUNDING_DECIMALS", "5")))
        for statement in tables.ddl():
            conn.execute(statement)
        conn.commit()
        partitions = [r[0] for r in conn.execute(f"select distinct src_partition from {mediation.clean}").fetchall()]

    spark = build_spark_session("cdr-rating", settings)
    try:
        wh = settings.warehouse
        start, end = datetime.combine(day, datetime.min.time()), datetime.combine(day + timedelta(days=1),
                                                                                  datetime.min.time())
        query = (f"(select c.record_id, c.record_type, c.direction, c.served_msisdn, c.served_operator_id,"
                 f" s.segment, c.other_msisdn, c.destination_class, c.technology, c.start_time, c.duration_s,"
                 f" c.data_volume_bytes, c.src_partition from {mediation.clean} c"
                 f" left join reference.subscribers s on s.msisdn = c.served_msisdn"
                 f" where c.start_time >= '{start.isoformat(sep=' ')}' and c.start_time < '{end.isoformat(sep=' ')}') t")
        predicates = [f"src_partition = {p}" for p in partitions] or ["1 = 1"]
        clean = spark.read.jdbc(wh.jdbc_url, query, predicates=predicates,
                                properties={"fetchsize": "20000", **wh.jdbc_options()})
        rated_at = datetime.now(timezone.utc)
        result = (clean.select(*INPUT_COLUMNS)
                  .mapInArrow(functools.partial(rate_batches, engine=engine, rated_at=rated_at), OUTPUT_DDL)
                  .toArrow())
        rated_seconds = time.perf_counter() - started
    finally:
        spark.stop()

    kinds = result.column("kind").to_pylist()
    rows = result.drop_columns(["kind", "reason", "detail"]).to_pylist()
    reasons, details = result.column("reason").to_pylist(), result.column("detail").to_pylist()
    rated_names = [name for name, _ in RATED_COLUMNS]
    suspense_names = [name for name, _ in SUSPENSE_COLUMNS]
    naive = lambda v: v.replace(tzinfo=None) if isinstance(v, datetime) else v  # noqa: E731
    revenue: Counter = Counter()
    suspended_by_reason: Counter = Counter()
    with connect(settings.warehouse) as conn:
        with conn.transaction():  # the day is replaced whole, or not at all
            for sql in tables.clear_day_sql():
                conn.execute(sql, {"day": day})
            rated = _copy(conn, tables.rated, rated_names,
                          ([naive(row[n]) for n in rated_names] for row, k in zip(rows, kinds) if k == "rated"))
            suspended = _copy(conn, tables.suspense, suspense_names, (
                [naive(row["record_id"]), row["rating_day"], naive(row["start_time"]), row["record_type"],
                 row["served_msisdn"], reason, detail, naive(row["rated_at"])]
                for row, k, reason, detail in zip(rows, kinds, reasons, details) if k == "suspense"))
    for row, k, reason in zip(rows, kinds, reasons):
        if k == "rated":
            revenue[row["record_type"]] += row["cost"]
        else:
            suspended_by_reason[reason] += 1
    seconds = time.perf_counter() - started
    summary = {"day": day.isoformat(), "run_id": run_id, "input": len(rows), "rated": rated,
               "suspended": suspended, "suspended_by_reason": dict(suspended_by_reason),
               "revenue_by_type": {k: str(v) for k, v in sorted(revenue.items())},
               "revenue_total": str(sum(revenue.values(), Decimal(0))), "currency": CURRENCY,
               "seconds": round(seconds, 2), "rows_per_second": round(len(rows) / seconds, 1) if seconds else 0.0,
               "rating_seconds": round(rated_seconds, 2)}
    progress(f"rated {day}: {len(rows):,} clean CDRs -> {rated:,} rated, {suspended:,} in suspense, "
             f"revenue {summary['revenue_total']} {CURRENCY}, {summary['rows_per_second']:,.0f} rows/s")
    return summary


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
                "rows_per_second": summary["rows_per_second"], "seconds": summary["seconds"]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
