"""The Spark tasks' half of mediation: the mapInArrow bodies that run in Spark's Python workers.

Each task mediates its Kafka partition's slice of a micro-batch with the bulk rules
(cdr_platform.lib.mediation.bulk) and, on the direct path, stores the clean rows itself
(cdr_platform.lib.mediation.store explains why a replayed batch changes nothing). Spark pickles
these functions by reference, so a worker imports this module, not the driver's.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

from cdr_platform.lib.mediation.bulk import mediate_batch_safely
from cdr_platform.lib.mediation.reasons import Reason
from cdr_platform.lib.mediation.rejects import (
    DEFAULT_ECHO_BYTES,
    ERROR_ECHO_CHARS,
    payload_digest,
    reject_key,
    reject_message,
)
from cdr_platform.lib.mediation.rules import DEFAULT_LIMITS, Limits
from cdr_platform.lib.mediation.store import (
    CLEAN_COLUMN_NAMES,
    DUPLICATE_STATUS,
    OPEN_STATUS,
    MediationTables,
)
from cdr_platform.lib.schema import CLEAN_CDRS_COLUMNS
from cdr_platform.lib.spark.session import arrow_schema_from_ddl
from cdr_platform.lib.tariff_clock import UTC_CLOCK, TariffClock
from cdr_platform.lib.warehouse import postgres
from cdr_platform.lib.warehouse.columns import Column, spark_ddl

# What a mediation task hands back to the driver: one row per reject (duplicates included on
# the direct path), one row of counts per Kafka partition it consumed, and - only on the
# staged path, where Spark's JDBC writer stages them - one row per clean record.
_RAW_MESSAGE = (Column("raw_key", "binary"), Column("raw_value", "binary"))
STAGED_COLUMNS = CLEAN_COLUMN_NAMES + tuple(c.name for c in _RAW_MESSAGE)
OUTPUT_DDL = ", ".join(
    [
        "kind string",
        "key string",
        "value binary",
        "part int",
        "first_offset long",
        "last_offset long",
        "messages long",
        "rejected long",
        "clean long",
        "duplicates long",
        "reasons string",
        "days string",
        # reject rows, for the reject store: on the staged path with raw_key and raw_value whole
        "reject_reasons string",
        "reject_error string",
        "reject_status string",
        "payload_bytes long",
        "payload_sha256 string",
        spark_ddl(CLEAN_CDRS_COLUMNS + _RAW_MESSAGE),
    ]
)
# how a reject row of the staged path becomes a row of the reject store's staging table
STAGED_REJECT_COLUMNS = {
    "source_partition": "src_partition",
    "source_offset": "src_offset",
    "message_key": "raw_key",
    "payload": "raw_value",
    "payload_bytes": "payload_bytes",
    "payload_sha256": "payload_sha256",
    "reasons": "reject_reasons",
    "error": "reject_error",
    "received_at": "kafka_timestamp",
    "status": "reject_status",
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DAY = date(1970, 1, 1)
US_PER_DAY = 86_400_000_000


class _DirectWriter:
    """PostgreSQL: each Arrow batch's clean rows go into clean_cdrs, and its rejects and duplicates
    into the reject store, in one transaction.

    See cdr_platform.lib.mediation.store for the rules; this is their task-side half.
    """

    returns_rows = False

    def __init__(self, conninfo: str, tables: MediationTables, query_id: str, batch_id: int):
        self.tables, self.query_id, self.batch_id = tables, query_id, batch_id
        self.conn = postgres.connect(conninfo)
        self.seen: set[str] = set()  # record ids this task stored or found stored as its own
        self.columns = tables.direct_copy_columns()

    def write(self, rows, rejects: list[dict], duplicate_rejects) -> tuple[list[int], int]:
        """Store what is new of an Arrow table of CLEAN_COLUMN_NAMES (or None) and the reject store
        rows `rejects`; `duplicate_rejects(positions)` gives the store rows of the duplicates found.
        Returns (positions of the duplicate rows, number of clean rows)."""
        for attempt in range(5):
            try:
                with self.conn.transaction():
                    duplicates, clean, seen_now = self._write_once(rows) if rows is not None else ([], 0, set())
                    stored = rejects + duplicate_rejects(duplicates)
                    if stored:
                        with self.conn.cursor() as cursor:
                            cursor.executemany(self.tables.insert_reject_direct_sql(), stored)
                self.seen |= seen_now  # only once committed
                return duplicates, clean
            except postgres.CONFLICT_ERRORS:
                # Another task stored (or is storing) one of these ids: PostgreSQL rolled this
                # transaction back; look again, and that id is now a duplicate.
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")

    def _write_once(self, rows) -> tuple[list[int], int, set[str]]:
        import pyarrow as pa

        ids = rows.column("record_id").to_pylist()
        partitions = rows.column("src_partition").to_pylist()
        offsets = rows.column("src_offset").to_pylist()
        stored = {
            r[0]: (r[1], r[2], r[3])
            for r in self.conn.execute(self.tables.stored_sources_sql(), {"record_ids": ",".join(ids)}).fetchall()
        }
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
            mediated_at = datetime.now(UTC).replace(tzinfo=None)
            # in record id order: tasks racing on the same ids then wait for one another in one
            # order instead of deadlocking
            table = rows.take(pa.array(new)).sort_by("record_id")
            table = (
                table.append_column("query_id", pa.repeat(pa.scalar(self.query_id), table.num_rows))
                .append_column("batch_id", pa.repeat(pa.scalar(self.batch_id, pa.int64()), table.num_rows))
                .append_column("mediated_at", pa.repeat(pa.scalar(mediated_at, pa.timestamp("us")), table.num_rows))
            )
            postgres.copy_arrow_binary(self.conn.cursor(), self.tables.clean, table.select(list(self.columns)))
        return duplicates, len(ids) - len(duplicates), seen_now

    def close(self) -> None:
        self.conn.close()


class _ReturnRows:
    """Staged path: clean rows and rejects go back to Spark, whose JDBC writer stages them."""

    returns_rows = True

    def write(self, rows, rejects: list[dict], duplicate_rejects) -> tuple[list[int], int]:
        # duplicates are decided later, in the warehouse transaction
        return [], rows.num_rows if rows is not None else 0

    def close(self) -> None:
        pass


def mediate_and_stage(
    batches: Iterator,
    *,
    topic: str,
    batch_id: int,
    query_id: str,
    rejected_at: datetime,
    conninfo: str,
    tables: MediationTables,
    staging_via: str = "direct",
    limits: Limits = DEFAULT_LIMITS,
    clock: TariffClock = UTC_CLOCK,
    echo_bytes: int = DEFAULT_ECHO_BYTES,
) -> Iterator:
    """mapInArrow body, run by each Spark task on its Kafka partition's slice of the batch.

    Mediates every message (nothing dropped) with the bulk rules. On the direct path the clean
    ones are stored in clean_cdrs here, the rejects and duplicates in the reject store, in one
    transaction per Arrow batch; on the staged path they are yielded back. Yields the rejects
    (their error-cdrs message: key and value) and one row of counts per Kafka partition, with the
    clean records per local day they start (`clock`), so rating knows which days changed.
    """
    import numpy as np
    import pyarrow as pa

    schema = arrow_schema_from_ddl(OUTPUT_DDL)
    writer = _DirectWriter(conninfo, tables, query_id, batch_id) if staging_via == "direct" else _ReturnRows()
    rejected_at_naive = rejected_at.astimezone(UTC).replace(tzinfo=None)
    rejected_day = clock.local_date(rejected_at)
    # partition -> [first, last, messages, rejected, clean, duplicates, reasons Counter, days Counter]
    counts: dict[int, list] = {}
    try:
        for batch in batches:
            values = batch.column("value").to_pylist()
            keys = batch.column("key").to_pylist()
            partitions = batch.column("partition").to_numpy(zero_copy_only=False)
            offsets = batch.column("offset").to_numpy(zero_copy_only=False)
            timestamp = batch.column("timestamp")
            received_us = (
                timestamp.cast(pa.timestamp("us", timestamp.type.tz)).cast(pa.int64()).to_numpy(zero_copy_only=False)
            )
            for partition in np.unique(partitions).tolist():
                at = offsets[partitions == partition]
                c = counts.get(partition)
                if c is None:
                    c = counts[partition] = [int(at.min()), int(at.max()), 0, 0, 0, 0, Counter(), Counter()]
                c[0], c[1], c[2] = min(c[0], int(at.min())), max(c[1], int(at.max())), c[2] + len(at)
            mediated = mediate_batch_safely(values, received_us, limits)

            def store_row(i: int, reasons, error: str | None, status: str) -> dict:
                """The reject store's row of message `i` (pure: a retried transaction builds it again)."""
                payload = values[i]
                return {
                    "query_id": query_id,
                    "batch_id": batch_id,
                    "source_topic": topic,
                    "source_partition": int(partitions[i]),
                    "source_offset": int(offsets[i]),
                    "message_key": keys[i],
                    "payload": payload,
                    "payload_bytes": len(payload) if payload is not None else None,
                    "payload_sha256": payload_digest(payload),
                    "reasons": ",".join(reasons),
                    "error": error[:ERROR_ECHO_CHARS] if error else None,
                    "received_at": (_EPOCH + timedelta(microseconds=int(received_us[i]))).replace(tzinfo=None),
                    "rejected_at": rejected_at_naive,
                    "rejected_day": rejected_day,
                    "status": status,
                    "attempts": 0,
                    "replay_id": None,
                    "recovered_record_id": None,
                    "status_changed_at": None,
                    "note": None,
                }

            validation_rejects = [
                store_row(i, reasons, mediated.errors.get(i), OPEN_STATUS) for i, reasons in mediated.rejected
            ]
            rows = mediated.clean_rows
            clean = None
            if len(rows):
                clean = (
                    mediated.clean.append_column("src_partition", pa.array(partitions[rows], pa.int32()))
                    .append_column("src_offset", pa.array(offsets[rows], pa.int64()))
                    .append_column("kafka_timestamp", pa.array(received_us[rows], pa.timestamp("us", "UTC")))
                )
            duplicates, _ = writer.write(
                clean,
                validation_rejects,
                lambda positions: [
                    store_row(int(rows[j]), [Reason.DUPLICATE.value], None, DUPLICATE_STATUS) for j in positions
                ],
            )
            # what goes to error-cdrs, and on the staged path to the reject store's staging table
            stored_rejects = validation_rejects + [
                store_row(int(rows[j]), [Reason.DUPLICATE.value], None, DUPLICATE_STATUS) for j in duplicates
            ]
            for i, reasons in mediated.rejected:
                c = counts[int(partitions[i])]
                c[3] += 1
                c[6].update(reasons)
            for j in duplicates:
                counts[int(partitions[rows[j]])][5] += 1
            if clean is not None:
                is_duplicate = np.zeros(len(rows), bool)
                is_duplicate[duplicates] = True
                for partition, n in zip(*np.unique(partitions[rows][~is_duplicate], return_counts=True)):
                    counts[int(partition)][4] += int(n)
                stored_start = clean.column("start_time").cast(pa.int64()).to_numpy(zero_copy_only=False)[~is_duplicate]
                local_day = clock.to_local_us(stored_start) // US_PER_DAY
                for partition in np.unique(partitions[rows][~is_duplicate]).tolist():
                    days, n = np.unique(local_day[partitions[rows][~is_duplicate] == partition], return_counts=True)
                    counts[int(partition)][7].update(
                        {(_EPOCH_DAY + timedelta(days=int(d))).isoformat(): int(k) for d, k in zip(days, n)}
                    )
                if writer.returns_rows:
                    at = pa.array(rows)
                    staged = clean.append_column("raw_key", batch.column("key").take(at)).append_column(
                        "raw_value", batch.column("value").take(at)
                    )
                    yield _batch(schema, kind="clean", **{name: staged.column(name) for name in STAGED_COLUMNS})
            if stored_rejects:
                yield _reject_batch(schema, stored_rejects, whole=writer.returns_rows, echo_bytes=echo_bytes)
    finally:
        writer.close()
    if counts:
        parts = sorted(counts)
        yield _batch(
            schema,
            kind="counts",
            part=parts,
            first_offset=[counts[p][0] for p in parts],
            last_offset=[counts[p][1] for p in parts],
            messages=[counts[p][2] for p in parts],
            rejected=[counts[p][3] for p in parts],
            clean=[counts[p][4] for p in parts],
            duplicates=[counts[p][5] for p in parts],
            reasons=[json.dumps(counts[p][6]) for p in parts],
            days=[json.dumps(counts[p][7]) for p in parts],
        )


