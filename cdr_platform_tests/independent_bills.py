"""Every bill of a month recomputed independently of dbt, in Python with Decimal, by the billing
rules (README "Billing (dbt)" and "Subscriber lifecycle"; the header comments of billing_cdrs.sql,
allowance_usage.sql, int_allowance_calls.sql and macros/proration.sql), and compared with
billing_cdrs to the cent.

The inputs, and nothing of the models: the rated CDRs (the warehouse only selects and sums them:
per subscriber, rating day and record type their count, cost and durations; and the national
calls the allowance consumes, streamed in start order through a server-side cursor), the dated
plan periods (reference.subscriber_periods), the plan catalogue and the VAT rates (the billing
schema's seed tables). Every rule is applied here:

- each CDR counts under the plan period in force on its rating day: on the invoice of a postpaid
  or business plan, on the usage statement of a prepaid one or of a day no period covers;
- each usage line is its exact rated total rounded half up to the cent, once;
- a period's days_on_plan = the days of the month within [valid_from, valid_to]; the invoice's fee
  = round(sum of monthly_fee x days_on_plan / days_in_month, 2); each invoiced period includes
  floor(minutes x 60 x days_on_plan / days_in_month) seconds;
- the allowance: each period's seconds are consumed by its own national calls (outgoing, at home,
  on-net / off-net / fixed) in order of start time, then record id; a call wholly covered is
  credited its price, the one that exhausts the seconds its covered share (12 decimals), later
  calls nothing; the month's credit is rounded once, to the cent;
- bills: every (subscriber, document) with usage, and an invoice for every postpaid or business
  period in force on some day of the month; plan, billing type and price basis are those of the
  bill's latest period (a statement with none: billing type unknown, basis net);
- VAT: the rate in force on the month's first day; net: VAT = round(before tax x rate, 2) added;
  gross: VAT = round(total x rate / (1 + rate), 2) included.
"""

from __future__ import annotations

import calendar
import dataclasses
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
CREDIT_PLACES = Decimal("1e-12")  # a partly covered call's credit, as the warehouse keeps it
INVOICED = ("postpaid", "business")
NATIONAL_CLASSES = ("on_net", "off_net", "fixed")
USAGE_TYPES = ("voice", "sms", "data")


@dataclass(frozen=True)
class Plan:
    plan_id: str
    billing_type: str
    monthly_fee: Decimal
    included_national_minutes: int
    price_basis: str

    @property
    def invoiced(self) -> bool:
        return self.billing_type in INVOICED


@dataclass(frozen=True)
class Period:
    msisdn: str
    plan: Plan | None  # None: a plan name the catalogue does not know (billed as no plan)
    valid_from: date
    valid_to: date | None  # inclusive; None: open-ended

    def in_force(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)

    @property
    def document_type(self) -> str:
        return "invoice" if self.plan is not None and self.plan.invoiced else "usage_statement"


@dataclass(frozen=True)
class ExpectedBill:
    """A bill's columns as the rules give them (billing_cdrs' names)."""

    plan_id: str | None
    billing_type: str
    price_basis: str
    invoice_number: str
    voice_calls: int
    sms_count: int
    data_sessions: int
    total_call_duration_s: int
    average_call_duration_s: Decimal
    longest_call_duration_s: int
    data_volume_bytes: int
    voice_amount: Decimal
    sms_amount: Decimal
    data_amount: Decimal
    usage_amount: Decimal
    included_national_minutes: int
    included_national_seconds: int
    plan_days: int
    allowance_seconds_used: int
    allowance_amount: Decimal
    monthly_fee: Decimal
    amount_before_tax: Decimal
    vat_rate: Decimal
    vat_amount: Decimal
    total_amount: Decimal
    rated_cdrs: int
    rated_cost: Decimal


COLUMNS = tuple(f.name for f in dataclasses.fields(ExpectedBill))


