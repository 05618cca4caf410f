"""Subscriber lifecycle in billing, on real PostgreSQL: a handful of dated plan periods
(reference.subscriber_periods) and rated CDRs written straight into schemas of the test's own,
billed by dbt as a monthly partition bills them, and every bill recomputed here, independently,
with Decimal and the README's rules, to the cent:

- each CDR counts under the plan in force on its rating day (an invoice under postpaid or
  business, a usage statement under prepaid or on a day no period covers);
- the fee is prorated by the days on each plan: round(sum of fee x days / days in month, 2);
- each period includes floor(minutes x 60 x days / days in month) seconds, used by its own
  national calls in start order;
- a month with no period and no usage has no bill; a past month billed again after a later plan
  change keeps the plan it had.

Cheap on purpose (the suite's time, about 20 s): no Kafka, no Spark, no Dagster; one dbt seed, two dbt builds.
"""

from __future__ import annotations

import calendar
import json
import os
import subprocess
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import psycopg
import pytest

from cdr_platform.defs.dbt.project import DBT_PROJECT_DIR, dbt_command

pytestmark = pytest.mark.timeout(300)
CENT = Decimal("0.01")
OCTOBER, NOVEMBER, DECEMBER = date(2026, 10, 1), date(2026, 11, 1), date(2026, 12, 1)
OPEN = None


@dataclass(frozen=True)
class Plan:
    plan_id: str
    billing_type: str
    fee: Decimal
    minutes: int
    basis: str


# the plan catalogue seed, as the README describes it (checked against the seeded table below)
PLANS = {
    "Jawal Prepaid": Plan("JAWAL_PREPAID", "prepaid", Decimal("0.00"), 0, "gross"),
    "Forfait 100": Plan("FORFAIT_100", "postpaid", Decimal("99.00"), 100, "net"),
    "Business Pro": Plan("BUSINESS_PRO", "business", Decimal("299.00"), 500, "net"),
}
VAT = Decimal("0.2")

ACTIVATED = "+212600000101"  # Forfait 100 from 14 November: 17 of 30 days
CHANGED = "+212600000102"  # Forfait 100 until 7 November, Business Pro from the 8th
TERMINATED = "+212600000103"  # Forfait 100 until 9 November; a late CDR after it
MOVED = "+212600000104"  # prepaid until 15 November, Forfait 100 from the 16th
REBILLED = "+212600000105"  # Forfait 100; Business Pro from December (the second load)
GONE = "+212600000106"  # Forfait 100 until 20 October: no bill in November
SILENT = "+212600000107"  # prepaid, no usage: no bill

# (msisdn, plan, valid_from, valid_to): the first load; the second adds REBILLED's December change
PERIODS_V1 = [
    (ACTIVATED, "Forfait 100", date(2026, 11, 14), OPEN),
    (CHANGED, "Forfait 100", date(2000, 1, 1), date(2026, 11, 7)),
    (CHANGED, "Business Pro", date(2026, 11, 8), OPEN),
    (TERMINATED, "Forfait 100", date(2000, 1, 1), date(2026, 11, 9)),
    (MOVED, "Jawal Prepaid", date(2000, 1, 1), date(2026, 11, 15)),
    (MOVED, "Forfait 100", date(2026, 11, 16), OPEN),
    (REBILLED, "Forfait 100", date(2000, 1, 1), OPEN),
    (GONE, "Forfait 100", date(2000, 1, 1), date(2026, 10, 20)),
    (SILENT, "Jawal Prepaid", date(2000, 1, 1), OPEN),
]
PERIODS_V2 = [p for p in PERIODS_V1 if p[0] != REBILLED] + [
    (REBILLED, "Forfait 100", date(2000, 1, 1), date(2026, 11, 30)),
    (REBILLED, "Business Pro", date(2026, 12, 1), OPEN),
]


@dataclass(frozen=True)
class Cdr:
    record_id: str
    msisdn: str
    start: datetime  # local time; the rating day is its date
    record_type: str = "voice"
    duration_s: int = 0
    cost: str = "0"
    destination_class: str = "on_net"
    direction: str = "outgoing"
    roaming: int = 0

    @property
    def day(self) -> date:
        return self.start.date()

    @property
    def national(self) -> bool:
        return (
            self.record_type == "voice"
            and self.direction == "outgoing"
            and self.roaming == 0
            and self.destination_class in ("on_net", "off_net", "fixed")
        )


