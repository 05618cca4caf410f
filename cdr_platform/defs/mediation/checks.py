"""Asset checks of mediation: balance, uniqueness, completeness and types, rejection rate."""

import json

import dagster as dg

from cdr_platform.defs.mediation.assets import CLEAN_CDRS_KEY, ERROR_CDRS_KEY
from cdr_platform.defs.resources import KafkaResource, MediationResource, WarehouseResource
from cdr_platform.lib.kafka_io import beginning_offsets, end_offsets, offset_problems
from cdr_platform.lib.markdown import markdown_table
from cdr_platform.lib.mediation import reject_store
from cdr_platform.lib.mediation.store import MediationTables, batches_of_run, consumed_offsets
from cdr_platform.lib.schema import (
    CLEAN_RECORD,
    CLEAN_REQUIRED_BY_TYPE,
    CLEAN_REQUIRED_WHEN_OUTGOING,
    RECORD_TYPES,
    TECHNOLOGIES,
)


def _latest_run_id(context) -> str | None:
    event = context.instance.get_latest_materialization_event(CLEAN_CDRS_KEY)
    return event.run_id if event else None


def previous_offset_sql(tables: MediationTables) -> str:
    """Where the batch before `batch_id` stopped consuming a partition (the ledger's primary key
    finds it: no scan of the ledger's history)."""
    return (
        f"select until_offset from {tables.ledger_offsets} where query_id = %(query_id)s"
        f" and topic = %(topic)s and kafka_partition = %(partition)s and batch_id < %(batch_id)s"
        f" order by batch_id desc offset 0 rows fetch next 1 rows only"
    )


def offset_gaps(conn, tables: MediationTables, run_id: str | None) -> list[dict]:
    """Where the offsets the last run's batches consumed do not follow on from the batch before
    (per query, topic and partition): messages never consumed. Reads the run's own ledger rows and,
    per partition, the one row before them (no run: every row)."""
    scope, params = batches_of_run(conn, tables, run_id)
    ranges = conn.execute(
        f"select query_id, topic, kafka_partition, batch_id, from_offset, until_offset from {tables.ledger_offsets}"
        f" where {scope} order by query_id, topic, kafka_partition, from_offset",
        params,
    ).fetchall()
    gaps = []
    previous: dict[tuple, int] = {}
    for query_id, topic, partition, batch_id, start, until in ranges:
        key = (query_id, topic, partition)
        if key not in previous and run_id is not None:  # the run's first range: the batch before it
            before = conn.execute(
                previous_offset_sql(tables),
                {"query_id": query_id, "topic": topic, "partition": partition, "batch_id": batch_id},
            ).fetchone()
            if before is not None:
                previous[key] = int(before[0])
        if key in previous and start != previous[key]:
            gaps.append({"partition": partition, "expected_from": previous[key], "ledger_from": start})
        previous[key] = until
    return gaps


