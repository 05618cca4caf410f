"""One bill as a PDF document: an invoice (postpaid, business), a usage statement (prepaid) or a
credit note, final or provisional (the current month, billed as it goes: no number yet).

What a document holds mirrors dbt's billing models (dbt_project/models/billing/): `billing_cdrs`
gives the bill (subscriber, month, plan, price basis, VAT rate, currency, amount before tax, VAT,
total), `invoice_lines` its lines. The lines of a document are the bill's lines other than VAT
(invoice_lines' `vat` / `vat_included` line: the document shows VAT in its totals).

Totals are worked out exactly as `billing_cdrs` works them out (README "Billing (dbt)",
Rounding), in Decimal, rounded half up (away from zero, as SQL's round() on decimals):

- each line's amount is rounded to the cent once (the models round each usage line and the
  allowance credit once; the fee is in cents already), and the totals add the rounded lines;
- a net bill (price basis `net`: postpaid, business; lines excl. VAT):
  net = sum of lines, VAT = round(net x rate, 2), gross = net + VAT;
- a VAT-inclusive bill (price basis `gross`: prepaid statements, whose lines include VAT):
  gross = sum of lines, VAT = round(gross x rate / (1 + rate), 2), net = gross - VAT.

Totals passed in (the bill's amount_before_tax, vat_amount, total_amount) are checked against the
lines, and a document whose totals disagree with its lines is refused (ValueError naming the
difference): a document never says something other than its bill.

The PDF is deterministic: ReportLab's invariant mode (fixed timestamps and document id) and no
input but the document, so a re-render of an issued document is byte-identical to the first one.
Fonts are PDF's standard Helvetica (not embedded): Latin-1 text only.

This module only renders one: lib/billing/bills.py makes the provisional documents of a month,
lib/billing/cycles.py the issued ones of a closed month.
"""

from __future__ import annotations

import decimal
import os
import re
import tempfile
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from io import BytesIO
from pathlib import Path
from typing import Literal
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

DocumentType = Literal["invoice", "statement", "credit_note"]
PriceBasis = Literal["net", "gross"]

DOCUMENT_TYPES: tuple[str, ...] = ("invoice", "statement", "credit_note")
PRICE_BASES: tuple[str, ...] = ("net", "gross")
TITLES = {"invoice": "INVOICE", "statement": "STATEMENT", "credit_note": "CREDIT NOTE"}
# billing_cdrs.document_type -> the document's type
DOCUMENT_TYPE_OF_BILL = {"invoice": "invoice", "usage_statement": "statement"}

CENT = Decimal("0.01")
# SQL's widest decimal: enough that no intermediate result is rounded before the cent
_CONTEXT = decimal.Context(prec=38, rounding=ROUND_HALF_UP)
_MSISDN = re.compile(r"\+?[0-9]{3,15}")
_NUMBER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # also the file's name: no path, no spaces
_CURRENCY = re.compile(r"[A-Z]{3}")
_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip


def to_cent(amount: Decimal) -> Decimal:
    """Rounded half up (away from zero) to the cent, as the models' to_bill_amount; never -0.00."""
    if not isinstance(amount, Decimal | int) or isinstance(amount, bool):
        raise TypeError(f"an amount is a Decimal (or int), not {type(amount).__name__}: {amount!r}")
    if not Decimal(amount).is_finite():
        raise ValueError(f"an amount is a finite number, not {amount}")
    rounded = Decimal(amount).quantize(CENT, rounding=ROUND_HALF_UP, context=_CONTEXT)
    return rounded.copy_abs() if rounded.is_zero() else rounded


def format_amount(amount: Decimal) -> str:
    """Two decimals, a thousands separator, a minus sign when negative: -1,234.50."""
    return f"{to_cent(amount):,.2f}"


def format_rate(rate: Decimal) -> str:
    """A VAT rate as a percentage, no trailing zeros: 0.2000 -> 20%, 0.055 -> 5.5%."""
    percent = (rate * 100).normalize()
    return f"{percent:f}%"


def format_period(month: date) -> str:
    """November 2026 (2026-11-01 to 2026-11-30)."""
    next_month = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    last_day = date.fromordinal(next_month.toordinal() - 1)
    return f"{_MONTHS[month.month - 1]} {month.year} ({month.isoformat()} to {last_day.isoformat()})"


