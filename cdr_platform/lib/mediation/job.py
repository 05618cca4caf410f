"""Mediation: Spark Structured Streaming from raw-cdrs to clean_cdrs and error-cdrs.

    # bounded (what the Dagster sensor launches): everything in raw-cdrs now, then stop
    cdr mediate
    # real time: a micro-batch every interval, until interrupted (Ctrl-C / SIGTERM)
    cdr mediate --continuous --interval "1 second"

Reads raw-cdrs from the earliest offset on the first run, then from its checkpoint (one per
environment). In foreachBatch, each micro-batch is validated and normalised once by the
Spark tasks (lib.mediation.tasks: the rules of lib.mediation.rules, applied to Arrow batches in
bulk by lib.mediation.bulk), which also store the clean rows (direct path, PostgreSQL: lookup +
COPY into clean_cdrs); this driver then writes the batch's ledger entry and publishes rejects
and duplicates to error-cdrs.
On the staged path (SQL Server) clean rows go through Spark's JDBC writer into a staging
table and one warehouse transaction merges them. See cdr_platform.lib.mediation.store for
why a replayed batch changes nothing.

Settings come from the environment (cdr_platform.lib.settings); the Spark master URL is
CDR_SPARK_MASTER, so the same job runs on a cluster. `run()` returns the run's summary; the
`cdr mediate` command prints it, or reports it to Dagster when an asset launched it (Pipes).
"""

from __future__ import annotations

import fcntl
import functools
import json
import logging
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cdr_platform.lib.kafka_clients import SPARK, client_options
from cdr_platform.lib.mediation.reasons import Reason
from cdr_platform.lib.mediation.rejects import max_reject_bytes
from cdr_platform.lib.mediation.rules import Limits
from cdr_platform.lib.mediation.store import (
    CLEAN_COLUMN_NAMES,
    BatchOutcome,
    MediationTables,
    commit_batch,
    create_tables,
    record_batch,
)
from cdr_platform.lib.mediation.tasks import (
    OUTPUT_DDL,
    STAGED_REJECT_COLUMNS,
    duplicate_rejects_arrow,
    mediate_and_stage,
    warm_up,
)
from cdr_platform.lib.settings import Settings, load_settings
from cdr_platform.lib.tariff_clock import TariffClock
from cdr_platform.lib.warehouse.dialects import DIALECTS

log = logging.getLogger("cdr_platform.mediation")
SUMMARY_PREFIX = "MEDIATION_SUMMARY "


STAGING_VIA = ("direct", "jdbc")


@dataclass(frozen=True)
class MediationOptions:
    """The arguments of one `run()`; a field left None takes the settings' value (`settings`: the environment's)."""

    continuous: bool = False  # a micro-batch every `interval` until stopped; else bounded (availableNow)
    interval: str = "1 second"
    max_offsets_per_trigger: int | None = None
    schema: str | None = None
    raw_topic: str | None = None
    error_topic: str | None = None
    checkpoint: str | None = None
    run_id: str | None = None
    on_batch: Callable[[BatchOutcome], None] | None = None  # called with each committed batch's outcome
    settings: Settings | None = None
    progress: Callable[[str], None] | None = None  # the operator's log (Dagster Pipes), else the module's


@dataclass(frozen=True)
class BatchTotals:
    """What the tasks' rows of counts add up to for one micro-batch: the ledger entry's figures."""

    offsets: list[dict]  # per Kafka partition: topic, kafka_partition, from_offset, until_offset, messages
    clean: int
    rejected: int
    duplicates: int
    by_reason: Counter
    days: Counter  # clean records stored per local day

    @classmethod
    def from_counts(cls, counts: list, topic: str) -> BatchTotals:
        """Add up the tasks' rows of counts (`kind` "counts") of a micro-batch of `topic`."""
        # one row per (task, Kafka partition): Spark may give a partition's range to several tasks
        by_partition: dict[int, dict] = {}
        for r in counts:
            o = by_partition.setdefault(
                r["part"],
                {
                    "topic": topic,
                    "kafka_partition": r["part"],
                    "from_offset": r["first_offset"],
                    "until_offset": r["last_offset"] + 1,
                    "messages": 0,
                },
            )
            o["from_offset"] = min(o["from_offset"], r["first_offset"])
            o["until_offset"] = max(o["until_offset"], r["last_offset"] + 1)
            o["messages"] += r["messages"]
        by_reason: Counter = Counter()
        days: Counter = Counter()
        for r in counts:
            by_reason.update(json.loads(r["reasons"]))
            days.update(json.loads(r["days"]))
        return cls(
            offsets=[by_partition[p] for p in sorted(by_partition)],
            clean=sum(r["clean"] for r in counts),
            rejected=sum(r["rejected"] for r in counts),
            duplicates=sum(r["duplicates"] for r in counts),
            by_reason=by_reason,
            days=days,
        )


