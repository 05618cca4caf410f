"""The reject store: every rejected and duplicate message kept in the warehouse, corrected and replayed.

Mediation writes each reject (and each duplicate) into `<mediation schema>.rejects` in the
transaction that stores the batch's clean rows (direct path) or commits the batch (staged path):
the source position, the key, the whole payload, the reasons and a status. Kafka's retention no
longer decides how long a rejected CDR, and its revenue, can be recovered.

Statuses: `open` (rejected, waiting for a correction), `replayed` (taken by a replay that has not
finished: a replay that died leaves them so, and the next replay takes them again), `recovered`
(clean on replay, stored in clean_cdrs), `discarded` (given up, with a note), `duplicate` (the
record was already in clean_cdrs: final by nature).

A replay sends the stored payloads through the same rules as the stream (lib.mediation.bulk), with
the time the broker first received them, so a record is judged as it would have been on arrival
with today's reference data. Each chunk of a replay is one transaction: the recovered records go
into clean_cdrs (tagged with the replay's id as their query id) and their rejects become
`recovered`; the others stay `open` with their attempt counted and their new reasons. A record id
that clean_cdrs already holds makes its reject `discarded`, with that note (the ledger counted it
rejected, so it stays a reject). One replay runs at a time (a warehouse session lock). So, whatever happens between two
chunks, nothing is stored twice and nothing is lost, and the balance holds at every commit:

    rows in clean_cdrs = the ledger's clean + the recovered rejects
    the ledger's rejected + duplicates = the rejects stored by the stream (any status)

Every statement is plain SQL that PostgreSQL and SQL Server both run; parameters are pyformat.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import numpy as np

from cdr_platform.lib.mediation.bulk import mediate_batch_safely
from cdr_platform.lib.mediation.reasons import Reason
from cdr_platform.lib.mediation.rejects import parse_reject_key
from cdr_platform.lib.mediation.rules import Limits
from cdr_platform.lib.mediation.store import (
    CLEAN_COLUMN_NAMES,
    DUPLICATE_STATUS,
    OPEN_STATUS,
    REJECT_STORE_COLUMNS,
    MediationTables,
)
from cdr_platform.lib.tariff_clock import TariffClock
from cdr_platform.lib.warehouse import execute_many

REPLAYED, RECOVERED, DISCARDED = "replayed", "recovered", "discarded"
STATUSES = (OPEN_STATUS, REPLAYED, RECOVERED, DISCARDED, DUPLICATE_STATUS)
FINAL_STATUSES = (RECOVERED, DISCARDED, DUPLICATE_STATUS)
REPLAY_CHUNK = 2000  # rejects replayed per transaction
ALREADY_STORED = "replayed: its record id is in clean_cdrs already (from another message)"
REPLAY_PREFIX = "replay-"  # the query id of the clean rows a replay stores
REPLAY_SUMMARY_PREFIX = "REPLAY_SUMMARY "  # the line `cdr rejects replay` ends with
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def check_reason(reason: str) -> str:
    codes = {r.value for r in Reason}
    if reason not in codes:
        raise ValueError(f"unknown reason {reason!r}; the catalogue: {', '.join(sorted(codes))}")
    return reason


def check_status(status: str) -> str:
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}; one of {', '.join(STATUSES)}")
    return status


def _filters(reason: str | None, since: date | None, status: str | None) -> tuple[str, dict]:
    """A where clause over the reject store (reasons are comma-separated codes, matched whole)."""
    clauses, params = ["1 = 1"], {}
    if reason:
        check_reason(reason)
        clauses.append(
            "(reasons = %(reason)s or reasons like %(reason_first)s or reasons like %(reason_last)s"
            " or reasons like %(reason_inner)s)"
        )
        params |= {
            "reason": reason,
            "reason_first": f"{reason},%",
            "reason_last": f"%,{reason}",
            "reason_inner": f"%,{reason},%",
        }
    if since:
        clauses.append("rejected_day >= %(since)s")
        params["since"] = since
    if status:
        clauses.append("status = %(status)s")
        params["status"] = check_status(status)
    return " and ".join(clauses), params


def counts_by_reason_and_day(conn, tables: MediationTables, *, reason=None, since=None, status=None) -> list[dict]:
    where, params = _filters(reason, since, status)
    rows = conn.execute(
        f"select reasons, rejected_day, status, count(*), coalesce(sum(payload_bytes), 0) from {tables.rejects}"
        f" where {where} group by reasons, rejected_day, status",
        params,
    ).fetchall()
    out = [
        {"reasons": r[0], "day": r[1].isoformat(), "status": r[2], "records": int(r[3]), "payload_bytes": int(r[4])}
        for r in rows
    ]
    return sorted(out, key=lambda r: (r["day"], r["reasons"], r["status"]))


def list_records(conn, tables: MediationTables, *, reason=None, since=None, status=None, limit: int = 20) -> list[dict]:
    where, params = _filters(reason, since, status)
    rows = conn.execute(
        f"select source_topic, source_partition, source_offset, query_id, reasons, status, attempts, rejected_at,"
        f" payload_bytes from {tables.rejects} where {where}"
        f" order by rejected_at, source_topic, source_partition, source_offset"
        f" offset 0 rows fetch next {int(limit)} rows only",
        params,
    ).fetchall()
    return [
        {
            "key": f"{r[0]}:{r[1]}:{r[2]}",
            "query_id": r[3],
            "reasons": r[4],
            "status": r[5],
            "attempts": int(r[6]),
            "rejected_at": r[7].isoformat(sep=" ", timespec="seconds"),
            "payload_bytes": r[8],
        }
        for r in rows
    ]


def show(conn, tables: MediationTables, key: str) -> list[dict]:
    """Every stored verdict on the message at `key` ("topic:partition:offset"), whole payload included."""
    topic, partition, offset = parse_reject_key(key)
    # every stored column but the position the key already names
    columns = tuple(c for c in REJECT_STORE_COLUMNS if c not in ("source_topic", "source_partition", "source_offset"))
    rows = conn.execute(
        f"select {', '.join(columns)} from {tables.rejects} where source_topic = %(topic)s"
        f" and source_partition = %(partition)s and source_offset = %(offset)s order by rejected_at",
        {"topic": topic, "partition": partition, "offset": offset},
    ).fetchall()
    return [{"key": key, **dict(zip(columns, r))} for r in rows]


def discard(conn, tables: MediationTables, *, reason: str, note: str, since: date | None = None) -> int:
    """Give up the open rejects of `reason` (since `since`), with the operator's note."""
    if not note.strip():
        raise ValueError("a discard needs a note: why these records are given up")
    where, params = _filters(reason, since, OPEN_STATUS)
    with conn.transaction():
        cursor = conn.execute(
            f"update {tables.rejects} set status = %(discarded)s, note = %(note)s,"
            f" status_changed_at = {tables.dialect.utc_clock} where {where}",
            {**params, "discarded": DISCARDED, "note": note.strip()[:4000]},
        )
        return cursor.rowcount


