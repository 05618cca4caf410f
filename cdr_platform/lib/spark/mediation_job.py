"""Mediation: Spark Structured Streaming from raw-cdrs to clean_cdrs and error-cdrs.

    # bounded (what the Dagster sensor launches): everything in raw-cdrs now, then stop
    python -m cdr_platform.lib.spark.mediation_job
    # real time: a micro-batch every interval, until interrupted (Ctrl-C / SIGTERM)
    python -m cdr_platform.lib.spark.mediation_job --continuous --interval "1 second"

Reads raw-cdrs from the earliest offset on the first run, then from its checkpoint (one per
environment). In foreachBatch, each micro-batch is validated and normalised once by the
Spark tasks (the rules of cdr_platform.lib.validation, applied to Arrow batches in bulk by
cdr_platform.lib.mediation_bulk), which also store the clean rows (direct path, PostgreSQL:
lookup + COPY into clean_cdrs); the driver then writes the batch's ledger entry and publishes rejects and duplicates to error-cdrs.
On the staged path (SQL Server) clean rows go through Spark's JDBC writer into a staging
table and one warehouse transaction merges them. See cdr_platform.lib.mediation_store for
why a replayed batch changes nothing.

Settings come from the environment (cdr_platform.lib.settings); the Spark master URL is
CDR_SPARK_MASTER, so the same job runs on a cluster. Under Dagster Pipes it reports the
materializations of clean_cdrs and error_cdrs. Exit code 0 on success, 1 on failure, with
the reason on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import functools
import json
import logging
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cdr_platform.lib.mediation_store import (
    CLEAN_COLUMN_NAMES,
    DIALECTS,
    BatchOutcome,
    MediationTables,
    commit_batch,
    record_batch,
)
from cdr_platform.lib.rejects import reject_key, reject_message
from cdr_platform.lib.settings import Settings, load_settings
from cdr_platform.lib.spark.session import arrow_schema_from_ddl
from cdr_platform.lib.mediation_bulk import mediate_batch
from cdr_platform.lib.warehouse import copy_arrow_binary
from cdr_platform.lib.validation import Reason

log = logging.getLogger("cdr_platform.mediation")
SUMMARY_PREFIX = "MEDIATION_SUMMARY "


# What a mediation task hands back to the driver: one row per reject (duplicates included on
# the direct path), one row of counts per Kafka partition it consumed, and - only on the
# staged path, where Spark's JDBC writer stages them - one row per clean record.
STAGED_COLUMNS = CLEAN_COLUMN_NAMES + ("raw_key", "raw_value")
_SPARK_TYPES = {"start_time": "timestamp", "kafka_timestamp": "timestamp", "duration_s": "long",
                "data_volume_bytes": "long", "roaming": "short", "schema_version": "short",
                "src_partition": "int", "src_offset": "long", "raw_key": "binary", "raw_value": "binary"}
OUTPUT_DDL = ", ".join(
    ["kind string", "key string", "value binary", "part int", "first_offset long", "last_offset long",
     "messages long", "rejected long", "clean long", "duplicates long", "reasons string"]
    + [f"{c} {_SPARK_TYPES.get(c, 'string')}" for c in STAGED_COLUMNS])
STAGING_VIA = ("direct", "jdbc")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class _DirectWriter:
    """PostgreSQL: each Arrow batch's clean rows go into clean_cdrs in one transaction.

    See cdr_platform.lib.mediation_store for the rules; this is their task-side half.
    """

    returns_rows = False

    def __init__(self, conninfo: str, tables: MediationTables, query_id: str, batch_id: int):
        import psycopg

        self.tables, self.query_id, self.batch_id = tables, query_id, batch_id
        self.conn = psycopg.connect(conninfo)
        self.seen: set[str] = set()  # record ids this task stored or found stored as its own
        self.columns = tables.direct_copy_columns()

    def write(self, rows) -> tuple[list[int], int]:
        """Store what is new of an Arrow table of CLEAN_COLUMN_NAMES; return (positions of the
        duplicate rows, number of clean rows)."""
        import psycopg

        for attempt in range(5):
            try:
                with self.conn.transaction():
                    return self._write_once(rows)
            except (psycopg.errors.UniqueViolation, psycopg.errors.DeadlockDetected):
                # Another task stored (or is storing) one of these ids: PostgreSQL rolled this
                # transaction back; look again, and that id is now a duplicate.
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")

    def _write_once(self, rows) -> tuple[list[int], int]:
        import pyarrow as pa

        ids = rows.column("record_id").to_pylist()
        partitions = rows.column("src_partition").to_pylist()
        offsets = rows.column("src_offset").to_pylist()
        stored = {r[0]: (r[1], r[2], r[3]) for r in self.conn.execute(
            self.tables.stored_sources_sql(), {"record_ids": ",".join(ids)}).fetchall()}
        new, duplicates, seen_now = [], [], set()
        for i, (record_id, partition, offset) in enumerate(zip(ids, partitions, offsets)):
            if record_id in self.seen or record_id in seen_now:
                duplicates.append(i)  # earlier in this task's slice of the batch
            elif record_id in stored and stored[record_id] != (partition, offset, self.query_id):
                duplicates.append(i)  # stored from another message
            else:
                seen_now.add(record_id)
                if record_id not in stored:
                    new.append(i)  # (stored from this very source: a replay, clean already)
        if new:
            mediated_at = datetime.now(timezone.utc).replace(tzinfo=None)
            # in record id order: tasks racing on the same ids then wait for one another in one
            # order instead of deadlocking
            table = rows.take(pa.array(new)).sort_by("record_id")
            table = table.append_column("query_id", pa.repeat(pa.scalar(self.query_id), table.num_rows)) \
                .append_column("batch_id", pa.repeat(pa.scalar(self.batch_id, pa.int64()), table.num_rows)) \
                .append_column("mediated_at", pa.repeat(pa.scalar(mediated_at, pa.timestamp("us")), table.num_rows))
            copy_arrow_binary(self.conn.cursor(), self.tables.clean, table.select(list(self.columns)))
        self.seen |= seen_now  # only once committed
        return duplicates, len(ids) - len(duplicates)

    def close(self) -> None:
        self.conn.close()


class _ReturnRows:
    """Staged path: clean rows go back to Spark, whose JDBC writer stages them."""

    returns_rows = True

    def write(self, rows) -> tuple[list[int], int]:
        return [], rows.num_rows  # duplicates are decided later, in the warehouse transaction

    def close(self) -> None:
        pass


def mediate_and_stage(batches: Iterator, *, topic: str, batch_id: int, query_id: str, rejected_at: datetime,
                      conninfo: str, tables: MediationTables, staging_via: str = "direct") -> Iterator:
    """mapInArrow body, run by each Spark task on its Kafka partition's slice of the batch.

    Mediates every message (nothing dropped) with the bulk rules. On the direct path the clean
    ones are stored in clean_cdrs here and duplicates become rejects; on the staged path they are
    yielded back. Yields the rejects and one row of counts per Kafka partition.
    """
    import numpy as np
    import pyarrow as pa

    schema = arrow_schema_from_ddl(OUTPUT_DDL)
    writer = _DirectWriter(conninfo, tables, query_id, batch_id) if staging_via == "direct" else _ReturnRows()
    counts: dict[int, list] = {}  # partition -> [first, last, messages, rejected, clean, duplicates, Counter]
    try:
        for batch in batches:
            values = batch.column("value").to_pylist()
            partitions = batch.column("partition").to_numpy(zero_copy_only=False)
            offsets = batch.column("offset").to_numpy(zero_copy_only=False)
            timestamp = batch.column("timestamp")
            received_us = timestamp.cast(pa.timestamp("us", timestamp.type.tz)).cast(pa.int64()).to_numpy(
                zero_copy_only=False)
            for partition in np.unique(partitions).tolist():
                at = offsets[partitions == partition]
                c = counts.get(partition)
                if c is None:
                    c = counts[partition] = [int(at.min()), int(at.max()), 0, 0, 0, 0, Counter()]
                c[0], c[1], c[2] = min(c[0], int(at.min())), max(c[1], int(at.max())), c[2] + len(at)
            mediated = mediate_batch(values, received_us)
            rejects_key, rejects_value = [], []

            def reject(i: int, reasons) -> None:
                partition, offset = int(partitions[i]), int(offsets[i])
                rejects_key.append(reject_key(topic, partition, offset))
                rejects_value.append(reject_message(
                    topic=topic, partition=partition, offset=offset,
                    kafka_timestamp=_EPOCH + timedelta(microseconds=int(received_us[i])),
                    key=batch.column("key")[i].as_py(), payload=values[i], reasons=reasons, batch_id=batch_id,
                    query_id=query_id, rejected_at=rejected_at))

            for i, reasons in mediated.rejected:
                c = counts[int(partitions[i])]
                c[3] += 1
                c[6].update(reasons)
                reject(i, reasons)
            rows = mediated.clean_rows
            if len(rows):
                at = pa.array(rows)
                clean = mediated.clean.append_column("src_partition", pa.array(partitions[rows], pa.int32())) \
                    .append_column("src_offset", pa.array(offsets[rows], pa.int64())) \
                    .append_column("kafka_timestamp", pa.array(received_us[rows], pa.timestamp("us", "UTC")))
                duplicates, _ = writer.write(clean)
                is_duplicate = np.zeros(len(rows), bool)
                is_duplicate[duplicates] = True
                for j in duplicates:
                    c = counts[int(partitions[rows[j]])]
                    c[5] += 1
                    reject(int(rows[j]), [Reason.DUPLICATE.value])
                for partition, n in zip(*np.unique(partitions[rows][~is_duplicate], return_counts=True)):
                    counts[int(partition)][4] += int(n)
                if writer.returns_rows:
                    staged = clean.append_column("raw_key", batch.column("key").take(at)) \
                        .append_column("raw_value", batch.column("value").take(at))
                    yield _batch(schema, kind="clean", **{name: staged.column(name) for name in STAGED_COLUMNS})
            if rejects_key:
                yield _batch(schema, kind="reject", key=rejects_key, value=rejects_value)
    finally:
        writer.close()
    if counts:
        parts = sorted(counts)
        yield _batch(schema, kind="counts", part=parts, first_offset=[counts[p][0] for p in parts],
                     last_offset=[counts[p][1] for p in parts], messages=[counts[p][2] for p in parts],
                     rejected=[counts[p][3] for p in parts], clean=[counts[p][4] for p in parts],
                     duplicates=[counts[p][5] for p in parts],
                     reasons=[json.dumps(counts[p][6]) for p in parts])


def _as_array(values, type_):
    import pyarrow as pa

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        return values if values.type == type_ else values.cast(type_)
    return pa.array(list(values), type=type_)


def _batch(schema, kind: str, **columns):
    """An output RecordBatch of `kind` rows; the columns not given are null."""
    import pyarrow as pa

    n = len(next(iter(columns.values())))
    arrays = [_as_array(columns[f.name], f.type) if f.name in columns else pa.nulls(n, type=f.type)
              for f in schema if f.name != "kind"]
    return pa.RecordBatch.from_arrays([pa.array([kind] * n, type=pa.string()), *arrays], schema=schema)


def duplicate_rejects_arrow(batches: Iterator, *, topic: str, batch_id: int, query_id: str,
                            rejected_at: datetime) -> Iterator:
    """mapInArrow body for the rows the warehouse found to be duplicates."""
    import pyarrow as pa

    for batch in batches:
        keys, values = [], []
        for row in batch.to_pylist():
            keys.append(reject_key(topic, row["src_partition"], row["src_offset"]))
            values.append(reject_message(
                topic=topic, partition=row["src_partition"], offset=row["src_offset"],
                kafka_timestamp=row["kafka_timestamp"], key=row["raw_key"], payload=row["raw_value"],
                reasons=[Reason.DUPLICATE.value], batch_id=batch_id, query_id=query_id,
                rejected_at=rejected_at))
        yield pa.RecordBatch.from_pydict({"key": keys, "value": values},
                                         schema=pa.schema([("key", pa.string()), ("value", pa.binary())]))


class MediationRun:
    """State of one run of the streaming query: configuration and per-batch outcomes."""

    def __init__(self, spark, settings: Settings, tables: MediationTables,
                 raw_topic: str, error_topic: str, run_id: str | None) -> None:
        self.spark = spark
        self.settings = settings
        self.tables = tables
        self.raw_topic = raw_topic
        self.error_topic = error_topic
        self.run_id = run_id
        self.outcomes: list[BatchOutcome] = []
        self.failure: str | None = None  # the cause of a failed batch, in one line
        self.log = log.info  # replaced by the Dagster Pipes logger when run from Dagster
        # "direct": tasks COPY clean rows into PostgreSQL; "jdbc": Spark's JDBC writer stages
        # them and one transaction merges (the SQL Server path; also runs against PostgreSQL)
        default = "jdbc" if settings.warehouse.kind == "sqlserver" else "direct"
        self.staging_via = os.environ.get("CDR_MEDIATION_STAGING", default)
        if self.staging_via == "direct" and settings.warehouse.kind != "postgres":
            raise ValueError("the direct (COPY) path needs PostgreSQL; SQL Server stages through JDBC bulk copy")
        if self.staging_via not in STAGING_VIA:
            raise ValueError(f"CDR_MEDIATION_STAGING must be one of {STAGING_VIA}, got {self.staging_via!r}")
        self.started = time.perf_counter()
        self._query_id: str | None = None
        self._query_known = threading.Event()

    def query_started(self, query) -> None:
        """The streaming query has started: its id is the one kept in the checkpoint, stable
        across restarts and new for a new checkpoint."""
        self._query_id = query.id
        self._query_known.set()

    @property
    def query_id(self) -> str:
        # The first batch may run before writeStream.start() has returned the query.
        if not self._query_known.wait(timeout=300):
            raise RuntimeError("the streaming query did not report its id")
        return self._query_id

    def _connect(self):
        from cdr_platform.lib.warehouse import connect

        return connect(self.settings.warehouse)

    def _jdbc_options(self) -> dict[str, str]:
        wh = self.settings.warehouse
        return {"url": wh.jdbc_url, "batchsize": "10000", **wh.jdbc_options()}

    def process_batch(self, batch_df, batch_id: int) -> None:
        from pyspark import StorageLevel
        from pyspark.sql import functions as F

        started = time.perf_counter()
        rejected_at = datetime.now(timezone.utc)
        query_id = self.query_id
        key = {"query_id": query_id, "batch_id": batch_id}
        staged = self.staging_via == "jdbc"
        if staged:
            with self._connect() as conn:  # what a crashed earlier run of this batch staged
                conn.execute(self.tables.clear_staging_sql(), key)
                conn.commit()
        fn = functools.partial(mediate_and_stage, topic=self.raw_topic, batch_id=batch_id, query_id=query_id,
                               rejected_at=rejected_at, conninfo=self.settings.warehouse.conninfo(),
                               tables=self.tables, staging_via=self.staging_via)
        out = (batch_df.select("key", "value", "partition", "offset", "timestamp")
               .mapInArrow(fn, OUTPUT_DDL)
               .persist(StorageLevel.MEMORY_AND_DISK))
        try:
            counts = out.filter(F.col("kind") == "counts").collect()  # runs every task
            if not counts:
                return  # an empty micro-batch: nothing consumed, nothing to record
            # one row per (task, Kafka partition): Spark may give a partition's range to several tasks
            by_partition: dict[int, dict] = {}
            for r in counts:
                o = by_partition.setdefault(r["part"], {"topic": self.raw_topic, "kafka_partition": r["part"],
                                                        "from_offset": r["first_offset"],
                                                        "until_offset": r["last_offset"] + 1, "messages": 0})
                o["from_offset"] = min(o["from_offset"], r["first_offset"])
                o["until_offset"] = max(o["until_offset"], r["last_offset"] + 1)
                o["messages"] += r["messages"]
            offsets = [by_partition[p] for p in sorted(by_partition)]
            rejected = sum(r["rejected"] for r in counts)
            by_reason: Counter = Counter()
            for r in counts:
                by_reason.update(json.loads(r["reasons"]))
            if staged:
                (out.filter(F.col("kind") == "clean")
                 .select(*CLEAN_COLUMN_NAMES, F.lit(query_id).alias("query_id"),
                         F.lit(batch_id).cast("long").alias("batch_id"), "raw_key", "raw_value")
                 .write.format("jdbc").options(dbtable=self.tables.staging, **self._jdbc_options())
                 .mode("append").save())
            timings = {"validate+store": time.perf_counter() - started}
            _fault_point("after_stage", batch_id)

            with self._connect() as conn:
                if staged:
                    outcome = commit_batch(conn, self.tables, query_id=query_id, batch_id=batch_id,
                                           run_id=self.run_id, rejected=rejected,
                                           rejected_by_reason=dict(by_reason), offsets=offsets)
                else:
                    outcome = record_batch(conn, self.tables, query_id=query_id, batch_id=batch_id,
                                           run_id=self.run_id, clean=sum(r["clean"] for r in counts),
                                           rejected=rejected, duplicates=sum(r["duplicates"] for r in counts),
                                           rejected_by_reason=dict(by_reason), offsets=offsets)
            _fault_point("after_commit", batch_id)
            timings["ledger"] = time.perf_counter() - started - sum(timings.values())
            if outcome.duplicates:
                outcome.rejected_by_reason = {**outcome.rejected_by_reason,
                                              Reason.DUPLICATE.value: outcome.duplicates}
            if not outcome.balanced:
                raise RuntimeError(f"batch {batch_id} does not balance: {outcome}")

            rejects = out.filter(F.col("kind") == "reject").select("key", "value")
            if staged and outcome.duplicates:
                duplicates = (self.spark.read.format("jdbc").options(**self._jdbc_options())
                              .option("query", self.tables.duplicates_sql().format(**key)).load()
                              .mapInArrow(functools.partial(duplicate_rejects_arrow, topic=self.raw_topic,
                                                            batch_id=batch_id, query_id=query_id,
                                                            rejected_at=rejected_at),
                                          "key string, value binary"))
                rejects = rejects.unionByName(duplicates)
            if outcome.rejected or outcome.duplicates:
                (rejects.write.format("kafka")
                 .option("kafka.bootstrap.servers", self.settings.kafka.bootstrap_servers)
                 .option("kafka.acks", "all")
                 .option("topic", self.error_topic).save())
            timings["publish"] = time.perf_counter() - started - sum(timings.values())
            if staged:
                with self._connect() as conn:
                    conn.execute(self.tables.clear_staging_sql(), key)
                    conn.commit()
        finally:
            out.unpersist()
        self.outcomes.append(outcome)
        seconds = time.perf_counter() - started
        self.log("batch %d: %s in, %s clean, %s rejected, %s duplicates in %.1f s (%s rows/s; %s)" % (
                 batch_id, f"{outcome.rows_in:,}", f"{outcome.clean:,}", f"{outcome.rejected:,}",
                 f"{outcome.duplicates:,}", seconds, f"{outcome.rows_in / max(seconds, 1e-9):,.0f}",
                 ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())))

    def summary(self) -> dict:
        total = Counter()
        reasons = Counter()
        offsets: dict[int, list[int]] = {}
        for o in self.outcomes:
            total.update(rows_in=o.rows_in, clean=o.clean, rejected=o.rejected, duplicates=o.duplicates)
            reasons.update(o.rejected_by_reason)
            for r in o.offsets:
                p = r["kafka_partition"]
                lo, hi = offsets.get(p, [r["from_offset"], r["until_offset"]])
                offsets[p] = [min(lo, r["from_offset"]), max(hi, r["until_offset"])]
        seconds = time.perf_counter() - self.started
        return {"query_id": self._query_id, "run_id": self.run_id, "batches": len(self.outcomes),
                "rows_in": total["rows_in"], "clean": total["clean"], "rejected": total["rejected"],
                "duplicates": total["duplicates"], "rejected_by_reason": dict(sorted(reasons.items())),
                "offsets": {str(p): v for p, v in sorted(offsets.items())}, "seconds": round(seconds, 2),
                "rows_per_second": round(total["rows_in"] / seconds, 1) if seconds else 0.0,
                "balanced": total["rows_in"] == total["clean"] + total["rejected"] + total["duplicates"]}


def _diagnose(settings: Settings, exc: Exception) -> str:
    """Name the service that is down, if one is, rather than the symptom deep in a task."""
    from cdr_platform.lib.kafka_io import BrokerUnavailableError, wait_for_broker
    from cdr_platform.lib.warehouse import connect

    try:
        connect(settings.warehouse).close()
    except RuntimeError as down:
        return str(down)
    try:
        wait_for_broker(settings.kafka.bootstrap_servers, timeout_s=5)
    except BrokerUnavailableError as down:
        return str(down)
    first_line = next((line for line in str(exc).splitlines() if line.strip()), repr(exc))
    return first_line[:1000]


def _fault_point(name: str, batch_id: int) -> None:
    """Crash injection for the fault tests: CDR_MEDIATION_CRASH_AT=after_stage:2 makes the
    driver SIGKILL its own process group (Python and the JVM) at that point of batch 2."""
    target = os.environ.get("CDR_MEDIATION_CRASH_AT")
    if target and target == f"{name}:{batch_id}":
        log.warning("crash injection: SIGKILL at %s of batch %d", name, batch_id)
        os.killpg(os.getpgid(0), signal.SIGKILL)


def _import_mediation(batches: Iterator) -> Iterator:
    """mapInArrow body that makes a Python worker import this module, and with it everything a
    mediation task uses: Spark pickles a module's function by reference, so unpickling imports it."""
    import pyarrow as pa

    for _ in batches:
        pass
    yield pa.RecordBatch.from_pydict({"ready": [True]})


