"""The collection ledger: every CDR file a source delivered, checked as a file, and the sources.

`collection_sources`: a source is a network element of a declared format (and, for formats that
carry no radio cell or no time zone, the cell, technology and zone its CDRs take). A source is
declared by its first collection, with the format given or detected.

`collection_files`: one row per distinct file (its SHA-256 is the key), whatever became of it:

    collecting   taken, its records being published (a collector that died leaves it so; collecting
                 the file again publishes it again: records have deterministic ids, so mediation
                 rejects the ones already stored as DUPLICATE, and none is rated twice)
    collected    every record read is accounted for: published + not charged (unanswered calls...)
                 - the undecodable ones are published as rejects naming the file and index
    duplicate    refused unread: its (source, file sequence number) was collected from another file
    quarantined  refused unread: not readable in its format at all (the reason says why)

`collection_fingerprints`: each published call's content (served and other party in E.164, type,
duration, start), so that the same call reported again under another id - by a second source, or
in a file sent again renamed - is found (content_duplicates) and published as a DUPLICATE_CONTENT
reject naming the record kept.

A byte-identical file is the same row: collecting it again changes nothing - but a quarantined one
is tried again (its source may have been declared since, or its decoder mended). A gap in a source's
file sequence numbers (with wrap-around at the format's maximum) is what `sequence_gaps` reports.

Plain SQL that PostgreSQL and SQL Server both run; parameters are pyformat.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cdr_platform.lib.collection.formats.base import SourceProfile
from cdr_platform.lib.warehouse import execute_many
from cdr_platform.lib.warehouse.dialects import DIALECTS, POSTGRES, Dialect

COLLECTING, COLLECTED, DUPLICATE, QUARANTINED = "collecting", "collected", "duplicate", "quarantined"
FILE_STATUSES = (COLLECTING, COLLECTED, DUPLICATE, QUARANTINED)

# what the ledger counts of a file's records (read = published + not charged)
RECORD_COUNTS = (
    "records_read",
    "records_published",
    "records_not_charged",
    "records_undecodable",
    "records_duplicate_content",
)
FILE_COLUMNS = (
    "sha256",
    "source",
    "file_name",
    "file_format",
    "sequence_number",
    "sequence_min",
    "sequence_max",
    "bytes",
    *RECORD_COUNTS,
    "first_record_at",
    "last_record_at",
    "status",
    "reason",
    "duplicate_of",
    "received_at",
    "finished_at",
)


@dataclass(frozen=True)
class LedgerFile:
    sha256: str
    source: str
    file_name: str
    file_format: str | None
    sequence_number: int | None
    status: str
    reason: str | None
    records_read: int
    records_published: int
    records_not_charged: int
    records_undecodable: int


@dataclass(frozen=True)
class SequenceGap:
    source: str
    after: int  # the last sequence number before the gap
    before: int  # the first one after it
    missing: int  # how many numbers are missing between them

    def describe(self) -> str:
        return f"{self.source}: {self.missing} file(s) missing between sequence {self.after} and {self.before}"


@dataclass(frozen=True)
class CollectionTables:
    schema: str = "mediation"
    dialect: Dialect = POSTGRES

    @property
    def sources(self) -> str:
        return f"{self.schema}.collection_sources"

    @property
    def files(self) -> str:
        return f"{self.schema}.collection_files"

    @property
    def fingerprints(self) -> str:
        """What identifies each collected call by its content (content_duplicates)."""
        return f"{self.schema}.collection_fingerprints"

    def ddl(self) -> list[str]:
        d = self.dialect
        return [
            d.create_schema(self.schema),
            d.create_table(
                self.sources,
                ",\n".join(
                    [
                        "    source varchar(64) not null",
                        "    file_format varchar(16) not null",
                        "    cell_id varchar(32)",
                        "    technology varchar(4)",
                        "    timezone varchar(64) not null",
                        f"    declared_at {d.timestamp} not null",
                        "    constraint pk_collection_sources primary key (source)",
                    ]
                ),
            ),
            d.create_table(
                self.files,
                ",\n".join(
                    [
                        "    sha256 varchar(64) not null",
                        "    source varchar(64) not null",
                        "    file_name varchar(255) not null",
                        "    file_format varchar(16)",
                        "    sequence_number bigint",
                        "    sequence_min bigint",  # the first number of the source's cycle (0 or 1)
                        "    sequence_max bigint",  # where the source's sequence wraps around
                        "    bytes bigint not null",
                        "    records_read bigint not null",
                        "    records_published bigint not null",
                        "    records_not_charged bigint not null",
                        "    records_undecodable bigint not null",
                        "    records_duplicate_content bigint not null",
                        f"    first_record_at {d.timestamp}",
                        f"    last_record_at {d.timestamp}",
                        "    status varchar(16) not null",
                        f"    reason {d.text_4000}",
                        "    duplicate_of varchar(64)",
                        f"    received_at {d.timestamp} not null",
                        f"    finished_at {d.timestamp}",
                        "    constraint pk_collection_files primary key (sha256)",
                    ]
                ),
            ),
            d.create_index("ix_collection_files_sequence", self.files, "source, sequence_number"),
            d.create_table(
                self.fingerprints,
                ",\n".join(
                    [
                        "    record_id varchar(64) not null",
                        "    served_msisdn varchar(32) not null",
                        "    other_msisdn varchar(32)",
                        "    record_type varchar(8) not null",
                        "    duration_s bigint",
                        f"    start_time {d.timestamp} not null",
                        "    source varchar(64) not null",
                        "    file_sha256 varchar(64) not null",
                        "    constraint pk_collection_fingerprints primary key (record_id)",
                    ]
                ),
            ),
            d.create_index("ix_collection_fingerprints_call", self.fingerprints, "served_msisdn, start_time"),
        ]

    def lock_sql(self, release: bool = False) -> str:
        """Files are collected one at a time: the sequence and content checks read, then write."""
        return self.dialect.session_lock_sql("cdr-collection", release=release)


def tables_for(settings) -> CollectionTables:
    """The ledger of the configured warehouse (it lives in the mediation schema: collection feeds it)."""
    return CollectionTables(settings.mediation_schema, DIALECTS[settings.warehouse.kind])


def create_tables(conn, tables: CollectionTables) -> None:
    for statement in tables.ddl():
        conn.execute(statement)


def find_source(conn, tables: CollectionTables, name: str) -> SourceProfile | None:
    row = conn.execute(
        f"select source, file_format, cell_id, technology, timezone from {tables.sources} where source = %(source)s",
        {"source": name},
    ).fetchone()
    return SourceProfile(*row) if row else None


def declare_source(conn, tables: CollectionTables, source: SourceProfile, now: datetime) -> None:
    conn.execute(
        f"insert into {tables.sources} (source, file_format, cell_id, technology, timezone, declared_at)"
        " values (%(source)s, %(format)s, %(cell_id)s, %(technology)s, %(timezone)s, %(now)s)",
        {
            "source": source.name,
            "format": source.format,
            "cell_id": source.cell_id,
            "technology": source.technology,
            "timezone": source.timezone,
            "now": now,
        },
    )


def list_sources(conn, tables: CollectionTables) -> list[SourceProfile]:
    rows = conn.execute(
        f"select source, file_format, cell_id, technology, timezone from {tables.sources} order by source"
    ).fetchall()
    return [SourceProfile(*row) for row in rows]


_LEDGER_FILE_COLUMNS = (
    "sha256, source, file_name, file_format, sequence_number, status, reason,"
    " records_read, records_published, records_not_charged, records_undecodable"
)


def find_file(conn, tables: CollectionTables, sha256: str) -> LedgerFile | None:
    row = conn.execute(
        f"select {_LEDGER_FILE_COLUMNS} from {tables.files} where sha256 = %(sha256)s", {"sha256": sha256}
    ).fetchone()
    return LedgerFile(*row) if row else None


def find_sequence(conn, tables: CollectionTables, source: str, sequence: int) -> LedgerFile | None:
    """The file a source already delivered under `sequence` (taken or being taken), if any."""
    row = conn.execute(
        f"select {_LEDGER_FILE_COLUMNS} from {tables.files} where source = %(source)s"
        " and sequence_number = %(sequence)s and status in (%(collecting)s, %(collected)s)",
        {"source": source, "sequence": sequence, "collecting": COLLECTING, "collected": COLLECTED},
    ).fetchone()
    return LedgerFile(*row) if row else None


def insert_file(conn, tables: CollectionTables, row: dict) -> None:
    values = {c: row.get(c) for c in FILE_COLUMNS}
    for count in RECORD_COUNTS:
        values[count] = values[count] or 0
    conn.execute(
        f"insert into {tables.files} ({', '.join(FILE_COLUMNS)})"
        f" values ({', '.join(f'%({c})s' for c in FILE_COLUMNS)})",
        values,
    )


def forget_file(conn, tables: CollectionTables, sha256: str) -> None:
    """Remove a quarantined file's row before it is tried again (nothing of it was published)."""
    conn.execute(
        f"delete from {tables.files} where sha256 = %(sha256)s and status = %(quarantined)s",
        {"sha256": sha256, "quarantined": QUARANTINED},
    )


