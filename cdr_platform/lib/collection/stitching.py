"""Partial records stitched into one CDR: a Spark Structured Streaming query with per-chain state.

A long call or a PGW session is written by the network element as a chain of partial records
(TS 32.298: record sequence number 1, 2, ..., the last closed for a release rather than a time or
volume limit), possibly across files. Collection publishes every partial to CDR_PARTIALS_TOPIC
(raw-cdr-partials), keyed by its chain. This query (`cdr stitch`, and the collection asset after
a file with partials) groups them by chain with Spark's state API (`applyInPandasWithState`, the
state in the query's checkpoint) and publishes one logical CDR per chain to raw-cdrs:

    complete     when the last part has come and every sequence number from 1 to it is there;
    incomplete   when the chain has not completed CDR_PARTIAL_TIMEOUT_S after its latest part
                 arrived (an event-time timeout on the broker's append times, the watermark
                 following the partials that arrive after it): emitted with what it has, flagged
                 `incomplete` with the missing sequence numbers - never lost, never waiting forever
                 while partials flow. (A processing-time timeout would need a query that never
                 ends: with a bounded run, Spark runs its timeout batches without end.)

The logical CDR is the first part's record with the chain's id as its record id, the earliest
start, the durations and volumes summed, and `stitched` (parts, sequence numbers, files,
incomplete, missing). A part seen twice (a file collected again) is counted once.

Exactly once: each micro-batch's output is published, then recorded in `partial_stitch_ledger`
(per query and batch id) before Spark commits the batch to the checkpoint. A batch run again
after a crash finds its ledger row and publishes nothing; one that crashed between publishing and
its row publishes again, under the same deterministic record ids, and mediation rejects the
second copies as DUPLICATE - never rated twice. The balance, at every commit:

    partials in = partials in the CDRs emitted + partials waiting in open chains + parts seen twice
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson

from cdr_platform.lib.schema import SCHEMA_HEADER, SCHEMA_HEADER_VALUE

log = logging.getLogger(__name__)

STITCHED_FIELD = "stitched"
SUMMARY_PREFIX = "STITCH_SUMMARY "  # the line `cdr stitch` ends with
# what the state function yields: a row of counts per chain it was called for, and the CDRs
OUTPUT_DDL = "kind string, chain string, value binary, partials int, seen_twice int, incomplete boolean"
STATE_DDL = "parts string"  # the chain's parts so far, as JSON
# The event time is when the broker appended the part (the partials topic is on the broker's clock,
# LogAppendTime), so a part is never older than the parts before it in the log: the watermark (the
# latest append seen, less this) drops nothing but a part skewed by more than it between brokers'
# clocks - and the collection asset reports any part the stitcher did not take in.
LATENESS = "5 seconds"


@dataclass(frozen=True)
class Part:
    """One partial record of a chain, as the state keeps it."""

    sequence: int
    last: bool
    arrived_ms: int  # when the broker appended it, epoch milliseconds: the event time
    value: str  # the message (cdr.v1 JSON, with its `partial` and `origin`)

    def to_json(self) -> dict:
        return {"s": self.sequence, "l": self.last, "e": self.arrived_ms, "v": self.value}

    @classmethod
    def from_json(cls, d: dict) -> Part:
        return cls(d["s"], d["l"], d["e"], d["v"])


@dataclass
class Step:
    """What one call of the state function decides for a chain."""

    parts: list[Part]  # the chain's parts after this step (empty: the chain is done)
    emitted: dict | None = None  # the logical CDR, if the chain was emitted
    added: int = 0  # new parts taken in
    seen_twice: int = 0  # parts already held (a file collected again)
    extra: dict = field(default_factory=dict)


def missing_sequences(parts: list[Part]) -> list[int]:
    """The sequence numbers from 1 to the highest seen that no part has."""
    have = {p.sequence for p in parts}
    return [n for n in range(1, max(have, default=0) + 1) if n not in have]


def is_complete(parts: list[Part]) -> bool:
    """The last part has come and nothing is missing before it."""
    last = [p.sequence for p in parts if p.last]
    return bool(last) and max(p.sequence for p in parts) == min(last) and not missing_sequences(parts)


def stitch(chain_id: str, parts: list[Part], incomplete: bool) -> dict:
    """The logical CDR of a chain: its first part's record, the chain's id, the earliest start, the
    durations and volumes summed, and what it was made of (`stitched`)."""
    ordered = sorted(parts, key=lambda p: p.sequence)
    docs = [orjson.loads(p.value) for p in ordered]
    doc = dict(docs[0])
    doc.pop("partial", None)
    doc["record_id"] = chain_id
    starts = [d.get("start_time") for d in docs if isinstance(d.get("start_time"), str)]
    if starts:
        doc["start_time"] = min(starts)  # cdr.v1's time text sorts as time
    for name in ("duration_s", "data_volume_bytes"):
        values = [d.get(name) for d in docs]
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            doc[name] = sum(values)
    doc[STITCHED_FIELD] = {
        "partials": len(ordered),
        "sequences": [p.sequence for p in ordered],
        "files": sorted({d.get("origin", {}).get("file") for d in docs} - {None}),
        "incomplete": incomplete,
        "missing": missing_sequences(ordered) if incomplete else [],
    }
    return doc


def step(chain_id: str, held: list[Part], new: list[Part], timed_out: bool) -> Step:
    """The chain's next state: the new parts taken in (a sequence already held counts as seen
    twice), then emitted if complete - or, on a timeout, emitted incomplete."""
    if timed_out:
        return Step(parts=[], emitted=stitch(chain_id, held, incomplete=True)) if held else Step(parts=[])
    parts = list(held)
    have = {p.sequence for p in parts}
    added = seen_twice = 0
    for part in sorted(new, key=lambda p: p.sequence):
        if part.sequence in have:
            seen_twice += 1
            continue
        parts.append(part)
        have.add(part.sequence)
        added += 1
    if is_complete(parts):
        return Step(parts=[], emitted=stitch(chain_id, parts, incomplete=False), added=added, seen_twice=seen_twice)
    return Step(parts=parts, added=added, seen_twice=seen_twice)


def part_of(value: bytes, arrived_ms: int) -> Part:
    """A partial record's message as the state keeps it (collection wrote its `partial`)."""
    partial = orjson.loads(value)["partial"]
    return Part(int(partial["sequence"]), bool(partial["last"]), arrived_ms, value.decode())


