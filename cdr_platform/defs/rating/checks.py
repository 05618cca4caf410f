"""Asset checks of rating: coverage, no negative cost, and a re-rate of a sample by the plain engine."""

from datetime import UTC, date
from decimal import Decimal

import dagster as dg

from cdr_platform.defs.rating.assets import RATING_CDRS_KEY
from cdr_platform.defs.resources import TariffResource, WarehouseResource
from cdr_platform.lib.markdown import markdown_table
from cdr_platform.lib.rating.cdr import rate_cdr
from cdr_platform.lib.rating.engine import NotRated
from cdr_platform.lib.rating.plan import ANY, TariffPlanError
from cdr_platform.lib.rating.store import load_tariff_from_warehouse

SAMPLE = 300


@dg.asset_check(
    asset=RATING_CDRS_KEY,
    description="Every clean CDR of the day rated (every rated day, in a run of no partition) is rated or in "
    "suspense, exactly once.",
)
def rating_covers_every_clean_cdr(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource, tariff: TariffResource
) -> dg.AssetCheckResult:
    t, clean, clock = warehouse.rating_tables(), warehouse.mediation_tables().clean, tariff.clock()
    # the run's own day: another day may have new clean CDRs that its own rating run is about to rate
    day = context.run.tags.get("dagster/partition")
    only_day = "where rating_day = %(day)s" if day else ""
    with warehouse.connect() as conn:
        rated = conn.execute(
            f"with r as (select rating_day as d, count(*) as n from {t.rated} {only_day} group by rating_day),"
            f" s as (select rating_day as d, count(*) as n from {t.suspense} {only_day} group by rating_day)"
            f" select coalesce(r.d, s.d), coalesce(r.n, 0), coalesce(s.n, 0) from r full join s on s.d = r.d",
            {"day": day} if day else None,
        ).fetchall()
        if day and not rated:  # a day without a clean CDR: nothing rated, nothing to cover
            rated = [(date.fromisoformat(day), 0, 0)]
        rows = []
        for rating_day, r, s in sorted(rated):  # a local day: its clean CDRs are those that start in its bounds
            start, end = clock.day_bounds_naive(rating_day)
            (c,) = conn.execute(
                f"select count(*) from {clean} where start_time >= %s and start_time < %s", (start, end)
            ).fetchone()
            rows.append((rating_day, c, r, s))
        overlap = conn.execute(
            f"select count(*) from {t.rated} r join {t.suspense} s on s.record_id = r.record_id"
        ).fetchone()[0]
    table = [{"day": str(d), "clean": c, "rated": r, "suspense": s, "covered": c == r + s} for d, c, r, s in rows]
    return dg.AssetCheckResult(
        passed=bool(rows) and all(x["covered"] for x in table) and overlap == 0,
        metadata={"days": dg.MetadataValue.md(markdown_table(table)), "in_both_rated_and_suspense": overlap},
    )


@dg.asset_check(asset=RATING_CDRS_KEY, description="No rated CDR has a negative cost or connect fee.")
def rating_no_negative_cost(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.connect() as conn:
        negative = conn.execute(
            f"select count(*) from {warehouse.rating_tables().rated} where cost < 0 or connect_fee < 0"
        ).fetchone()[0]
    return dg.AssetCheckResult(passed=negative == 0, metadata={"negative": negative})


@dg.asset_check(
    asset=RATING_CDRS_KEY,
    description=f"A random sample of {SAMPLE} rated CDRs, re-rated one by "
    "one by the plain engine from the warehouse tariff, gives identical costs.",
)
def rating_rerate_sample_matches(warehouse: WarehouseResource, tariff: TariffResource) -> dg.AssetCheckResult:
    t, clean = warehouse.rating_tables(), warehouse.mediation_tables().clean
    with warehouse.connect() as conn:
        engine = tariff.engine(load_tariff_from_warehouse(conn, t))
        sample = conn.execute(
            f"select r.record_id, r.cost, c.record_type, c.direction, c.served_operator_id, r.subject,"
            f" c.other_msisdn, c.technology, c.start_time, c.duration_s, c.data_volume_bytes"
            f" from {t.rated} r join {clean} c on c.record_id = r.record_id"
            f" order by random() fetch first {SAMPLE} rows only"
        ).fetchall()
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
            "sampled": len(sample),
            "mismatches": len(mismatches),
            "first_mismatches": dg.MetadataValue.md(markdown_table(mismatches[:10])),
        },
    )


@dg.asset_check(
    asset=dg.AssetKey(["tariffs", "tp_rating_profiles"]),
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