def _settle_outcome(outcome: BatchOutcome, batch_id: int) -> None:
    """Count the duplicates among the rejection reasons, and fail a batch whose rows do not add up."""
    if outcome.duplicates:
        outcome.rejected_by_reason = {**outcome.rejected_by_reason, Reason.DUPLICATE.value: outcome.duplicates}
    if not outcome.balanced:
        raise RuntimeError(f"batch {batch_id} does not balance: {outcome}")


class MediationRun:
    """State of one run of the streaming query: configuration and per-batch outcomes."""

    def __init__(
        self,
        spark,
        settings: Settings,
        tables: MediationTables,
        raw_topic: str,
        error_topic: str,
        run_id: str | None,
        limits: Limits | None = None,
    ) -> None:
        self.spark = spark
        self.limits = limits or Limits.from_settings(settings)
        self.settings = settings
        self.tables = tables
        self.raw_topic = raw_topic
        self.error_topic = error_topic
        self.run_id = run_id
        self.outcomes: list[BatchOutcome] = []
        self.clock = TariffClock(settings.tariff_timezone)
        # clean records stored per local day (start time, the operator's zone): the days to rate
        self.days: Counter = Counter()
        self.failure: str | None = None  # the cause of a failed batch, in one line
        self.log = log.info  # replaced by the Dagster Pipes logger when run from Dagster
        # "direct": tasks COPY clean rows into PostgreSQL; "jdbc": Spark's JDBC writer stages
        # them and one transaction merges (the SQL Server path; also runs against PostgreSQL)
        default = "jdbc" if settings.warehouse.kind == "sqlserver" else "direct"
        self.staging_via = settings.mediation_staging or default
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
        """foreachBatch body: mediate one micro-batch in the tasks, record it in the ledger, publish its rejects."""
        from pyspark.sql import functions as F

        started = time.perf_counter()
        rejected_at = datetime.now(UTC)
        query_id = self.query_id
        key = {"query_id": query_id, "batch_id": batch_id}
        staged = self.staging_via == "jdbc"
        if staged:
            self._clear_staging(key)  # what a crashed earlier run of this batch staged
        out = self._mediate_in_tasks(batch_df, batch_id, query_id, rejected_at)
        try:
            counts = out.filter(F.col("kind") == "counts").collect()  # runs every task
            if not counts:
                return  # an empty micro-batch: nothing consumed, nothing to record
            totals = BatchTotals.from_counts(counts, self.raw_topic)
            if staged:
                self._stage_rows(out, query_id, batch_id, rejected_at)
            timings = {"validate+store": time.perf_counter() - started}
            _fault_point(self.settings.mediation_crash_at, "after_stage", batch_id)

            outcome = self._record_in_ledger(totals, query_id, batch_id, rejected_at)
            _fault_point(self.settings.mediation_crash_at, "after_commit", batch_id)
            timings["ledger"] = time.perf_counter() - started - sum(timings.values())
            _settle_outcome(outcome, batch_id)

            self._publish_rejects(out, outcome, key, rejected_at)
            timings["publish"] = time.perf_counter() - started - sum(timings.values())
            if staged:
                self._clear_staging(key)
        finally:
            out.unpersist()
        self.outcomes.append(outcome)
        self.days.update(totals.days)  # counted once the batch is committed
        self._log_batch(batch_id, outcome, time.perf_counter() - started, timings)

    def _clear_staging(self, key: dict) -> None:
        """Empty the staging tables of this batch, so a batch replayed after a crash starts clean."""
        with self._connect() as conn:
            for sql in self.tables.clear_staging_sql():
                conn.execute(sql, key)
            conn.commit()

    def _mediate_in_tasks(self, batch_df, batch_id: int, query_id: str, rejected_at: datetime):
        """The tasks' output (counts, rejects, staged clean rows), kept so its several reads run the tasks once."""
        from pyspark import StorageLevel

        fn = functools.partial(
            mediate_and_stage,
            topic=self.raw_topic,
            batch_id=batch_id,
            query_id=query_id,
            rejected_at=rejected_at,
            conninfo=self.settings.warehouse.conninfo(),
            tables=self.tables,
            staging_via=self.staging_via,
            limits=self.limits,
            clock=self.clock,
            echo_bytes=self.settings.reject_echo_bytes,
        )
        return (
            batch_df.select("key", "value", "partition", "offset", "timestamp")
            .mapInArrow(fn, OUTPUT_DDL)
            .persist(StorageLevel.MEMORY_AND_DISK)
        )

    def _stage_rows(self, out, query_id: str, batch_id: int, rejected_at: datetime) -> None:
        """Staged path: Spark's JDBC writer puts the clean rows and the rejects in the staging tables."""
        from pyspark.sql import functions as F

        (
            out.filter(F.col("kind") == "clean")
            .select(
                *CLEAN_COLUMN_NAMES,
                F.lit(query_id).alias("query_id"),
                F.lit(batch_id).cast("long").alias("batch_id"),
                "raw_key",
                "raw_value",
            )
            .write.format("jdbc")
            .options(dbtable=self.tables.staging, **self._jdbc_options())
            .mode("append")
            .save()
        )
        # the rejects with their whole payload, merged into the reject store by the commit
        (
            out.filter(F.col("kind") == "reject")
            .select(
                F.lit(query_id).alias("query_id"),
                F.lit(batch_id).cast("long").alias("batch_id"),
                F.lit(self.raw_topic).alias("source_topic"),
                *(F.col(task).alias(store) for store, task in STAGED_REJECT_COLUMNS.items()),
                # aware: Spark reads a naive datetime in the driver's local zone
                F.lit(rejected_at).alias("rejected_at"),
                F.lit(self.clock.local_date(rejected_at)).alias("rejected_day"),
                F.lit(0).alias("attempts"),
            )
            .write.format("jdbc")
            .options(dbtable=self.tables.rejects_staging, **self._jdbc_options())
            .mode("append")
            .save()
        )

    def _record_in_ledger(
        self, totals: BatchTotals, query_id: str, batch_id: int, rejected_at: datetime
    ) -> BatchOutcome:
        """The batch's ledger entry, in one warehouse transaction (the staged path merges its staged rows in it)."""
        with self._connect() as conn:
            if self.staging_via == "jdbc":
                return commit_batch(
                    conn,
                    self.tables,
                    query_id=query_id,
                    batch_id=batch_id,
                    run_id=self.run_id,
                    rejected=totals.rejected,
                    rejected_by_reason=dict(totals.by_reason),
                    offsets=totals.offsets,
                    committed_day=self.clock.local_date(datetime.now(UTC)),
                    topic=self.raw_topic,
                    rejected_at=rejected_at,
                    rejected_day=self.clock.local_date(rejected_at),
                )
            return record_batch(
                conn,
                self.tables,
                query_id=query_id,
                batch_id=batch_id,
                run_id=self.run_id,
                clean=totals.clean,
                rejected=totals.rejected,
                duplicates=totals.duplicates,
                rejected_by_reason=dict(totals.by_reason),
                offsets=totals.offsets,
                committed_day=self.clock.local_date(datetime.now(UTC)),
            )

    def _publish_rejects(self, out, outcome: BatchOutcome, key: dict, rejected_at: datetime) -> None:
        """Send the batch's rejects and duplicates to error-cdrs, once the ledger has counted them."""
        from pyspark.sql import functions as F

        rejects = out.filter(F.col("kind") == "reject").select("key", "value")
        if self.staging_via == "jdbc" and outcome.duplicates:
            rejects = rejects.unionByName(self._staged_duplicate_rejects(key, rejected_at))
        if outcome.rejected or outcome.duplicates:
            (
                rejects.write.format("kafka")
                .options(**client_options(self.settings.kafka, SPARK))
                .option("kafka.acks", "all")
                # stated, not assumed: every reject is built to fit under it (rejects.max_reject_bytes)
                .option("kafka.max.request.size", str(self.settings.kafka.max_message_bytes))
                .option("topic", self.error_topic)
                .save()
            )

    def _staged_duplicate_rejects(self, key: dict, rejected_at: datetime):
        """Staged path: the duplicates are found by the warehouse's merge, so their messages are built from it."""
        return (
            self.spark.read.format("jdbc")
            .options(**self._jdbc_options())
            .option("query", self.tables.duplicates_sql().format(**key))
            .load()
            .mapInArrow(
                functools.partial(
                    duplicate_rejects_arrow,
                    topic=self.raw_topic,
                    batch_id=key["batch_id"],
                    query_id=key["query_id"],
                    rejected_at=rejected_at,
                    echo_bytes=self.settings.reject_echo_bytes,
                ),
                "key string, value binary",
            )
        )

    def _log_batch(self, batch_id: int, outcome: BatchOutcome, seconds: float, timings: dict[str, float]) -> None:
        """One line per batch for the operator: its counts, its rate and where the time went."""
        rate = outcome.rows_in / max(seconds, 1e-9)
        stages = ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())
        self.log(
            f"batch {batch_id}: {outcome.rows_in:,} in, {outcome.clean:,} clean, {outcome.rejected:,} rejected,"
            f" {outcome.duplicates:,} duplicates in {seconds:.1f} s ({rate:,.0f} rows/s; {stages})"
        )

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
        return {
            "query_id": self._query_id,
            "run_id": self.run_id,
            "batches": len(self.outcomes),
            "rows_in": total["rows_in"],
            "clean": total["clean"],
            "rejected": total["rejected"],
            "duplicates": total["duplicates"],
            "rejected_by_reason": dict(sorted(reasons.items())),
            "offsets": {str(p): v for p, v in sorted(offsets.items())},
            "clean_by_day": dict(sorted(self.days.items())),
            "seconds": round(seconds, 2),
            "rows_per_second": round(total["rows_in"] / seconds, 1) if seconds else 0.0,
            "balanced": total["rows_in"] == total["clean"] + total["rejected"] + total["duplicates"],
        }


