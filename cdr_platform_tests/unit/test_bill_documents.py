"""A bill as a PDF document (cdr_platform/lib/billing/documents.py): what the document shows, read
back with poppler's `pdftotext -layout` (scripts/install_system_packages.sh installs it), its
totals against an independent computation in integer cents, and byte-identical re-renders."""

import os
import re
import shutil
import subprocess
import sys
from datetime import date
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdr_platform.lib.billing import documents
from cdr_platform.lib.billing.documents import (
    BillDocument,
    Customer,
    DocumentLine,
    Operator,
    format_amount,
    render_pdf,
    write_pdf,
)

OPERATOR = Operator(name="Maroc Telecom", address=("Avenue Annakhil, Hay Riad", "10100 Rabat"))


def pdf_text(pdf: bytes) -> str:
    assert shutil.which("pdftotext"), "pdftotext is missing: scripts/install_system_packages.sh installs poppler-utils"
    result = subprocess.run(["pdftotext", "-layout", "-", "-"], input=pdf, capture_output=True, check=True, timeout=30)
    return result.stdout.decode("utf-8")


def invoice(**changes) -> BillDocument:
    """The dbt unit test bill_rounds_each_line_then_adds_fee_and_vat, as a document: calls rated
    10.005 (10.01), SMS 0.994 (0.99), 2.50 of allowance, the 99.00 fee; 107.50 + 21.50 = 129.00."""
    fields = {
        "document_type": "invoice",
        "provisional": False,
        "number": "INV-202611-212661000001",
        "issue_date": date(2026, 12, 1),
        "period": date(2026, 11, 1),
        "operator": OPERATOR,
        "customer": Customer(msisdn="+212661000001", name="Amina El Idrissi", plan="Forfait 100"),
        "lines": (
            DocumentLine(description="Voice calls", quantity="10.00 min", amount=Decimal("10.005")),
            DocumentLine(description="SMS", quantity="2 sms", amount=Decimal("0.994")),
            DocumentLine(description="Included national minutes used", quantity="5.00 min", amount=Decimal("-2.50")),
            DocumentLine(description="Monthly fee", quantity="1 month", amount=Decimal("99.00")),
        ),
        "vat_rate": Decimal("0.2000"),
        "currency": "MAD",
    }
    return BillDocument(**{**fields, **changes})


def prepaid_statement(**changes) -> BillDocument:
    """The dbt unit test's prepaid statement: 6 SMS at 1.20 VAT-inclusive, of which VAT 0.20."""
    fields = {
        "document_type": "statement",
        "provisional": True,
        "number": None,
        "issue_date": date(2026, 11, 20),
        "period": date(2026, 11, 1),
        "operator": OPERATOR,
        "customer": Customer(msisdn="+212661000002", plan="Jawal Prepaid"),
        "lines": (DocumentLine(description="SMS", quantity="6 sms", amount=Decimal("1.20")),),
        "vat_rate": Decimal("0.2000"),
        "currency": "MAD",
        "price_basis": "gross",
    }
    return BillDocument(**{**fields, **changes})


def amount_row(text: str, label: str) -> str:
    """The amount on the totals row whose label is given."""
    match = re.search(rf"{re.escape(label)}\s+(-?[\d,]+\.\d\d) MAD", text)
    assert match, f"no {label!r} row in:\n{text}"
    return match.group(1)