@dg.asset_check(
    asset=CLEAN_CDRS_KEY,
    blocking=True,
    description="Every record consumed is clean, rejected or a duplicate - for the last run and in total; the "
    "last run's offsets follow on from the batches before (no gap); clean_cdrs holds exactly the rows the ledger "
    "counts as clean plus the rejects recovered by replays; the reject store holds every reject and duplicate "
    "once, each in one state. Blocking: a failure stops rating, billing, the marts and BI until it passes again.",
)
def mediation_balances(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    run_id = _latest_run_id(context)
    tables = warehouse.mediation_tables()
    sums = (
        "coalesce(sum(rows_in), 0), coalesce(sum(clean), 0), coalesce(sum(rejected), 0),"
        " coalesce(sum(duplicates), 0), count(*)"
    )
    with warehouse.connect() as conn:
        # sums come back as numeric: make them ints for the comparison and the metadata (the
        # ledger holds a row per micro-batch: its totals are the balance "in total")
        total = [int(v) for v in conn.execute(f"select {sums} from {tables.ledger}").fetchone()]
        this_run = [
            int(v)
            for v in conn.execute(
                f"select {sums} from {tables.ledger} where run_id = %(run_id)s", {"run_id": run_id}
            ).fetchone()
        ]
        rejects = reject_store.balance(conn, tables)
        gaps = offset_gaps(conn, tables, run_id)

    def balanced(row) -> bool:
        return row[0] == row[1] + row[2] + row[3]

    rows = [
        {
            "scope": scope,
            "batches": r[4],
            "consumed": r[0],
            "clean": r[1],
            "rejected": r[2],
            "duplicates": r[3],
            "balanced": balanced(r),
        }
        for scope, r in (("last run", this_run), ("total", total))
    ]
    problems = [
        f"{row['scope']}: {row['consumed']} consumed, {row['clean']} clean + {row['rejected']} rejected +"
        f" {row['duplicates']} duplicates"
        for row in rows
        if not row["balanced"]
    ]
    recovered = rejects["by_status"]["recovered"]
    if rejects["clean_cdrs_rows"] != rejects["ledger_clean"] + recovered:
        problems.append(
            f"clean_cdrs holds {rejects['clean_cdrs_rows']} rows, the ledger counts {rejects['ledger_clean']} clean"
            f" and replays recovered {recovered}"
        )
    if rejects["stored_rejects"] != rejects["ledger_rejected_and_duplicates"]:
        problems.append(
            f"the reject store holds {rejects['stored_rejects']} rejects and duplicates, the ledger counts"
            f" {rejects['ledger_rejected_and_duplicates']}"
        )
    if gaps:
        problems.append(f"{len(gaps)} offset gap(s) in the last run's batches (messages never consumed)")
    passed = balanced(total) and balanced(this_run) and not gaps and rejects["balanced"]
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(problems)
        if problems
        else f"in = clean + rejected + duplicates: {total[0]} consumed in total, {this_run[0]} by the last run",
        metadata={
            "balance": dg.MetadataValue.md(markdown_table(rows)),
            "clean_cdrs_rows": rejects["clean_cdrs_rows"],
            "ledger_clean": int(total[1]),
            "recovered_by_replay": recovered,
            "reject_store": dg.MetadataValue.md(
                markdown_table([{"status": k, "records": v} for k, v in rejects["by_status"].items()])
            ),
            "reject_store_rows": rejects["stored_rejects"],
            "ledger_rejected_and_duplicates": rejects["ledger_rejected_and_duplicates"],
            "offset_gaps": len(gaps),
            "first_gaps": dg.MetadataValue.md(markdown_table(gaps[:10])),
        },
    )


