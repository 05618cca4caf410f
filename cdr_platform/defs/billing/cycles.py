"""Closed billing cycles in Dagster: `billing/issued_invoices`, one partition per closed month
(cdr_platform.lib.billing.cycles).

Materializing a month's partition closes it: its bills and the pending adjustments of earlier
closed months are issued under gapless numbers, then rendered as PDFs under bills/<yyyy-mm>/ of
the data folder. Materializing a closed month again issues nothing. Nothing requests it by itself:
the job `close_billing_month` is run by hand (the Launchpad, or `cdr billing close`), or by the
schedule `close_billing_month_schedule`, off until an operator turns it on, which closes month M
on day CDR_BILLING_CLOSE_DAY of M+1. The check `billing_cycles_reconcile` (on billing_adjustments,
run with every billing build) holds per month: valued = issued + adjustments + open, to the cent.
Once billing_adjustments is rebuilt that is an identity (pending is the difference): what it catches
is an adjustments table out of date with the bills or the issued record (billing_cdrs built without
it, the record changed since) and documents issued for a month that is not closed. The dbt test
billing_issued_numbers_are_gapless catches a document taken out of a series.
"""

from datetime import UTC, date, datetime

import dagster as dg

from cdr_platform.defs.billing.assets import BILLING_MONTHS, billing_locks
from cdr_platform.defs.blocking_checks import stop_if_upstream_checks_failed
from cdr_platform.defs.resources import BillDocumentsResource, FilesResource, WarehouseResource
from cdr_platform.lib import asset_keys
from cdr_platform.lib.billing.bills import month_folder
from cdr_platform.lib.billing.cycles import (
    CloseRefused,
    billing_lock_name,
    close_month,
    issued_documents,
    reconcile,
    write_issued_documents,
)
from cdr_platform.lib.markdown import markdown_table
from cdr_platform.lib.settings import setting
from cdr_platform.lib.tariff_clock import TariffClock
from cdr_platform.lib.warehouse.dialects import DIALECTS
from cdr_platform.utils.dagster_instance import STAGE_TAG

CYCLES_GROUP = "billing_cycles"
ISSUED_INVOICES_KEY = dg.AssetKey(asset_keys.ISSUED_INVOICES)
BILLING_ADJUSTMENTS_KEY = dg.AssetKey(asset_keys.BILLING_ADJUSTMENTS)
SHOWN = 20  # documents listed in the metadata


def _reconciliation_table(months) -> str:
    return markdown_table(
        [
            {
                "month": f"{m.month:%Y-%m}",
                "status": "closed" if m.closed else "open",
                "valued": str(m.valued),
                "issued": str(m.issued),
                "adjusted since": str(m.adjusted),
                "pending": str(m.pending),
                "open": str(m.open),
                "difference": str(m.difference),
            }
            for m in months
        ]
    )