def at(month: int, day: int, hour: int = 10) -> datetime:
    return datetime(2026, month, day, hour)


CDRS = [
    # activated on the 14th: 3,400 included seconds; the second call runs them out after 1,400 s
    Cdr("a1", ACTIVATED, at(11, 15), duration_s=2000, cost="10.00"),
    Cdr("a2", ACTIVATED, at(11, 20), duration_s=2000, cost="8.00", destination_class="off_net"),
    Cdr("a3", ACTIVATED, at(11, 21), duration_s=300, cost="6.00", destination_class="international"),
    # plan change on the 8th: 1,400 s under Forfait 100 (7 days), 23,000 s under Business Pro;
    # the first call exhausts the first period's seconds, the second is covered by the new plan's
    Cdr("c1", CHANGED, at(11, 5), duration_s=2000, cost="10.00"),
    Cdr("c2", CHANGED, at(11, 12), duration_s=3000, cost="15.00"),
    Cdr("c3", CHANGED, at(11, 20), record_type="sms", cost="0.20", destination_class="on_net"),
    Cdr("c4", CHANGED, at(11, 21), record_type="sms", cost="0.20", destination_class="on_net"),
    # terminated on the 9th: a call before, a late data session after (no period: a statement)
    Cdr("t1", TERMINATED, at(11, 2), duration_s=120, cost="0.60"),
    Cdr("t2", TERMINATED, at(11, 20), record_type="data", cost="0.50", destination_class="none"),
    # prepaid until the 15th: its SMS and national call on a statement (no allowance), then on
    # Forfait 100 for 15 days: 3,000 included seconds cover the next call
    Cdr("m1", MOVED, at(11, 10), record_type="sms", cost="1.20", destination_class="on_net"),
    Cdr("m2", MOVED, at(11, 10, 11), duration_s=600, cost="3.00"),
    Cdr("m3", MOVED, at(11, 20), duration_s=600, cost="3.00"),
    Cdr("m4", MOVED, at(11, 21), duration_s=700, cost="3.50", roaming=1),  # abroad: never covered
    # a past month: October under Forfait 100, billed before and after the December plan change
    Cdr("r1", REBILLED, at(10, 15), duration_s=600, cost="3.00"),
    Cdr("r2", REBILLED, at(11, 15), duration_s=6100, cost="30.50"),
    Cdr("g1", GONE, at(10, 5), duration_s=60, cost="0.30"),
]


def months_days(month: date) -> int:
    return calendar.monthrange(month.year, month.month)[1]


def days_on_plan(month: date, valid_from: date, valid_to: date | None) -> int:
    last = month.replace(day=months_days(month))
    start, end = max(valid_from, month), min(valid_to or last, last)
    return max(0, (end - start).days + 1)


def in_force(periods, msisdn: str, day: date):
    for p in periods:
        if p[0] == msisdn and p[2] <= day and (p[3] is None or day <= p[3]):
            return p
    return None