def to_cent(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def month_bounds(month: date | str) -> tuple[date, date, int]:
    """(first day, first day of the next month, days in the month) of the month starting on `month`."""
    start = date.fromisoformat(month) if isinstance(month, str) else month
    if start.day != 1:
        raise ValueError(f"a billing month is a first day, got {start}")
    end = date(start.year + start.month // 12, start.month % 12 + 1, 1)
    return start, end, calendar.monthrange(start.year, start.month)[1]


def days_on_plan(month: date, valid_from: date, valid_to: date | None) -> int:
    start, end, _ = month_bounds(month)
    last = date.fromordinal(end.toordinal() - 1)
    first, final = max(valid_from, start), min(valid_to or last, last)
    return max(0, (final - first).days + 1)


def included_seconds(period: Period, month: date) -> int:
    """floor(included minutes x 60 x days_on_plan / days_in_month) of an invoiced period; 0 otherwise."""
    if period.plan is None or not period.plan.invoiced:
        return 0
    _, _, days_in_month = month_bounds(month)
    return (
        period.plan.included_national_minutes
        * 60
        * days_on_plan(month, period.valid_from, period.valid_to)
        // (days_in_month)
    )


def load_plans(conn, billing_schema: str) -> dict[str, Plan]:
    return {
        name: Plan(plan_id, billing_type, fee, minutes, basis)
        for name, plan_id, billing_type, fee, minutes, basis in conn.execute(
            f"select plan_name, plan_id, billing_type, monthly_fee, included_national_minutes, price_basis"
            f" from {billing_schema}.plan_catalogue"
        ).fetchall()
    }


def month_periods(conn, month: date, plans: dict[str, Plan], reference_schema: str = "reference") -> dict[str, list]:
    """{msisdn: [Period, ...]} of the periods in force on some day of the month, by valid_from."""
    start, end, _ = month_bounds(month)
    periods: dict[str, list[Period]] = {}
    for msisdn, plan_name, valid_from, valid_to in conn.execute(
        f"select msisdn, plan, valid_from, valid_to from {reference_schema}.subscriber_periods"
        " where valid_from < %s and (valid_to is null or valid_to >= %s) order by msisdn, valid_from",
        (end, start),
    ).fetchall():
        periods.setdefault(msisdn, []).append(Period(msisdn, plans.get(plan_name), valid_from, valid_to))
    return periods


def vat_rate_of(conn, billing_schema: str, month: date) -> Decimal:
    """The VAT rate in force on the month's first day (the latest valid_from on or before it)."""
    rates = sorted(conn.execute(f"select valid_from, vat_rate from {billing_schema}.vat_rates").fetchall())
    in_force = [rate for valid_from, rate in rates if valid_from <= month]
    if not in_force:
        raise ValueError(f"no VAT rate in force for billing month {month}")
    return in_force[-1]


def _in_force(periods: list[Period], day: date) -> Period | None:
    for period in periods:
        if period.in_force(day):
            return period
    return None


def allowance_by_the_rule(
    conn,
    rating_table: str,
    billing_schema: str,
    month: date | str,
    reference_schema: str = "reference",
    *,
    per_period: bool = False,
    itersize: int = 100_000,
) -> dict:
    """The allowance rule applied call by call to the month's national calls, streamed in order of
    start time then record id (a server-side cursor: millions of calls in little memory): each call
    counts under the period in force on its rating day, and uses up that period's own included
    seconds. {msisdn: (seconds used, credit)} for the subscribers who used some (the credit exact
    to 12 decimals a call, as allowance_usage keeps it); with per_period, keyed (msisdn, valid_from)."""
    start, end, _ = month_bounds(month)
    periods = month_periods(conn, start, load_plans(conn, billing_schema), reference_schema)
    allowance: dict[tuple[str, date], int] = {}  # the periods with included seconds
    for msisdn_periods in periods.values():
        for period in msisdn_periods:
            seconds = included_seconds(period, start)
            if seconds > 0:
                allowance[(period.msisdn, period.valid_from)] = seconds
    consumed: dict[tuple[str, date], int] = {}
    used: dict[tuple[str, date], tuple[int, Decimal]] = {}
    period_of_day: dict[tuple[str, date], tuple[str, date] | None] = {}
    cursor_name = f"national_calls_{uuid.uuid4().hex[:12]}"
    with conn.transaction(), conn.cursor(name=cursor_name) as cursor:
        cursor.itersize = itersize
        cursor.execute(
            f"select served_msisdn, rating_day, duration_s, cost from {rating_table}"
            " where rating_day >= %s and rating_day < %s and record_type = 'voice' and direction = 'outgoing'"
            " and roaming = 0 and destination_class in ('on_net', 'off_net', 'fixed')"
            " order by start_time, record_id",
            (start, end),
        )
        for msisdn, day, duration, cost in cursor:
            key = period_of_day.get((msisdn, day), False)
            if key is False:
                period = _in_force(periods.get(msisdn, []), day)
                key = (msisdn, period.valid_from) if period is not None else None
                period_of_day[(msisdn, day)] = key
            if key is None or key not in allowance:
                continue
            before = consumed.get(key, 0)
            if before >= allowance[key]:
                continue  # run out: later calls are credited nothing
            consumed[key] = before + duration
            covered = min(duration, allowance[key] - before)
            if covered <= 0:
                continue  # a call of no duration: nothing used, nothing credited
            credit = cost if covered == duration else (cost * covered / duration).quantize(CREDIT_PLACES, ROUND_HALF_UP)
            seconds, total = used.get(key, (0, Decimal(0)))
            used[key] = (seconds + covered, total + credit)
    if per_period:
        return used
    by_msisdn: dict[str, tuple[int, Decimal]] = {}
    for (msisdn, _), (seconds, credit) in used.items():
        before_seconds, before_credit = by_msisdn.get(msisdn, (0, Decimal(0)))
        by_msisdn[msisdn] = (before_seconds + seconds, before_credit + credit)
    return by_msisdn


@dataclass
class _Usage:
    count: dict = dataclasses.field(default_factory=lambda: dict.fromkeys(USAGE_TYPES, 0))
    cost: dict = dataclasses.field(default_factory=lambda: dict.fromkeys(USAGE_TYPES, Decimal(0)))
    call_seconds: int = 0
    longest_call_s: int = 0
    data_bytes: int = 0


def recompute_bills(
    conn,
    rating_table: str,
    billing_schema: str,
    month: date | str,
    reference_schema: str = "reference",
) -> dict[tuple[str, str], ExpectedBill]:
    """Every bill of `month` by the rules, from the rated CDRs, the plan periods, the plan catalogue
    and the VAT rates: {(msisdn, document_type): ExpectedBill}."""
    start, end, days_in_month = month_bounds(month)
    plans = load_plans(conn, billing_schema)
    periods = month_periods(conn, start, plans, reference_schema)
    vat = vat_rate_of(conn, billing_schema, start)

    # usage: per subscriber, rating day and type, on the document of the period in force that day
    usage: dict[tuple[str, str], _Usage] = {}
    for msisdn, day, record_type, count, cost, seconds, longest, volume in conn.execute(
        f"select served_msisdn, rating_day, record_type, count(*), sum(cost), sum(duration_s), max(duration_s),"
        f" sum(data_volume_bytes) from {rating_table} where rating_day >= %s and rating_day < %s"
        " group by served_msisdn, rating_day, record_type",
        (start, end),
    ).fetchall():
        if record_type not in USAGE_TYPES:
            raise ValueError(f"a rated CDR of record type {record_type!r} ({msisdn}, {day}): no bill line for it")
        period = _in_force(periods.get(msisdn, []), day)
        line = usage.setdefault((msisdn, period.document_type if period else "usage_statement"), _Usage())
        line.count[record_type] += count
        line.cost[record_type] += cost
        if record_type == "voice":
            line.call_seconds += seconds or 0
            line.longest_call_s = max(line.longest_call_s, longest or 0)
        elif record_type == "data":
            line.data_bytes += volume or 0

    allowance = allowance_by_the_rule(conn, rating_table, billing_schema, start, reference_schema)

    # the periods of each document in the month: days, fee x days (exact), included seconds, latest
    documents: dict[tuple[str, str], list[Period]] = {}
    for msisdn_periods in periods.values():
        for period in msisdn_periods:
            documents.setdefault((period.msisdn, period.document_type), []).append(period)

    billed = set(usage) | {key for key in documents if key[1] == "invoice"}
    bills: dict[tuple[str, str], ExpectedBill] = {}
    for msisdn, document in billed:
        line = usage.get((msisdn, document), _Usage())
        own = documents.get((msisdn, document), [])
        latest = max(own, key=lambda p: p.valid_from).plan if own else None
        invoice = document == "invoice"
        plan_days = sum(days_on_plan(start, p.valid_from, p.valid_to) for p in own)
        fee_days = sum(
            (p.plan.monthly_fee * days_on_plan(start, p.valid_from, p.valid_to) for p in own if p.plan), Decimal(0)
        )
        amounts = {t: to_cent(line.cost[t]) for t in USAGE_TYPES}
        seconds_used, credit = allowance.get(msisdn, (0, Decimal(0))) if invoice else (0, Decimal(0))
        allowance_amount = to_cent(credit)
        fee = to_cent(fee_days / days_in_month) if invoice else Decimal("0.00")
        usage_amount = sum(amounts.values(), Decimal(0))
        charged = usage_amount - allowance_amount + fee
        basis = latest.price_basis if latest else "net"
        if basis == "gross":
            vat_amount = to_cent(charged * vat / (1 + vat))
            before_tax, total = charged - vat_amount, charged
        else:
            vat_amount = to_cent(charged * vat)
            before_tax, total = charged, charged + vat_amount
        voice_calls = line.count["voice"]
        bills[(msisdn, document)] = ExpectedBill(
            plan_id=latest.plan_id if latest else None,
            billing_type=latest.billing_type if latest else "unknown",
            price_basis=basis,
            invoice_number=f"{'INV' if invoice else 'STM'}-{start:%Y%m}-{msisdn.replace('+', '')}",
            voice_calls=voice_calls,
            sms_count=line.count["sms"],
            data_sessions=line.count["data"],
            total_call_duration_s=line.call_seconds,
            average_call_duration_s=(
                to_cent(Decimal(line.call_seconds) / voice_calls) if voice_calls else Decimal("0.00")
            ),
            longest_call_duration_s=line.longest_call_s,
            data_volume_bytes=line.data_bytes,
            voice_amount=amounts["voice"],
            sms_amount=amounts["sms"],
            data_amount=amounts["data"],
            usage_amount=usage_amount,
            included_national_minutes=latest.included_national_minutes if latest else 0,
            included_national_seconds=sum(included_seconds(p, start) for p in own) if invoice else 0,
            plan_days=plan_days,
            allowance_seconds_used=seconds_used,
            allowance_amount=allowance_amount,
            monthly_fee=fee,
            amount_before_tax=before_tax,
            vat_rate=vat,
            vat_amount=vat_amount,
            total_amount=total,
            rated_cdrs=sum(line.count.values()),
            rated_cost=sum(line.cost.values(), Decimal(0)),
        )
    return bills


def billed_months(conn, rating_table: str, billing_schema: str) -> list[date]:
    """The months with rated CDRs or bills: those whose every bill a recomputation checks."""
    rows = conn.execute(
        f"select distinct cast(date_trunc('month', rating_day) as date) from {rating_table}"
        f" union select distinct billing_month from {billing_schema}.billing_cdrs"
    ).fetchall()
    return sorted(month for (month,) in rows)


def compare(conn, billing_schema: str, month: date | str, expected: dict[tuple[str, str], ExpectedBill]) -> list[str]:
    """What differs between billing_cdrs' bills of `month` and `expected`: a line per bill missing
    or extra, and per column that disagrees. Empty: every bill agrees to the cent."""
    start, _, _ = month_bounds(month)
    billed = {
        (msisdn, document): dict(zip(COLUMNS, rest, strict=True))
        for msisdn, document, *rest in conn.execute(
            f"select msisdn, document_type, {', '.join(COLUMNS)} from {billing_schema}.billing_cdrs"
            " where billing_month = %s",
            (start,),
        ).fetchall()
    }
    differences = []
    for key in sorted(set(expected) - set(billed)):
        differences.append(f"{start:%Y-%m} {key[0]} {key[1]}: no bill, expected {dataclasses.asdict(expected[key])}")
    for key in sorted(set(billed) - set(expected)):
        differences.append(f"{start:%Y-%m} {key[0]} {key[1]}: a bill the rules do not give: {billed[key]}")
    for key in sorted(set(billed) & set(expected)):
        want = dataclasses.asdict(expected[key])
        for column in COLUMNS:
            got = billed[key][column]
            if got != want[column]:
                differences.append(
                    f"{start:%Y-%m} {key[0]} {key[1]} {column}: billed {got!r}, expected {want[column]!r}"
                )
    return differences


def verify_months(
    conn,
    rating_table: str,
    billing_schema: str,
    months: Iterable[date | str] | None = None,
    reference_schema: str = "reference",
) -> tuple[int, list[str]]:
    """Recompute and compare every bill of `months` (default: billed_months): (bills recomputed,
    differences)."""
    chosen = billed_months(conn, rating_table, billing_schema) if months is None else list(months)
    count, differences = 0, []
    for month in chosen:
        expected = recompute_bills(conn, rating_table, billing_schema, month, reference_schema)
        count += len(expected)
        differences += compare(conn, billing_schema, month, expected)
    return count, differences
