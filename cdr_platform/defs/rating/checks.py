"""Asset checks of rating: coverage, no negative cost, and a re-rate of a sample by the plain engine."""

from datetime import UTC, date, datetime
from decimal import Decimal

import dagster as dg

from cdr_platform.defs.blocking_checks import partition_metadata, run_partition_keys
from cdr_platform.defs.rating.assets import RATING_CDRS_KEY, RATING_DAYS
from cdr_platform.defs.resources import TariffResource, WarehouseResource
from cdr_platform.lib import asset_keys
from cdr_platform.lib.markdown import markdown_table
from cdr_platform.lib.mediation.store import MediationTables
from cdr_platform.lib.rating.cdr import rate_cdr
from cdr_platform.lib.rating.engine import NotRated
from cdr_platform.lib.rating.plan import ANY, TariffPlanError
from cdr_platform.lib.rating.store import RatingTables, load_tariff_from_warehouse

SAMPLE = 300


def days_checked(context: dg.AssetCheckExecutionContext) -> list[date] | None:
    """The rating days a check judges: its run's (a rating run rates one day); None in a run of
    no partition (a run of the checks alone)."""
    keys = run_partition_keys(context.run.tags, RATING_DAYS)
    return None if keys is None else [date.fromisoformat(key) for key in keys]


def run_started(context: dg.AssetCheckExecutionContext) -> datetime:
    """When the check's run started (naive UTC, as the warehouse keeps time): a rating run reads
    the clean CDRs after it."""
    record = context.instance.get_run_record_by_id(context.run.run_id)
    started = record.start_time if record and record.start_time else None
    return (datetime.fromtimestamp(started, UTC) if started else datetime.now(UTC)).replace(tzinfo=None)


def day_counts_sql(rating: RatingTables) -> str:
    """A day's rated CDRs, those in suspense, and those in both (a record is rated on the day it
    starts, in either table: the day's partitions alone), in one statement."""
    return (
        f"select (select count(*) from {rating.rated} where rating_day = %(day)s),"
        f" (select count(*) from {rating.suspense} where rating_day = %(day)s),"
        f" (select count(*) from {rating.rated} r join {rating.suspense} s on s.record_id = r.record_id"
        f" where r.rating_day = %(day)s and s.rating_day = %(day)s)"
    )


def day_clean_sql(mediation: MediationTables) -> str:
    """A day's clean CDRs (those that start in its UTC bounds), and how many of them came in
    batches the ledger committed after `started` (the rating run's start: it may have read them
    or not; the next rating run of the day, which the mediation run that stored them requests,
    rates them), in one statement: one snapshot of both."""
    return (
        f"select count(*), coalesce(sum(case when p.batch_id is null then 0 else 1 end), 0)"
        f" from {mediation.clean} c left join (select query_id, batch_id from {mediation.ledger}"
        f" where committed_at >= %(started)s) p on p.query_id = c.query_id and p.batch_id = c.batch_id"
        f" where c.start_time >= %(start)s and c.start_time < %(end)s"
    )


def every_rated_day_sql(rating: RatingTables) -> str:
    """Per day that has rated or suspended CDRs: how many of each (a run of no partition)."""
    return (
        f"with r as (select rating_day as d, count(*) as n from {rating.rated} group by rating_day),"
        f" s as (select rating_day as d, count(*) as n from {rating.suspense} group by rating_day)"
        f" select coalesce(r.d, s.d), coalesce(r.n, 0), coalesce(s.n, 0) from r full join s on s.d = r.d"
    )