@dataclass
class ReplayOutcome:
    replay_id: str
    selected: int = 0
    recovered: int = 0
    still_open: int = 0
    duplicates: int = 0
    chunks: int = 0
    dry_run: bool = False
    reasons_now: Counter = field(default_factory=Counter)  # why the ones still open fail now
    clean_by_day: Counter = field(default_factory=Counter)  # local days of the recovered: what to rate

    def as_dict(self) -> dict:
        return {
            "replay_id": self.replay_id,
            "selected": self.selected,
            "recovered": self.recovered,
            "still_open": self.still_open,
            "duplicates": self.duplicates,
            "chunks": self.chunks,
            "dry_run": self.dry_run,
            "reasons_now": dict(sorted(self.reasons_now.items())),
            "clean_by_day": dict(sorted(self.clean_by_day.items())),
        }


def replay(
    conn,
    tables: MediationTables,
    *,
    reason: str,
    limits: Limits,
    clock: TariffClock,
    since: date | None = None,
    dry_run: bool = False,
    chunk: int = REPLAY_CHUNK,
    progress=None,
) -> ReplayOutcome:
    """Send the open rejects of `reason` (and any a dead replay left `replayed`) through mediation.

    A dry run mediates them and reports what would be recovered, changing nothing.
    """
    outcome = ReplayOutcome(f"{REPLAY_PREFIX}{uuid.uuid4().hex[:16]}", dry_run=dry_run)
    conn.commit()  # whatever the caller read: the transactions below are then real ones
    where, params = _filters(reason, since, None)
    taken = f"({where}) and status in (%(open)s, %(replayed)s)"
    params |= {"open": OPEN_STATUS, "replayed": REPLAYED, "replay_id": outcome.replay_id}
    if dry_run:
        for rows in _chunks(conn, tables, taken, params, chunk, dry_run=True):
            verdicts = _mediate(rows, limits)
            outcome.selected += len(rows)
            outcome.chunks += 1
            for record, reasons in verdicts:
                if record is None:
                    outcome.still_open += 1
                    outcome.reasons_now.update(reasons)
                else:
                    outcome.recovered += 1
        return outcome
    # one replay at a time (the CLI and the Dagster job alike): a replay takes over what a dead one
    # left `replayed`, which must not be a live one's
    lock = f"cdr-replay:{tables.schema}"
    conn.execute(tables.dialect.session_lock_sql(lock))
    conn.commit()
    try:
        with conn.transaction():  # taken by this replay; a replay that dies leaves them to the next one
            conn.execute(
                f"update {tables.rejects} set status = %(replayed)s, replay_id = %(replay_id)s,"
                f" status_changed_at = {tables.dialect.utc_clock} where {taken}",
                params,
            )
        for rows in _chunks(conn, tables, "replay_id = %(replay_id)s and status = %(replayed)s", params, chunk):
            _replay_chunk(conn, tables, rows, outcome, limits, clock)
            if progress:
                progress(outcome)
    finally:
        conn.execute(tables.dialect.session_lock_sql(lock, release=True))
        conn.commit()
    return outcome