def finish_file(conn, tables: CollectionTables, sha256: str, row: dict) -> None:
    """The counts and times of a file whose records were all published, and its final status."""
    columns = (
        *RECORD_COUNTS,
        "first_record_at",
        "last_record_at",
        "status",
        "finished_at",
    )
    conn.execute(
        f"update {tables.files} set {', '.join(f'{c} = %({c})s' for c in columns)} where sha256 = %(sha256)s",
        {**{c: row.get(c) for c in columns}, "sha256": sha256},
    )


def sequence_gaps(conn, tables: CollectionTables, source: str | None = None) -> list[SequenceGap]:
    """Per source, the file sequence numbers missing between the ones collected (see missing_ranges)."""
    where = " and source = %(source)s" if source else ""
    rows = conn.execute(
        f"select source, sequence_number, sequence_min, sequence_max, received_at from {tables.files}"
        f" where status = %(collected)s and sequence_number is not null{where}"
        " order by source, received_at, sequence_number",
        {"collected": COLLECTED, "source": source},
    ).fetchall()
    by_source: dict[str, list[tuple[int, int | None, int | None]]] = {}
    for name, sequence, minimum, maximum, _ in rows:
        by_source.setdefault(name, []).append((sequence, minimum, maximum))
    gaps = []
    for name, seen in by_source.items():
        maximum = max((m for _, _, m in seen if m is not None), default=None)
        minimum = min((m for _, m, _ in seen if m is not None), default=0)
        gaps += [SequenceGap(name, *gap) for gap in missing_ranges([s for s, _, _ in seen], maximum, minimum)]
    return gaps