def _diagnose(settings: Settings, exc: Exception) -> str:
    """Name the service that is down, if one is, rather than the symptom deep in a task."""
    from cdr_platform.lib.kafka_io import BrokerUnavailableError, wait_for_broker
    from cdr_platform.lib.spark.session import root_cause
    from cdr_platform.lib.warehouse import connect

    try:
        connect(settings.warehouse).close()
    except RuntimeError as down:
        return str(down)
    try:
        wait_for_broker(settings.kafka, timeout_s=5)
    except BrokerUnavailableError as down:
        return str(down)
    return root_cause(exc)


def _offset_ranges(batch_df) -> str:
    """The Kafka partitions and offsets a micro-batch covers ("partition 0 offsets 200-399, ...")."""
    from pyspark.sql import functions as F

    try:  # reads the batch's offsets again: a broker that is down gets its own message instead
        rows = batch_df.groupBy("partition").agg(F.min("offset"), F.max("offset")).orderBy("partition").collect()
    except Exception:
        return "offsets unknown"
    return ", ".join(f"partition {p} offsets {lo}-{hi}" for p, lo, hi in rows) or "no messages"


def _fault_point(target: str, name: str, batch_id: int) -> None:
    """Crash injection for the fault tests: CDR_MEDIATION_CRASH_AT=after_stage:2 (`target`) makes
    the driver SIGKILL its own process group (Python and the JVM) at that point of batch 2."""
    if target and target == f"{name}:{batch_id}":
        log.warning("crash injection: SIGKILL at %s of batch %d", name, batch_id)
        os.killpg(os.getpgid(0), signal.SIGKILL)