def _start_python_workers(spark) -> None:
    """Start one Python worker per core and load the mediation code into it, ahead of the first
    micro-batch: Spark keeps idle workers for the next tasks (spark.python.worker.reuse), and the
    driver plans the streaming query on one core meanwhile. Measured: the first batch's tasks
    started their Python code about 3 s after the batch, against 0.1 s in later batches."""
    try:
        cores = spark.sparkContext.defaultParallelism
        spark.range(0, cores, 1, cores).mapInArrow(_import_mediation, "ready boolean").collect()
    except Exception:  # only a head start: the batches start workers anyway
        log.debug("could not start the Python workers ahead of the query", exc_info=True)


class AnotherMediationIsRunning(RuntimeError):
    pass


def _lock_checkpoint(checkpoint: str):
    """One writer per checkpoint: a second run fails at once instead of racing the first."""
    if "://" in checkpoint and not checkpoint.startswith("file:"):
        return None  # a cluster file system: rely on the orchestrator's single run
    path = Path(checkpoint.removeprefix("file:")).with_suffix(".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        raise AnotherMediationIsRunning(
            f"another mediation holds {path} (pid {handle.read().strip() or '?'}); "
            "one streaming query per checkpoint") from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle  # released by the OS when the process ends, however it ends


def default_checkpoint(settings: Settings) -> str:
    return os.environ.get("CDR_MEDIATION_CHECKPOINT") or str(
        settings.stack.directory / "checkpoints" / settings.environment / "mediation")