@dataclass(frozen=True, kw_only=True)
class DocumentLine:
    """A line of the bill: its description, the quantity as shown (with its unit, e.g.
    "125.50 min"; may be empty) and its amount - excl. VAT on a net bill, VAT included on a
    VAT-inclusive one (as invoice_lines holds it). The amount is rounded half up to the cent
    once; a credit (the allowance) is negative."""

    description: str
    amount: Decimal
    quantity: str = ""
    # a line with a VAT of its own: an adjustment of an issued bill, the difference of that bill's
    # VAT then and now (exact to the cent), not worked out again from the rate
    vat_amount: Decimal | None = None

    def __post_init__(self) -> None:
        if not self.description.strip():
            raise ValueError("a document line needs a description")
        object.__setattr__(self, "amount", to_cent(self.amount))
        if self.vat_amount is not None:
            object.__setattr__(self, "vat_amount", to_cent(self.vat_amount))


@dataclass(frozen=True, kw_only=True)
class Operator:
    """Who issues the document: the operator's name and postal address (one line each)."""

    name: str
    address: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("the operator needs a name")
        object.__setattr__(self, "address", tuple(self.address))


def issuer(name: str, address: str) -> Operator:
    """The operator from its settings: CDR_INVOICE_ISSUER_NAME, CDR_INVOICE_ISSUER_ADDRESS (lines
    separated by `|`)."""
    return Operator(name=name, address=tuple(line.strip() for line in address.split("|") if line.strip()))


@dataclass(frozen=True, kw_only=True)
class Customer:
    """Whom the document is for: the MSISDN, the name when known, the plan."""

    msisdn: str
    plan: str
    name: str | None = None

    def __post_init__(self) -> None:
        if not _MSISDN.fullmatch(self.msisdn):
            raise ValueError(f"not an MSISDN: {self.msisdn!r}")

    @property
    def msisdn_digits(self) -> str:
        return self.msisdn.removeprefix("+")


@dataclass(frozen=True)
class Totals:
    net: Decimal
    vat: Decimal
    gross: Decimal


def compute_totals(lines: tuple[DocumentLine, ...], vat_rate: Decimal, price_basis: PriceBasis) -> Totals:
    """The totals of the lines, as billing_cdrs works them out (see the module's docstring); the
    lines with a VAT of their own (adjustments) add their amount and their VAT as they are."""
    with decimal.localcontext(_CONTEXT):
        charged = sum((to_cent(line.amount) for line in lines if line.vat_amount is None), Decimal("0.00"))
        adjusted = sum((line.amount for line in lines if line.vat_amount is not None), Decimal("0.00"))
        adjusted_vat = sum((line.vat_amount for line in lines if line.vat_amount is not None), Decimal("0.00"))
        if price_basis == "gross":
            vat = to_cent(charged * vat_rate / (1 + vat_rate)) + adjusted_vat
            gross = to_cent(charged + adjusted)
            return Totals(net=to_cent(gross - vat), vat=to_cent(vat), gross=gross)
        if price_basis == "net":
            net = to_cent(charged + adjusted)
            vat = to_cent(to_cent(charged * vat_rate) + adjusted_vat)
            return Totals(net=net, vat=vat, gross=to_cent(net + vat))
    raise ValueError(f"price basis is one of {PRICE_BASES}, not {price_basis!r}")


def _check_text(document: BillDocument) -> None:
    """Refuse text the standard fonts cannot show (they would draw boxes in its place): Latin-1
    and the Windows-1252 punctuation only. Arabic script needs an embedded font (not yet)."""
    texts = [("operator name", document.operator.name), ("customer name", document.customer.name or "")]
    texts += [("operator address", line) for line in document.operator.address]
    texts += [("plan", document.customer.plan)]
    for line in document.lines:
        texts += [("line description", line.description), ("line quantity", line.quantity)]
    for what, text in texts:
        try:
            text.encode("cp1252")
        except UnicodeEncodeError as error:
            raise ValueError(
                f"the {what} {text!r} has characters the document's font cannot show"
                f" ({text[error.start : error.end]!r}): Latin script only for now"
            ) from None


