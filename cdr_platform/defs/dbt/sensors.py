"""Rebuild the marts, all together, once what they read has changed and no billing is pending.

The marts are one graph (facts join their dimensions, a relationship test reads both), so they
are built in one dbt run, not asset by asset as automation conditions would request them: a
fact built before its dimension exists fails. This sensor watches every asset the marts read
(mediation, rating, billing, the reference data and seeds); when one has a new materialization
it requests build_marts once, unless a billing run or a marts build is queued or running: the
bills are about to change, and the marts wait for them rather than show a month's rating against
its older bills; or unless the latest evaluation of a blocking check upstream (mediation's
balance, a day's rating coverage, a month's reconciliation) failed: it skips naming the check,
and builds once that check passes again. Other runs (mediation, rating) do not hold the marts
back: under live traffic one nearly always runs, and waiting for a quiet pipeline starved the
marts. Until a first month is billed there is nothing to show (the marts read the bills), and it
says so.
"""

import json

import dagster as dg

from cdr_platform.defs.blocking_checks import sensor_stop_reason
from cdr_platform.defs.dbt.assets import MARTS_GROUP, build_marts_job, warehouse_dbt_assets
from cdr_platform.lib import asset_keys
from cdr_platform.lib.settings import setting
from cdr_platform.utils.dagster_instance import STAGE_TAG

BILLING_CDRS_KEY = dg.AssetKey(asset_keys.BILLING_CDRS)
IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]
# the runs the marts wait for, by their pipeline stage: what changes the bills (the bill_cdrs job,
# and the automation sensor's runs, which Dagster names __ASSET_JOB), and a build of the marts
MARTS_WAIT_FOR_STAGES = ("billing", "marts")


def marts_keys() -> set[dg.AssetKey]:
    """The marts' asset keys."""
    return {spec.key for spec in warehouse_dbt_assets().specs if spec.group_name == MARTS_GROUP}


def marts_inputs() -> list[dg.AssetKey]:
    """Every asset the marts read that is not a mart, from the dbt project's graph."""
    assets = warehouse_dbt_assets()
    marts = marts_keys()
    read = {dep.asset_key for spec in assets.specs if spec.key in marts for dep in spec.deps} - marts
    # and the issued documents (fct_issued_documents), which dbt reads without a source of its own
    return sorted(read | {dg.AssetKey(asset_keys.ISSUED_INVOICES)}, key=str)


@dg.sensor(
    job=build_marts_job,
    minimum_interval_seconds=setting("CDR_SENSOR_INTERVAL_S"),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Rebuilds all the marts in one dbt run (job build_marts) once anything they read has a new "
    "materialization and no billing run or marts build is queued or in progress.",
)
def marts_sensor(context: dg.SensorEvaluationContext):
    inputs = marts_inputs()
    seen: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
    latest: dict[str, int] = {}
    for key in inputs:
        records = context.instance.fetch_materializations(key, limit=1, ascending=False).records
        if records:
            latest[key.to_user_string()] = records[0].storage_id
    changed = sorted(k for k, storage_id in latest.items() if storage_id > seen.get(k, 0))
    if not changed:
        return dg.SkipReason("nothing the marts read has changed since they were last requested")
    if BILLING_CDRS_KEY.to_user_string() not in latest:
        return dg.SkipReason("no month is billed yet: the marts read the bills (waiting for billing)")
    for stage in MARTS_WAIT_FOR_STAGES:
        running = context.instance.get_runs(
            filters=dg.RunsFilter(tags={STAGE_TAG: stage}, statuses=IN_PROGRESS), limit=1
        )
        if running:
            return dg.SkipReason(f"waiting for run {running[0].run_id} ({stage}: {running[0].job_name}) to finish")
    # every day and month the marts read must have passed the blocking checks upstream (mediation's
    # balance, each day's rating coverage, each month's reconciliation): the cursor stays, so they
    # are rebuilt once the failed check passes again
    stopped = sensor_stop_reason(context, marts_keys())
    if stopped:
        return dg.SkipReason(stopped)
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key="marts@" + ",".join(f"{k}:{v}" for k, v in sorted(latest.items())),
                tags={"cdr/changed": ", ".join(changed)[:200]},
            )
        ],
        cursor=json.dumps(latest, sort_keys=True),
    )