def coverage_problem(day: dict) -> str:
    """What is wrong with a day's coverage, in words (clean, arriving, rated, suspense, in both)."""
    problems = []
    accounted = day["rated"] + day["suspense"]
    if accounted > day["clean"]:
        problems.append(f"{accounted - day['clean']} rated or suspended CDR(s) more than its clean CDRs")
    elif accounted < day["clean"] - day["arriving"]:
        problems.append(f"{day['clean'] - day['arriving'] - accounted} clean CDR(s) neither rated nor in suspense")
    if day["in both"]:
        problems.append(f"{day['in both']} CDR(s) both rated and in suspense")
    counts = f"{day['clean']} clean ({day['arriving']} arriving), {day['rated']} rated, {day['suspense']} in suspense"
    return f"{' and '.join(problems)} ({counts})"


@dg.asset_check(
    asset=RATING_CDRS_KEY,
    blocking=True,
    description="Every clean CDR of the day rated (every rated day, in a run of no partition) is rated or in "
    "suspense, exactly once; clean CDRs committed after the rating run started are its next run's (they count "
    "as arriving). Blocking: a failure stops billing the day's month, the marts and BI until it passes again.",
)
def rating_covers_every_clean_cdr(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource, tariff: TariffResource
) -> dg.AssetCheckResult:
    rating, mediation, clock = warehouse.rating_tables(), warehouse.mediation_tables(), tariff.clock()
    # the run's own day: another day may have new clean CDRs that its own rating run is about to rate
    days = days_checked(context)
    started = run_started(context)
    rows = []
    with warehouse.connect() as conn:
        if days is None:  # a run of the checks alone: every rated day
            days = sorted({d for d, _, _ in conn.execute(every_rated_day_sql(rating)).fetchall()})
        for day in days:
            rated, suspense, both = conn.execute(day_counts_sql(rating), {"day": day}).fetchone()
            start, end = clock.day_bounds_naive(day)  # a local day: its clean CDRs start in its bounds
            clean, arriving = conn.execute(
                day_clean_sql(mediation), {"start": start, "end": end, "started": started}
            ).fetchone()
            rows.append((day, int(clean), int(arriving), int(rated), int(suspense), int(both)))
    table = [
        {
            "day": str(d),
            "clean": c,
            "arriving": a,
            "rated": r,
            "suspense": s,
            "in both": b,
            "covered": c - a <= r + s <= c and b == 0,
        }
        for d, c, a, r, s, b in rows
    ]
    failed = [x for x in table if not x["covered"]]
    if not table:
        description = "no rated day to check"
    elif failed:
        description = "; ".join(f"{x['day']}: {coverage_problem(x)}" for x in failed[:5])
    else:
        description = (
            f"every clean CDR of {', '.join(x['day'] for x in table[:5])}{' ...' if len(table) > 5 else ''} rated"
            f" ({sum(x['rated'] for x in table)}) or in suspense ({sum(x['suspense'] for x in table)}),"
            f" {sum(x['arriving'] for x in table)} arriving"
        )
    return dg.AssetCheckResult(
        passed=bool(table) and not failed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata={
            "days": dg.MetadataValue.md(markdown_table(table)),
            "in_both_rated_and_suspense": sum(x["in both"] for x in table),
            "counted_committed_before_utc": str(started),
            **partition_metadata([x["day"] for x in table], [x["day"] for x in failed]),
        },
    )


def _day_range(days: list[date]) -> dict:
    return {"first": min(days), "last": max(days)}