@dataclass(frozen=True, kw_only=True)
class BillDocument:
    """One bill as a document. `number` is None while provisional and required once issued (it
    names the file). `period` is the billing month (its first day). `price_basis` says whether
    the lines exclude VAT (net) or include it (gross), as billing_cdrs.price_basis. The totals
    (net_amount, vat_amount, gross_amount) are computed from the lines when left out; when given
    (the bill's amount_before_tax, vat_amount, total_amount) they must equal the computed ones."""

    document_type: DocumentType
    provisional: bool
    number: str | None
    issue_date: date
    period: date
    operator: Operator
    customer: Customer
    lines: tuple[DocumentLine, ...]
    vat_rate: Decimal
    currency: str
    price_basis: PriceBasis = "net"
    net_amount: Decimal | None = field(default=None)
    vat_amount: Decimal | None = field(default=None)
    gross_amount: Decimal | None = field(default=None)

    def __post_init__(self) -> None:
        if self.document_type not in DOCUMENT_TYPES:
            raise ValueError(f"document type is one of {DOCUMENT_TYPES}, not {self.document_type!r}")
        if self.provisional and self.number is not None:
            raise ValueError(f"a provisional document has no number yet, got {self.number!r}")
        if not self.provisional and (self.number is None or not _NUMBER.fullmatch(self.number)):
            raise ValueError(f"an issued document needs a number (letters, digits, . _ -), got {self.number!r}")
        if self.period.day != 1:
            raise ValueError(f"the billing period is a month, given by its first day, not {self.period}")
        rate = self.vat_rate
        if not isinstance(rate, Decimal) or not rate.is_finite() or not Decimal(0) <= rate < 1:
            raise ValueError(f"the VAT rate is a Decimal fraction in [0, 1) (0.2 for 20%), not {self.vat_rate!r}")
        if not _CURRENCY.fullmatch(self.currency):
            raise ValueError(f"the currency is an ISO 4217 code (MAD), not {self.currency!r}")
        if self.price_basis not in PRICE_BASES:
            raise ValueError(f"price basis is one of {PRICE_BASES}, not {self.price_basis!r}")
        object.__setattr__(self, "lines", tuple(self.lines))
        if not all(isinstance(line, DocumentLine) for line in self.lines):
            raise TypeError("the lines of a document are DocumentLine")
        _check_text(self)
        computed = compute_totals(self.lines, self.vat_rate, self.price_basis)
        disagreements = []
        for name, value in (("net", computed.net), ("vat", computed.vat), ("gross", computed.gross)):
            given = getattr(self, f"{name}_amount")
            if given is not None and (to_cent(given) != value or Decimal(given) != value):  # exact, to the cent
                disagreements.append(
                    f"{name}_amount {given} but the lines make {value} (difference {Decimal(given) - value})"
                )
            object.__setattr__(self, f"{name}_amount", value)
        if disagreements:
            raise ValueError(f"the totals of {self.describe()} disagree with its lines: " + "; ".join(disagreements))

    @property
    def title(self) -> str:
        title = TITLES[self.document_type]
        return f"PROVISIONAL {title}" if self.provisional else title

    @property
    def file_name(self) -> str:
        if self.number is not None:
            return f"{self.number}.pdf"
        # the type too: a subscriber moved between prepaid and postpaid within a month has a
        # statement and an invoice for it
        return f"provisional-{self.document_type}-{self.customer.msisdn_digits}-{self.period:%Y-%m}.pdf"

    def describe(self) -> str:
        """For messages: the document's type and number, or whose and which month it is."""
        if self.number is not None:
            return f"{self.document_type} {self.number}"
        return f"provisional {self.document_type} of {self.customer.msisdn} for {self.period:%Y-%m}"


# --- rendering ---------------------------------------------------------------------------------

_BASE = ParagraphStyle("base", fontName="Helvetica", fontSize=9.5, leading=12)
_OPERATOR = ParagraphStyle("operator", parent=_BASE, fontName="Helvetica-Bold", fontSize=14, leading=18)
_TITLE = ParagraphStyle("title", parent=_BASE, fontName="Helvetica-Bold", fontSize=16, leading=20, alignment=TA_RIGHT)
_RIGHT = ParagraphStyle("right", parent=_BASE, alignment=TA_RIGHT)
_SMALL = ParagraphStyle("small", parent=_BASE, fontSize=8, leading=10, textColor=colors.dimgrey)
_GRID = colors.Color(0.75, 0.75, 0.75)
_SHADE = colors.Color(0.93, 0.93, 0.93)
_WIDTH = A4[0] - 40 * mm  # margins of 20 mm


def _text(value: str, style: ParagraphStyle = _BASE) -> Paragraph:
    """A paragraph of plain text: ReportLab reads a paragraph as markup, so the text is escaped."""
    return Paragraph(escape(value), style)


def _bold(value: str, style: ParagraphStyle = _BASE) -> Paragraph:
    return Paragraph(f"<b>{escape(value)}</b>", style)


def _header(document: BillDocument) -> Table:
    left = [_text(document.operator.name, _OPERATOR), *(_text(line) for line in document.operator.address)]
    right = [_text(document.title, _TITLE)]
    if document.provisional:
        right.append(_text("Not issued: the period is still being billed", _RIGHT))
    table = Table([[left, right]], colWidths=[_WIDTH * 0.45, _WIDTH * 0.55])  # PROVISIONAL CREDIT NOTE on one line
    table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (0, -1), 0)]))
    return table