def make_state_function(timeout_ms: int):
    """The applyInPandasWithState body: one chain's new rows (value, timestamp) and its state."""

    def on_chain(key, frames, state):
        import pandas as pd

        (chain_id,) = key
        held = [Part.from_json(d) for d in orjson.loads(state.get[0])] if state.exists else []
        new = [
            part_of(bytes(value), int(arrived.value // 1_000_000))  # pandas Timestamp: ns
            for frame in frames
            for value, arrived in zip(frame["value"], frame["timestamp"])
        ]
        result = step(chain_id, held, new, timed_out=state.hasTimedOut)
        if result.parts:
            state.update((orjson.dumps([p.to_json() for p in result.parts]).decode(),))
            # the chain times out CDR_PARTIAL_TIMEOUT_S after its latest part arrived, in event time
            # (never before the watermark: Spark refuses a timeout in the past)
            latest = max(p.arrived_ms for p in result.parts)
            state.setTimeoutTimestamp(max(latest + timeout_ms, state.getCurrentWatermarkMs() + 1))
        elif state.exists:
            state.remove()
        rows = [
            {
                "kind": "counts",
                "chain": chain_id,
                "value": None,
                "partials": result.added,
                "seen_twice": result.seen_twice,
                "incomplete": None,
            }
        ]
        if result.emitted is not None:
            stitched = result.emitted[STITCHED_FIELD]
            rows.append(
                {
                    "kind": "cdr",
                    "chain": chain_id,
                    "value": orjson.dumps(result.emitted),
                    "partials": stitched["partials"],
                    "seen_twice": 0,
                    "incomplete": stitched["incomplete"],
                }
            )
        yield pd.DataFrame(rows, columns=["kind", "chain", "value", "partials", "seen_twice", "incomplete"])

    return on_chain


# -- the ledger ------------------------------------------------------------------------------


def ledger_table(schema: str) -> str:
    return f"{schema}.partial_stitch_ledger"


def ledger_ddl(schema: str, dialect) -> list[str]:
    return [
        dialect.create_schema(schema),
        dialect.create_table(
            ledger_table(schema),
            ",\n".join(
                [
                    "    query_id varchar(64) not null",
                    "    batch_id bigint not null",
                    "    partials_in bigint not null",
                    "    seen_twice bigint not null",
                    "    cdrs_out bigint not null",
                    "    incomplete_out bigint not null",
                    "    partials_out bigint not null",
                    f"    committed_at {dialect.timestamp} not null",
                    "    constraint pk_partial_stitch_ledger primary key (query_id, batch_id)",
                ]
            ),
        ),
    ]


def balance(conn, schema: str) -> dict[str, int]:
    """The ledger's totals: partials in, seen twice, CDRs out (incomplete ones), partials in them,
    and the partials waiting in open chains (in - seen twice - out)."""
    row = conn.execute(
        "select coalesce(sum(partials_in), 0), coalesce(sum(seen_twice), 0), coalesce(sum(cdrs_out), 0),"
        f" coalesce(sum(incomplete_out), 0), coalesce(sum(partials_out), 0) from {ledger_table(schema)}"
    ).fetchone()
    partials_in, seen_twice, cdrs, incomplete, partials_out = (int(v) for v in row)
    return {
        "partials_in": partials_in,
        "seen_twice": seen_twice,
        "cdrs_out": cdrs,
        "incomplete_out": incomplete,
        "partials_out": partials_out,
        "partials_open": partials_in - partials_out,
    }


# -- the query ---------------------------------------------------------------------------------


@dataclass
class StitchSummary:
    batches: int = 0
    partials_in: int = 0
    seen_twice: int = 0
    cdrs_out: int = 0
    incomplete_out: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        return (
            f"stitched: {self.partials_in:,} partials in ({self.seen_twice:,} seen twice), {self.cdrs_out:,} CDRs"
            f" to the raw topic ({self.incomplete_out:,} incomplete), {self.batches} batches, {self.seconds:.1f} s"
        )


def checkpoint_of(mediation_checkpoint: Path | str) -> str:
    """The stitching query's checkpoint: beside mediation's (a sandbox that moves one moves both)."""
    return f"{str(mediation_checkpoint).rstrip('/')}-partials"


def run(settings, publisher_factory) -> StitchSummary:
    """Stitch what raw-cdr-partials holds now (availableNow), publishing to the raw topic.

    `publisher_factory()` gives a Kafka producer (lib.ingest.producers' CdrProducer: passed in, so
    this domain imports no other). CDR_MEDIATION_CRASH_AT=stitch_after_publish[:N] kills the driver
    (its process group) between publishing a batch's CDRs (batch N's) and recording it: the crash tests."""
    from pyspark.sql import functions as F

    from cdr_platform.lib.kafka_clients import SPARK, client_options
    from cdr_platform.lib.kafka_io import ensure_cdr_topics, wait_for_broker
    from cdr_platform.lib.spark.session import build_spark_session
    from cdr_platform.lib.warehouse import connect
    from cdr_platform.lib.warehouse.dialects import DIALECTS

    started = time.perf_counter()
    wait_for_broker(settings.kafka)
    ensure_cdr_topics(settings.kafka)
    dialect = DIALECTS[settings.warehouse.kind]
    schema = settings.mediation_schema
    with connect(settings.warehouse) as conn:
        for statement in ledger_ddl(schema, dialect):
            conn.execute(statement)
        conn.commit()
    summary = StitchSummary()
    spark = build_spark_session("cdr-stitching", settings, bounded=True)
    source = (
        spark.readStream.format("kafka")
        .options(**client_options(settings.kafka, SPARK))
        .option("subscribe", settings.kafka.partials_topic)
        .option("startingOffsets", "earliest")
        .option("failOnDataLoss", "true")
        .load()
    )
    chains = (
        source.select(F.col("key").cast("string").alias("chain"), "value", "timestamp")
        .withWatermark("timestamp", LATENESS)
        .groupBy("chain")
        .applyInPandasWithState(
            make_state_function(settings.partial_timeout_s * 1000), OUTPUT_DDL, STATE_DDL, "append", "EventTimeTimeout"
        )
    )
    checkpoint = checkpoint_of(settings.mediation_checkpoint)

    def on_batch(frame, batch_id: int) -> None:
        rows = frame.collect()
        # the query's id, from its checkpoint (written before the first batch, kept across restarts)
        query_id = orjson.loads(Path(checkpoint.removeprefix("file:"), "metadata").read_bytes())["id"]
        counts = {
            "partials_in": sum(r["partials"] for r in rows if r["kind"] == "counts"),
            "seen_twice": sum(r["seen_twice"] for r in rows if r["kind"] == "counts"),
        }
        cdrs = [r for r in rows if r["kind"] == "cdr"]
        with connect(settings.warehouse) as conn:
            done = conn.execute(
                f"select 1 from {ledger_table(schema)} where query_id = %(q)s and batch_id = %(b)s",
                {"q": query_id, "b": batch_id},
            ).fetchone()
            if done:
                return  # a batch committed before a crash, run again by Spark: published already
            if cdrs:
                publisher = publisher_factory()
                try:
                    for row in cdrs:
                        doc = orjson.loads(row["value"])
                        key = str(doc.get("served_msisdn") or row["chain"]).encode()
                        headers = [(SCHEMA_HEADER, SCHEMA_HEADER_VALUE)]
                        publisher.send(settings.kafka.raw_cdrs_topic, key, bytes(row["value"]), headers)
                    publisher.flush()
                    if getattr(publisher.stats, "failed", 0):
                        raise RuntimeError(f"stitched CDRs not delivered: {publisher.stats.first_error}")
                finally:
                    publisher.close()
            if cdrs and settings.mediation_crash_at in ("stitch_after_publish", f"stitch_after_publish:{batch_id}"):
                log.warning("crash injection: SIGKILL after publishing batch %d", batch_id)
                os.killpg(os.getpgid(0), signal.SIGKILL)
            conn.execute(
                f"insert into {ledger_table(schema)} (query_id, batch_id, partials_in, seen_twice, cdrs_out,"
                " incomplete_out, partials_out, committed_at) values (%(q)s, %(b)s, %(pin)s, %(twice)s, %(out)s,"
                " %(inc)s, %(pout)s, %(at)s)",
                {
                    "q": query_id,
                    "b": batch_id,
                    "pin": counts["partials_in"] + counts["seen_twice"],
                    "twice": counts["seen_twice"],
                    "out": len(cdrs),
                    "inc": sum(bool(r["incomplete"]) for r in cdrs),
                    "pout": sum(r["partials"] for r in cdrs),
                    "at": datetime.now(UTC).replace(tzinfo=None),
                },
            )
            conn.commit()
        summary.batches += 1
        summary.partials_in += counts["partials_in"] + counts["seen_twice"]
        summary.seen_twice += counts["seen_twice"]
        summary.cdrs_out += len(cdrs)
        summary.incomplete_out += sum(bool(r["incomplete"]) for r in cdrs)

    writer = (
        chains.writeStream.queryName("cdr_stitching")
        .option("checkpointLocation", checkpoint)
        .outputMode("append")
        .foreachBatch(on_batch)
        .trigger(availableNow=True)
    )
    query = writer.start()
    try:
        query.awaitTermination()
    finally:
        spark.stop()
    summary.seconds = time.perf_counter() - started
    return summary