def expected_bills(periods, month: date) -> dict[tuple[str, str], dict]:
    """The month's bills by the rules, keyed (msisdn, document_type)."""
    dim = months_days(month)
    bills: dict[tuple[str, str], dict] = {}

    def bill(msisdn: str, document: str) -> dict:
        return bills.setdefault(
            (msisdn, document),
            {
                "usage": {},
                "fee_days": Decimal(0),
                "days": 0,
                "included": 0,
                "used": 0,
                "credit": Decimal(0),
                "latest": None,
            },
        )

    def document_of(period) -> str:
        return "invoice" if period and PLANS[period[1]].billing_type != "prepaid" else "usage_statement"

    # usage: on the document of the plan in force on its day; the allowance per period
    used_in_period: dict[tuple, int] = {}
    for cdr in sorted(CDRS, key=lambda c: (c.msisdn, c.start, c.record_id)):
        if cdr.day.replace(day=1) != month:
            continue
        period = in_force(periods, cdr.msisdn, cdr.day)
        b = bill(cdr.msisdn, document_of(period))
        b["usage"][cdr.record_type] = b["usage"].get(cdr.record_type, Decimal(0)) + Decimal(cdr.cost)
        plan = PLANS[period[1]] if period else None
        if plan and plan.billing_type != "prepaid" and plan.minutes and cdr.national:
            allowance = plan.minutes * 60 * days_on_plan(month, period[2], period[3]) // dim
            before = used_in_period.get(period, 0)
            used_in_period[period] = before + cdr.duration_s
            covered = max(0, min(cdr.duration_s, allowance - before))
            b["used"] += covered
            b["credit"] += Decimal(cdr.cost) * covered / cdr.duration_s
    # the periods in force on some day of the month: an invoice's are billed, usage or not (the
    # fee); a statement's count on the statement its usage made
    for period in periods:
        days = days_on_plan(month, period[2], period[3])
        document = document_of(period)
        if not days or (document == "usage_statement" and (period[0], document) not in bills):
            continue
        plan, b = PLANS[period[1]], bill(period[0], document)
        b["days"] += days
        b["fee_days"] += plan.fee * days
        b["included"] += plan.minutes * 60 * days // dim
        if b["latest"] is None or period[2] > b["latest"][2]:
            b["latest"] = period
    result = {}
    for (msisdn, document), b in bills.items():
        plan = PLANS[b["latest"][1]] if b["latest"] else None
        invoice = document == "invoice"
        amounts = {t: b["usage"].get(t, Decimal(0)).quantize(CENT, ROUND_HALF_UP) for t in ("voice", "sms", "data")}
        credit = b["credit"].quantize(CENT, ROUND_HALF_UP) if invoice else Decimal("0.00")
        fee = (b["fee_days"] / dim).quantize(CENT, ROUND_HALF_UP) if invoice else Decimal("0.00")
        charged = sum(amounts.values()) - credit + fee
        basis = plan.basis if plan else "net"
        if basis == "gross":
            vat = (charged * VAT / (1 + VAT)).quantize(CENT, ROUND_HALF_UP)
            before_tax, total = charged - vat, charged
        else:
            vat = (charged * VAT).quantize(CENT, ROUND_HALF_UP)
            before_tax, total = charged, charged + vat
        result[(msisdn, document)] = {
            "plan_id": plan.plan_id if plan else None,
            "billing_type": plan.billing_type if plan else "unknown",
            "plan_days": b["days"],
            "included_national_seconds": b["included"] if invoice else 0,
            "allowance_seconds_used": b["used"] if invoice else 0,
            "voice_amount": amounts["voice"],
            "sms_amount": amounts["sms"],
            "data_amount": amounts["data"],
            "allowance_amount": credit,
            "monthly_fee": fee,
            "amount_before_tax": before_tax,
            "vat_amount": vat,
            "total_amount": total,
        }
    return result


class Lifecycle:
    """The test's schemas and how it writes the periods and bills a month."""

    def __init__(self, conninfo: str, tag: str, target_path) -> None:
        self.conninfo, self.target_path = conninfo, target_path
        self.reference, self.rating, self.billing = f"ref_{tag}", f"rat_{tag}", f"bil_{tag}"
        self.env = {**os.environ, "CDR_RATING_SCHEMA": self.rating, "CDR_BILLING_SCHEMA": self.billing}

    def query(self, sql: str, params=None) -> list[tuple]:
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()

    def load_periods(self, periods, current_plans: dict[str, str]) -> None:
        """reference.subscriber_periods as a load writes it, and reference.subscribers with
        `current_plans` (the plan in force on the day of the load: what billing must not use)."""
        with psycopg.connect(self.conninfo, autocommit=True) as conn, conn.transaction():
            conn.execute(f"delete from {self.reference}.subscriber_periods")
            conn.execute(f"delete from {self.reference}.subscribers")
            with conn.cursor().copy(
                f"copy {self.reference}.subscriber_periods"
                " (msisdn, operator_id, segment, plan, home_cell_id, valid_from, valid_to, version) from stdin"
            ) as copy:
                for msisdn, plan, valid_from, valid_to in periods:
                    copy.write_row((msisdn, "IAM", PLANS[plan].billing_type, plan, "c", valid_from, valid_to, 1))
            for msisdn, plan in current_plans.items():
                conn.execute(
                    f"insert into {self.reference}.subscribers values (%s, 'IAM', 'Maroc Telecom', 'x', %s, 'c', 'r')",
                    (msisdn, plan),
                )

    def dbt(self, command: str, *args: str, **dbt_vars) -> None:
        variables = {
            "reference_schema": self.reference,
            "rating_schema": self.rating,
            "billing_schema": self.billing,
            **dbt_vars,
        }
        done = subprocess.run(
            dbt_command(command, *args, "--vars", json.dumps(variables), target_path=self.target_path),
            cwd=DBT_PROJECT_DIR,
            env=self.env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]

    def bill(self, start: date, end: date) -> None:
        """The billing models and their data tests (not the unit tests) for [start, end)."""
        self.dbt(
            "build",
            "--select",
            "allowance_usage billing_cdrs invoice_lines",
            "--exclude",
            "test_type:unit",
            "--indirect-selection",
            "buildable",  # the tests of these models (and of what they read), not of later ones
            billing_month_start=start.isoformat(),
            billing_month_end=end.isoformat(),
        )

    def bills(self, month: date) -> dict[tuple[str, str], dict]:
        columns = [
            "msisdn",
            "document_type",
            "plan_id",
            "billing_type",
            "plan_days",
            "included_national_seconds",
            "allowance_seconds_used",
            "voice_amount",
            "sms_amount",
            "data_amount",
            "allowance_amount",
            "monthly_fee",
            "amount_before_tax",
            "vat_amount",
            "total_amount",
        ]
        rows = self.query(
            f"select {', '.join(columns)} from {self.billing}.billing_cdrs where billing_month = %s", (month,)
        )
        return {(r[0], r[1]): dict(zip(columns[2:], r[2:], strict=True)) for r in rows}