@dg.asset(
    key=ISSUED_INVOICES_KEY,
    deps=[
        BILLING_ADJUSTMENTS_KEY,
        dg.AssetKey(asset_keys.BILLING_CDRS),
        dg.AssetKey(asset_keys.INVOICE_LINES),
    ],
    partitions_def=BILLING_MONTHS,
    group_name=CYCLES_GROUP,
    kinds={"pdf"},
    description="A closed month's documents as issued: its bills and the pending adjustments of earlier closed "
    "months, numbered from gapless series per document type and year (billing.issued_invoices, "
    "billing.issued_invoice_lines), rendered as PDFs under bills/<yyyy-mm>/. Never rewritten; materializing a "
    "closed month again issues nothing.",
)
def issued_invoices(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    files: FilesResource,
    bill_documents: BillDocumentsResource,
) -> dg.MaterializeResult:
    stop_if_upstream_checks_failed(context)
    month = date.fromisoformat(context.partition_key)
    dialect = DIALECTS[warehouse.kind]
    today = TariffClock(setting("CDR_TARIFF_TIMEZONE")).local_date(datetime.now(UTC))  # the issue date
    with billing_locks(warehouse, [month]), warehouse.connect() as conn:
        try:
            result = close_month(
                conn,
                dialect=dialect,
                billing_schema=warehouse.billing_schema,
                rating_table=f"{warehouse.rating_schema}.rating_cdrs",
                month=month,
                issue_date=today,
                closed_by=f"dagster run {context.run_id}"[:64],
            )
        except CloseRefused as exc:
            raise dg.Failure(f"{month:%Y-%m} not closed: {exc}") from None
        documents = issued_documents(conn, warehouse.billing_schema, month, bill_documents.operator())
        months = reconcile(conn, warehouse.billing_schema)
    files_written = write_issued_documents(documents, month_folder(files.path(), month))
    context.log.info(result.summary())
    rows = [
        {"number": d.number, "type": d.document_type, "MSISDN": d.customer.msisdn, "total": str(d.gross_amount)}
        for d in documents[:SHOWN]
    ]
    return dg.MaterializeResult(
        metadata={
            "closed": "already closed: nothing issued" if result.already_closed else f"closed on {result.issue_date}",
            "documents": len(documents),
            "by type": dg.MetadataValue.json(dict(result.documents)),
            "numbers": dg.MetadataValue.md(
                markdown_table([{"type": k, "first": a, "last": b} for k, (a, b) in sorted(result.numbers.items())])
                if result.numbers
                else "(none issued now)"
            ),
            "adjustment lines": result.adjustments,
            "issued total": str(result.issued_total),
            "close seconds": round(result.seconds, 2),
            "folder": dg.MetadataValue.path(str(files_written.folder)),
            "pdfs written": len(files_written.written),
            "first documents": dg.MetadataValue.md(markdown_table(rows) if rows else "(none)"),
            "reconciliation": dg.MetadataValue.md(_reconciliation_table(months)),
        }
    )


close_billing_month_job = dg.define_asset_job(
    "close_billing_month",
    selection=dg.AssetSelection.assets(ISSUED_INVOICES_KEY),
    description="Close one billing month: issue its bills and the pending adjustments under gapless numbers.",
    tags={STAGE_TAG: "billing"},
)


def month_before(day: date) -> date:
    return date(day.year - (day.month == 1), (day.month - 2) % 12 + 1, 1)


@dg.schedule(
    name="close_billing_month_schedule",
    job=close_billing_month_job,
    cron_schedule=f"0 6 {setting('CDR_BILLING_CLOSE_DAY')} * *",
    execution_timezone=setting("CDR_TARIFF_TIMEZONE"),
    default_status=dg.DefaultScheduleStatus.STOPPED,  # closing issues documents: an operator turns it on
    description="Closes month M on day CDR_BILLING_CLOSE_DAY of M+1 at 06:00 local (off until turned on).",
)
def close_billing_month_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    month = month_before(context.scheduled_execution_time.date())
    return dg.RunRequest(run_key=f"close-{month:%Y-%m}", partition_key=month.isoformat())


@dg.asset_check(
    asset=BILLING_ADJUSTMENTS_KEY,
    description="Per billing month, to the cent: the bills as billing_cdrs values them now = what was issued at "
    "the close + the adjustments issued since + those pending (billing_adjustments); a month not closed is all "
    "open. Fails naming the months that do not reconcile.",
)
def billing_cycles_reconcile(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    # under the billing lock: no other month's build half done (its bills swapped, the adjustments not yet)
    with warehouse.exclusive(billing_lock_name(warehouse.billing_schema)), warehouse.connect() as conn:
        months = reconcile(conn, warehouse.billing_schema)
    broken = [m for m in months if m.difference != 0]
    return dg.AssetCheckResult(
        passed=not broken,
        description=(
            "every month reconciles: " + ", ".join(f"{m.month:%Y-%m} {m.valued}" for m in months)
            if not broken
            else "; ".join(f"{m.month:%Y-%m} off by {m.difference}" for m in broken)
        ),
        metadata={"months": dg.MetadataValue.md(_reconciliation_table(months) if months else "(no bills)")},
    )