def run(*, continuous: bool = False, interval: str = "1 second", max_offsets_per_trigger: int | None = None,
        schema: str | None = None, raw_topic: str | None = None, error_topic: str | None = None,
        checkpoint: str | None = None, run_id: str | None = None, on_batch=None,
        settings: Settings | None = None, progress=None) -> dict:
    """Run the streaming query; bounded (availableNow) unless `continuous`. Returns the summary."""
    from cdr_platform.lib.kafka_io import ensure_topics, wait_for_broker
    from cdr_platform.lib.spark.session import build_spark_session

    settings = settings or load_settings()
    raw_topic = raw_topic or settings.kafka.raw_cdrs_topic
    error_topic = error_topic or settings.kafka.error_cdrs_topic
    checkpoint = checkpoint or default_checkpoint(settings)
    schema = schema or settings.mediation_schema
    max_offsets = max_offsets_per_trigger or int(os.environ.get("CDR_MEDIATION_MAX_OFFSETS_PER_TRIGGER", 250_000))
    tables = MediationTables(schema, DIALECTS[settings.warehouse.kind])

    lock = _lock_checkpoint(checkpoint)
    # Fail fast, with the address, before Spark starts.
    wait_for_broker(settings.kafka.bootstrap_servers)
    # The rejects' topic is this job's sink: without it Spark's Kafka writer would wait a
    # minute for metadata and fail with a timeout deep in a task.
    ensure_topics(settings.kafka.bootstrap_servers, [error_topic], settings.kafka.topic_partitions)
    from cdr_platform.lib.warehouse import connect

    with connect(settings.warehouse) as conn:
        for statement in tables.ddl():
            conn.execute(statement)
        conn.commit()

    spark = build_spark_session("cdr-mediation", settings, bounded=not continuous)
    mediation = MediationRun(spark, settings, tables, raw_topic, error_topic, run_id)
    if progress:
        mediation.log = progress
    # While the driver plans the query on one core, start the Python workers on the others.
    threading.Thread(target=_start_python_workers, args=(spark,), name="python-workers", daemon=True).start()

    def on_each_batch(df, batch_id):
        try:
            mediation.process_batch(df, batch_id)
        except Exception as exc:
            # Spark wraps this in pages of Java and Python traces: keep the operator's cause.
            mediation.failure = f"batch {batch_id}: {_diagnose(settings, exc)}"
            raise
        if on_batch and mediation.outcomes:
            on_batch(mediation.outcomes[-1])

    source = (spark.readStream.format("kafka")
              .option("kafka.bootstrap.servers", settings.kafka.bootstrap_servers)
              .option("subscribe", raw_topic)
              .option("startingOffsets", "earliest")
              .option("failOnDataLoss", "true")  # a record that expired unread is an error
              .option("maxOffsetsPerTrigger", str(max_offsets)))
    if os.environ.get("CDR_MEDIATION_MIN_PARTITIONS"):  # split Kafka partitions over more tasks
        source = source.option("minPartitions", os.environ["CDR_MEDIATION_MIN_PARTITIONS"])
    source = source.load()
    writer = source.writeStream.queryName("cdr_mediation").option("checkpointLocation", checkpoint) \
        .foreachBatch(on_each_batch)
    writer = writer.trigger(processingTime=interval) if continuous else writer.trigger(availableNow=True)
    query = writer.start()
    mediation.query_started(query)
    try:
        if continuous:
            stop = {"requested": False}

            def request_stop(signum, frame):
                stop["requested"] = True

            signal.signal(signal.SIGTERM, request_stop)
            signal.signal(signal.SIGINT, request_stop)
            while query.isActive and not stop["requested"]:
                query.awaitTermination(1)
            if query.isActive:
                query.stop()
        else:
            query.awaitTermination()  # availableNow: returns when raw-cdrs is consumed
        if query.exception() is not None:
            raise RuntimeError(mediation.failure or str(query.exception()))
    except Exception as exc:
        if mediation.failure and mediation.failure not in str(exc):
            raise RuntimeError(mediation.failure) from exc
        raise
    finally:
        if query.isActive:
            query.stop()
        spark.stop()
        if lock:
            lock.close()
    return mediation.summary()


