"""Warehouse side of mediation: the tables, and the idempotent commit of one micro-batch.

Exactly-once in the warehouse, with Spark's at-least-once foreachBatch. Two paths:

Direct (PostgreSQL, the default): each Spark task, per Arrow batch and in one transaction,
looks up which of its record ids clean_cdrs already holds and COPYs the others. A record id
already stored from another source offset (or another streaming query) is a duplicate; from
the same offset and query it is this batch being replayed, and counts as clean again. The
primary key catches two tasks inserting the same id at once: the loser retries its Arrow
batch and then sees the winner's row. The driver then replaces the batch's ledger entry.

Staged (SQL Server through JDBC bulk copy; also runs on PostgreSQL):

1. the batch's clean rows are bulk-written to a staging table by Spark's JDBC writer, tagged
   (query_id, batch_id), with their raw payload;
2. one transaction then marks the duplicates (record id already in clean_cdrs from another
   Kafka offset or from another streaming query, or seen earlier in the same batch), inserts
   the rest into clean_cdrs unless that very source offset is already there from this query
   (a replay of the batch), and replaces the batch's ledger rows;
3. after the rejects are published, the staging rows of the batch are dropped.

A batch replayed after a crash at any point therefore ends with the same rows and the same
ledger entry. A new checkpoint (new query id) that re-reads the topic finds every record
already stored: they count as duplicates, so clean_cdrs holds exactly the sum of the ledger's
clean column, plus the rejects a replay recovered (lib.mediation.reject_store.balance).
Every statement here is plain SQL that PostgreSQL and SQL Server both run;
what differs (DDL types, "create if missing", UTC now) comes from a `Dialect`
(cdr_platform.lib.warehouse.dialects).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from cdr_platform.lib.mediation.reasons import Reason
from cdr_platform.lib.schema import CLEAN_CDRS_COLUMNS, CLEAN_CDRS_TABLE, MEDIATION_BATCH
from cdr_platform.lib.warehouse.columns import names, table_body
from cdr_platform.lib.warehouse.dialects import DIALECTS, POSTGRES, Dialect

# the data columns of clean_cdrs (the clean record and its Kafka position), from lib.schema
CLEAN_COLUMN_NAMES = names(CLEAN_CDRS_COLUMNS)
# the reject store's columns, in the order its inserts name them
REJECT_STORE_COLUMNS = (
    "query_id",
    "batch_id",
    "source_topic",
    "source_partition",
    "source_offset",
    "message_key",
    "payload",
    "payload_bytes",
    "payload_sha256",
    "reasons",
    "error",
    "received_at",
    "rejected_at",
    "rejected_day",
    "status",
    "attempts",
    "replay_id",
    "recovered_record_id",
    "status_changed_at",
    "note",
)
DUPLICATE_REASON = Reason.DUPLICATE.value
OPEN_STATUS, DUPLICATE_STATUS = "open", "duplicate"  # what mediation stores; the rest is reject_store's


@dataclass(frozen=True)
class MediationTables:
    schema: str = "mediation"
    dialect: Dialect = POSTGRES

    @property
    def clean(self) -> str:
        return f"{self.schema}.{CLEAN_CDRS_TABLE}"

    @property
    def staging(self) -> str:
        return f"{self.schema}.{CLEAN_CDRS_TABLE}_staging"

    @property
    def rejects(self) -> str:
        """The reject store: every rejected and duplicate message, its whole payload and its status
        (cdr_platform.lib.mediation.reject_store)."""
        return f"{self.schema}.rejects"

    @property
    def rejects_staging(self) -> str:
        return f"{self.schema}.rejects_staging"

    @property
    def ledger(self) -> str:
        return f"{self.schema}.mediation_ledger"

    @property
    def ledger_offsets(self) -> str:
        return f"{self.schema}.mediation_ledger_offsets"

    @property
    def ledger_reasons(self) -> str:
        """The ledger's rejects per reason code, one row each: what the marts count by reason
        (the ledger's rejected_by_reason holds the same as JSON, for people)."""
        return f"{self.schema}.mediation_ledger_reasons"

    def _columns(self, extra: list[str]) -> str:
        return table_body(CLEAN_CDRS_COLUMNS, self.dialect, extra)

    def ddl(self) -> list[str]:
        d = self.dialect
        return [
            d.create_schema(self.schema),
            d.create_table(
                self.clean,
                self._columns(
                    [
                        *(c.ddl(d) for c in MEDIATION_BATCH),
                        f"mediated_at {d.timestamp} not null",
                        "constraint pk_clean_cdrs primary key (record_id)",
                    ]
                ),
            ),
            *d.create_time_index("ix_clean_cdrs_start_time", self.clean, "start_time"),
            # a batch's rows lie together (appended batch by batch): the checks read only the last
            # run's batches through it (PostgreSQL: BRIN, next to free to keep up)
            *d.create_time_index("ix_clean_cdrs_batch", self.clean, "batch_id"),
            # no primary key: it holds what a batch wrote, duplicates included
            d.create_table(
                self.staging,
                self._columns(
                    [
                        "query_id varchar(64) not null",
                        "batch_id bigint not null",
                        f"raw_key {d.binary}",
                        f"raw_value {d.binary}",
                        "is_duplicate smallint not null default 0",
                    ]
                ),
                scratch=True,
            ),
            d.create_index("ix_clean_cdrs_staging_batch", self.staging, "query_id, batch_id, record_id"),
            d.create_table(
                self.ledger,
                ",\n".join(
                    [
                        "    query_id varchar(64) not null",
                        "    batch_id bigint not null",
                        "    run_id varchar(64)",
                        "    rows_in bigint not null",
                        "    clean bigint not null",
                        "    rejected bigint not null",
                        "    duplicates bigint not null",
                        f"    rejected_by_reason {d.text_4000} not null",
                        f"    committed_at {d.timestamp} not null",
                        # the operator's local date of the commit (the revenue-assurance day)
                        "    committed_day date",
                        "    constraint pk_mediation_ledger primary key (query_id, batch_id)",
                    ]
                ),
            ),
            d.create_table(
                self.ledger_offsets,
                ",\n".join(
                    [
                        "    query_id varchar(64) not null",
                        "    batch_id bigint not null",
                        "    topic varchar(249) not null",
                        "    kafka_partition int not null",
                        "    from_offset bigint not null",
                        "    until_offset bigint not null",  # exclusive
                        "    messages bigint not null",
                        "    constraint pk_mediation_ledger_offsets"
                        " primary key (query_id, batch_id, topic, kafka_partition)",
                    ]
                ),
            ),
            d.create_table(self.rejects, self._reject_columns(keyed=True)),
            d.create_index("ix_rejects_status_day", self.rejects, "status, rejected_day"),
            d.create_table(self.rejects_staging, self._reject_columns(keyed=False), scratch=True),
            d.create_index("ix_rejects_staging_batch", self.rejects_staging, "query_id, batch_id"),
            # a ledger made before committed_day existed gets it (its earlier rows stay null)
            d.add_column_if_missing(self.ledger, "committed_day", "date"),
            d.create_table(
                self.ledger_reasons,
                ",\n".join(
                    [
                        "    query_id varchar(64) not null",
                        "    batch_id bigint not null",
                        "    reason varchar(32) not null",
                        "    records bigint not null",
                        "    constraint pk_mediation_ledger_reasons primary key (query_id, batch_id, reason)",
                    ]
                ),
            ),
        ]

    def _reject_columns(self, keyed: bool) -> str:
        d = self.dialect
        columns = [
            "    query_id varchar(64) not null",  # the mediation (or the replay) that rejected it
            "    batch_id bigint not null",
            "    source_topic varchar(249) not null",
            "    source_partition int not null",
            "    source_offset bigint not null",
            f"    message_key {d.binary}",
            f"    payload {d.binary}",  # the whole message value, as it arrived
            "    payload_bytes bigint",
            "    payload_sha256 char(64)",
            "    reasons varchar(400) not null",  # the reason codes, comma-separated
            "    error varchar(500)",  # UNPROCESSABLE: the exception
            f"    received_at {d.timestamp}",  # the broker's timestamp of the message
            f"    rejected_at {d.timestamp} not null",
            "    rejected_day date not null",  # the operator's local date of rejected_at
            # open | replayed | recovered | discarded | duplicate (see reject_store.STATUSES)
            "    status varchar(16) not null",
            "    attempts int not null",  # replays tried
            "    replay_id varchar(64)",  # the last replay that took it
            "    recovered_record_id varchar(64)",
            f"    status_changed_at {d.timestamp}",
            f"    note {d.text_4000}",  # why it was discarded
        ]
        if keyed:
            columns.append(
                "    constraint pk_rejects primary key (query_id, source_topic, source_partition, source_offset)"
            )
        return ",\n".join(columns)

    # -- the commit of one batch -------------------------------------------------------

    def stored_sources_sql(self) -> str:
        """PostgreSQL direct path: where clean_cdrs already holds any of a list of record ids."""
        # the ids go as one comma-joined text (no valid record id holds a comma): psycopg would
        # adapt a list element by element in Python, which cost as much as the query
        return (
            f"select record_id, src_partition, src_offset, query_id from {self.clean}"
            f" where record_id = any(string_to_array(%(record_ids)s, ','))"
        )

    def direct_copy_columns(self) -> tuple[str, ...]:
        return CLEAN_COLUMN_NAMES + ("query_id", "batch_id", "mediated_at")

    def duplicates_sql(self) -> str:
        return (
            f"select src_partition, src_offset, kafka_timestamp, raw_key, raw_value from {self.staging}"
            f" where query_id = '{{query_id}}' and batch_id = {{batch_id}} and is_duplicate = 1"
        )

    def clear_staging_sql(self) -> list[str]:
        return [
            f"delete from {self.staging} where query_id = %(query_id)s and batch_id = %(batch_id)s",
            f"delete from {self.rejects_staging} where query_id = %(query_id)s and batch_id = %(batch_id)s",
        ]

    def insert_reject_direct_sql(self) -> str:
        """Direct path (PostgreSQL, the task's transaction): a reject stored once, whatever replays."""
        return (
            f"insert into {self.rejects} ({', '.join(REJECT_STORE_COLUMNS)})\n"
            f"values ({', '.join(f'%({c})s' for c in REJECT_STORE_COLUMNS)})\n"
            f"on conflict (query_id, source_topic, source_partition, source_offset) do nothing"
        )

    def merge_staged_rejects_sql(self) -> list[str]:
        """Staged path, in the batch's transaction: the staged rejects, then the duplicates the
        warehouse found, into the reject store, unless a replay of the batch stored them already."""
        cols = ", ".join(REJECT_STORE_COLUMNS)
        not_stored = (
            f"not exists (select 1 from {self.rejects} r where r.query_id = s.query_id"
            f" and r.source_topic = cast(%(topic)s as varchar(249)) and r.source_partition = s.{{partition}}"
            f" and r.source_offset = s.{{offset}})"
        )
        staged_rejects = (
            f"insert into {self.rejects} ({cols})\n"
            f"select {', '.join('s.' + c for c in REJECT_STORE_COLUMNS)}\nfrom {self.rejects_staging} s\n"
            f"where s.query_id = %(query_id)s and s.batch_id = %(batch_id)s\n"
            f"  and {not_stored.format(partition='source_partition', offset='source_offset')}"
        )
        duplicates = (
            f"insert into {self.rejects} ({cols})\n"
            f"select s.query_id, s.batch_id, cast(%(topic)s as varchar(249)), s.src_partition, s.src_offset,"
            f" s.raw_key, s.raw_value, null, null, '{DUPLICATE_REASON}', null, s.kafka_timestamp,"
            f" cast(%(rejected_at)s as {self.dialect.timestamp}), cast(%(rejected_day)s as date),"
            f" '{DUPLICATE_STATUS}', 0, null, null, null, null\nfrom {self.staging} s\n"
            f"where s.query_id = %(query_id)s and s.batch_id = %(batch_id)s and s.is_duplicate = 1\n"
            f"  and {not_stored.format(partition='src_partition', offset='src_offset')}"
        )
        return [staged_rejects, duplicates]

    def mark_duplicates_sql(self) -> str:
        s = self.staging
        return (
            f"update {s} set is_duplicate = 1\n"
            f"where query_id = %(query_id)s and batch_id = %(batch_id)s and (\n"
            f"  exists (select 1 from {self.clean} c where c.record_id = {s}.record_id\n"
            f"          and not (c.src_partition = {s}.src_partition and c.src_offset = {s}.src_offset\n"
            f"                   and c.query_id = {s}.query_id))\n"
            f"  or exists (select 1 from {s} e where e.query_id = {s}.query_id and e.batch_id = {s}.batch_id\n"
            f"             and e.record_id = {s}.record_id\n"
            f"             and (e.src_partition < {s}.src_partition\n"
            f"                  or (e.src_partition = {s}.src_partition and e.src_offset < {s}.src_offset))))"
        )

    def insert_clean_sql(self) -> str:
        cols = ", ".join(CLEAN_COLUMN_NAMES)
        picked = ", ".join(f"s.{c}" for c in CLEAN_COLUMN_NAMES)
        return (
            f"insert into {self.clean} ({cols}, query_id, batch_id, mediated_at)\n"
            f"select {picked}, s.query_id, s.batch_id, {self.dialect.utc_now}\n"
            f"from {self.staging} s\n"
            f"where s.query_id = %(query_id)s and s.batch_id = %(batch_id)s and s.is_duplicate = 0\n"
            f"  and not exists (select 1 from {self.clean} c where c.record_id = s.record_id)"
        )

    def count_staged_sql(self) -> str:
        return (
            f"select is_duplicate, count(*) from {self.staging}\n"
            f"where query_id = %(query_id)s and batch_id = %(batch_id)s group by is_duplicate"
        )

    def replace_ledger_sql(self) -> list[str]:
        return [
            f"delete from {self.ledger_reasons} where query_id = %(query_id)s and batch_id = %(batch_id)s",
            f"delete from {self.ledger_offsets} where query_id = %(query_id)s and batch_id = %(batch_id)s",
            f"delete from {self.ledger} where query_id = %(query_id)s and batch_id = %(batch_id)s",
            f"insert into {self.ledger} (query_id, batch_id, run_id, rows_in, clean, rejected, duplicates,"
            f" rejected_by_reason, committed_at, committed_day)\nvalues (%(query_id)s, %(batch_id)s, %(run_id)s,"
            f" %(rows_in)s, %(clean)s, %(rejected)s, %(duplicates)s, %(rejected_by_reason)s, {self.dialect.utc_clock},"
            f" %(committed_day)s)",
        ]

    def insert_ledger_reason_sql(self) -> str:
        return (
            f"insert into {self.ledger_reasons} (query_id, batch_id, reason, records)"
            f" values (%(query_id)s, %(batch_id)s, %(reason)s, %(records)s)"
        )

    def insert_ledger_offsets_sql(self) -> str:
        return (
            f"insert into {self.ledger_offsets} (query_id, batch_id, topic, kafka_partition, from_offset,"
            f" until_offset, messages)\nvalues (%(query_id)s, %(batch_id)s, %(topic)s, %(kafka_partition)s,"
            f" %(from_offset)s, %(until_offset)s, %(messages)s)"
        )


@dataclass
class BatchOutcome:
    query_id: str
    batch_id: int
    rows_in: int
    clean: int
    rejected: int
    duplicates: int
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    offsets: list[dict] = field(default_factory=list)  # topic, kafka_partition, from/until, messages

    @property
    def balanced(self) -> bool:
        return self.rows_in == self.clean + self.rejected + self.duplicates


def record_batch(
    conn,
    tables: MediationTables,
    *,
    query_id: str,
    batch_id: int,
    run_id: str | None,
    clean: int,
    rejected: int,
    duplicates: int,
    rejected_by_reason: dict[str, int],
    offsets: list[dict],
    committed_day: date | None = None,
) -> BatchOutcome:
    """Replace the ledger entry of a batch whose rows are already in clean_cdrs (direct path)."""
    rows_in = sum(int(o["until_offset"]) - int(o["from_offset"]) for o in offsets)
    outcome = BatchOutcome(query_id, batch_id, rows_in, clean, rejected, duplicates, rejected_by_reason, offsets)
    with conn.transaction():
        _replace_ledger(conn, tables, outcome, run_id, committed_day)
    return outcome


def _replace_ledger(
    conn, tables: MediationTables, outcome: BatchOutcome, run_id: str | None, committed_day: date | None
) -> None:
    key = {"query_id": outcome.query_id, "batch_id": outcome.batch_id}
    for sql in tables.replace_ledger_sql():
        conn.execute(
            sql,
            {
                **key,
                "run_id": run_id,
                "rows_in": outcome.rows_in,
                "clean": outcome.clean,
                "rejected": outcome.rejected,
                "duplicates": outcome.duplicates,
                "rejected_by_reason": json.dumps(outcome.rejected_by_reason, sort_keys=True),
                "committed_day": committed_day,
            },
        )
    for row in outcome.offsets:
        conn.execute(tables.insert_ledger_offsets_sql(), {**key, **row})
    for reason, records in sorted(outcome.rejected_by_reason.items()):
        conn.execute(tables.insert_ledger_reason_sql(), {**key, "reason": reason, "records": records})


def commit_batch(
    conn,
    tables: MediationTables,
    *,
    query_id: str,
    batch_id: int,
    run_id: str | None,
    rejected: int,
    rejected_by_reason: dict[str, int],
    offsets: list[dict],
    committed_day: date | None = None,
    topic: str = "",
    rejected_at: datetime | None = None,
    rejected_day: date | None = None,
) -> BatchOutcome:
    """Step 2 above, in one transaction. `conn` is a psycopg connection. The staged rejects and the
    duplicates found go into the reject store in the same transaction (`topic`: the source topic;
    `rejected_at`, `rejected_day`: when, for the duplicates).

    `rows_in` is what the Kafka offsets say the batch consumed and `rejected` what validation
    rejected; clean and duplicates are what the warehouse holds. They are counted apart so
    the balance rows_in = clean + rejected + duplicates is a real check, not a definition.
    """
    rows_in = sum(int(o["until_offset"]) - int(o["from_offset"]) for o in offsets)
    key = {"query_id": query_id, "batch_id": batch_id}
    with conn.transaction():
        if tables.dialect.analyze:
            # without fresh statistics the planner takes the just-loaded staging table for
            # empty and nests loops over it: minutes instead of a second for 250k rows
            conn.execute(tables.dialect.analyze.format(table=tables.staging))
        conn.execute(tables.mark_duplicates_sql(), key)
        conn.execute(tables.insert_clean_sql(), key)
        for sql in tables.merge_staged_rejects_sql():
            conn.execute(
                sql,
                {
                    **key,
                    "topic": topic,
                    "rejected_at": (rejected_at or datetime.now(UTC)).replace(tzinfo=None),
                    "rejected_day": rejected_day or committed_day,
                },
            )
        staged = dict(conn.execute(tables.count_staged_sql(), key).fetchall())
        clean, duplicates = staged.get(0, 0), staged.get(1, 0)
        outcome = BatchOutcome(query_id, batch_id, rows_in, clean, rejected, duplicates, rejected_by_reason, offsets)
        _replace_ledger(conn, tables, outcome, run_id, committed_day)
    return outcome


def create_tables(conn, tables: MediationTables) -> None:
    """Create what is missing of the mediation tables (idempotent), committed."""
    for statement in tables.ddl():
        conn.execute(statement)
    conn.commit()


def tables_for(settings) -> MediationTables:
    """The mediation tables of the configured warehouse (kind and schema)."""
    return MediationTables(settings.mediation_schema, DIALECTS[settings.warehouse.kind])


def batches_of_run(conn, tables: MediationTables, run_id: str | None) -> tuple[str, dict]:
    """A predicate on clean_cdrs (and its parameters) for the rows the batches of one mediation run
    stored: what the checks of that run read, instead of the whole history. No run: every row."""
    if run_id is None:
        return "1 = 1", {}
    ranges = conn.execute(
        f"select query_id, min(batch_id), max(batch_id) from {tables.ledger} where run_id = %(run_id)s"
        f" group by query_id",
        {"run_id": run_id},
    ).fetchall()
    if not ranges:
        return "1 = 0", {}
    clauses, params = [], {}
    for i, (query_id, first, last) in enumerate(ranges):
        clauses.append(f"(query_id = %(q{i})s and batch_id between %(first{i})s and %(last{i})s)")
        params |= {f"q{i}": query_id, f"first{i}": first, f"last{i}": last}
    return "(" + " or ".join(clauses) + ")", params


def consumed_offsets(conn, tables: MediationTables, topic: str) -> dict[int, int]:
    """Per partition, the offset up to which the ledger has consumed `topic` (exclusive)."""
    rows = conn.execute(
        f"select kafka_partition, max(until_offset) from {tables.ledger_offsets} where topic = %(topic)s"
        f" group by kafka_partition",
        {"topic": topic},
    ).fetchall()
    return {int(p): int(o) for p, o in rows}