def test_an_invoice_shows_its_title_number_customer_lines_and_totals():
    document = invoice()
    text = pdf_text(render_pdf(document))

    assert "INVOICE" in text and "PROVISIONAL" not in text
    assert "INV-202611-212661000001" in text
    assert "2026-12-01" in text  # issue date
    assert "November 2026 (2026-11-01 to 2026-11-30)" in text
    assert "Maroc Telecom" in text and "10100 Rabat" in text
    for shown in ("+212661000001", "Amina El Idrissi", "Forfait 100"):
        assert shown in text
    # each line with its quantity and its amount rounded half up once, as billing_cdrs rounds it
    for description, quantity, amount in (
        ("Voice calls", "10.00 min", "10.01"),
        ("SMS", "2 sms", "0.99"),
        ("Included national minutes used", "5.00 min", "-2.50"),
        ("Monthly fee", "1 month", "99.00"),
    ):
        assert re.search(rf"^\s*{re.escape(description)}\s+{re.escape(quantity)}\s+{re.escape(amount)}\s*$", text, re.M)
    # the bill's amount_before_tax, vat_amount, total_amount in the dbt unit test
    assert (document.net_amount, document.vat_amount, document.gross_amount) == (
        Decimal("107.50"),
        Decimal("21.50"),
        Decimal("129.00"),
    )
    assert amount_row(text, "Net amount (excl. VAT)") == "107.50"
    assert amount_row(text, "VAT 20%") == "21.50"
    assert amount_row(text, "Total (incl. VAT)") == "129.00"
    assert "Amount (MAD, excl. VAT)" in text


def test_amounts_have_two_decimals_a_thousands_separator_and_a_minus_sign():
    assert format_amount(Decimal("1234567.891")) == "1,234,567.89"
    assert format_amount(Decimal("-1234.5")) == "-1,234.50"
    assert format_amount(Decimal("-0.004")) == "0.00"  # never -0.00
    assert format_amount(Decimal("0.005")) == "0.01" and format_amount(Decimal("-0.005")) == "-0.01"  # half up

    document = invoice(
        lines=(
            DocumentLine(description="Mobile data", quantity="25,000.00 MB", amount=Decimal("12345.675")),
            DocumentLine(description="Goodwill credit", amount=Decimal("-1500")),
        )
    )
    text = pdf_text(render_pdf(document))
    assert re.search(r"Mobile data\s+25,000\.00 MB\s+12,345\.68\s*$", text, re.M)
    assert re.search(r"Goodwill credit\s+-1,500\.00\s*$", text, re.M)
    assert amount_row(text, "Net amount (excl. VAT)") == "10,845.68"
    assert amount_row(text, "VAT 20%") == "2,169.14"  # 2169.136
    assert amount_row(text, "Total (incl. VAT)") == "13,014.82"


def test_rounding_matches_the_models_half_up_per_line_then_vat_once():
    # half up, not half even: 14.25 x 10% = 1.425 -> 1.43 (and -1.43 for a credit)
    fee = invoice(lines=(DocumentLine(description="Fee", amount=Decimal("14.25")),), vat_rate=Decimal("0.10"))
    assert fee.vat_amount == Decimal("1.43")
    credit = invoice(
        document_type="credit_note",
        number="CRN-202611-212661000001",
        lines=(DocumentLine(description="Refund", amount=Decimal("-14.25")),),
        vat_rate=Decimal("0.10"),
    )
    assert (credit.net_amount, credit.vat_amount, credit.gross_amount) == (
        Decimal("-14.25"),
        Decimal("-1.43"),
        Decimal("-15.68"),
    )
    # each line rounded once, then added: 0.005 + 0.005 = 0.01 + 0.01, not round(0.010)
    twice = invoice(lines=[DocumentLine(description=f"line {n}", amount=Decimal("0.005")) for n in (1, 2)])
    assert twice.net_amount == Decimal("0.02")
    # VAT-inclusive: VAT = round(total x rate / (1 + rate), 2), before tax = total - VAT
    assert (prepaid_statement().net_amount, prepaid_statement().vat_amount) == (Decimal("1.00"), Decimal("0.20"))
    tie = prepaid_statement(lines=(DocumentLine(description="SMS", amount=Decimal("0.03")),))
    assert (tie.gross_amount, tie.vat_amount, tie.net_amount) == (Decimal("0.03"), Decimal("0.01"), Decimal("0.02"))