def _reject_batch(schema, rows: list[dict], *, whole: bool, echo_bytes: int):
    """The reject rows of an Arrow batch: each one's error-cdrs message (key, capped value) and, when
    `whole` (the staged path), what the reject store needs, the whole payload included."""
    columns = {
        "key": [reject_key(r["source_topic"], r["source_partition"], r["source_offset"]) for r in rows],
        "value": [
            reject_message(
                topic=r["source_topic"],
                partition=r["source_partition"],
                offset=r["source_offset"],
                kafka_timestamp=r["received_at"].replace(tzinfo=UTC),
                key=r["message_key"],
                payload=r["payload"],
                reasons=r["reasons"].split(","),
                batch_id=r["batch_id"],
                query_id=r["query_id"],
                rejected_at=r["rejected_at"].replace(tzinfo=UTC),
                error=r["error"],
                echo_bytes=echo_bytes,
            )
            for r in rows
        ],
    }
    if whole:
        columns.update(
            {
                task_column: [r[store_column] for r in rows]
                for store_column, task_column in STAGED_REJECT_COLUMNS.items()
            }
        )
        columns["kafka_timestamp"] = [r["received_at"].replace(tzinfo=UTC) for r in rows]
    return _batch(schema, kind="reject", **columns)


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
    arrays = [
        _as_array(columns[f.name], f.type) if f.name in columns else pa.nulls(n, type=f.type)
        for f in schema
        if f.name != "kind"
    ]
    return pa.RecordBatch.from_arrays([pa.array([kind] * n, type=pa.string()), *arrays], schema=schema)


