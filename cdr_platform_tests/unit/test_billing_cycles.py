"""Closed billing cycles (cdr_platform/lib/billing/cycles.py, defs/billing/cycles.py): the parts
that need no warehouse - numbering, where each pending adjustment is issued, an adjustment's
line and VAT on a document, the schedule's month, and that the columns the close writes are the
columns dbt's macro defines. The close itself runs against PostgreSQL in
integration/test_billing.py."""

import re
from datetime import date, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdr_platform.defs.billing.cycles import month_before
from cdr_platform.defs.dbt.project import DBT_PROJECT_DIR
from cdr_platform.lib.billing import cycles
from cdr_platform.lib.billing.cycles import (
    ADJUSTMENT_LINES_FROM,
    Document,
    MonthReconciliation,
    adjustment_description,
    document_number,
)
from cdr_platform.lib.billing.documents import BillDocument, Customer, DocumentLine, Operator

MACRO = DBT_PROJECT_DIR / "macros" / "billing_cycle_tables.sql"


def _macro_columns(table: str) -> tuple[str, ...]:
    text = MACRO.read_text()
    block = text[text.index(f"'{table}', [") :]
    block = block[: block.index("]) }}")]
    return tuple(
        m.group(1) for m in re.finditer(r"'([a-z_]+) (?:[a-z]|' ~)", block) if not m.group(0).startswith("'constraint")
    )


@pytest.mark.parametrize(
    ("table", "written"),
    [
        ("issued_invoices", cycles.ISSUED_INVOICE_COLUMNS),
        ("issued_invoice_lines", cycles.ISSUED_LINE_COLUMNS),
        ("billing_closed_months", cycles.CLOSED_MONTH_COLUMNS),
    ],
)
def test_the_close_writes_exactly_the_columns_the_dbt_macro_defines(table, written):
    assert _macro_columns(table) == written


def test_numbers_are_a_series_per_type_and_year_zero_padded():
    assert document_number("invoice", 2026, 1) == "INV-2026-000001"
    assert document_number("statement", 2027, 42) == "STM-2027-000042"
    assert document_number("credit_note", 2026, 123456) == "CN-2026-123456"


def _pending(msisdn: str, total: str, vat: str, kind: str = "invoice", month=date(2026, 11, 1), **extra) -> dict:
    total_d, vat_d = Decimal(total), Decimal(vat)
    return {
        "adjusts_month": month,
        "msisdn": msisdn,
        "document_type": kind,
        "adjusts_invoice_number": extra.get("original", "INV-2026-000007"),
        "operator_id": "IAM",
        "price_basis": "gross" if kind == "statement" else "net",
        "vat_rate": Decimal("0.2000"),
        "currency": "MAD",
        "amount_before_tax": total_d - vat_d,
        "vat_amount": vat_d,
        "total_amount": total_d,
        "adjustment_document_type": "credit_note" if total_d < 0 else kind,
        "late_cdrs": extra.get("late", 1),
    }


def _bill(msisdn: str, kind: str = "invoice") -> Document:
    return Document(
        document_type=kind,
        msisdn=msisdn,
        operator_id="IAM",
        plan_id="FORFAIT_100",
        price_basis="net",
        vat_rate=Decimal("0.2000"),
        currency="MAD",
        provisional_number=f"INV-202612-{msisdn[1:]}",
        bill=(Decimal("100.00"), Decimal("20.00"), Decimal("120.00")),
    )