@pytest.fixture(scope="module")
def lifecycle(local_stack, tmp_path_factory):
    run = Lifecycle(local_stack.warehouse.conninfo(), uuid.uuid4().hex[:8], tmp_path_factory.mktemp("dbt"))
    with psycopg.connect(run.conninfo, autocommit=True) as conn:
        for schema in (run.reference, run.rating):
            conn.execute(f"create schema {schema}")
        conn.execute(
            f"create table {run.reference}.subscriber_periods (msisdn varchar(16) not null, operator_id varchar(16)"
            " not null, segment varchar(32) not null, plan varchar(64) not null, home_cell_id varchar(32) not null,"
            " valid_from date not null, valid_to date, version int not null, primary key (msisdn, valid_from))"
        )
        conn.execute(
            f"create table {run.reference}.subscribers (msisdn varchar(16) primary key, operator_id varchar(16),"
            " operator_name varchar(64), segment varchar(32), plan varchar(64), home_cell_id varchar(32),"
            " home_region varchar(32))"
        )
        # rating_cdrs as billing reads it (stg_rating__rated_cdrs' columns)
        conn.execute(
            f"create table {run.rating}.rating_cdrs (record_id varchar(64) not null, rating_day date not null,"
            " start_time timestamp not null, record_type varchar(8) not null, served_msisdn varchar(16) not null,"
            " served_operator_id varchar(16), direction varchar(16), destination_class varchar(16),"
            " technology varchar(4), duration_s bigint, data_volume_bytes bigint, roaming smallint,"
            " usage_amount bigint, usage_unit varchar(8), category varchar(64), destination_id varchar(64),"
            " cost decimal(18,6) not null, currency varchar(3), query_id varchar(64), batch_id bigint)"
        )
        with conn.cursor().copy(
            f"copy {run.rating}.rating_cdrs (record_id, rating_day, start_time, record_type, served_msisdn,"
            " served_operator_id, direction, destination_class, technology, duration_s, data_volume_bytes, roaming,"
            " usage_amount, usage_unit, category, destination_id, cost, currency, query_id, batch_id) from stdin"
        ) as copy:
            for c in CDRS:
                volume = 1_000_000 if c.record_type == "data" else None
                copy.write_row(
                    (c.record_id, c.day, c.start - timedelta(hours=1), c.record_type, c.msisdn, "IAM", c.direction,
                     c.destination_class, "4G", c.duration_s, volume, c.roaming, c.duration_s, "s", "call", "D",
                     Decimal(c.cost), "MAD", "q", 0)
                )  # fmt: skip
    run.load_periods(PERIODS_V1, {m: p for m, p, _, valid_to in PERIODS_V1 if valid_to is None})
    try:
        run.dbt("seed", "--select", "plan_catalogue vat_rates")
        seeded = {
            name: Plan(plan_id, billing_type, fee, minutes, basis)
            for name, plan_id, billing_type, fee, minutes, basis in run.query(
                f"select plan_name, plan_id, billing_type, monthly_fee, included_national_minutes, price_basis"
                f" from {run.billing}.plan_catalogue"
            )
        }
        assert seeded == PLANS
        run.bill(OCTOBER, DECEMBER)  # October and November, with the first load's periods
        yield run
    finally:
        with psycopg.connect(run.conninfo, autocommit=True) as conn:
            for schema in (run.reference, run.rating, run.billing):
                conn.execute(f"drop schema if exists {schema} cascade")