def _start_python_workers(spark) -> None:
    """Start one Python worker per core and load the mediation code into it, ahead of the first
    micro-batch: Spark keeps idle workers for the next tasks (spark.python.worker.reuse), and the
    driver plans the streaming query on one core meanwhile. Measured: the first batch's tasks
    started their Python code about 3 s after the batch, against 0.1 s in later batches."""
    try:
        cores = spark.sparkContext.defaultParallelism
        spark.range(0, cores, 1, cores).mapInArrow(warm_up, "ready boolean").collect()
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
            f"another mediation holds {path} (pid {handle.read().strip() or '?'}); one streaming query per checkpoint"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle  # released by the OS when the process ends, however it ends


def check_message_bounds(settings: Settings) -> None:
    """Refuse settings under which a reject could exceed error-cdrs' message limit."""
    largest_reject = max_reject_bytes(settings.reject_echo_bytes)
    if largest_reject > settings.kafka.max_message_bytes:
        raise ValueError(
            f"CDR_REJECT_ECHO_BYTES={settings.reject_echo_bytes} allows rejects of up to {largest_reject:,} bytes,"
            f" over CDR_TOPIC_MAX_MESSAGE_BYTES={settings.kafka.max_message_bytes:,}"
        )


def load_known_cells(conn) -> frozenset[str] | None:
    """The home-network cells of reference.cell_catalogue, the operator's catalogue as loaded; None
    when the table is missing or empty (the generated catalogue applies)."""
    from cdr_platform.lib.reference.tables import CELL_CATALOGUE_TABLE

    table = CELL_CATALOGUE_TABLE
    exists = conn.execute(
        "select count(*) from information_schema.tables where table_schema = %(schema)s and table_name = %(name)s",
        {"schema": table.schema, "name": table.name},
    ).fetchone()[0]
    if not exists:  # a fresh warehouse: no reference data loaded yet
        return None
    return frozenset(r[0] for r in conn.execute(f"select cell_id from {table.qualified}").fetchall()) or None


