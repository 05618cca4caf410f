"""Benchmark: continuous mediation at a steady 5,000 CDRs/s - latency from produce to clean_cdrs.

    python -m benchmarks.bench_latency [--rate 5000] [--seconds 60] [--interval "500 milliseconds"]

Starts the mediation job in continuous mode (processing-time trigger) on throw-away topics,
schema and checkpoint, produces valid CDRs at a steady rate, then measures for every stored
row the time from its Kafka timestamp (set by the producer when it was sent) to the commit of
the batch that stored it (the ledger's committed_at, read from the database clock at the end
of the batch's ledger transaction). Reports p50, p95, p99 and max.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cdr_platform.lib.settings import REPO_ROOT, load_settings, process_environment


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=5000)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--interval", default="500 milliseconds")
    args = parser.parse_args()

    import psycopg

    from cdr_platform.lib.ingest.generator import GeneratorConfig
    from cdr_platform.lib.ingest.produce import produce_cdrs
    from cdr_platform.lib.ingest.producers import make_producer
    from cdr_platform.lib.kafka_io import admin_client, ensure_topics

    settings = load_settings()
    tag = uuid.uuid4().hex[:6]
    raw, errors, schema = f"bench-lat-raw-{tag}", f"bench-lat-err-{tag}", f"bench_lat_{tag}"
    ensure_topics(settings.kafka, [raw, errors], settings.kafka.topic_partitions)
    count = int(args.rate * args.seconds)
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **process_environment(),
            "CDR_RAW_TOPIC": raw,
            "CDR_ERROR_TOPIC": errors,
            "CDR_MEDIATION_SCHEMA": schema,
            "CDR_MEDIATION_CHECKPOINT": f"{tmp}/checkpoint",
            "PYSPARK_PYTHON": sys.executable,
        }
        job = subprocess.Popen(
            [sys.executable, "-m", "cdr_platform.cli", "mediate", "--continuous", "--interval", args.interval],
            env=env,
            cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=open(f"{tmp}/job.log", "w"),
        )
        try:
            deadline = time.monotonic() + 120
            while not Path(f"{tmp}/checkpoint/offsets").exists():  # the query is running
                if job.poll() is not None or time.monotonic() > deadline:
                    print(Path(f"{tmp}/job.log").read_text()[-3000:], file=sys.stderr)
                    return 1
                time.sleep(0.5)
            time.sleep(3)
            print(f"producing {count:,} CDRs at {args.rate:,.0f}/s", flush=True)
            producer = make_producer("confluent", settings.kafka)
            now = datetime.now(UTC)
            config = GeneratorConfig(count=count, seed=3, error_rate=0.0, start_time=now - timedelta(days=1))
            report = produce_cdrs(config, producer, settings.kafka, raw, rate_limit=args.rate, progress=lambda _: None)
            producer.close()
            print(f"produced at {report.records_per_second:,.0f}/s; waiting for mediation", flush=True)
            with psycopg.connect(settings.warehouse.conninfo(), autocommit=True) as conn:
                deadline = time.monotonic() + 300
                while time.monotonic() < deadline:
                    consumed = conn.execute(
                        f"select coalesce(sum(rows_in), 0) from {schema}.mediation_ledger"
                    ).fetchone()[0]
                    if consumed >= count:
                        break
                    time.sleep(1)
                row = conn.execute(
                    "select percentile_cont(0.5) within group (order by s), percentile_cont(0.95) within group"
                    " (order by s), percentile_cont(0.99) within group (order by s), max(s), count(*) from ("
                    " select extract(epoch from (l.committed_at - c.kafka_timestamp)) as s"
                    f" from {schema}.clean_cdrs c join {schema}.mediation_ledger l"
                    " on l.query_id = c.query_id and l.batch_id = c.batch_id) x"
                ).fetchone()
                batches = conn.execute(f"select count(*) from {schema}.mediation_ledger").fetchone()[0]
        finally:
            job.send_signal(signal.SIGTERM)
            try:
                job.wait(60)
            except subprocess.TimeoutExpired:
                job.kill()
            admin = admin_client(settings.kafka)
            admin.delete_topics([raw, errors])
            admin.close()
    p50, p95, p99, worst, rows = row
    print(
        f"{rows:,} rows in {batches} batches; latency produce -> clean_cdrs: "
        f"p50 {p50:.2f} s, p95 {p95:.2f} s, p99 {p99:.2f} s, max {worst:.2f} s"
    )
    with psycopg.connect(settings.warehouse.conninfo(), autocommit=True) as conn:
        conn.execute(f"drop schema if exists {schema} cascade")
    return 0


if __name__ == "__main__":
    sys.exit(main())