_REPLAY_COLUMNS = (
    "query_id",
    "source_topic",
    "source_partition",
    "source_offset",
    "payload",
    "received_at",
)


def _chunks(conn, tables: MediationTables, where: str, params: dict, size: int, dry_run: bool = False):
    """The rejects matching `where`, a chunk at a time. A real replay changes each chunk's status,
    so the next read finds the next chunk; a dry run pages with an offset."""
    page = 0
    while True:
        skip = page * size if dry_run else 0
        rows = conn.execute(
            f"select {', '.join(_REPLAY_COLUMNS)} from {tables.rejects} where {where}"
            f" order by query_id, source_topic, source_partition, source_offset"
            f" offset {skip} rows fetch next {int(size)} rows only",
            params,
        ).fetchall()
        conn.commit()  # ends the read's transaction: each chunk's own is then a real one, not a savepoint
        if not rows:
            return
        yield [dict(zip(_REPLAY_COLUMNS, r)) for r in rows]
        page += 1


def _mediate(rows: list[dict], limits: Limits) -> list[tuple[dict | None, tuple[str, ...]]]:
    """Each row's verdict by the stream's rules: (clean record, ()) or (None, reasons)."""
    values = [bytes(r["payload"]) if r["payload"] is not None else None for r in rows]
    received_us = np.array(
        [int((r["received_at"].replace(tzinfo=UTC) - _EPOCH).total_seconds() * 1_000_000) for r in rows], np.int64
    )
    mediated = mediate_batch_safely(values, received_us, limits)
    verdicts: list[tuple[dict | None, tuple[str, ...]]] = [(None, ())] * len(rows)
    for i, reasons in mediated.rejected:
        verdicts[i] = (None, tuple(reasons))
    for record, i in zip(mediated.clean.to_pylist(), mediated.clean_rows.tolist()):
        verdicts[i] = (record, ())
    return verdicts


