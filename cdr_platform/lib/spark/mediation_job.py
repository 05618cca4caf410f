"""Mediation: Spark Structured Streaming from raw-cdrs to clean_cdrs and error-cdrs.

    # bounded (what the Dagster sensor launches): everything in raw-cdrs now, then stop
    python -m cdr_platform.lib.spark.mediation_job
    # real time: a micro-batch every interval, until interrupted (Ctrl-C / SIGTERM)
    python -m cdr_platform.lib.spark.mediation_job --continuous --interval "1 second"

Reads raw-cdrs from the earliest offset on the first run, then from its checkpoint (one per
environment). Each micro-batch is validated and normalised once (the rules of
cdr_platform.lib.validation, applied to Arrow batches), then in foreachBatch:
clean rows -> staging (bulk JDBC) -> one warehouse transaction (de-duplication, insert,
ledger) -> rejects and duplicates to error-cdrs -> staging cleared. See
cdr_platform.lib.mediation_store for why a replayed batch changes nothing.

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
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from cdr_platform.lib.mediation_store import (
    CLEAN_COLUMN_NAMES,
    DIALECTS,
    BatchOutcome,
    MediationTables,
    commit_batch,
)
from cdr_platform.lib.rejects import reject_key, reject_message
from cdr_platform.lib.settings import Settings, load_settings
from cdr_platform.lib.validation import CLEAN_COLUMNS, Reason, mediate

log = logging.getLogger("cdr_platform.mediation")
SUMMARY_PREFIX = "MEDIATION_SUMMARY "


def _arrow_schema():
    import pyarrow as pa

    ts = pa.timestamp("us", tz="UTC")
    types = {"start_time": ts, "duration_s": pa.int64(), "data_volume_bytes": pa.int64(),
             "roaming": pa.int16(), "schema_version": pa.int16()}
    fields = [pa.field(c, types.get(c, pa.string())) for c in CLEAN_COLUMNS]
    return pa.schema(fields + [
        pa.field("src_partition", pa.int32()), pa.field("src_offset", pa.int64()),
        pa.field("kafka_timestamp", ts), pa.field("status", pa.string()),
        pa.field("reasons", pa.string()), pa.field("reject_key", pa.string()),
        pa.field("reject_json", pa.binary()), pa.field("raw_key", pa.binary()),
        pa.field("raw_value", pa.binary()),
    ])


def _spark_schema():
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(_arrow_schema())


def mediate_arrow(batches: Iterator, *, topic: str, batch_id: int, query_id: str,
                  rejected_at: datetime) -> Iterator:
    """mapInArrow body: Kafka rows in, one mediated row per message out (nothing dropped)."""
    import pyarrow as pa

    schema = _arrow_schema()
    for batch in batches:
        values = batch.column("value").to_pylist()
        keys = batch.column("key").to_pylist()
        partitions = batch.column("partition").to_pylist()
        offsets = batch.column("offset").to_pylist()
        timestamps = batch.column("timestamp").to_pylist()
        columns: dict[str, list] = {name: [] for name in schema.names}
        for value, key, partition, offset, ts in zip(values, keys, partitions, offsets, timestamps):
            received = ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)
            result = mediate(value, received)
            record = result.record
            for name in CLEAN_COLUMNS:
                columns[name].append(record[name] if record else None)
            columns["src_partition"].append(partition)
            columns["src_offset"].append(offset)
            columns["kafka_timestamp"].append(received)
            columns["raw_key"].append(key)
            columns["raw_value"].append(value)
            if record:
                columns["status"].append("clean")
                columns["reasons"].append(None)
                columns["reject_key"].append(None)
                columns["reject_json"].append(None)
            else:
                columns["status"].append("rejected")
                columns["reasons"].append(",".join(result.reasons))
                columns["reject_key"].append(reject_key(topic, partition, offset))
                columns["reject_json"].append(reject_message(
                    topic=topic, partition=partition, offset=offset, kafka_timestamp=received,
                    key=key, payload=value, reasons=result.reasons, batch_id=batch_id,
                    query_id=query_id, rejected_at=rejected_at))
        yield pa.RecordBatch.from_pydict(columns, schema=schema)


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

    def __init__(self, spark, settings: Settings, tables: MediationTables, checkpoint: str,
                 raw_topic: str, error_topic: str, run_id: str | None) -> None:
        self.spark = spark
        self.settings = settings
        self.tables = tables
        self.checkpoint = checkpoint
        self.raw_topic = raw_topic
        self.error_topic = error_topic
        self.run_id = run_id
        self.outcomes: list[BatchOutcome] = []
        self.log = log.info  # replaced by the Dagster Pipes logger when run from Dagster
        self.started = time.perf_counter()
        self._query_id: str | None = None

    @property
    def query_id(self) -> str:
        # The query id lives in the checkpoint: stable across restarts, new for a new checkpoint.
        if self._query_id is None:
            line = self.spark.read.text(f"{self.checkpoint}/metadata").first()[0]
            self._query_id = json.loads(line)["id"]
        return self._query_id

    def _connect(self):
        from cdr_platform.lib.warehouse import connect

        return connect(self.settings.warehouse)

    def _jdbc_options(self) -> dict[str, str]:
        wh = self.settings.warehouse
        options = {"url": f"{wh.jdbc_url}?reWriteBatchedInserts=true", "user": wh.user,
                   "driver": "org.postgresql.Driver", "batchsize": "10000"}
        if wh.password:
            options["password"] = wh.password
        return options

    def process_batch(self, batch_df, batch_id: int) -> None:
        from pyspark import StorageLevel
        from pyspark.sql import functions as F

        started = time.perf_counter()
        rejected_at = datetime.now(timezone.utc)
        query_id = self.query_id
        fn = functools.partial(mediate_arrow, topic=self.raw_topic, batch_id=batch_id,
                               query_id=query_id, rejected_at=rejected_at)
        mediated = (batch_df.select("key", "value", "partition", "offset", "timestamp")
                    .mapInArrow(fn, _spark_schema())
                    .persist(StorageLevel.MEMORY_AND_DISK))
        try:
            per_partition = (mediated.groupBy("src_partition")
                             .agg(F.min("src_offset").alias("first"), F.max("src_offset").alias("last"),
                                  F.count(F.lit(1)).alias("messages"),
                                  F.sum(F.when(F.col("status") == "rejected", 1).otherwise(0)).alias("rejected"))
                             .collect())
            if not per_partition:
                return  # an empty micro-batch: nothing consumed, nothing to record
            offsets = [{"topic": self.raw_topic, "kafka_partition": r["src_partition"],
                        "from_offset": r["first"], "until_offset": r["last"] + 1, "messages": r["messages"]}
                       for r in per_partition]
            rejected = sum(r["rejected"] for r in per_partition)
            by_reason = Counter()
            if rejected:
                for r in (mediated.filter(F.col("status") == "rejected")
                          .select(F.explode(F.split("reasons", ",")).alias("reason"))
                          .groupBy("reason").count().collect()):
                    by_reason[r["reason"]] = r["count"]

            timings = {"validate": time.perf_counter() - started}
            key = {"query_id": query_id, "batch_id": batch_id}
            with self._connect() as conn:
                conn.execute(self.tables.clear_staging_sql(), key)
                conn.commit()
            (mediated.filter(F.col("status") == "clean")
             .select(*CLEAN_COLUMN_NAMES, F.lit(query_id).alias("query_id"),
                     F.lit(batch_id).cast("long").alias("batch_id"),
                     F.lit(0).cast("short").alias("is_duplicate"))
             .write.format("jdbc").options(dbtable=self.tables.staging, **self._jdbc_options())
             .mode("append").save())
            timings["stage"] = time.perf_counter() - started - sum(timings.values())
            with self._connect() as conn:
                outcome = commit_batch(conn, self.tables, query_id=query_id, batch_id=batch_id,
                                       run_id=self.run_id, rejected=rejected,
                                       rejected_by_reason=dict(by_reason), offsets=offsets)
            if outcome.duplicates:
                outcome.rejected_by_reason = {**outcome.rejected_by_reason,
                                              Reason.DUPLICATE.value: outcome.duplicates}
            timings["commit"] = time.perf_counter() - started - sum(timings.values())
            if not outcome.balanced:
                raise RuntimeError(f"batch {batch_id} does not balance: {outcome}")

            rejects = mediated.filter(F.col("status") == "rejected").select(
                F.col("reject_key").alias("key"), F.col("reject_json").alias("value"))
            if outcome.duplicates:
                duplicate_keys = (self.spark.read.format("jdbc").options(**self._jdbc_options())
                                  .option("query", f"select src_partition, src_offset from {self.tables.staging}"
                                                   f" where query_id = '{query_id}' and batch_id = {batch_id}"
                                                   " and is_duplicate = 1").load())
                duplicates = (mediated.join(duplicate_keys, ["src_partition", "src_offset"])
                              .select("src_partition", "src_offset", "kafka_timestamp", "raw_key", "raw_value")
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
            with self._connect() as conn:
                conn.execute(self.tables.clear_staging_sql(), key)
                conn.commit()
        finally:
            mediated.unpersist()
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
    from psycopg import OperationalError

    from cdr_platform.lib.kafka_io import wait_for_broker
    from cdr_platform.lib.spark.session import build_spark_session

    settings = settings or load_settings()
    raw_topic = raw_topic or settings.kafka.raw_cdrs_topic
    error_topic = error_topic or settings.kafka.error_cdrs_topic
    checkpoint = checkpoint or default_checkpoint(settings)
    schema = schema or settings.mediation_schema
    max_offsets = max_offsets_per_trigger or int(os.environ.get("CDR_MEDIATION_MAX_OFFSETS_PER_TRIGGER", 250_000))
    tables = MediationTables(schema, DIALECTS["postgres"])

    lock = _lock_checkpoint(checkpoint)
    # Fail fast, with the address, before Spark starts.
    wait_for_broker(settings.kafka.bootstrap_servers)
    from cdr_platform.lib.warehouse import connect

    with connect(settings.warehouse) as conn:
        for statement in tables.ddl():
            conn.execute(statement)
        conn.commit()

    spark = build_spark_session("cdr-mediation", settings)
    mediation = MediationRun(spark, settings, tables, checkpoint, raw_topic, error_topic, run_id)
    if progress:
        mediation.log = progress

    def on_each_batch(df, batch_id):
        try:
            mediation.process_batch(df, batch_id)
        except OperationalError as exc:
            raise RuntimeError(f"warehouse unavailable during batch {batch_id}: {exc}") from exc
        if on_batch and mediation.outcomes:
            on_batch(mediation.outcomes[-1])

    source = (spark.readStream.format("kafka")
              .option("kafka.bootstrap.servers", settings.kafka.bootstrap_servers)
              .option("subscribe", raw_topic)
              .option("startingOffsets", "earliest")
              .option("failOnDataLoss", "true")  # a record that expired unread is an error
              .option("maxOffsetsPerTrigger", str(max_offsets))
              .load())
    writer = source.writeStream.queryName("cdr_mediation").option("checkpointLocation", checkpoint) \
        .foreachBatch(on_each_batch)
    writer = writer.trigger(processingTime=interval) if continuous else writer.trigger(availableNow=True)
    query = writer.start()
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
            raise RuntimeError(str(query.exception()))
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
    sys.exit(main())