def test_an_amount_owed_goes_on_the_subscribers_bill_one_in_its_favour_on_a_credit_note_and_none_is_lost():
    documents = [_bill("+212661000001"), _bill("+212661000002")]
    pending = [
        _pending("+212661000001", "3.60", "0.60"),  # owes more: on its December invoice
        _pending("+212661000002", "-12.00", "-2.00"),  # owed: a credit note
        _pending("+212661000003", "6.00", "1.00"),  # no December bill: an invoice of its own
        _pending("+212661000003", "-1.20", "-0.20", month=date(2026, 10, 1)),  # and a credit note
    ]
    cycles._attach_adjustments(documents, pending)
    where = {(d.document_type, d.msisdn): d for d in documents}
    assert [a["total_amount"] for a in where[("invoice", "+212661000001")].adjustments] == [Decimal("3.60")]
    assert [a["total_amount"] for a in where[("credit_note", "+212661000002")].adjustments] == [Decimal("-12.00")]
    assert where[("invoice", "+212661000003")].provisional_number is None  # a document of its own
    assert where[("credit_note", "+212661000003")].adjustment_totals() == (
        Decimal("-1.00"),
        Decimal("-0.20"),
        Decimal("-1.20"),
    )
    issued = sum((d.adjustment_totals()[2] for d in documents), Decimal(0))
    assert issued == sum((p["total_amount"] for p in pending), Decimal(0))


@given(
    st.lists(
        st.tuples(st.sampled_from(["invoice", "statement", "credit_note"]), st.integers(1, 999)),
        min_size=1,
        max_size=40,
        unique=True,
    ),
    st.dictionaries(st.sampled_from(["invoice", "statement", "credit_note"]), st.integers(0, 5000)),
)
def test_numbering_continues_each_series_without_a_gap_or_a_repeat(keys, highest):
    class Warehouse:
        def execute(self, sql, params):
            assert params == {"year": 2026}
            return self

        def fetchall(self):
            return list(highest.items())

    documents = [Document(kind, f"+2126610{n:05d}", "IAM", None, "net", Decimal("0.2"), "MAD") for kind, n in keys]
    cycles._number(Warehouse(), "billing", documents, 2026)
    for kind in {k for k, _ in keys}:
        series = [d.sequence for d in documents if d.document_type == kind]
        start = highest.get(kind, 0) + 1
        assert series == list(range(start, start + len(series)))
        numbers = [d.number for d in documents if d.document_type == kind]
        assert numbers == [document_number(kind, 2026, s) for s in series]
        assert [d.msisdn for d in documents if d.document_type == kind] == sorted(
            d.msisdn for d in documents if d.document_type == kind
        )


def test_an_adjustment_line_names_the_invoice_its_month_and_the_cdrs_behind_it():
    assert (
        adjustment_description(_pending("+212661000001", "3.60", "0.60", late=2))
        == "Adjustment to INV-2026-000007 (November 2026): 2 CDRs received after its close"
    )
    first_usage = _pending("+212661000001", "3.60", "0.60", original=None, late=1)
    assert (
        adjustment_description(first_usage)
        == "Usage of November 2026 billed after its close: 1 CDR received after its close"
    )
    reference_fix = _pending("+212661000001", "-3.60", "-0.60", late=0)
    assert adjustment_description(reference_fix).endswith("re-billed after its close")
    assert ADJUSTMENT_LINES_FROM > 6  # after a bill's own lines


def test_a_document_with_adjustment_lines_keeps_their_vat_exact_instead_of_working_it_out_again():
    # the bill: 10.03 before tax, VAT round(2.006) = 2.01. The adjustment: a bill of 10.03 + 10.03
    # valued at VAT 4.01 against 2.01 issued: +10.03 before tax, +2.00 VAT (not 2.01)
    document = BillDocument(
        document_type="invoice",
        provisional=False,
        number="INV-2027-000001",
        issue_date=date(2027, 1, 5),
        period=date(2026, 12, 1),
        operator=Operator(name="Maroc Telecom"),
        customer=Customer(msisdn="+212661000001", plan="FORFAIT_100"),
        lines=(
            DocumentLine(description="Voice calls", amount=Decimal("10.03")),
            DocumentLine(
                description="Adjustment to INV-2026-000001", amount=Decimal("10.03"), vat_amount=Decimal("2.00")
            ),
        ),
        vat_rate=Decimal("0.2000"),
        currency="MAD",
        net_amount=Decimal("20.06"),
        vat_amount=Decimal("4.01"),
        gross_amount=Decimal("24.07"),
    )
    assert (document.net_amount, document.vat_amount, document.gross_amount) == (
        Decimal("20.06"),
        Decimal("4.01"),
        Decimal("24.07"),
    )


