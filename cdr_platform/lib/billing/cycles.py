"""Closed billing cycles: a month issued once, under gapless numbers, and never rewritten.

A month is billed as it goes (dbt's billing_cdrs and invoice_lines, rebuilt whenever its rating
changes). Closing it (`cdr billing close --month YYYY-MM`, or the close_billing_month job) issues
it, in ONE transaction:

- every bill of the month becomes a document in billing.issued_invoices with its lines in
  billing.issued_invoice_lines, copied as they are: an invoice (INV-), a prepaid usage statement
  (STM-) or a credit note (CN-), numbered from a gapless series per document type and year of
  issue (INV-2026-000001, INV-2026-000002, ...). The series continues from the highest number
  issued; a close that fails issues nothing, so it leaves no gap; two closes cannot take the same
  number (a unique constraint, and the billing lock the caller holds);
- the adjustments pending for earlier closed months (dbt's billing_adjustments: what such a month
  is valued at now less what was issued for it) are issued with it: an amount the customer owes
  is an adjustment line on the subscriber's bill of this month (a document of its own when the
  subscriber has none this month), an amount in the customer's favour a credit note; each line
  names the invoice and month it adjusts and how many CDRs of that month came after its close
  (billing.billing_closed_batches: the last mediation batch the month's bills took in);
- billing.billing_closed_months records the close. Closing a closed month again changes nothing.

The issued tables are never updated; dbt never rebuilds them (their one definition is the dbt
macro billing_cycle_tables, run before billing_adjustments). What billing_cdrs says of a closed
month afterwards is its value now; the reconciliation (`reconcile`) holds per month to the cent:
valued = issued + adjustments issued since + adjustments pending, and an open month is all open.

A close is refused, changing nothing, when the month is not over on the issue date, when a month
before it that has bills is still open (months close in order, so "the next open bill" is well
defined), when the month has no bills, or when the month or a closed month is stale: rated CDRs
that their bills have not taken in yet (bill them first), or pending adjustments not yet worked
out again (run billing first). Every statement is portable SQL (PostgreSQL and SQL Server).
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from cdr_platform.lib.billing.bills import VAT_LINE_TYPES, quantity_shown
from cdr_platform.lib.billing.documents import (
    DOCUMENT_TYPE_OF_BILL,
    BillDocument,
    Customer,
    DocumentLine,
    Operator,
    format_period,
    write_pdf,
)
from cdr_platform.lib.warehouse import bulk_insert_columns, is_undefined_table
from cdr_platform.lib.warehouse.dialects import Dialect

SERIES_PREFIX = {"invoice": "INV", "statement": "STM", "credit_note": "CN"}
SEQUENCE_DIGITS = 6
ADJUSTMENT_LINES_FROM = 101  # a bill's own lines are 1-6; the adjustments it carries follow
ZERO = Decimal("0.00")

# the columns `close_month` writes; the tables themselves are dbt's macro billing_cycle_tables
ISSUED_INVOICE_COLUMNS = (
    "invoice_number",
    "document_type",
    "document_year",
    "sequence_number",
    "billing_month",
    "issue_date",
    "msisdn",
    "operator_id",
    "plan_id",
    "price_basis",
    "vat_rate",
    "currency",
    "provisional_number",
    "bill_amount_before_tax",
    "bill_vat_amount",
    "bill_total_amount",
    "adjustment_before_tax",
    "adjustment_vat",
    "adjustment_total",
    "amount_before_tax",
    "vat_amount",
    "total_amount",
    "rated_cdrs",
    "rated_cost",
    "closed_at",
)
ISSUED_LINE_COLUMNS = (
    "invoice_number",
    "line_number",
    "line_type",
    "description",
    "quantity",
    "unit",
    "amount",
    "vat_amount",
    "total_amount",
    "adjusts_invoice_number",
    "adjusts_month",
    "adjusts_document_type",
    "adjusts_cdrs",
)
CLOSED_MONTH_COLUMNS = (
    "billing_month",
    "issue_date",
    "closed_at",
    "closed_by",
    "documents",
    "issued_total",
    "rated_cdrs",
    "rated_cost",
)


class CloseRefused(Exception):
    """A close that would issue something wrong or out of order; nothing was issued."""


def billing_lock_name(billing_schema: str) -> str:
    """The lock every billing build and close of `billing_schema` holds (one at a time)."""
    return f"cdr-billing:{billing_schema}"


@contextlib.contextmanager
def billing_lock(conn, dialect: Dialect, billing_schema: str, *also: str):
    """Hold the billing lock on `conn`, then the locks named in `also` (the month's rating lock: no
    day of it swapped in meanwhile) - session locks: no billing build runs meanwhile."""
    names = [billing_lock_name(billing_schema), *also]
    for name in names:
        conn.execute(dialect.session_lock_sql(name))
    conn.commit()
    try:
        yield
    finally:
        conn.rollback()  # a failed statement leaves the transaction aborted: the unlocks must still run
        for name in reversed(names):
            conn.execute(dialect.session_lock_sql(name, release=True))
        conn.commit()


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def document_number(document_type: str, year: int, sequence: int) -> str:
    return f"{SERIES_PREFIX[document_type]}-{year}-{sequence:0{SEQUENCE_DIGITS}d}"


@dataclass
class Document:
    """A document being issued: its header row, its lines (the bill's own are copied in SQL)."""

    document_type: str
    msisdn: str
    operator_id: str | None
    plan_id: str | None
    price_basis: str
    vat_rate: Decimal
    currency: str
    provisional_number: str | None = None
    bill: tuple[Decimal, Decimal, Decimal] = (ZERO, ZERO, ZERO)  # before tax, VAT, total
    rated_cdrs: int = 0
    rated_cost: Decimal = Decimal(0)
    adjustments: list[dict] = field(default_factory=list)
    number: str = ""
    sequence: int = 0

    def adjustment_totals(self) -> tuple[Decimal, Decimal, Decimal]:
        vat = sum((a["vat_amount"] for a in self.adjustments), ZERO)
        total = sum((a["total_amount"] for a in self.adjustments), ZERO)
        return total - vat, vat, total


@dataclass(frozen=True)
class CloseResult:
    month: date
    issue_date: date
    already_closed: bool
    documents: dict[str, int]  # per document type
    numbers: dict[str, tuple[str, str]]  # per document type: the first and last number issued
    issued_total: Decimal
    adjustments: int  # adjustment lines issued (credit notes' included)
    seconds: float

    def summary(self) -> str:
        if self.already_closed:
            return f"{self.month:%Y-%m} was already closed: nothing issued"
        kinds = ", ".join(
            f"{count} {kind.replace('_', ' ')}{'s' if count != 1 else ''} ({self.numbers[kind][0]} to "
            f"{self.numbers[kind][1]})"
            for kind, count in sorted(self.documents.items())
        )
        return (
            f"closed {self.month:%Y-%m} on {self.issue_date}: {kinds or 'no documents'}; "
            f"{self.adjustments} adjustment line{'s' if self.adjustments != 1 else ''} of earlier months; "
            f"total issued {self.issued_total:,.2f} in {self.seconds:.1f} s"
        )


@dataclass(frozen=True)
class MonthReconciliation:
    """A month's bills, valued now, against what was issued and adjusted for them (to the cent)."""

    month: date
    closed: bool
    valued: Decimal  # billing_cdrs' total of the month, as it values the bills now
    issued: Decimal  # the month's bills as issued at its close
    adjusted: Decimal  # adjustments of the month issued since, on later documents
    pending: Decimal  # adjustments of the month waiting for the next close (billing_adjustments)

    @property
    def open(self) -> Decimal:
        return ZERO if self.closed else self.valued

    @property
    def difference(self) -> Decimal:
        """valued - (issued + adjusted + pending + open): zero when the month reconciles."""
        return self.valued - (self.issued + self.adjusted + self.pending + self.open)


def _by_month(conn, sql: str, params=None) -> dict[date, Decimal]:
    return {month: Decimal(total or 0) for month, total in conn.execute(sql, params or {}).fetchall()}


def reconcile(conn, billing_schema: str) -> list[MonthReconciliation]:
    """Per month: rated total (billing_cdrs' valuation) = issued + adjustments + open, to the cent."""
    s = billing_schema
    valued = _by_month(conn, f"select billing_month, sum(total_amount) from {s}.billing_cdrs group by billing_month")
    issued = _by_month(
        conn,
        f"select billing_month, sum(bill_total_amount) from {s}.issued_invoices "
        "where provisional_number is not null group by billing_month",
    )
    adjusted = _by_month(
        conn,
        f"select adjusts_month, sum(total_amount) from {s}.issued_invoice_lines "
        "where adjusts_month is not null group by adjusts_month",
    )
    pending = _by_month(
        conn, f"select adjusts_month, sum(total_amount) from {s}.billing_adjustments group by adjusts_month"
    )
    closed = {row[0] for row in conn.execute(f"select billing_month from {s}.billing_closed_months").fetchall()}
    months = sorted(set(valued) | set(issued) | set(adjusted) | set(pending) | closed)
    return [
        MonthReconciliation(
            month,
            month in closed,
            valued.get(month, ZERO),
            issued.get(month, ZERO),
            adjusted.get(month, ZERO),
            pending.get(month, ZERO),
        )
        for month in months
    ]


def closed_months(conn, billing_schema: str) -> list[date]:
    try:
        rows = conn.execute(f"select billing_month from {billing_schema}.billing_closed_months").fetchall()
    except Exception as exc:
        if is_undefined_table(exc):
            conn.rollback()
            return []
        raise
    return sorted(row[0] for row in rows)


def _stale_months(conn, billing_schema: str, rating_table: str, months: list[date]) -> list[str]:
    """The months among `months` whose bills did not take in what rating_cdrs holds now."""
    if not months:
        return []
    rated: dict[date, list] = defaultdict(lambda: [0, Decimal(0)])
    rows = conn.execute(
        f"select rating_day, count(*), sum(cost) from {rating_table} "
        "where rating_day >= %(first)s and rating_day < %(end)s group by rating_day",
        {"first": min(months), "end": next_month(max(months))},
    ).fetchall()
    for day, cdrs, cost in rows:
        month = date(day.year, day.month, 1)
        rated[month][0] += int(cdrs)
        rated[month][1] += Decimal(cost or 0)
    billed = {
        month: (int(cdrs or 0), Decimal(cost or 0))
        for month, cdrs, cost in conn.execute(
            f"select billing_month, sum(rated_cdrs), sum(rated_cost) from {billing_schema}.billing_cdrs "
            "where billing_month >= %(first)s and billing_month <= %(last)s group by billing_month",
            {"first": min(months), "last": max(months)},
        ).fetchall()
    }
    stale = []
    for month in months:
        now = tuple(rated[month]) if month in rated else (0, Decimal(0))
        took = billed.get(month, (0, Decimal(0)))
        if now != took:
            stale.append(
                f"{month:%Y-%m} (rated now {now[0]:,} CDRs, {now[1]}; its bills took in {took[0]:,}, {took[1]})"
            )
    return stale


def _month_bills(conn, billing_schema: str, month: date) -> list[Document]:
    rows = conn.execute(
        f"select msisdn, document_type, operator_id, plan_id, price_basis, vat_rate, currency, invoice_number, "
        f"amount_before_tax, vat_amount, total_amount, rated_cdrs, rated_cost from {billing_schema}.billing_cdrs "
        "where billing_month = %(month)s",
        {"month": month},
    ).fetchall()
    bills = []
    for row in rows:
        msisdn, kind, operator_id, plan_id, price_basis, vat_rate, currency, number, *amounts, cdrs, cost = row
        bills.append(
            Document(
                document_type=DOCUMENT_TYPE_OF_BILL[kind],
                msisdn=msisdn,
                operator_id=operator_id,
                plan_id=plan_id,
                price_basis=price_basis,
                vat_rate=Decimal(vat_rate),
                currency=currency,
                provisional_number=number,
                bill=tuple(Decimal(a) for a in amounts),
                rated_cdrs=int(cdrs or 0),
                rated_cost=Decimal(cost or 0),
            )
        )
    return bills


def _pending_adjustments(conn, billing_schema: str) -> list[dict]:
    columns = (
        "adjusts_month",
        "msisdn",
        "document_type",
        "adjusts_invoice_number",
        "operator_id",
        "price_basis",
        "vat_rate",
        "currency",
        "amount_before_tax",
        "vat_amount",
        "total_amount",
        "adjustment_document_type",
        "late_cdrs",
    )
    rows = conn.execute(
        f"select {', '.join(columns)} from {billing_schema}.billing_adjustments order by adjusts_month, msisdn"
    ).fetchall()
    return [dict(zip(columns, row, strict=True)) for row in rows]


def adjustment_description(adjustment: dict) -> str:
    """What an adjustment line says: the bill it corrects and the CDRs behind the difference."""
    month = f"{format_period(adjustment['adjusts_month']).split(' (')[0]}"
    cdrs = int(adjustment.get("late_cdrs") or 0)
    behind = f"{cdrs} CDR{'s' if cdrs != 1 else ''} received after its close" if cdrs else "re-billed after its close"
    original = adjustment.get("adjusts_invoice_number")
    if original:
        return f"Adjustment to {original} ({month}): {behind}"[:128]
    return f"Usage of {month} billed after its close: {behind}"[:128]


def _attach_adjustments(documents: list[Document], pending: list[dict]) -> None:
    """Each pending adjustment onto the subscriber's document of this close: a positive one onto
    the bill of the adjusted bill's type (a new document when there is none), a negative one onto
    the subscriber's credit note (one per subscriber)."""
    by_key = {(d.document_type, d.msisdn): d for d in documents}
    for adjustment in pending:
        kind = adjustment["adjustment_document_type"]
        key = (kind, adjustment["msisdn"])
        if key not in by_key:
            by_key[key] = Document(
                document_type=kind,
                msisdn=adjustment["msisdn"],
                operator_id=adjustment["operator_id"],
                plan_id=None,
                price_basis=adjustment["price_basis"],
                vat_rate=Decimal(adjustment["vat_rate"]),
                currency=adjustment["currency"],
            )
            documents.append(by_key[key])
        by_key[key].adjustments.append(adjustment)


def _number(conn, billing_schema: str, documents: list[Document], year: int) -> None:
    """Gapless numbers per document type for the year, continuing each series, in a fixed order."""
    highest = dict(
        conn.execute(
            f"select document_type, max(sequence_number) from {billing_schema}.issued_invoices "
            "where document_year = %(year)s group by document_type",
            {"year": year},
        ).fetchall()
    )
    documents.sort(key=lambda d: (d.document_type, d.msisdn))
    counters = {kind: int(highest.get(kind) or 0) for kind in SERIES_PREFIX}
    for document in documents:
        counters[document.document_type] += 1
        document.sequence = counters[document.document_type]
        document.number = document_number(document.document_type, year, document.sequence)


def _line_amount(adjustment: dict, document: Document) -> Decimal:
    """An adjustment line's amount as the document that carries it shows amounts: incl. VAT on a
    VAT-inclusive (gross) document, excl. VAT on a net one - whatever the adjusted bill's basis."""
    total, vat = Decimal(adjustment["total_amount"]), Decimal(adjustment["vat_amount"])
    return total if document.price_basis == "gross" else total - vat


def _refuse_documents_that_disagree(conn, billing_schema: str, month: date, numbers: list[str]) -> None:
    """Before the commit: every document being issued has lines, and its lines make its totals (as
    its PDF will show them) - bills whose lines were built from another version of the month (a
    billing build that stopped between its models) are refused, not issued for ever."""
    try:
        checked = issued_documents(conn, billing_schema, month, Operator(name="check"))
    except ValueError as exc:
        raise CloseRefused(f"a document would not match its lines ({exc}): bill the month again first") from None
    missing = sorted(set(numbers) - {d.number for d in checked})
    if missing:
        raise CloseRefused(
            f"{len(missing)} bills have no lines in invoice_lines (first {missing[0]}): bill the month again first"
        )


def close_month(
    conn,
    *,
    dialect: Dialect,
    billing_schema: str,
    rating_table: str,
    month: date,
    issue_date: date,
    closed_by: str,
    now: datetime | None = None,
) -> CloseResult:
    """Issue `month` (its first day), in one transaction of `conn`; the caller holds the billing
    lock (billing_lock). Raises CloseRefused, having issued nothing, when it must not close."""
    started = time.perf_counter()
    if month.day != 1:
        raise ValueError(f"a billing month is given by its first day, not {month}")
    if issue_date < next_month(month):
        raise CloseRefused(f"{month:%Y-%m} is not over on {issue_date}: a month closes from {next_month(month)} on")
    s = billing_schema
    closed_at = (now or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
    try:
        conn.execute(f"select count(*) from {s}.billing_adjustments").fetchone()
    except Exception as exc:
        if is_undefined_table(exc):
            conn.rollback()
            raise CloseRefused(
                f"{s}.billing_adjustments does not exist yet: bill the month first (`dbt build`, or the "
                "bill_cdrs job), which also creates the tables of issued documents"
            ) from None
        raise
    closed = closed_months(conn, s)
    conn.rollback()  # only read so far: the close is one transaction of its own
    if month in closed:
        return CloseResult(month, issue_date, True, {}, {}, ZERO, 0, time.perf_counter() - started)
    with conn.transaction():
        (last_issued,) = conn.execute(f"select max(issue_date) from {s}.billing_closed_months").fetchone()
        if last_issued is not None and issue_date < last_issued:
            raise CloseRefused(
                f"the issue date {issue_date} is before {last_issued}, the last close's: numbers and dates go together"
            )
        earlier_open = conn.execute(
            f"select min(billing_month) from {s}.billing_cdrs b where billing_month < %(month)s and not exists "
            f"(select 1 from {s}.billing_closed_months c where c.billing_month = b.billing_month)",
            {"month": month},
        ).fetchone()[0]
        if earlier_open is not None:
            raise CloseRefused(
                f"{earlier_open:%Y-%m} has bills and is still open: close it first (months close in order)"
            )
        documents = _month_bills(conn, s, month)
        if not documents:
            raise CloseRefused(f"{month:%Y-%m} has no bills: bill it first (the bill_cdrs job, partition {month})")
        stale = _stale_months(conn, s, rating_table, sorted({*closed, month}))
        if stale:
            raise CloseRefused(
                "bills that did not take in every rated CDR: " + "; ".join(stale) + ". Bill those months first."
            )
        breaks = [r for r in reconcile(conn, s) if r.closed and r.difference != 0]
        if breaks:
            raise CloseRefused(
                "the pending adjustments are out of date for "
                + ", ".join(f"{r.month:%Y-%m} (off by {r.difference})" for r in breaks)
                + ": run billing first (billing_adjustments)"
            )
        _attach_adjustments(documents, _pending_adjustments(conn, s))
        _number(conn, s, documents, issue_date.year)
        headers, lines = [], []
        for document in documents:
            adjustment = document.adjustment_totals()
            due = tuple(b + a for b, a in zip(document.bill, adjustment, strict=True))
            headers.append(
                (
                    document.number,
                    document.document_type,
                    issue_date.year,
                    document.sequence,
                    month,
                    issue_date,
                    document.msisdn,
                    document.operator_id,
                    document.plan_id,
                    document.price_basis,
                    document.vat_rate,
                    document.currency,
                    document.provisional_number,
                    *document.bill,
                    *adjustment,
                    *due,
                    document.rated_cdrs,
                    document.rated_cost,
                    closed_at,
                )
            )
            for offset, item in enumerate(document.adjustments):
                lines.append(
                    (
                        document.number,
                        ADJUSTMENT_LINES_FROM + offset,
                        "adjustment",
                        adjustment_description(item),
                        None,
                        None,
                        _line_amount(item, document),
                        Decimal(item["vat_amount"]),
                        Decimal(item["total_amount"]),
                        item["adjusts_invoice_number"],
                        item["adjusts_month"],
                        item["document_type"],
                        int(item["late_cdrs"] or 0),
                    )
                )
        bulk_insert_columns(conn, dialect, f"{s}.issued_invoices", ISSUED_INVOICE_COLUMNS, headers)
        # the bills' own lines, copied as invoice_lines holds them, under the issued numbers
        conn.execute(
            f"insert into {s}.issued_invoice_lines (invoice_number, line_number, line_type, description, quantity, "
            "unit, amount) select i.invoice_number, l.line_number, l.line_type, l.description, l.quantity, l.unit, "
            f"l.amount from {s}.invoice_lines l inner join {s}.issued_invoices i "
            "on i.provisional_number = l.invoice_number and i.billing_month = l.billing_month "
            "where l.billing_month = %(month)s and i.billing_month = %(month)s",
            {"month": month},
        )
        bulk_insert_columns(conn, dialect, f"{s}.issued_invoice_lines", ISSUED_LINE_COLUMNS, lines)
        _refuse_documents_that_disagree(conn, s, month, [d.number for d in documents])
        # every pending adjustment is issued now: they leave billing_adjustments with the close,
        # which the next billing build rebuilds from the issued record anyway
        conn.execute(f"delete from {s}.billing_adjustments")
        # the last mediation batch of each streaming query the month's bills took in: a CDR of a
        # later batch came after the close (billing_adjustments counts those behind a difference)
        conn.execute(
            f"insert into {s}.billing_closed_batches (billing_month, query_id, max_batch_id) "
            f"select %(month)s, query_id, max(batch_id) from {rating_table} "
            "where rating_day >= %(month)s and rating_day < %(end)s group by query_id",
            {"month": month, "end": next_month(month)},
        )
        issued_total = sum((Decimal(h[ISSUED_INVOICE_COLUMNS.index("total_amount")]) for h in headers), ZERO)
        conn.execute(
            f"insert into {s}.billing_closed_months ({', '.join(CLOSED_MONTH_COLUMNS)}) values "
            f"({', '.join(f'%({c})s' for c in CLOSED_MONTH_COLUMNS)})",
            {
                "billing_month": month,
                "issue_date": issue_date,
                "closed_at": closed_at,
                "closed_by": closed_by[:64],
                "documents": len(documents),
                "issued_total": issued_total,
                "rated_cdrs": sum(d.rated_cdrs for d in documents),
                "rated_cost": sum((d.rated_cost for d in documents), Decimal(0)),
            },
        )
    counts: dict[str, int] = defaultdict(int)
    numbers: dict[str, tuple[str, str]] = {}
    for document in documents:  # sorted by type, then MSISDN: each series in order
        counts[document.document_type] += 1
        first = numbers.get(document.document_type, (document.number, document.number))[0]
        numbers[document.document_type] = (first, document.number)
    return CloseResult(
        month,
        issue_date,
        False,
        dict(counts),
        numbers,
        issued_total,
        len(lines),
        time.perf_counter() - started,
    )


# -- the issued documents --------------------------------------------------------------------

_ISSUED_SQL = """
select i.invoice_number, i.document_type, i.issue_date, i.msisdn, i.plan_id, i.price_basis, i.vat_rate,
       i.currency, i.amount_before_tax, i.vat_amount, i.total_amount,
       l.line_number, l.line_type, l.description, l.quantity, l.unit, l.amount, l.vat_amount
from {schema}.issued_invoices i
join {schema}.issued_invoice_lines l on l.invoice_number = i.invoice_number
where i.billing_month = %(month)s
order by i.invoice_number, l.line_number
"""


def issued_documents(conn, billing_schema: str, month: date, operator: Operator) -> list[BillDocument]:
    """The documents issued at the close of `month`, as issued (each checked against its totals)."""
    documents: dict[str, dict] = {}
    rows = conn.execute(_ISSUED_SQL.format(schema=billing_schema), {"month": month}).fetchall()
    for (
        number,
        kind,
        issue_date,
        msisdn,
        plan_id,
        price_basis,
        vat_rate,
        currency,
        before_tax,
        vat,
        total,
        _line_number,
        line_type,
        description,
        quantity,
        unit,
        amount,
        line_vat,
    ) in rows:
        document = documents.setdefault(
            number,
            {
                "document_type": kind,
                "number": number,
                "issue_date": issue_date,
                "customer": Customer(msisdn=msisdn, plan=plan_id or "-"),
                "price_basis": price_basis,
                "vat_rate": Decimal(vat_rate),
                "currency": currency,
                "net_amount": Decimal(before_tax),
                "vat_amount": Decimal(vat),
                "gross_amount": Decimal(total),
                "lines": [],
            },
        )
        if line_type in VAT_LINE_TYPES:
            continue
        document["lines"].append(
            DocumentLine(
                description=description,
                amount=Decimal(amount),
                quantity=quantity_shown(quantity, unit),
                vat_amount=None if line_vat is None else Decimal(line_vat),
            )
        )
    return [
        BillDocument(provisional=False, period=month, operator=operator, **document) for document in documents.values()
    ]


@dataclass(frozen=True)
class IssuedFiles:
    folder: Path
    written: list[Path]  # rendered now
    kept: list[Path]  # already there: an issued document is written once, never again
    removed: list[Path]  # the month's provisional documents, replaced by the issued ones


def write_issued_documents(documents: list[BillDocument], folder: Path) -> IssuedFiles:
    """Each issued document into `folder` (bills/<yyyy-mm>/ of the data folder) as <number>.pdf,
    unless it is there already; then the folder's provisional documents go (the month is issued)."""
    written, kept = [], []
    for document in documents:
        target = Path(folder) / document.file_name
        if target.exists():
            kept.append(target)
        else:
            written.append(write_pdf(document, folder))
    removed = []
    for provisional in sorted(Path(folder).glob("provisional-*.pdf")) if Path(folder).exists() else []:
        provisional.unlink()
        removed.append(provisional)
    return IssuedFiles(Path(folder), written, kept, removed)