def _details(document: BillDocument) -> Table:
    customer = document.customer
    number = document.number if document.number is not None else "none (provisional)"
    rows = [
        [_bold("Number"), _text(number), _bold("Customer"), _text(customer.name or "")],
        [_bold("Issue date"), _text(document.issue_date.isoformat()), _bold("MSISDN"), _text(customer.msisdn)],
        [_bold("Period"), _text(format_period(document.period)), _bold("Plan"), _text(customer.plan)],
        [_bold("Currency"), _text(document.currency), "", ""],
    ]
    table = Table(rows, colWidths=[_WIDTH * 0.14, _WIDTH * 0.42, _WIDTH * 0.14, _WIDTH * 0.30])
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("BOX", (0, 0), (-1, -1), 0.5, _GRID),
            ]
        )
    )
    return table


def _lines(document: BillDocument) -> Table:
    amount_heading = f"Amount ({document.currency}, {'incl.' if document.price_basis == 'gross' else 'excl.'} VAT)"
    rows: list[list[object]] = [[_bold("Description"), _bold("Quantity", _RIGHT), _bold(amount_heading, _RIGHT)]]
    for line in document.lines:
        rows.append([_text(line.description), _text(line.quantity, _RIGHT), _text(format_amount(line.amount), _RIGHT)])
    if not document.lines:
        rows.append([_text("No charges this period"), "", _text(format_amount(Decimal(0)), _RIGHT)])
    table = Table(rows, colWidths=[_WIDTH * 0.55, _WIDTH * 0.18, _WIDTH * 0.27], repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("BACKGROUND", (0, 0), (-1, 0), _SHADE),
                ("LINEBELOW", (0, 0), (-1, -1), 0.5, _GRID),
            ]
        )
    )
    return table


def _totals(document: BillDocument) -> Table:
    rate = format_rate(document.vat_rate)
    vat_label = f"VAT {rate} included" if document.price_basis == "gross" else f"VAT {rate}"

    def money(amount: Decimal) -> str:
        return f"{format_amount(amount)} {document.currency}"

    rows = [
        [_text("Net amount (excl. VAT)", _RIGHT), _text(money(document.net_amount), _RIGHT)],
        [_text(vat_label, _RIGHT), _text(money(document.vat_amount), _RIGHT)],
        [_bold("Total (incl. VAT)", _RIGHT), _bold(money(document.gross_amount), _RIGHT)],
    ]
    table = Table(rows, colWidths=[_WIDTH * 0.73, _WIDTH * 0.27])
    table.setStyle(TableStyle([("LINEABOVE", (0, -1), (-1, -1), 1, colors.black)]))
    return table


def _footer(document: BillDocument):
    reference = document.number if document.number is not None else "(not numbered)"

    def draw(canvas, doc) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 8)
        canvas.setFillColor(colors.dimgrey)
        canvas.drawString(20 * mm, 12 * mm, f"{document.operator.name} - {document.title.lower()} {reference}")
        canvas.drawRightString(A4[0] - 20 * mm, 12 * mm, f"page {doc.page}")
        canvas.restoreState()

    return draw


def render_pdf(document: BillDocument) -> bytes:
    """The document as a PDF (A4): the same document always gives the same bytes."""
    out = BytesIO()
    reference = document.number if document.number is not None else document.file_name.removesuffix(".pdf")
    pdf = SimpleDocTemplate(
        out,
        pagesize=A4,
        leftMargin=20 * mm,
        rightMargin=20 * mm,
        topMargin=20 * mm,
        bottomMargin=22 * mm,
        title=f"{document.title} {reference}",
        author=document.operator.name,
        subject=f"{format_period(document.period)}, {document.customer.msisdn}",
        creator="cdr_platform",
        invariant=1,  # fixed creation date and document id: byte-identical re-renders
    )
    story = [_header(document), Spacer(1, 8 * mm), _details(document), Spacer(1, 8 * mm), _lines(document)]
    story += [Spacer(1, 4 * mm), _totals(document)]
    if document.price_basis == "gross":
        story += [Spacer(1, 4 * mm), _text("The amounts include VAT; the VAT they include is shown above.", _SMALL)]
    if document.provisional:
        story += [
            Spacer(1, 4 * mm),
            _text(
                "Provisional: this period is still being billed, so its amounts may change. This document has no"
                " number and is not a demand for payment.",
                _SMALL,
            ),
        ]
    footer = _footer(document)
    pdf.build(story, onFirstPage=footer, onLaterPages=footer)
    return out.getvalue()


def write_pdf(document: BillDocument, folder: Path | str) -> Path:
    """Render the document into folder (created if missing) under its file name - its number, or
    provisional-<type>-<msisdn digits>-<yyyy-mm>.pdf - atomically: a temporary file in the same folder,
    then os.replace, so a reader sees the old file or the new one, never part of one. The file
    is private to its owner (mode 0600, as tempfile makes it): bills are personal data."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / document.file_name
    content = render_pdf(document)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target