def test_each_cdr_is_billed_under_the_plan_in_force_on_its_day_with_fees_and_minutes_prorated(lifecycle):
    run = lifecycle
    november = run.bills(NOVEMBER)
    assert november == expected_bills(PERIODS_V1, NOVEMBER)
    # what the rules give, spelled out for the cases the issue names
    activated = november[(ACTIVATED, "invoice")]
    assert (activated["plan_days"], activated["monthly_fee"]) == (17, Decimal("56.10"))  # 99 x 17 / 30
    assert (activated["included_national_seconds"], activated["allowance_seconds_used"]) == (3400, 3400)
    assert activated["allowance_amount"] == Decimal("15.60")  # 10.00 + 8.00 x 1,400 / 2,000
    changed = november[(CHANGED, "invoice")]
    assert changed["monthly_fee"] == Decimal("252.33")  # (99 x 7 + 299 x 23) / 30 = 252.333...
    assert changed["plan_id"] == "BUSINESS_PRO" and changed["included_national_seconds"] == 1400 + 23000
    assert changed["allowance_amount"] == Decimal("22.00")  # 7.00 (1,400 of 2,000 s) + 15.00 (a new period)
    terminated = november[(TERMINATED, "invoice")]
    assert (terminated["plan_days"], terminated["monthly_fee"]) == (9, Decimal("29.70"))
    assert november[(TERMINATED, "usage_statement")]["billing_type"] == "unknown"  # the late CDR: no period
    statement, invoice = november[(MOVED, "usage_statement")], november[(MOVED, "invoice")]
    assert (statement["plan_id"], statement["sms_amount"], statement["voice_amount"]) == (
        "JAWAL_PREPAID",
        Decimal("1.20"),
        Decimal("3.00"),
    )
    assert statement["allowance_amount"] == statement["monthly_fee"] == 0  # prepaid: no allowance, no fee
    assert (invoice["plan_id"], invoice["monthly_fee"], invoice["allowance_amount"]) == (
        "FORFAIT_100",
        Decimal("49.50"),
        Decimal("3.00"),
    )
    assert invoice["voice_amount"] == Decimal("6.50")  # the roaming call is on it, not covered
    assert not {k for k in november if k[0] in (GONE, SILENT)}  # no period, or prepaid and silent: no bill
    october = run.bills(OCTOBER)
    assert october == expected_bills(PERIODS_V1, OCTOBER)
    assert october[(GONE, "invoice")]["monthly_fee"] == Decimal("63.87")  # 99 x 20 / 31
    # the invoice numbers tell the documents apart, and the lines add up (the data tests ran in build)
    numbers = dict(
        run.query(f"select document_type, invoice_number from {run.billing}.billing_cdrs where msisdn = %s", (MOVED,))
    )
    assert numbers == {"invoice": "INV-202611-212600000104", "usage_statement": "STM-202611-212600000104"}
    fee_lines = dict(
        run.query(
            f"select invoice_number, quantity || ' ' || unit from {run.billing}.invoice_lines"
            " where line_type = 'monthly_fee' and billing_month = %s",
            (NOVEMBER,),
        )
    )
    assert fee_lines["INV-202611-212600000101"] == "17.00 days" and fee_lines["INV-202611-212600000102"] == "1.00 month"


def test_a_past_month_billed_again_after_a_later_plan_change_keeps_its_plan(lifecycle):
    run = lifecycle
    october, november = run.bills(OCTOBER), run.bills(NOVEMBER)
    # the second load: REBILLED is on Business Pro from December, and reference.subscribers (the
    # plan in force on the day of the load) says so
    current = {m: p for m, p, _, valid_to in PERIODS_V2 if valid_to is None}
    run.load_periods(PERIODS_V2, current)
    try:
        run.bill(OCTOBER, DECEMBER)
        assert run.bills(OCTOBER) == october == expected_bills(PERIODS_V2, OCTOBER)
        assert run.bills(NOVEMBER) == november
        assert october[(REBILLED, "invoice")]["plan_id"] == "FORFAIT_100"
        assert october[(REBILLED, "invoice")]["monthly_fee"] == Decimal("99.00")
    finally:
        run.load_periods(PERIODS_V1, {m: p for m, p, _, valid_to in PERIODS_V1 if valid_to is None})