def missing_ranges(collected: list[int], maximum: int | None, minimum: int = 0) -> list[tuple[int, int, int]]:
    """(after, before, missing) for each run of sequence numbers missing between collected ones.

    Without a known maximum the numbers lie on a line: the gaps between the lowest and the highest.
    With one they are a cycle, `minimum` (0, or 1 for a node that numbers from 1) to `maximum`: the
    widest stretch without a file is where the cycle breaks - the numbers not written yet, after
    the latest file - and every other stretch is a gap. So files that arrive out of order leave no
    gap once both have come, and the wrap is no gap.
    """
    seen = sorted(set(collected))
    if len(seen) < 2:
        return []
    if maximum is None:
        return [(a, b, b - a - 1) for a, b in zip(seen, seen[1:]) if b - a > 1]
    cycle = maximum - minimum + 1

    def missing_between(a: int, b: int) -> int:  # numbers strictly between a and b, going forward
        return (b - a) % cycle - 1

    pairs = list(zip(seen, seen[1:] + seen[:1]))  # each number and the next one around the cycle
    widest = max(range(len(pairs)), key=lambda i: missing_between(*pairs[i]))
    gaps = [(a, b, missing_between(a, b)) for i, (a, b) in enumerate(pairs) if i != widest]
    return [gap for gap in gaps if gap[2] > 0]


