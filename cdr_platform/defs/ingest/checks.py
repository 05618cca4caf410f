"""Asset checks of the ingest domain. Production has no `raw_cdrs_offsets_account_for_every_record`:
it checks what the synthetic generator recorded, and production's raw-cdrs is the network's
(an external asset, assets.py); hence the `@dg.definitions` function that picks them."""

import dagster as dg

from cdr_platform.defs.ingest.assets import RAW_CDRS_KEY
from cdr_platform.defs.resources import WarehouseResource
from cdr_platform.lib import asset_keys
from cdr_platform.lib.markdown import markdown_table
from cdr_platform.lib.reference import numbering_plan
from cdr_platform.lib.reference.tables import SUBSCRIBERS_TABLE
from cdr_platform.utils.environment_helpers import Environment, get_environment


@dg.asset_check(
    asset=dg.AssetKey(asset_keys.SUBSCRIBERS),
    description="Every subscriber MSISDN is unique, valid E.164, "
    "and carries the operator the numbering plan gives its number.",
)
def subscribers_match_numbering_plan(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.connect() as conn:
        rows = conn.execute(f"select msisdn, operator_id from {SUBSCRIBERS_TABLE.qualified}").fetchall()
    msisdns = [r[0] for r in rows]
    duplicates = len(msisdns) - len(set(msisdns))
    problems = []
    for msisdn, operator_id in rows:
        entry = numbering_plan.lookup(msisdn)
        if entry is None:
            problems.append({"msisdn": msisdn, "problem": "not a valid number of the plan"})
        elif entry.operator_id != operator_id:
            problems.append({"msisdn": msisdn, "problem": f"plan says {entry.operator_id}, table says {operator_id}"})
    return dg.AssetCheckResult(
        passed=bool(rows) and duplicates == 0 and not problems,
        metadata={
            "subscribers": len(rows),
            "duplicate_msisdns": duplicates,
            "invalid": len(problems),
            "first_problems": dg.MetadataValue.md(markdown_table(problems[:10])),
        },
    )


@dg.asset_check(
    asset=RAW_CDRS_KEY,
    description="The offsets the run advanced on raw-cdrs account "
    "for exactly the records it produced (no loss, no stray writes during the run).",
    blocking=False,
)
def raw_cdrs_offsets_account_for_every_record(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    event = context.instance.get_latest_materialization_event(RAW_CDRS_KEY)
    if event is None or event.asset_materialization is None:
        return dg.AssetCheckResult(passed=False, metadata={"reason": "raw_cdrs was never materialized"})
    meta = event.asset_materialization.metadata
    produced = meta["records"].value
    start, end = meta["start_offsets"].value, meta["end_offsets"].value
    advanced = sum(end[p] - start.get(p, 0) for p in end)
    return dg.AssetCheckResult(
        passed=advanced == produced,
        # Another producer writing at the same time also moves the offsets: warn, not fail.
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"records_produced": produced, "offsets_advanced": advanced},
    )


@dg.definitions
def ingest_checks() -> dg.Definitions:
    """The subscribers' check everywhere; the generator's offsets check where the generator is (local)."""
    checks = [subscribers_match_numbering_plan]
    if get_environment() is Environment.LOCAL:
        checks.append(raw_cdrs_offsets_account_for_every_record)
    return dg.Definitions(asset_checks=checks)
