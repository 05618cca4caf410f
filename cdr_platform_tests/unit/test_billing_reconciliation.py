"""The billing reconciliation check's arithmetic (defs/billing/checks.reconcile): rated usage
against billed usage lines per bill - whose and which document - to the cent. The check's SQL
runs against PostgreSQL in integration/test_billing.py and as T-SQL in test_sqlserver_statements."""

from datetime import date
from decimal import Decimal

from cdr_platform.defs.billing.checks import reconcile

NOVEMBER = date(2026, 11, 1)
INVOICE = ("+212661000001", "invoice")
STATEMENT = ("+212661000001", "usage_statement")


def test_a_subscriber_moved_from_prepaid_to_postpaid_reconciles_each_document_on_its_own():
    # 10.004 rated under the postpaid plan, 5.005 under the prepaid one: each document rounds its own
    # line (10.00 and 5.01); summed per subscriber they would be 15.009 -> 15.01 against 15.01, but
    # a bill's line is checked against what was rated for that bill
    rated = [
        (date(2026, 11, 3), STATEMENT, "voice", Decimal("5.005"), 2),
        (date(2026, 11, 20), INVOICE, "voice", Decimal("10.004"), 3),
    ]
    lines = [
        (NOVEMBER, INVOICE, "usage_voice", Decimal("10.00")),
        (NOVEMBER, STATEMENT, "usage_voice", Decimal("5.01")),
    ]
    took_in = [(NOVEMBER, INVOICE, 3, Decimal("10.004")), (NOVEMBER, STATEMENT, 2, Decimal("5.005"))]
    (month,) = reconcile(rated, lines, took_in)
    assert (month["rated, not billed"], month["billed, not rated"], month["lines off"], month["stale bills"]) == (
        0,
        0,
        0,
        0,
    )
    assert month["CDRs rated"] == month["CDRs on bills"] == 5


def test_usage_billed_on_the_wrong_document_is_a_break_on_both():
    rated = [(date(2026, 11, 3), STATEMENT, "voice", Decimal("5.005"), 2)]
    lines = [(NOVEMBER, INVOICE, "usage_voice", Decimal("5.01"))]
    took_in = [(NOVEMBER, INVOICE, 2, Decimal("5.005"))]
    (month,) = reconcile(rated, lines, took_in)
    assert (month["rated, not billed"], month["billed, not rated"], month["stale bills"]) == (1, 1, 1)


def test_a_line_a_cent_off_its_rated_total_is_a_break():
    rated = [(date(2026, 11, 3), INVOICE, "sms", Decimal("0.995"), 1)]
    (month,) = reconcile(
        rated, [(NOVEMBER, INVOICE, "usage_sms", Decimal("0.99"))], [(NOVEMBER, INVOICE, 1, Decimal("0.995"))]
    )
    assert month["lines off"] == 1
