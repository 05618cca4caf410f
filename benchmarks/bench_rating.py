"""Benchmark: rate a day of clean CDRs from clean_cdrs into rating_cdrs; and the plain engine alone.

    python -m benchmarks.bench_rating [--count 10000000] [--generated 1000000] [--runs 3]

Fills a throw-away clean_cdrs with `count` valid CDRs of one day: `generated` of them from the
generator through the mediation rules (COPY), the rest copies of those in SQL with new record
ids (generating 10,000,000 through Python would take minutes and rate no differently). Seeds
the default tariff, then runs the rating job for that day `runs` times (each run replaces the
day) in its own driver process: rows/s over the whole job, Spark start-up included. Then
the plain engine and the bulk path alone on one core, over the same records in-process.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import uuid
from datetime import date

from benchmarks.synthetic_warehouse import CLEAN_LOAD_COLUMNS, fan_out, fill_clean_cdrs, quiet_warehouse
from cdr_platform.lib.settings import REPO_ROOT, load_settings, process_environment


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=10_000_000)
    parser.add_argument("--generated", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    import psycopg
    import pyarrow as pa

    from cdr_platform.defs.dbt.project import DBT_PROJECT_DIR, dbt_command
    from cdr_platform.lib.ingest.generator import GeneratorConfig
    from cdr_platform.lib.mediation.store import MediationTables
    from cdr_platform.lib.rating.bulk import INPUT_COLUMNS as BULK_INPUT
    from cdr_platform.lib.rating.bulk import BulkRater
    from cdr_platform.lib.rating.cdr import rate_cdr
    from cdr_platform.lib.rating.engine import RatingEngine
    from cdr_platform.lib.rating.job import SUMMARY_PREFIX
    from cdr_platform.lib.rating.store import RatingTables, load_tariff_from_warehouse
    from cdr_platform.lib.reference.subscribers import generate_subscribers
    from cdr_platform.lib.tariff_clock import TariffClock

    settings = load_settings()
    tag = uuid.uuid4().hex[:6]
    clean_schema, rating_schema = f"bench_clean_{tag}", f"bench_rating_{tag}"
    subprocess.run(
        dbt_command("seed", "--quiet", "--full-refresh"),
        check=True,
        cwd=DBT_PROJECT_DIR,
    )
    clock = TariffClock(settings.tariff_timezone)
    day = clock.day_start(date(2026, 11, 2))  # one whole local day (the operator's time zone)
    config = GeneratorConfig(
        count=min(args.generated, args.count), seed=4, error_rate=0.0, start_time=day, span_hours=24
    )
    tables = MediationTables(clean_schema)
    segments = {s.msisdn: s.segment for s in generate_subscribers()}
    with psycopg.connect(settings.warehouse.conninfo()) as conn:
        n, sample = fill_clean_cdrs(conn, tables, config, keep_sample=200_000)
        fan_out(conn, tables.clean, CLEAN_LOAD_COLUMNS, copies=-(-args.count // n) - 1)
        conn.execute(
            f"delete from {tables.clean} where record_id in (select record_id from {tables.clean}"
            f" order by record_id offset {args.count})"
        )
        total = conn.execute(f"select count(*) from {tables.clean}").fetchone()[0]
        conn.commit()
    with psycopg.connect(settings.warehouse.conninfo(), autocommit=True) as conn:
        # as the table sits in a warehouse once autovacuum has been by (hint bits set, statistics)
        conn.execute(f"vacuum (analyze) {tables.clean}")
    print(f"{total:,} clean CDRs in {tables.clean}", flush=True)

    results = []
    try:
        for run in range(args.runs):
            env = {
                **process_environment(),
                "CDR_MEDIATION_SCHEMA": clean_schema,
                "CDR_RATING_SCHEMA": rating_schema,
                "PYSPARK_PYTHON": sys.executable,
            }
            quiet_warehouse(settings.warehouse.conninfo())
            started = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-m", "cdr_platform.cli", "rate", "--day", "2026-11-02"],
                env=env,
                cwd=REPO_ROOT,
                capture_output=True,
                text=True,
            )
            wall = time.perf_counter() - started
            if proc.returncode != 0:
                print(proc.stderr[-3000:], file=sys.stderr)
                return 1
            summary = json.loads(
                next(line for line in proc.stdout.splitlines() if line.startswith(SUMMARY_PREFIX))[
                    len(SUMMARY_PREFIX) :
                ]
            )
            results.append(summary["input"] / wall)
            print(
                f"run {run + 1}: {summary['input']:,} rated in {wall:.1f} s = {results[-1]:,.0f} rows/s "
                f"(process, Spark start-up included); {summary['rated']:,} rated, "
                f"{summary['suspended']:,} suspense",
                flush=True,
            )

        with psycopg.connect(settings.warehouse.conninfo()) as conn:
            engine = RatingEngine(load_tariff_from_warehouse(conn, RatingTables()), clock=clock)
        started = time.perf_counter()
        for r in sample:
            rate_cdr(
                engine,
                record_type=r["record_type"],
                direction=r["direction"],
                served_operator_id=r["served_operator_id"],
                segment=segments.get(r["served_msisdn"]),
                other_msisdn=r["other_msisdn"],
                technology=r["technology"],
                start_time=r["start_time"],
                duration_s=r["duration_s"],
                data_volume_bytes=r["data_volume_bytes"],
            )
        plain = len(sample) / (time.perf_counter() - started)
        rater = BulkRater(engine)
        table = pa.Table.from_pylist(
            [
                {c: r[c] for c in BULK_INPUT if c != "segment"} | {"segment": segments.get(r["served_msisdn"])}
                for r in sample
            ]
        )
        table = table.cast(
            pa.schema([f.with_type(pa.timestamp("us", "UTC")) if f.name == "start_time" else f for f in table.schema])
        ).combine_chunks()
        batches = table.to_batches(max_chunksize=50_000)
        for batch in batches:
            rater.rate(batch)  # warm: routes and schedules learnt once per task in the job too
        started = time.perf_counter()
        for batch in batches:
            rater.rate(batch)
        bulk = len(sample) / (time.perf_counter() - started)
    finally:
        with psycopg.connect(settings.warehouse.conninfo(), autocommit=True) as conn:
            conn.execute(f"drop schema if exists {clean_schema} cascade")
            conn.execute(f"drop schema if exists {rating_schema} cascade")
    print(
        f"\nSpark rating job, median of {len(results)}: {statistics.median(results):,.0f} rows/s "
        f"({total:,} CDRs); on one core, {len(sample):,} CDRs: plain engine {plain:,.0f} rows/s, "
        f"bulk path {bulk:,.0f} rows/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