@dg.asset_check(
    asset=RATING_CDRS_KEY,
    description="No rated CDR of the day (of every day, in a run of no partition) has a negative cost or connect fee.",
)
def rating_no_negative_cost(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    days = days_checked(context)
    of_days = "rating_day >= %(first)s and rating_day <= %(last)s and " if days else ""
    with warehouse.connect() as conn:
        negative = conn.execute(
            f"select count(*) from {warehouse.rating_tables().rated} where {of_days}(cost < 0 or connect_fee < 0)",
            _day_range(days) if days else None,
        ).fetchone()[0]
    return dg.AssetCheckResult(
        passed=negative == 0, metadata={"negative": negative, "days": ", ".join(map(str, days or [])) or "every day"}
    )


def sample_sql(rating: RatingTables, clean: str, dialect) -> str:
    """SAMPLE rated CDRs of the days, drawn at random (the dialect's shuffling order) from the
    days' rating partitions, then joined to their clean records: valid T-SQL and PostgreSQL."""
    return (
        f"select r.record_id, r.cost, c.record_type, c.direction, c.served_operator_id, r.subject,"
        f" c.other_msisdn, c.technology, c.start_time, c.duration_s, c.data_volume_bytes"
        f" from (select record_id, cost, subject from {rating.rated}"
        f" where rating_day >= %(first)s and rating_day <= %(last)s"
        f" order by {dialect.random_order} offset 0 rows fetch next {SAMPLE} rows only) r"
        f" join {clean} c on c.record_id = r.record_id"
    )


def _latest_rated_day(context: dg.AssetCheckExecutionContext) -> list[date] | None:
    """The day of rating_cdrs' latest materialization (what a run of the checks alone samples)."""
    event = context.instance.get_latest_materialization_event(RATING_CDRS_KEY)
    partition = event.dagster_event.partition if event and event.dagster_event else None
    return [date.fromisoformat(partition)] if partition else None


@dg.asset_check(
    asset=RATING_CDRS_KEY,
    description=f"A random sample of {SAMPLE} rated CDRs of the day (in a run of no partition: of the day rated "
    "last), re-rated one by one by the plain engine from the warehouse tariff, gives identical costs.",
)
def rating_rerate_sample_matches(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource, tariff: TariffResource
) -> dg.AssetCheckResult:
    t, clean = warehouse.rating_tables(), warehouse.mediation_tables().clean
    days = days_checked(context) or _latest_rated_day(context)
    sample, engine = [], None
    with warehouse.connect() as conn:
        if days:
            sample = conn.execute(sample_sql(t, clean, warehouse.dialect), _day_range(days)).fetchall()
        if sample:  # the tariff as the warehouse holds it, to re-rate them with
            engine = tariff.engine(load_tariff_from_warehouse(conn, t))
    mismatches = []
    for record_id, stored, rtype, direction, operator, subject, other, tech, start, duration, volume in sample:
        segment = None if subject == ANY else subject  # the subject rated under is the segment, or *any
        try:
            cost = rate_cdr(
                engine,
                record_type=rtype,
                direction=direction,
                served_operator_id=operator,
                segment=segment,
                other_msisdn=other,
                technology=tech,
                start_time=start.replace(tzinfo=UTC),
                duration_s=duration,
                data_volume_bytes=volume,
            ).cost
        except NotRated as exc:
            cost = f"not rated: {exc.reason}"
        if not isinstance(cost, Decimal) or cost != stored:
            mismatches.append({"record_id": record_id, "stored": str(stored), "re-rated": str(cost)})
    return dg.AssetCheckResult(
        passed=bool(sample) and not mismatches,
        metadata={
            "days": ", ".join(map(str, days or [])) or "none rated",
            "sampled": len(sample),
            "mismatches": len(mismatches),
            "first_mismatches": dg.MetadataValue.md(markdown_table(mismatches[:10])),
        },
    )


@dg.asset_check(
    asset=dg.AssetKey(asset_keys.tariff_seed("tp_rating_profiles")),
    description="The seeded tariff loads as "
    "one consistent plan: no broken reference, malformed duration or true ambiguity.",
)
def tariff_plan_is_consistent(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    try:
        with warehouse.connect() as conn:
            plan = load_tariff_from_warehouse(conn, warehouse.rating_tables())
    except TariffPlanError as exc:
        return dg.AssetCheckResult(
            passed=False, metadata={"file": exc.file, "line": exc.line or 0, "reason": exc.reason}
        )
    return dg.AssetCheckResult(
        passed=True,
        metadata={
            "rating_plans": len(plan.rating_plans),
            "rating_profiles": len(plan.rating_profiles),
            "destinations": len(plan.destinations),
        },
    )
