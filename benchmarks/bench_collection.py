"""Benchmark: TS 32.297 files of a network element, end to end from the files to clean_cdrs.

    python -m benchmarks.bench_collection [--count 200000] [--per-file 2000] [--runs 3] [--profile]

(bench_collection_decode.py measures the decoder alone against pycrate's bare decode; this one
measures what the platform does with the files.) Builds `count` valid TS 32.298 records, MO and MT
calls and MO and MT SMS of the reference data's subscribers (generate_subscribers(), each on a
cell of its operator's in CELL_CATALOGUE), their start times spread over the last day, encoded
with the tests' encoder (cdr_platform_tests/threegpp_files.py), `per-file` to a TS 32.297 file of
one MSC, numbered 1, 2, ... Every record is one mediation keeps: a unique call reference, a served
subscriber's calls minutes apart (no content duplicates), known cells, no stale or future time.

Then `runs` times, each in a sandbox of its own (raw and error topics created as the tests'
MediationSandbox does, a warehouse schema for the collection ledger and mediation, a checkpoint),
dropped at the end even on failure, after quiet_warehouse:
1. collection: the files written into the source's landing folder, then each collected with
   `collect_file` (as the landing asset does: kafka-python producer, the ledger in the schema,
   the file moved to archive/), in this process: wall and CPU time (CPU counts the producer's
   sender thread too);
2. mediation: `cdr mediate` (bounded) as a subprocess with the sandbox's env overrides, timed from
   its start (Spark start-up included) to its exit; its own summary gives the query's time;
3. check: clean_cdrs holds every record (count), the ledger says every file collected.
Reported: each stage's records/s and its share of the files -> clean_cdrs time, the medians of
the runs. Once, before the runs, in this process: pycrate's bare BER decode of the same records
(bench_collection_decode's floor) and `threegpp.decode_file` alone over the same files (the
decoding within collection); decoding and collection are also given as a share of the bare decode
by CPU. `--profile`: a cProfile of one more collection (no mediation), in a sandbox
of its own, the functions that take the most time.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.synthetic_warehouse import quiet_warehouse
from cdr_platform.lib.collection import ledger
from cdr_platform.lib.collection.collector import collect_file
from cdr_platform.lib.collection.formats import threegpp
from cdr_platform.lib.collection.formats.base import SourceProfile
from cdr_platform.lib.reference.network import CELL_CATALOGUE
from cdr_platform.lib.reference.subscribers import generate_subscribers
from cdr_platform.lib.settings import REPO_ROOT, load_settings, process_environment
from cdr_platform_tests import threegpp_files as tf

SOURCE = "bench-msc-1"
MSC = "212600000001"
SPREAD = timedelta(hours=22)  # the records' start times: from a day ago to two hours ago


@dataclass
class Run:
    collection_wall: float
    collection_cpu: float
    mediation_wall: float
    mediation_query: float
    clean: int

    @property
    def total(self) -> float:
        return self.collection_wall + self.mediation_wall


def _records(count: int, now: datetime, seed: int = 24) -> list:
    """Valid MO/MT calls and SMS: subscriber i % 300 serves record i, so one subscriber's records
    lie SPREAD * 300 / count apart (minutes at 200,000): no two are the same call by content, and
    an MT SMS (its id is the MSC, the IMSI and the second) never shares an id."""
    rng = random.Random(seed)
    subscribers = generate_subscribers()
    cells: dict[str, list[tf.Cell]] = {}
    for cell in CELL_CATALOGUE:
        cells.setdefault(cell.operator_id, []).append(tf.Cell.of(cell.cell_id))
    first = now - SPREAD - timedelta(hours=2)
    step = SPREAD.total_seconds() / count
    records = []
    for i in range(count):
        index = i % len(subscribers)
        served = subscribers[index]
        other = subscribers[(index + rng.randrange(1, len(subscribers))) % len(subscribers)].msisdn
        cell = rng.choice(cells[served.operator_id])
        imsi = cell.network.replace("-", "") + f"{index:010d}"  # MCC + 2-digit MNC + 10 digits
        start = first + timedelta(seconds=int(i * step))
        kind = rng.random()
        if kind < 0.4:
            records.append(
                tf.MoCall(served.msisdn, other, start, rng.randint(1, 900), cell=cell, served_imsi=imsi, msc=MSC,
                          call_reference=i + 1)
            )  # fmt: skip
        elif kind < 0.7:
            records.append(
                tf.MtCall(served.msisdn, other, start, rng.randint(1, 900), cell=cell, served_imsi=imsi, msc=MSC,
                          call_reference=i + 1)
            )  # fmt: skip
        elif kind < 0.85:
            records.append(
                tf.MoSms(served.msisdn, other, start, cell=cell, served_imsi=imsi, msc=MSC, message_reference=i % 256)
            )
        else:
            records.append(tf.MtSms(served.msisdn, start, cell=cell, served_imsi=imsi, msc=MSC))
    return records


def _files(count: int, per_file: int, now: datetime) -> tuple[dict[str, bytes], list[tuple[int, bytes]]]:
    """The files by name, and every record's (TS number, BER octets)."""
    records = _records(count, now)
    files, encoded = {}, []
    for n, i in enumerate(range(0, count, per_file)):
        chunk = records[i : i + per_file]
        chunk_encoded = [tf.encode_record(r) for r in chunk]
        encoded += chunk_encoded
        opened = min(getattr(r, "start", None) or getattr(r, "sent_at", None) or r.delivered_at for r in chunk)
        files[f"MSC1_{n + 1:06d}.ber"] = tf.file_of_encoded(chunk_encoded, sequence_number=n + 1, opened_at=opened)
    return files, encoded