def _replay_chunk(conn, tables: MediationTables, rows, outcome: ReplayOutcome, limits: Limits, clock: TariffClock):
    verdicts = _mediate(rows, limits)
    ids = [record["record_id"] for record, _ in verdicts if record is not None]
    mediated_at = datetime.now(UTC).replace(tzinfo=None)
    batch_id = outcome.chunks
    with conn.transaction():
        already = set()
        for start in range(0, len(ids), 500):  # which record ids clean_cdrs holds already
            part = ids[start : start + 500]
            names = {f"id{i}": v for i, v in enumerate(part)}
            already |= {
                r[0]
                for r in conn.execute(
                    f"select record_id from {tables.clean} where record_id in ({', '.join(f'%({n})s' for n in names)})",
                    names,
                ).fetchall()
            }
        clean_rows, updates = [], []
        for row, (record, reasons) in zip(rows, verdicts):
            key = {k: row[k] for k in ("query_id", "source_topic", "source_partition", "source_offset")}
            if record is None:
                updates.append(
                    {**key, "status": OPEN_STATUS, "reasons": ",".join(reasons), "recovered": None, "note": None}
                )
                outcome.still_open += 1
                outcome.reasons_now.update(reasons)
            elif record["record_id"] in already:
                # its record id is in clean_cdrs already (from another message): nothing to recover.
                # Discarded with why, not `duplicate`: the ledger counted this message as rejected
                updates.append({**key, "status": DISCARDED, "reasons": None, "recovered": None, "note": ALREADY_STORED})
                outcome.duplicates += 1
            else:
                already.add(record["record_id"])
                start = record["start_time"]
                clean_rows.append(
                    {
                        **{c: record.get(c) for c in CLEAN_COLUMN_NAMES},
                        "start_time": start.astimezone(UTC).replace(tzinfo=None),
                        "src_partition": row["source_partition"],
                        "src_offset": row["source_offset"],
                        "kafka_timestamp": row["received_at"],
                        "query_id": outcome.replay_id,
                        "batch_id": batch_id,
                        "mediated_at": mediated_at,
                    }
                )
                updates.append(
                    {**key, "status": RECOVERED, "reasons": None, "recovered": record["record_id"], "note": None}
                )
                outcome.recovered += 1
                outcome.clean_by_day[clock.local_date(start).isoformat()] += 1
        if clean_rows:
            columns = tables.direct_copy_columns()
            execute_many(
                conn,
                f"insert into {tables.clean} ({', '.join(columns)}) values ({', '.join(f'%({c})s' for c in columns)})",
                clean_rows,
            )
        execute_many(
            conn,
            f"update {tables.rejects} set status = %(status)s, attempts = attempts + 1,"
            f" reasons = coalesce(%(reasons)s, reasons), recovered_record_id = %(recovered)s,"
            f" note = coalesce(%(note)s, note), status_changed_at = {tables.dialect.utc_clock}"
            f" where query_id = %(query_id)s and source_topic = %(source_topic)s"
            f" and source_partition = %(source_partition)s and source_offset = %(source_offset)s"
            f" and replay_id = %(replay_id)s and status = %(replayed)s",  # only what this replay took
            [{**u, "replay_id": outcome.replay_id, "replayed": REPLAYED} for u in updates],
        )
    outcome.selected += len(rows)
    outcome.chunks += 1


def balance(conn, tables: MediationTables) -> dict:
    """The reject store against the ledger and clean_cdrs (the module docstring's two equations)."""
    ledger = conn.execute(
        f"select coalesce(sum(clean), 0), coalesce(sum(rejected), 0), coalesce(sum(duplicates), 0) from {tables.ledger}"
    ).fetchone()
    by_status = dict(conn.execute(f"select status, count(*) from {tables.rejects} group by status").fetchall())
    stored = conn.execute(f"select count(*) from {tables.clean}").fetchone()[0]
    by_status = {s: int(by_status.get(s, 0)) for s in STATUSES}
    ledger_clean, ledger_rejected, ledger_duplicates = (int(v) for v in ledger)
    return {
        "ledger_clean": ledger_clean,
        "ledger_rejected_and_duplicates": ledger_rejected + ledger_duplicates,
        "stored_rejects": sum(by_status.values()),
        "by_status": by_status,
        "clean_cdrs_rows": int(stored),
        "balanced": sum(by_status.values()) == ledger_rejected + ledger_duplicates
        and int(stored) == ledger_clean + by_status[RECOVERED],
    }