def test_a_provisional_statement_says_provisional_and_has_no_number(tmp_path):
    document = prepaid_statement()
    text = pdf_text(render_pdf(document))

    assert "PROVISIONAL STATEMENT" in text
    assert "none (provisional)" in text
    assert "STM-" not in text and "INV-" not in text
    assert "+212661000002" in text and "Jawal Prepaid" in text
    assert re.search(r"^\s*SMS\s+6 sms\s+1\.20\s*$", text, re.M)
    assert "Amount (MAD, incl. VAT)" in text
    assert amount_row(text, "VAT 20% included") == "0.20"
    assert amount_row(text, "Net amount (excl. VAT)") == "1.00"
    assert amount_row(text, "Total (incl. VAT)") == "1.20"

    path = write_pdf(document, tmp_path)
    assert path == tmp_path / "provisional-statement-212661000002-2026-11.pdf"


def test_a_document_renders_byte_identical_every_time_and_in_another_process(tmp_path):
    document = invoice()
    first = render_pdf(document)
    assert first.startswith(b"%PDF-") and render_pdf(document) == first
    assert render_pdf(invoice(issue_date=date(2026, 12, 2))) != first  # the bytes do follow the document

    # a re-render of an issued invoice later, by another process (another hash seed), is identical
    script = (
        "import sys\n"
        "from cdr_platform_tests.unit.test_bill_documents import invoice\n"
        "from cdr_platform.lib.billing.documents import render_pdf\n"
        "sys.stdout.buffer.write(render_pdf(invoice()))\n"
    )
    environment = {**os.environ, "PYTHONHASHSEED": "12345"}
    cwd = Path(__file__).resolve().parents[2]
    again = subprocess.run([sys.executable, "-c", script], capture_output=True, check=True, env=environment, cwd=cwd)
    assert again.stdout == first

    path = write_pdf(document, tmp_path)
    assert path.read_bytes() == first
    assert write_pdf(document, tmp_path).read_bytes() == first


