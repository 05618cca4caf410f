"""Benchmark: mediate 1,000,000 CDRs (5% bad) already in Kafka into clean_cdrs.

    python -m benchmarks.bench_mediation [--count 1000000] [--runs 3]

The CDRs are produced once into a throw-away topic; each run then mediates all of them
from scratch (new warehouse schema, error topic and checkpoint) in its own Spark driver
process, the way the Dagster asset runs it. Reported per run: rows/s over the streaming
query (from the moment the Spark session is up to the last commit) and over the whole process
(Spark start-up included), the peak RSS of the driver (the JVM and its Python process), and
the rows/s of the micro-batches after the first (the query once warm).

Two floors, each in as many fresh processes again (`--floor-runs`, 0 to skip):
- python: the same topic through Spark's Kafka source into Python tasks that discard the rows.
  Mediation cannot be faster than that on this machine; the ratio says how much of the time
  mediation itself takes.
- jvm-json: the same topic through the Kafka source into Spark's own JSON parser (from_json with
  the CDR schema, full JIT), the result discarded. What a design that validated in the JVM
  instead of Python would spend before its first rule and its first write.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from cdr_platform.lib.settings import REPO_ROOT, load_settings, process_environment


def _peak_rss_mb(root_pid: int, stop: threading.Event, out: dict) -> None:
    """Poll the driver process tree's VmHWM (peak RSS), which the kernel keeps per process."""
    peak: dict[int, int] = {}
    while not stop.is_set():
        pids = [root_pid]
        try:
            pids += [int(p) for p in Path(f"/proc/{root_pid}/task/{root_pid}/children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            pass
        for pid in pids:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak[pid] = max(peak.get(pid, 0), int(line.split()[1]))
            except (FileNotFoundError, ProcessLookupError):
                pass
        time.sleep(0.2)
    out["peak_rss_mb"] = sum(peak.values()) / 1024


_BATCH_LINE = re.compile(r"batch (\d+): ([\d,]+) in, .* in ([\d.]+) s \(")


def _warm_rows_per_s(log: str) -> float | None:
    """rows/s of the full micro-batches after the first, from the job's progress lines."""
    batches = [(int(b), int(n.replace(",", "")), float(t)) for b, n, t in _BATCH_LINE.findall(log)]
    largest = max((n for _, n, _ in batches), default=0)
    full = [(n, t) for b, n, t in batches if b > 0 and n >= largest // 2]  # not the trailing stragglers
    seconds = sum(t for _, t in full)
    return sum(n for n, _ in full) / seconds if seconds else None


FLOOR_KINDS = {
    "python": "Spark's Kafka source into Python tasks that keep nothing",
    "jvm-json": "Spark's Kafka source into Spark's JSON parser, nothing kept",
}
_SPARK_JSON_TYPES = {int: "bigint", str: "string", bool: "boolean"}


def _read_floor(topic: str, kind: str) -> None:
    """Child process of a floor run (see FLOOR_KINDS), timed from the Spark session being up."""
    from pyspark.sql import functions as F

    from cdr_platform.lib.kafka_clients import SPARK, client_options
    from cdr_platform.lib.schema import FIELD_TYPES  # noqa: F811
    from cdr_platform.lib.spark.session import COUNT_ROWS_SCHEMA, build_spark_session, count_rows

    settings = load_settings()
    # Python's floor runs with the bounded job's C1-only JIT, as mediation does; Spark's JSON parser
    # is faster under the full JIT in a fresh process (10.4-11.6 s against 12.9-13.2 s per 1M here)
    spark = build_spark_session("bench-kafka-floor", settings, bounded=kind == "python")

    def source():
        return (
            spark.read.format("kafka")
            .options(**client_options(settings.kafka, SPARK))
            .option("subscribe", topic)
            .option("startingOffsets", "earliest")
            .option("endingOffsets", "latest")
            .load()
            .select("key", "value", "partition", "offset", "timestamp")
        )  # what mediation's tasks get

    started = time.perf_counter()
    if kind == "python":
        rows = sum(r["rows"] for r in source().mapInArrow(count_rows, COUNT_ROWS_SCHEMA).collect())
        seconds = time.perf_counter() - started
    else:
        cdr_ddl = ", ".join(f"{name} {_SPARK_JSON_TYPES[json_type]}" for name, json_type in FIELD_TYPES.items())
        # every field kept (the noop sink reads them all), so Spark cannot prune the parse
        (
            source()
            .select(
                F.from_json(F.col("value").cast("string"), cdr_ddl).alias("cdr"),
                "key",
                "partition",
                "offset",
                "timestamp",
            )
            .select("cdr.*", "key", "partition", "offset", "timestamp")
            .write.format("noop")
            .mode("overwrite")
            .save()
        )
        seconds = time.perf_counter() - started
        rows = source().count()  # after the clock: the noop sink returns no count
    print(json.dumps({"rows": rows, "seconds": seconds}), flush=True)
    spark.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--floor-runs", type=int, default=3)
    parser.add_argument("--staging", default="direct", choices=["direct", "jdbc"])
    parser.add_argument("--floor-child", help=argparse.SUPPRESS)  # internal: one floor run of this topic
    parser.add_argument("--floor-kind", choices=sorted(FLOOR_KINDS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_child:
        _read_floor(args.floor_child, args.floor_kind)
        return 0

    import psycopg

    from cdr_platform.lib.ingest.generator import GeneratorConfig
    from cdr_platform.lib.ingest.produce import produce_cdrs
    from cdr_platform.lib.ingest.producers import make_producer
    from cdr_platform.lib.kafka_io import BROKER_CLOCK, admin_client, ensure_topics
    from cdr_platform.lib.mediation.job import SUMMARY_PREFIX

    settings = load_settings()
    tag = uuid.uuid4().hex[:6]
    raw = f"bench-med-raw-{tag}"
    ensure_topics(settings.kafka, [raw], settings.kafka.topic_partitions, {raw: BROKER_CLOCK})
    producer = make_producer("confluent", settings.kafka)
    config = GeneratorConfig(count=args.count, seed=2, error_rate=0.05, start_time=datetime(2026, 11, 1, tzinfo=UTC))
    produce_cdrs(config, producer, settings.kafka, raw, progress=lambda _: None)
    producer.close()
    print(f"{args.count:,} CDRs in {raw}", flush=True)

    results, topics, schemas = [], [raw], []
    floors: dict[str, list[float]] = {kind: [] for kind in FLOOR_KINDS}
    try:
        for run in range(args.runs):
            errors, schema = f"bench-med-err-{tag}-{run}", f"bench_med_{tag}_{run}"
            topics.append(errors)
            schemas.append(schema)
            ensure_topics(settings.kafka, [errors], settings.kafka.topic_partitions)
            with tempfile.TemporaryDirectory() as tmp:
                env = {
                    **process_environment(),
                    "CDR_RAW_TOPIC": raw,
                    "CDR_ERROR_TOPIC": errors,
                    "CDR_MEDIATION_SCHEMA": schema,
                    "CDR_MEDIATION_CHECKPOINT": f"{tmp}/checkpoint",
                    "CDR_MEDIATION_STAGING": args.staging,
                    "PYSPARK_PYTHON": sys.executable,
                }
                started = time.perf_counter()
                proc = subprocess.Popen(
                    [sys.executable, "-m", "cdr_platform.cli", "mediate"],
                    env=env,
                    cwd=REPO_ROOT,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                stop, memory = threading.Event(), {}
                watcher = threading.Thread(target=_peak_rss_mb, args=(proc.pid, stop, memory))
                watcher.start()
                stdout, stderr = proc.communicate()
                wall = time.perf_counter() - started
                stop.set()
                watcher.join()
            if proc.returncode != 0:
                print(stderr[-3000:], file=sys.stderr)
                return 1
            summary = json.loads(
                next(line for line in stdout.splitlines() if line.startswith(SUMMARY_PREFIX))[len(SUMMARY_PREFIX) :]
            )
            result = {
                "rows_in": summary["rows_in"],
                "query_rows_per_s": summary["rows_per_second"],
                "process_rows_per_s": summary["rows_in"] / wall,
                "peak_rss_mb": memory["peak_rss_mb"],
                "warm_rows_per_s": _warm_rows_per_s(stderr),
                "clean": summary["clean"],
                "balanced": summary["balanced"],
            }
            warm = f"{result['warm_rows_per_s']:>9,.0f}" if result["warm_rows_per_s"] else "        -"
            print(
                f"run {run + 1}: {result['query_rows_per_s']:>9,.0f} rows/s (query), "
                f"{result['process_rows_per_s']:>9,.0f} rows/s (process), {warm} rows/s (batches after "
                f"the first), driver peak {result['peak_rss_mb']:,.0f} MB, {summary['clean']:,} clean, "
                f"balanced={summary['balanced']}",
                flush=True,
            )
            results.append(result)
        for run in range(args.floor_runs):
            for kind, what in FLOOR_KINDS.items():  # interleaved, so both see the same machine
                proc = subprocess.run(
                    [sys.executable, "-m", "benchmarks.bench_mediation", "--floor-child", raw, "--floor-kind", kind],
                    env={**process_environment(), "PYSPARK_PYTHON": sys.executable},
                    cwd=REPO_ROOT,
                    capture_output=True,
                    text=True,
                )
                if proc.returncode != 0:
                    print(proc.stderr[-3000:], file=sys.stderr)
                    return 1
                floor = json.loads(proc.stdout.strip().splitlines()[-1])
                floors[kind].append(floor["rows"] / floor["seconds"])
                print(
                    f"floor {kind} {run + 1}: {floors[kind][-1]:>9,.0f} rows/s ({what}, {floor['rows']:,} rows)",
                    flush=True,
                )
    finally:
        admin = admin_client(settings.kafka)
        admin.delete_topics(topics)
        admin.close()
        with psycopg.connect(settings.warehouse.conninfo(), autocommit=True) as conn:
            for schema in schemas:
                conn.execute(f"drop schema if exists {schema} cascade")
    print(
        f"\nmedian of {len(results)}: "
        f"{statistics.median(r['query_rows_per_s'] for r in results):,.0f} rows/s (query), "
        f"{statistics.median(r['process_rows_per_s'] for r in results):,.0f} rows/s (process), "
        f"peak driver RSS {max(r['peak_rss_mb'] for r in results):,.0f} MB"
    )
    warm = [r["warm_rows_per_s"] for r in results if r["warm_rows_per_s"]]
    if warm:
        print(f"micro-batches after the first: {statistics.median(warm):,.0f} rows/s (median)")
    query = statistics.median(r["query_rows_per_s"] for r in results)
    for kind, rates in floors.items():
        if rates:
            print(
                f"floor {kind}: {statistics.median(rates):,.0f} rows/s (median); mediation's query runs at "
                f"{query / statistics.median(rates):.0%} of it"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
