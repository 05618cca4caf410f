"""The month's bills, read from the warehouse (dbt's `billing_cdrs` and `invoice_lines`), as
documents: one PDF per bill under the data folder (`bills/<yyyy-mm>/`).

A month not closed yet is provisional (billed as it goes, no number of its own): each document
is `provisional-<invoice|statement>-<msisdn>-<yyyy-mm>.pdf` (a subscriber who moved between prepaid
and postpaid within the month has both), rewritten whenever the month is billed again, and a bill
that is gone takes its document with it. Closing the month (lib/billing/cycles.py) writes the
numbered documents, once, and removes these.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

from cdr_platform.lib.billing.documents import (
    DOCUMENT_TYPE_OF_BILL,
    BillDocument,
    Customer,
    DocumentLine,
    Operator,
    write_pdf,
)

# invoice_lines' VAT lines: the document shows VAT in its totals
VAT_LINE_TYPES = ("vat", "vat_included")

_BILLS_SQL = """
select b.msisdn, b.plan_id, b.document_type, b.price_basis, b.vat_rate, b.currency,
       b.amount_before_tax, b.vat_amount, b.total_amount, b.invoice_number,
       l.line_number, l.line_type, l.description, l.quantity, l.unit, l.amount
from {schema}.billing_cdrs b
join {schema}.invoice_lines l on l.invoice_number = b.invoice_number and l.billing_month = b.billing_month
where b.billing_month = %(month)s
order by b.invoice_number, l.line_number
"""


def quantity_shown(quantity: Decimal | None, unit: str | None) -> str:
    """A line's quantity as a document shows it: 1,234.50 min; empty when there is none."""
    if quantity is None:
        return ""
    return f"{quantity:,.2f} {unit or ''}".strip()


def month_documents(conn, billing_schema: str, month: date, operator: Operator, issue_date: date) -> list[BillDocument]:
    """The provisional documents of `month`'s bills, each checked against its bill: a document whose
    lines do not add up to the bill's totals is refused (ValueError), never written."""
    rows = conn.execute(_BILLS_SQL.format(schema=billing_schema), {"month": month}).fetchall()
    bills: dict[str, dict] = {}
    for (
        msisdn,
        plan_id,
        document_type,
        price_basis,
        vat_rate,
        currency,
        before_tax,
        vat,
        total,
        invoice_number,
        _line_number,
        line_type,
        description,
        quantity,
        unit,
        amount,
    ) in rows:
        bill = bills.setdefault(
            invoice_number,
            {
                "customer": Customer(msisdn=msisdn, plan=plan_id or "unknown plan"),
                "document_type": DOCUMENT_TYPE_OF_BILL[document_type],
                "price_basis": price_basis,
                "vat_rate": Decimal(vat_rate),
                "currency": currency,
                "net_amount": Decimal(before_tax),
                "vat_amount": Decimal(vat),
                "gross_amount": Decimal(total),
                "lines": [],
            },
        )
        if line_type not in VAT_LINE_TYPES:
            bill["lines"].append(
                DocumentLine(description=description, amount=Decimal(amount), quantity=quantity_shown(quantity, unit))
            )
    return [
        BillDocument(provisional=True, number=None, issue_date=issue_date, period=month, operator=operator, **bill)
        for bill in bills.values()
    ]


@dataclass(frozen=True)
class WrittenDocuments:
    folder: Path
    written: list[Path]
    removed: list[Path]  # documents of bills that are no longer there


def month_folder(data_dir: Path, month: date) -> Path:
    return Path(data_dir) / "bills" / f"{month:%Y-%m}"


def write_month_documents(documents: list[BillDocument], data_dir: Path, month: date) -> WrittenDocuments:
    """Write the month's provisional documents into bills/<yyyy-mm>/ of the data folder, and remove
    the provisional documents of bills the month no longer has (a numbered document is never
    touched)."""
    folder = month_folder(data_dir, month)
    written = [write_pdf(document, folder) for document in documents]
    keep = {path.name for path in written}
    removed = []
    for stale in sorted(folder.glob(f"provisional-*-{month:%Y-%m}.pdf")) if folder.exists() else []:
        if stale.name not in keep:
            stale.unlink()
            removed.append(stale)
    return WrittenDocuments(folder, written, removed)