def recent_files(conn, tables: CollectionTables, limit: int = 20, source: str | None = None) -> list[dict]:
    """The latest files of the ledger (newest first), as rows for a table."""
    where = "where source = %(source)s " if source else ""
    rows = conn.execute(
        f"select source, file_name, sequence_number, status, records_read, records_published,"
        f" records_not_charged, records_undecodable, received_at, reason from {tables.files} {where}"
        f"order by received_at desc offset 0 rows fetch next {int(limit)} rows only",
        {"source": source},
    ).fetchall()
    names = (
        "source",
        "file",
        "sequence",
        "status",
        "read",
        "published",
        "not_charged",
        "undecodable",
        "received_at",
        "reason",
    )
    return [dict(zip(names, row)) for row in rows]


@dataclass(frozen=True)
class Fingerprint:
    """A call by its content: what two reports of the same call agree on."""

    record_id: str
    served_msisdn: str  # E.164
    other_msisdn: str | None  # E.164
    record_type: str
    duration_s: int | None
    start_time: datetime  # naive UTC

    def same_call(self, other: Fingerprint, tolerance_s: float) -> bool:
        return (
            self.record_id != other.record_id
            and (self.served_msisdn, self.other_msisdn, self.record_type, self.duration_s)
            == (other.served_msisdn, other.other_msisdn, other.record_type, other.duration_s)
            and abs((self.start_time - other.start_time).total_seconds()) <= tolerance_s
        )


def fingerprints_near(
    conn, tables: CollectionTables, served: set[str], first: datetime, last: datetime
) -> list[Fingerprint]:
    """The calls collected for these subscribers that started between `first` and `last`."""
    if not served:
        return []
    names = {f"s{i}": msisdn for i, msisdn in enumerate(sorted(served))}
    rows = conn.execute(
        f"select record_id, served_msisdn, other_msisdn, record_type, duration_s, start_time"
        f" from {tables.fingerprints} where served_msisdn in ({', '.join(f'%({n})s' for n in names)})"
        " and start_time >= %(first)s and start_time <= %(last)s",
        {**names, "first": first, "last": last},
    ).fetchall()
    return [Fingerprint(*row) for row in rows]


def content_duplicates(
    candidates: list[Fingerprint], known: list[Fingerprint], tolerance_s: float
) -> tuple[dict[str, str], list[Fingerprint]]:
    """({record id: the record id of the same call kept}, the candidates that are new calls).

    A candidate is the same call as a known one (collected before), or as an earlier candidate of
    the same file, when the parties, type and duration are equal and the starts lie within
    `tolerance_s` of each other; the first one collected is kept. A candidate already known by its
    own id (a file collected again after a crash) is neither."""
    known_ids = {k.record_id for k in known}
    by_served: dict[str, list[Fingerprint]] = {}
    for k in known:
        by_served.setdefault(k.served_msisdn, []).append(k)
    duplicate_of: dict[str, str] = {}
    new: list[Fingerprint] = []
    for candidate in candidates:
        if candidate.record_id in known_ids:
            continue
        kept = next(
            (k for k in by_served.get(candidate.served_msisdn, ()) if candidate.same_call(k, tolerance_s)), None
        )
        if kept is not None:
            duplicate_of[candidate.record_id] = kept.record_id
            continue
        new.append(candidate)
        known_ids.add(candidate.record_id)
        by_served.setdefault(candidate.served_msisdn, []).append(candidate)
    return duplicate_of, new


def insert_fingerprints(conn, tables: CollectionTables, source: str, sha256: str, rows: list[Fingerprint]) -> None:
    """A file's new calls, in one statement over all of them (a round trip per call cost a third of
    collection's time: benchmarks/README.md)."""
    execute_many(
        conn,
        f"insert into {tables.fingerprints} (record_id, served_msisdn, other_msisdn, record_type, duration_s,"
        " start_time, source, file_sha256) values (%(record_id)s, %(served)s, %(other)s, %(type)s, %(duration)s,"
        " %(start)s, %(source)s, %(sha256)s)",
        [
            {
                "record_id": f.record_id,
                "served": f.served_msisdn,
                "other": f.other_msisdn,
                "type": f.record_type,
                "duration": f.duration_s,
                "start": f.start_time,
                "source": source,
                "sha256": sha256,
            }
            for f in rows
        ],
    )
