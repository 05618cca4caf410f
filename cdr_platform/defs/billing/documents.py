"""The bills as documents: one PDF per bill of a month, under bills/<yyyy-mm>/ of the data folder
(cdr_platform.lib.billing.bills). Provisional for now - every month is billed as it goes - and
rendered again whenever the month's bills change (eager, after billing; the BI automation sensor
requests it). Its metadata lists the month's documents; each is checked against its bill's
totals before it is written."""

from datetime import date
from decimal import Decimal

import dagster as dg

from cdr_platform.defs.billing.assets import BILLING_MONTHS
from cdr_platform.defs.blocking_checks import stop_if_upstream_checks_failed
from cdr_platform.defs.resources import BillDocumentsResource, FilesResource, WarehouseResource
from cdr_platform.lib import asset_keys
from cdr_platform.lib.billing.bills import month_documents, month_folder, write_month_documents
from cdr_platform.lib.billing.cycles import closed_months
from cdr_platform.lib.markdown import markdown_table
from cdr_platform.utils.dagster_instance import STAGE_TAG

DOCUMENTS_GROUP = "documents"
BILL_DOCUMENTS_KEY = dg.AssetKey(asset_keys.BILL_DOCUMENTS)
SHOWN = 20  # documents listed in the metadata


@dg.asset(
    key=BILL_DOCUMENTS_KEY,
    deps=[dg.AssetKey(asset_keys.BILLING_CDRS), dg.AssetKey(asset_keys.INVOICE_LINES)],
    partitions_def=BILLING_MONTHS,
    group_name=DOCUMENTS_GROUP,
    kinds={"pdf"},
    automation_condition=dg.AutomationCondition.eager(),
    description="The month's bills as PDF documents (provisional: no number yet), one per bill, checked against "
    "the bill's totals; bills/<yyyy-mm>/ of the data folder.",
)
def bill_documents(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    files: FilesResource,
    bill_documents: BillDocumentsResource,
) -> dg.MaterializeResult:
    stop_if_upstream_checks_failed(context)
    month = date.fromisoformat(context.partition_key)
    with warehouse.connect() as conn:
        if month in closed_months(conn, warehouse.billing_schema):
            # issued: its documents are the numbered ones written at the close, never re-rendered
            return dg.MaterializeResult(
                metadata={
                    "folder": dg.MetadataValue.path(str(month_folder(files.path(), month))),
                    "documents": 0,
                    "closed": f"{month:%Y-%m} is closed: its issued documents were written at the close",
                }
            )
        documents = month_documents(
            conn, warehouse.billing_schema, month, bill_documents.operator(), issue_date=date.today()
        )
    written = write_month_documents(documents, files.path(), month)
    rows = [
        {
            "document": path.name,
            "type": document.title.lower(),
            "total": f"{document.gross_amount:,.2f} {document.currency}",
        }
        for document, path in zip(documents[:SHOWN], written.written)
    ]
    return dg.MaterializeResult(
        metadata={
            "folder": dg.MetadataValue.path(str(written.folder)),
            "documents": len(written.written),
            "removed": len(written.removed),
            "gross total": str(sum((d.gross_amount for d in documents), Decimal("0.00"))),
            "first documents": dg.MetadataValue.md(markdown_table(rows) if rows else "(no bills)"),
        }
    )


render_bill_documents_job = dg.define_asset_job(
    "render_bill_documents",
    selection=dg.AssetSelection.assets(BILL_DOCUMENTS_KEY),
    partitions_def=BILLING_MONTHS,
    description="Render one month's bills as PDF documents (provisional).",
    tags={STAGE_TAG: "bi"},
)