def _timed(run) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


class Sandbox:
    """Throw-away raw and error topics, warehouse schema and folders of one run."""

    def __init__(self, settings, work: Path) -> None:
        from cdr_platform.lib.kafka_io import BROKER_CLOCK, ensure_topics, topic_size_config

        tag = uuid.uuid4().hex[:8]
        self.settings = settings
        self.raw, self.errors, self.schema = f"bench-coll-raw-{tag}", f"bench-coll-err-{tag}", f"bench_coll_{tag}"
        self.work = work / tag
        self.folder = self.work / "landing" / SOURCE
        self.folder.mkdir(parents=True)
        size = topic_size_config(settings.kafka)
        # as the stack creates raw-cdrs: on the broker's clock
        ensure_topics(
            settings.kafka,
            [self.raw, self.errors],
            settings.kafka.topic_partitions,
            {self.raw: {**BROKER_CLOCK, **size}, self.errors: size},
        )

    def env(self) -> dict[str, str]:
        return process_environment(
            CDR_RAW_TOPIC=self.raw,
            CDR_ERROR_TOPIC=self.errors,
            CDR_MEDIATION_SCHEMA=self.schema,
            CDR_MEDIATION_CHECKPOINT=str(self.work / "checkpoint"),
            CDR_LATE_ARRIVAL_DAYS="36500",
            CDR_LANDING_DIR=str(self.work / "landing"),
            CDR_COLLECTION_SETTLE_S="0",
            PYSPARK_PYTHON=sys.executable,
        )

    def query(self, sql: str) -> list[tuple] | None:
        import psycopg

        with psycopg.connect(self.settings.warehouse.conninfo(), autocommit=True) as conn:
            cursor = conn.execute(sql)
            return cursor.fetchall() if cursor.description else None

    def drop(self) -> None:
        from cdr_platform.lib.kafka_io import admin_client

        try:
            self.query(f"drop schema if exists {self.schema} cascade")
        finally:
            admin = admin_client(self.settings.kafka)
            try:
                admin.delete_topics([self.raw, self.errors])
            finally:
                admin.close()


def _collect(box: Sandbox, files: dict[str, bytes], per_file_counts: dict[str, int]) -> tuple[float, float]:
    """Collect every file of the landing folder as the landing asset does: (wall s, CPU s)."""
    from cdr_platform.lib.ingest.producers import make_producer
    from cdr_platform.lib.warehouse import connect
    from cdr_platform.lib.warehouse.dialects import DIALECTS

    for name, data in files.items():
        (box.folder / name).write_bytes(data)
    tables = ledger.CollectionTables(box.schema, DIALECTS[box.settings.warehouse.kind])
    with connect(box.settings.warehouse) as conn:
        ledger.create_tables(conn, tables)
        conn.commit()
        producer = make_producer("kafka-python", box.settings.kafka)
        try:
            wall, cpu = time.perf_counter(), time.process_time()
            for name in files:
                outcome = collect_file(
                    box.folder / name,
                    source_name=SOURCE,
                    format_name=None,
                    conn=conn,
                    tables=tables,
                    publisher=producer,
                    topic=box.raw,
                    source_folder=box.folder,
                    move=True,
                    duplicate_tolerance_s=box.settings.duplicate_content_tolerance_s,
                )
                if outcome.status != ledger.COLLECTED or outcome.published != per_file_counts[name]:
                    raise SystemExit(f"{name}: {outcome.summary()}")
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        finally:
            producer.close()
    return wall, cpu


def _mediate(box: Sandbox) -> tuple[float, dict]:
    from cdr_platform.lib.mediation.job import SUMMARY_PREFIX

    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "cdr_platform.cli", "mediate"],
        env=box.env(),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"cdr mediate exited {proc.returncode}")
    line = next(s for s in proc.stdout.splitlines() if s.startswith(SUMMARY_PREFIX))
    return wall, json.loads(line[len(SUMMARY_PREFIX) :])


