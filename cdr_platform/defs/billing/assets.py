"""Billing: dbt's bills per subscriber and month (billing.billing_cdrs, billing.invoice_lines).

Monthly partitions in the operator's time zone: a day of rating_cdrs maps onto its month. A run
gives dbt the month's window as vars; the models replace exactly those months, so running a month
twice changes nothing, and a late CDR in a billed month re-bills that month (its rating day
changed, and the automation condition requests the month).
"""

import contextlib
from datetime import date
from functools import cache

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from cdr_platform.defs.blocking_checks import stop_if_upstream_checks_failed
from cdr_platform.defs.dbt.assets import run_dbt_build
from cdr_platform.defs.dbt.project import dbt_project
from cdr_platform.defs.dbt.translator import BILLING_GROUP, BILLING_TAG, TRANSLATOR
from cdr_platform.defs.resources import WarehouseResource
from cdr_platform.lib.billing.cycles import billing_lock_name
from cdr_platform.lib.settings import setting
from cdr_platform.utils.dagster_instance import STAGE_TAG

# the current month is a partition too (end_offset=1): it is billed as it goes, then closed
BILLING_MONTHS = dg.MonthlyPartitionsDefinition(
    start_date="2026-01-01", end_offset=1, timezone=setting("CDR_TARIFF_TIMEZONE")
)


def billing_window_vars(context: dg.AssetExecutionContext) -> dict[str, str]:
    """The months of this run as dbt vars: [start, end) local dates (one month, or a backfill's
    range). A run of the checks alone has no partition: they then check every month."""
    if not (context.has_partition_key or context.has_partition_key_range):  # the latter: ranged runs only
        return {}
    window = context.partition_time_window
    return {"billing_month_start": f"{window.start:%Y-%m-%d}", "billing_month_end": f"{window.end:%Y-%m-%d}"}


@contextlib.contextmanager
def billing_locks(warehouse: WarehouseResource, months: list[date]):
    """Hold what a billing build holds: the billing lock (one billing at a time), then each of its
    months' lock (no rating day of them swapped in meanwhile). The reconciliation check takes the
    same, so it reads the bills and the rating of one version of the months."""
    with contextlib.ExitStack() as locks:
        locks.enter_context(warehouse.exclusive(billing_lock_name(warehouse.billing_schema)))
        for month in months:
            locks.enter_context(warehouse.exclusive(warehouse.rating_tables().month_lock_name(month)))
        yield


def billing_months_of(context: dg.AssetExecutionContext) -> list[date]:
    """The first days of the run's months (none for a run of the checks alone)."""
    if not (context.has_partition_key or context.has_partition_key_range):
        return []
    return [date.fromisoformat(key) for key in context.partition_keys]


@cache
def billing_dbt_assets() -> dg.AssetsDefinition:
    """The billing models of the dbt project as one monthly-partitioned multi-asset (built from the
    manifest when the code location loads; cached, as the manifest is read once)."""
    project = dbt_project()

    @dbt_assets(
        manifest=project.manifest_path,
        project=project,
        dagster_dbt_translator=TRANSLATOR,
        select=f"tag:{BILLING_TAG}",
        partitions_def=BILLING_MONTHS,
        name="billing_dbt",
    )
    def billing_dbt(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource):
        """`dbt build` of the billing models for the run's months, their tests as checks."""
        # a month whose mediation does not balance, or a day of it not fully rated (the latest
        # evaluation of an upstream blocking check failed), is not billed: the run fails saying which
        stop_if_upstream_checks_failed(context)
        window = billing_window_vars(context)
        context.log.info(f"billing window {window or 'every month (no partition: checks alone)'}")
        # one billing run at a time: two months launched together would both create the tables on
        # a first run (and dbt's incremental build is not safe against that); and no rating day of
        # its months swapped in meanwhile, so the bills and their tests read one version of them
        with billing_locks(warehouse, billing_months_of(context)):
            yield from run_dbt_build(context, dbt, {**warehouse.dbt_vars(), **window})

    return billing_dbt


@dg.definitions
def billing_definitions() -> dg.Definitions:
    bill_cdrs = dg.define_asset_job(
        "bill_cdrs",
        selection=dg.AssetSelection.groups(BILLING_GROUP),
        description="Bill one month (billing_cdrs and invoice_lines) from its rated CDRs; replaces the month.",
        tags={STAGE_TAG: "billing"},
    )
    return dg.Definitions(assets=[billing_dbt_assets()], jobs=[bill_cdrs])