def _pipes_report(pipes, summary: dict, schema: str, error_topic: str) -> None:
    reasons = summary["rejected_by_reason"]
    table = "\n".join(["| reason | records |", "|---|---|"] +
                      [f"| {k} | {v:,} |" for k, v in sorted(reasons.items())]) if reasons else "_(none)_"
    common = {"rows_in": summary["rows_in"], "batches": summary["batches"],
              "rows_per_second": summary["rows_per_second"], "seconds": summary["seconds"],
              "query_id": summary["query_id"] or "", "balanced": summary["balanced"]}
    pipes.report_asset_materialization(asset_key="clean_cdrs", metadata={
        **common, "clean": summary["clean"], "rejected": summary["rejected"],
        "duplicates": summary["duplicates"],
        "offsets": {"raw_value": summary["offsets"], "type": "json"},
        "table": f"{schema}.clean_cdrs"})
    pipes.report_asset_materialization(asset_key="error_cdrs", metadata={
        **common, "rejected": summary["rejected"], "duplicates": summary["duplicates"],
        "rejected_by_reason": {"raw_value": table, "type": "md"}, "topic": error_topic})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--continuous", action="store_true", help="processing-time trigger until stopped")
    parser.add_argument("--interval", default="1 second", help="trigger interval in continuous mode")
    parser.add_argument("--max-offsets-per-trigger", type=int, default=None)
    parser.add_argument("--schema", default=None, help="warehouse schema (default: mediation)")
    parser.add_argument("--raw-topic", default=None)
    parser.add_argument("--error-topic", default=None)
    parser.add_argument("--checkpoint", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    logging.getLogger("py4j").setLevel(logging.WARNING)
    settings = load_settings()
    schema = args.schema or settings.mediation_schema
    error_topic = args.error_topic or settings.kafka.error_cdrs_topic
    from dagster_pipes import DAGSTER_PIPES_CONTEXT_ENV_VAR, open_dagster_pipes

    under_dagster = DAGSTER_PIPES_CONTEXT_ENV_VAR in os.environ
    with (open_dagster_pipes() if under_dagster else contextlib.nullcontext()) as pipes:
        try:
            summary = run(continuous=args.continuous, interval=args.interval,
                          max_offsets_per_trigger=args.max_offsets_per_trigger, schema=schema,
                          raw_topic=args.raw_topic, error_topic=error_topic, checkpoint=args.checkpoint,
                          run_id=os.environ.get("CDR_RUN_ID"), settings=settings,
                          progress=pipes.log.info if pipes else None)
        except Exception as exc:  # one clear line for the operator, the trace in the log above
            log.exception("mediation failed")
            print(f"mediation failed: {exc}".splitlines()[0][:2000], file=sys.stderr)
            return 1
        print(SUMMARY_PREFIX + json.dumps(summary), flush=True)
        if pipes:
            _pipes_report(pipes, summary, schema, error_topic)
    return 0 if summary["balanced"] else 1


if __name__ == "__main__":
    # Run the module's own copy, not this __main__ one: Spark pickles the task functions of
    # __main__ by value and re-ships their code with every task (see rating_job).
    from cdr_platform.lib.spark.mediation_job import main as module_main

    sys.exit(module_main())