def _one_run(settings, work: Path, files: dict[str, bytes], counts: dict[str, int], total: int) -> Run:
    quiet_warehouse(settings.warehouse.conninfo())
    box = Sandbox(settings, work)
    try:
        collection_wall, collection_cpu = _collect(box, files, counts)
        mediation_wall, summary = _mediate(box)
        clean = box.query(f"select count(*) from {box.schema}.clean_cdrs")[0][0]
        collected = box.query(f"select count(*), sum(records_published) from {box.schema}.collection_files")[0]
        if clean != total or summary["clean"] != total or tuple(collected) != (len(files), total):
            raise SystemExit(
                f"clean_cdrs holds {clean:,} of {total:,} records; mediation: {summary['clean']:,} clean, "
                f"{summary['rejected_by_reason']} rejected, {summary['duplicates']:,} duplicates; ledger {collected}"
            )
        return Run(collection_wall, collection_cpu, mediation_wall, summary["seconds"], clean)
    finally:
        box.drop()


def _profile(settings, work: Path, files: dict[str, bytes], counts: dict[str, int]) -> None:
    box = Sandbox(settings, work)
    try:
        profiler = cProfile.Profile()
        profiler.runcall(_collect, box, files, counts)
    finally:
        box.drop()
    print("\ncProfile of one collection (no mediation), by own time:")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--per-file", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    settings = load_settings()
    began = time.perf_counter()
    files, encoded = _files(args.count, args.per_file, datetime.now(UTC))
    counts = {name: min(args.per_file, args.count - i * args.per_file) for i, name in enumerate(files)}
    megabytes, built_s = sum(len(f) for f in files.values()) / 1e6, time.perf_counter() - began
    print(f"{args.count:,} records in {len(files)} files ({megabytes:.1f} MB), built in {built_s:.0f} s", flush=True)

    profile = SourceProfile(name=SOURCE, format=threegpp.FORMAT)
    choices = threegpp.CHOICES.by_ts()

    def bare() -> None:  # as bench_collection_decode's: pycrate's BER decode and nothing else
        for ts_number, raw in encoded:
            choice = choices[ts_number]
            choice.from_ber(raw)
            choice.get_val()

    def decode() -> None:
        for data in files.values():
            if not all(r.cdr is not None for r in threegpp.decode_file(data, profile).records):
                raise SystemExit("a benchmark record did not decode to a cdr.v1 message")

    bare_wall, bare_cpu = _timed(bare)
    decode_wall, decode_cpu = _timed(decode)
    print(
        f"bare pycrate decode: {args.count / bare_wall:,.0f} records/s ({args.count / bare_cpu:,.0f} by CPU); "
        f"decode_file: {args.count / decode_wall:,.0f} records/s ({args.count / decode_cpu:,.0f} by CPU)",
        flush=True,
    )

    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="bench-collection-") as tmp:
        for n in range(args.runs):
            run = _one_run(settings, Path(tmp), files, counts, args.count)
            runs.append(run)
            print(
                f"run {n + 1}: collection {run.collection_wall:.1f} s ({run.collection_cpu:.1f} s CPU), "
                f"mediation {run.mediation_wall:.1f} s (query {run.mediation_query:.1f} s), "
                f"{run.clean:,} in clean_cdrs",
                flush=True,
            )
        if args.profile:
            _profile(settings, Path(tmp), files, counts)

    if not runs:
        return 0

    def median(attribute: str) -> float:
        return statistics.median(getattr(r, attribute) for r in runs)

    n = args.count
    total = median("total")
    rows = [
        ("bare pycrate decode (once)", bare_wall, n / bare_wall, n / bare_cpu, None),
        ("decode_file alone (once)", decode_wall, n / decode_wall, n / decode_cpu, None),
        ("collection: collect_file", median("collection_wall"), n / median("collection_wall"),
         n / median("collection_cpu"), median("collection_wall") / total),
        ("mediation: cdr mediate", median("mediation_wall"), n / median("mediation_wall"), None,
         median("mediation_wall") / total),
        ("  of which the query", median("mediation_query"), n / median("mediation_query"), None,
         median("mediation_query") / total),
        ("files -> clean_cdrs", total, n / total, None, 1.0),
    ]  # fmt: skip
    print(f"\nmedian of {len(runs)} run(s), {n:,} records in {len(files)} files, each run in fresh topics/schema")
    print(f"{'stage':<26} {'wall s':>8} {'records/s':>10} {'rec/s CPU':>10} {'share':>6}")
    for name, seconds, rate, cpu_rate, share in rows:
        cpu = f"{cpu_rate:>10,.0f}" if cpu_rate else f"{'-':>10}"
        part = f"{share:>6.0%}" if share is not None else f"{'-':>6}"
        print(f"{name:<26} {seconds:>8.1f} {rate:>10,.0f} {cpu} {part}")
    print(
        f"by CPU, as a share of the bare decode of the same records: decode_file {bare_cpu / decode_cpu:.0%}, "
        f"collection {bare_cpu / median('collection_cpu'):.0%} (target for decoding: >= 70%)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