def duplicate_rejects_arrow(
    batches: Iterator,
    *,
    topic: str,
    batch_id: int,
    query_id: str,
    rejected_at: datetime,
    echo_bytes: int = DEFAULT_ECHO_BYTES,
) -> Iterator:
    """mapInArrow body for the rows the warehouse found to be duplicates."""
    import pyarrow as pa

    for batch in batches:
        keys, values = [], []
        for row in batch.to_pylist():
            keys.append(reject_key(topic, row["src_partition"], row["src_offset"]))
            values.append(
                reject_message(
                    topic=topic,
                    partition=row["src_partition"],
                    offset=row["src_offset"],
                    kafka_timestamp=row["kafka_timestamp"],
                    key=row["raw_key"],
                    payload=row["raw_value"],
                    reasons=[Reason.DUPLICATE.value],
                    batch_id=batch_id,
                    query_id=query_id,
                    rejected_at=rejected_at,
                    echo_bytes=echo_bytes,
                )
            )
        yield pa.RecordBatch.from_pydict(
            {"key": keys, "value": values}, schema=pa.schema([("key", pa.string()), ("value", pa.binary())])
        )


def warm_up(batches: Iterator) -> Iterator:
    """mapInArrow body that makes a Python worker import this module, and with it everything a
    mediation task uses: Spark pickles a module's function by reference, so unpickling imports it."""
    import pyarrow as pa

    for _ in batches:
        pass
    yield pa.RecordBatch.from_pydict({"ready": [True]})