@dg.asset_check(
    asset=CLEAN_CDRS_KEY,
    description="No record id appears twice among the rows the last mediation run stored (the table's primary "
    "key keeps them unique against the older ones).",
)
def clean_cdrs_unique_record_id(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    tables = warehouse.mediation_tables()
    with warehouse.connect() as conn:
        scope, params = batches_of_run(conn, tables, _latest_run_id(context))
        repeated = conn.execute(
            f"select count(*) from (select record_id from {tables.clean} where {scope}"
            f" group by record_id having count(*) > 1) d",
            params,
        ).fetchone()[0]
    return dg.AssetCheckResult(passed=repeated == 0, metadata={"repeated_record_ids": repeated})


def _quoted(values) -> str:
    return ", ".join(f"'{v}'" for v in values)


def violations_sql() -> dict[str, str]:
    """Rule -> the predicate of the clean rows that break it, from the clean record's declaration."""
    rules = {
        "mandatory column null": " or ".join(f"{c.name} is null" for c in CLEAN_RECORD if not c.nullable),
        "unknown record_type": f"record_type not in ({_quoted(RECORD_TYPES)})",
        "technology not normalised": f"technology not in ({_quoted(TECHNOLOGIES)})",
        # E.164 in the form mediation writes: '+' then digits; no LIKE: the predicate runs with
        # parameters, where its '%' would be taken for a placeholder (left() both engines have)
        "msisdn not E.164": (
            "left(served_msisdn, 1) <> '+' or (other_msisdn is not null and left(other_msisdn, 1) <> '+')"
        ),
        "non-positive duration": "duration_s is not null and duration_s <= 0",
        "roaming not 0/1": "roaming not in (0, 1)",
    }
    for record_type, columns in CLEAN_REQUIRED_BY_TYPE.items():
        rules[f"{record_type} without {', '.join(columns)}"] = (
            f"record_type = '{record_type}' and ({' or '.join(f'{c} is null' for c in columns)})"
        )
    for record_type, columns in CLEAN_REQUIRED_WHEN_OUTGOING.items():
        rules[f"outgoing {record_type} without {', '.join(columns)}"] = (
            f"record_type = '{record_type}' and direction = 'outgoing'"
            f" and ({' or '.join(f'{c} is null' for c in columns)})"
        )
    return rules


@dg.asset_check(
    asset=CLEAN_CDRS_KEY,
    description="Mandatory columns are non-null and every value has "
    "its normalised form and type (E.164, 2G-5G, positive durations, ...), in the rows the last run stored.",
)
def clean_cdrs_complete_and_typed(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    counts = {}
    tables = warehouse.mediation_tables()
    with warehouse.connect() as conn:
        # the rows of the last run's batches, not the whole history (no run yet: every row)
        scope, params = batches_of_run(conn, tables, _latest_run_id(context))
        for rule, predicate in violations_sql().items():
            counts[rule] = conn.execute(
                f"select count(*) from {tables.clean} where {scope} and ({predicate})", params
            ).fetchone()[0]
    return dg.AssetCheckResult(
        passed=not any(counts.values()),
        metadata={
            "violations": dg.MetadataValue.md(markdown_table([{"rule": k, "rows": v} for k, v in counts.items()]))
        },
    )


@dg.asset_check(
    asset=ERROR_CDRS_KEY,
    description="The last run's rejection rate stays under "
    "the mediation resource's max_rejection_rate (CDR_MAX_REJECTION_RATE, default 10%); above it warns.",
)
def rejection_rate(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource, mediation_settings: MediationResource
) -> dg.AssetCheckResult:
    threshold = mediation_settings.max_rejection_rate
    run_id = _latest_run_id(context)
    tables = warehouse.mediation_tables()
    with warehouse.connect() as conn:
        rows_in, rejected = (
            int(v)
            for v in conn.execute(
                f"select coalesce(sum(rows_in), 0), coalesce(sum(rejected), 0) from {tables.ledger}"
                f" where run_id = %(run_id)s",
                {"run_id": run_id},
            ).fetchone()
        )
        by_reason: dict[str, int] = {}
        for (text,) in conn.execute(
            f"select rejected_by_reason from {tables.ledger} where run_id = %(run_id)s", {"run_id": run_id}
        ).fetchall():
            for k, v in json.loads(text).items():
                by_reason[k] = by_reason.get(k, 0) + v
    rate = rejected / rows_in if rows_in else 0.0
    return dg.AssetCheckResult(
        passed=rate <= threshold,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "rejection_rate": round(rate, 4),
            "threshold": threshold,
            "consumed": rows_in,
            "rejected": rejected,
            "by_reason": dg.MetadataValue.md(
                markdown_table([{"reason": k, "records": v} for k, v in sorted(by_reason.items())])
            ),
        },
    )


@dg.asset_check(
    asset=CLEAN_CDRS_KEY,
    description="raw-cdrs' offsets agree with what the mediation ledger consumed of it: the topic was not "
    "recreated or truncated, and no message expired unread (retention).",
)
def mediation_source_offsets_consistent(kafka: KafkaResource, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    topic = kafka.raw_cdrs_topic
    with warehouse.connect() as conn:
        consumed = consumed_offsets(conn, warehouse.mediation_tables(), topic)
    beginning = beginning_offsets(kafka.settings, topic)
    end = end_offsets(kafka.settings, topic)
    problems = offset_problems(beginning, end, consumed)
    rows = [
        {"partition": p, "oldest held": beginning.get(p), "end": end.get(p), "consumed up to": consumed.get(p)}
        for p in sorted(set(end) | set(consumed))
    ]
    return dg.AssetCheckResult(
        passed=not problems,
        metadata={
            "topic": topic,
            "offsets": dg.MetadataValue.md(markdown_table(rows)),
            "problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems) or "_(none)_"),
        },
    )