def test_write_pdf_names_the_file_by_number_and_replaces_it_atomically(tmp_path, monkeypatch):
    folder = tmp_path / "documents" / "2026-11"  # created when missing
    path = write_pdf(invoice(), folder)
    assert path == folder / "INV-202611-212661000001.pdf"
    assert sorted(p.name for p in folder.iterdir()) == ["INV-202611-212661000001.pdf"]  # no temporary file left
    assert path.stat().st_mode & 0o777 == 0o600
    before = path.read_bytes()

    def failing_replace(source, target):
        raise OSError("disk full")

    monkeypatch.setattr(documents.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_pdf(invoice(issue_date=date(2026, 12, 2)), folder)
    assert path.read_bytes() == before  # the issued file as it was
    assert sorted(p.name for p in folder.iterdir()) == ["INV-202611-212661000001.pdf"]


def test_totals_that_disagree_with_the_lines_are_refused():
    agreeing = invoice(net_amount=Decimal("107.50"), vat_amount=Decimal("21.50"), gross_amount=Decimal("129.00"))
    assert agreeing.gross_amount == Decimal("129.00")

    with pytest.raises(ValueError, match=r"gross_amount 129\.01 but the lines make 129\.00 \(difference 0\.01\)"):
        invoice(gross_amount=Decimal("129.01"))
    with pytest.raises(ValueError, match=r"INV-202611-212661000001.*vat_amount 21\.49.*difference -0\.01"):
        invoice(net_amount=Decimal("107.50"), vat_amount=Decimal("21.49"))
    with pytest.raises(ValueError, match=r"provisional statement of \+212661000002 for 2026-11.*net_amount 1\.20"):
        prepaid_statement(net_amount=Decimal("1.20"))  # a VAT-inclusive statement's net excludes its VAT
    with pytest.raises(ValueError, match=r"gross_amount 129\.004 but the lines make 129\.00 \(difference 0\.004\)"):
        invoice(gross_amount=Decimal("129.004"))  # a bill's amounts are cents: no rounding a difference away


@pytest.mark.parametrize(
    ("changes", "refusal"),
    [
        ({"provisional": True}, "a provisional document has no number"),
        ({"number": None}, "an issued document needs a number"),
        ({"number": "../INV-1"}, "an issued document needs a number"),
        ({"period": date(2026, 11, 2)}, "the billing period is a month"),
        ({"document_type": "receipt"}, "document type is one of"),
        ({"vat_rate": Decimal("20")}, "VAT rate is a Decimal fraction"),
        ({"vat_rate": 0.2}, "VAT rate is a Decimal fraction"),
        ({"currency": "dh"}, "the currency is an ISO 4217 code"),
        ({"price_basis": "gross_net"}, "price basis is one of"),
        ({"customer": Customer(msisdn="+212661000001", plan="Forfait 100", name="أمينة")}, "Latin script only"),
    ],
)
def test_a_document_that_cannot_be_right_is_refused(changes, refusal):
    with pytest.raises(ValueError, match=refusal):
        invoice(**changes)


def test_a_line_amount_is_exact_never_a_float():
    with pytest.raises(TypeError, match="an amount is a Decimal"):
        DocumentLine(description="Voice calls", amount=10.01)
    with pytest.raises(ValueError, match="not an MSISDN"):
        Customer(msisdn="+212 661", plan="Forfait 100")


def test_a_long_bill_runs_onto_more_pages_with_its_totals_at_the_end():
    lines = [
        DocumentLine(description=f"Roaming day pass {n}", quantity="1 day", amount=Decimal("35.00")) for n in range(80)
    ]
    text = pdf_text(render_pdf(invoice(lines=lines)))
    assert "page 2" in text
    assert text.count("Description") >= 2  # the table's heading on every page
    for n in range(80):
        assert f"Roaming day pass {n} " in text
    assert amount_row(text, "Total (incl. VAT)") == "3,360.00"  # 2800.00 + 560.00


# --- the totals against an independent computation, in integer cents -------------------------


def half_up(value: Fraction) -> int:
    """To the nearest integer, halves away from zero (SQL's round on decimals)."""
    magnitude = (abs(value.numerator) * 2 + value.denominator) // (2 * value.denominator)
    return magnitude if value >= 0 else -magnitude


def cents_text(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    units, rest = divmod(abs(cents), 100)
    return f"{sign}{units:,}.{rest:02d}"


line_cents = st.integers(min_value=-5_000_000, max_value=50_000_000)  # -50,000.00 .. 500,000.00


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    amounts=st.lists(line_cents, min_size=1, max_size=8),
    rate=st.sampled_from(["0", "0.07", "0.10", "0.14", "0.2000"]),
    price_basis=st.sampled_from(["net", "gross"]),
)
def test_the_totals_shown_are_the_lines_added_and_taxed_as_the_bill(amounts, rate, price_basis):
    lines = tuple(
        DocumentLine(description=f"Line {n}", quantity=f"{n} unit", amount=Decimal(cents).scaleb(-2))
        for n, cents in enumerate(amounts)
    )
    document = invoice(lines=lines, vat_rate=Decimal(rate), price_basis=price_basis)

    charged = sum(amounts)
    fraction = Fraction(rate)
    if price_basis == "net":
        vat = half_up(charged * fraction)
        net, gross = charged, charged + vat
    else:
        vat = half_up(charged * fraction / (1 + fraction))
        net, gross = charged - vat, charged
    assert (document.net_amount, document.vat_amount, document.gross_amount) == tuple(
        Decimal(cents).scaleb(-2) for cents in (net, vat, gross)
    )

    text = pdf_text(render_pdf(document))
    for n, cents in enumerate(amounts):
        assert re.search(rf"^\s*Line {n}\s+{n} unit\s+{re.escape(cents_text(cents))}\s*$", text, re.M)
    percent = documents.format_rate(Decimal(rate))
    vat_label = f"VAT {percent} included" if price_basis == "gross" else f"VAT {percent}"
    assert amount_row(text, "Net amount (excl. VAT)") == cents_text(net)
    assert amount_row(text, vat_label) == cents_text(vat)
    assert amount_row(text, "Total (incl. VAT)") == cents_text(gross)
