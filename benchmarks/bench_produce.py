"""Benchmark: generate and produce 1,000,000 CDRs into Kafka, per producer client.

    python -m benchmarks.bench_produce [--count 1000000] [--runs 3] [--producers kafka-python confluent]

Each run is a fresh subprocess (so peak memory is that run's own), producing into a
throw-away topic on the local stack (`make up` first). Reports the median records/s and
peak RSS per producer, and the generator alone (no broker) for scale.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime


def one_run(kind: str, count: int, topic: str) -> dict:
    from cdr_platform.lib.ingest.generator import CdrGenerator, GeneratorConfig
    from cdr_platform.lib.settings import load_settings

    config = GeneratorConfig(count=count, seed=1, start_time=datetime(2026, 11, 1, tzinfo=UTC))
    started = time.perf_counter()
    if kind == "generator-only":
        n = sum(len(chunk) for chunk in CdrGenerator(config).chunks())
    else:
        from cdr_platform.lib.ingest.produce import produce_cdrs
        from cdr_platform.lib.ingest.producers import make_producer

        kafka = load_settings().kafka
        producer = make_producer(kind, kafka)
        report = produce_cdrs(config, producer, kafka, topic, progress=lambda _: None)
        producer.close()
        n = report.records
    seconds = time.perf_counter() - started
    return {
        "kind": kind,
        "records": n,
        "seconds": seconds,
        "records_per_s": n / seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--producers", nargs="+", default=["generator-only", "kafka-python", "confluent"])
    parser.add_argument("--one-run", nargs=3, metavar=("KIND", "COUNT", "TOPIC"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_run:
        kind, count, topic = args.one_run
        print(json.dumps(one_run(kind, int(count), topic)))
        return 0

    from cdr_platform.lib.kafka_io import admin_client, ensure_topics
    from cdr_platform.lib.settings import load_settings

    settings = load_settings()
    topic = f"bench-raw-cdrs-{uuid.uuid4().hex[:6]}"
    ensure_topics(settings.kafka, [topic], settings.kafka.topic_partitions)
    rows = []
    try:
        for kind in args.producers:
            runs = []
            for i in range(args.runs):
                out = subprocess.run(
                    [sys.executable, "-m", "benchmarks.bench_produce", "--one-run", kind, str(args.count), topic],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                result = json.loads(out.stdout.strip().splitlines()[-1])
                print(
                    f"{kind:15} run {i + 1}: {result['records_per_s']:>10,.0f} records/s  "
                    f"peak {result['peak_rss_mb']:,.0f} MB",
                    flush=True,
                )
                runs.append(result)
            rows.append(
                (kind, statistics.median(r["records_per_s"] for r in runs), max(r["peak_rss_mb"] for r in runs))
            )
    finally:
        admin = admin_client(settings.kafka)
        admin.delete_topics([topic])
        admin.close()
    print(f"\n{args.count:,} CDRs, median of {args.runs} runs")
    print(f"| {'producer':15} | {'records/s (median)':>18} | {'peak RSS MB':>11} |")
    for kind, rate, rss in rows:
        print(f"| {kind:15} | {rate:>18,.0f} | {rss:>11,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