def default_checkpoint(settings: Settings) -> str:
    """CDR_MEDIATION_CHECKPOINT (by default under the stack folder, per environment)."""
    return str(settings.mediation_checkpoint)


def run(options: MediationOptions | None = None) -> dict:
    """Run the streaming query; bounded (availableNow) unless `options.continuous`. Returns the summary."""
    from cdr_platform.lib.kafka_io import ensure_topics, raw_topic_problems, topic_size_config, wait_for_broker
    from cdr_platform.lib.spark.session import build_spark_session

    options = options or MediationOptions()
    continuous, interval, run_id = options.continuous, options.interval, options.run_id
    on_batch, progress = options.on_batch, options.progress
    settings = options.settings or load_settings()
    raw_topic = options.raw_topic or settings.kafka.raw_cdrs_topic
    error_topic = options.error_topic or settings.kafka.error_cdrs_topic
    checkpoint = options.checkpoint or default_checkpoint(settings)
    schema = options.schema or settings.mediation_schema
    max_offsets = options.max_offsets_per_trigger or settings.mediation_max_offsets_per_trigger
    tables = MediationTables(schema, DIALECTS[settings.warehouse.kind])

    check_message_bounds(settings)
    lock = _lock_checkpoint(checkpoint)
    # Fail fast, with the address, before Spark starts.
    wait_for_broker(settings.kafka)
    # The rejects' topic is this job's sink: without it Spark's Kafka writer would wait a
    # minute for metadata and fail with a timeout deep in a task.
    ensure_topics(
        settings.kafka,
        [error_topic],
        settings.kafka.topic_partitions,
        {error_topic: topic_size_config(settings.kafka)},
    )
    try:
        problems = raw_topic_problems(settings.kafka, raw_topic)
    except Exception:  # no such topic yet: the source reports that itself
        problems = []
    for problem in problems:  # reported, not changed: the topic is the operator's
        (progress or log.warning)(f"WARNING: {problem}")
    from cdr_platform.lib.warehouse import connect

    with connect(settings.warehouse) as conn:
        create_tables(conn, tables)
        known_cells = load_known_cells(conn)
    if known_cells is None:
        (progress or log.info)("reference.cell_catalogue is empty or missing: the generated cell catalogue applies")
    limits = Limits.from_settings(settings, known_cells)

    spark = build_spark_session("cdr-mediation", settings, bounded=not continuous)
    # a task's Arrow batches are bounded in bytes too, so its memory stays flat for any mix of sizes
    spark.conf.set("spark.sql.execution.arrow.maxBytesPerBatch", str(settings.mediation_max_batch_bytes))
    mediation = MediationRun(spark, settings, tables, raw_topic, error_topic, run_id, limits)
    if progress:
        mediation.log = progress
    # While the driver plans the query on one core, start the Python workers on the others.
    threading.Thread(target=_start_python_workers, args=(spark,), name="python-workers", daemon=True).start()

    def on_each_batch(df, batch_id):
        try:
            mediation.process_batch(df, batch_id)
        except Exception as exc:
            # Spark wraps this in pages of Java and Python traces: keep the operator's cause, and
            # where in raw-cdrs the batch was, so the messages can be looked at
            mediation.failure = f"batch {batch_id} ({_offset_ranges(df)}): {_diagnose(settings, exc)}"
            raise
        if on_batch and mediation.outcomes:
            on_batch(mediation.outcomes[-1])

    source = (
        spark.readStream.format("kafka")
        .options(**client_options(settings.kafka, SPARK))
        .option("subscribe", raw_topic)
        .option("startingOffsets", "earliest")
        .option("failOnDataLoss", "true")  # a record that expired unread is an error
        .option("maxOffsetsPerTrigger", str(max_offsets))
    )
    if settings.mediation_min_partitions:  # split Kafka partitions over more tasks
        source = source.option("minPartitions", str(settings.mediation_min_partitions))
    source = source.load()
    writer = (
        source.writeStream.queryName("cdr_mediation")
        .option("checkpointLocation", checkpoint)
        .foreachBatch(on_each_batch)
    )
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
    return {**mediation.summary(), "table": tables.clean}