def test_a_credit_note_of_a_vat_inclusive_statement_takes_its_lines_as_they_are():
    note = BillDocument(
        document_type="credit_note",
        provisional=False,
        number="CN-2027-000001",
        issue_date=date(2027, 1, 5),
        period=date(2026, 12, 1),
        operator=Operator(name="Maroc Telecom"),
        customer=Customer(msisdn="+212661000001", plan="-"),
        lines=(
            DocumentLine(
                description="Adjustment to STM-2026-000001", amount=Decimal("-6.00"), vat_amount=Decimal("-1.00")
            ),
        ),
        vat_rate=Decimal("0.2000"),
        currency="MAD",
        price_basis="gross",
    )
    assert (note.net_amount, note.vat_amount, note.gross_amount) == (
        Decimal("-5.00"),
        Decimal("-1.00"),
        Decimal("-6.00"),
    )


@pytest.mark.parametrize(
    ("run", "closes"),
    [(datetime(2027, 1, 5, 6), date(2026, 12, 1)), (datetime(2026, 12, 5, 6), date(2026, 11, 1))],
)
def test_the_schedule_closes_the_month_before_the_one_it_runs_in(run, closes):
    assert month_before(run.date()) == closes


def test_a_month_reconciles_when_valued_is_issued_plus_adjustments_or_all_open():
    closed = MonthReconciliation(
        date(2026, 11, 1), True, Decimal("130.00"), Decimal("120.00"), Decimal("6.00"), Decimal("4.00")
    )
    assert closed.difference == 0 and closed.open == 0
    still_open = MonthReconciliation(date(2026, 12, 1), False, Decimal("80.00"), Decimal(0), Decimal(0), Decimal(0))
    assert still_open.difference == 0 and still_open.open == Decimal("80.00")
    missing = MonthReconciliation(date(2026, 11, 1), True, Decimal("130.00"), Decimal("120.00"), Decimal(0), Decimal(0))
    assert missing.difference == Decimal("10.00")


def test_a_month_not_over_on_the_issue_date_is_refused_before_anything_is_read():
    class NoWarehouse:
        def execute(self, *args, **kwargs):
            raise AssertionError("nothing may be read or written")

    with pytest.raises(cycles.CloseRefused, match="2026-12 is not over on 2026-12-31"):
        cycles.close_month(
            NoWarehouse(),
            dialect=None,
            billing_schema="billing",
            rating_table="rating.rating_cdrs",
            month=date(2026, 12, 1),
            issue_date=date(2026, 12, 31),
            closed_by="test",
        )


@pytest.mark.parametrize("carrier_basis", ["net", "gross"])
def test_an_adjustment_line_is_shown_in_the_basis_of_the_document_that_carries_it(carrier_basis):
    """A credit note gathering a VAT-inclusive statement's difference and a net invoice's: each line
    in the credit note's own basis, so its lines make exactly the totals issued in its header."""
    statement = _pending("+212661000001", "-6.00", "-1.00", kind="statement")
    invoice = _pending("+212661000001", "-12.00", "-2.00", kind="invoice")
    note = Document("credit_note", "+212661000001", "IAM", None, carrier_basis, Decimal("0.2000"), "MAD")
    note.adjustments = [statement, invoice]
    before, vat, total = note.adjustment_totals()
    lines = tuple(
        DocumentLine(
            description=adjustment_description(a), amount=cycles._line_amount(a, note), vat_amount=a["vat_amount"]
        )
        for a in note.adjustments
    )
    document = BillDocument(
        document_type="credit_note",
        provisional=False,
        number="CN-2027-000001",
        issue_date=date(2027, 1, 5),
        period=date(2026, 12, 1),
        operator=Operator(name="Maroc Telecom"),
        customer=Customer(msisdn="+212661000001", plan="-"),
        lines=lines,
        vat_rate=Decimal("0.2000"),
        currency="MAD",
        price_basis=carrier_basis,
        net_amount=before,
        vat_amount=vat,
        gross_amount=total,
    )
    assert (document.net_amount, document.vat_amount, document.gross_amount) == (
        Decimal("-15.00"),
        Decimal("-3.00"),
        Decimal("-18.00"),
    )
