"""Revenue reconciliation for people: per billing month, what rating priced and what the bills
charge for usage, side by side, to the cent.

The dbt tests on the billing models find every break line by line; this check recomputes the
same from rating_cdrs on its own (Decimal, half up to the cent, as the bills round) and shows the
month's totals in the UI. It fails on a rated (subscriber, usage type) that no bill line charges,
a line that charges what was not rated, a line that is not its rated total to the cent, or a
stale bill: one that took in fewer (or other) rated CDRs than rating_cdrs holds for its
subscriber and month now (billing_cdrs.rated_cdrs and rated_cost, exact), as when more CDRs
were rated after the month was billed.
"""

from collections import defaultdict
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal

import dagster as dg

from cdr_platform.defs.billing.assets import BILLING_MONTHS, billing_locks
from cdr_platform.defs.blocking_checks import PARTITION_TAG, partition_metadata, run_partition_keys
from cdr_platform.defs.resources import WarehouseResource
from cdr_platform.lib import asset_keys
from cdr_platform.lib.markdown import markdown_table
from cdr_platform.lib.reference.tables import SUBSCRIBER_PERIODS_TABLE
from cdr_platform.utils.dagster_instance import STAGE_TAG

IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]

BILLING_CDRS_KEY = dg.AssetKey(asset_keys.BILLING_CDRS)
USAGE_LINES = {"usage_voice": "voice", "usage_sms": "sms", "usage_data": "data"}
CENT = Decimal("0.01")


def reconcile(rated_by_day, billed_lines, bills_took_in=()) -> list[dict]:
    """rated_by_day: (rating_day, bill, record_type, cost, cdrs); billed_lines: (billing_month,
    bill, line_type, amount); bills_took_in: (billing_month, bill, rated_cdrs, rated_cost). A bill is
    whose and which document: (msisdn, document_type), a subscriber having an invoice and a statement
    in a month that moved between prepaid and postpaid. One row per month: totals and the breaks."""
    rated: dict[tuple, Decimal] = defaultdict(Decimal)
    rated_now: dict[tuple, list] = defaultdict(lambda: [0, Decimal(0)])  # (month, msisdn) -> [cdrs, cost]
    for day, msisdn, record_type, cost, cdrs in rated_by_day:
        month = date(day.year, day.month, 1)
        rated[(month, msisdn, record_type)] += Decimal(cost)
        rated_now[(month, msisdn)][0] += int(cdrs)
        rated_now[(month, msisdn)][1] += Decimal(cost)
    billed = {(month, msisdn, USAGE_LINES[line]): Decimal(amount) for month, msisdn, line, amount in billed_lines}
    months: dict[date, dict] = {}

    def month_row(month: date) -> dict:
        return months.setdefault(
            month,
            {
                "rated": Decimal(0),
                "billed usage": Decimal(0),
                "rated, not billed": 0,
                "billed, not rated": 0,
                "lines off": 0,
                "CDRs rated": 0,
                "CDRs on bills": 0,
                "stale bills": 0,
            },
        )

    for month, msisdn, cdrs, cost in bills_took_in:
        row = month_row(month)
        row["CDRs on bills"] += int(cdrs)
        now_cdrs, now_cost = rated_now.get((month, msisdn), (0, Decimal(0)))
        if int(cdrs) != now_cdrs or Decimal(cost) != now_cost:
            row["stale bills"] += 1
    for (month, _), (cdrs, _) in rated_now.items():
        month_row(month)["CDRs rated"] += cdrs
    for key in rated.keys() | billed.keys():
        row = month_row(key[0])
        if key in rated:
            row["rated"] += rated[key]
        if key in billed:
            row["billed usage"] += billed[key]
        if key not in billed:
            row["rated, not billed"] += 1
        elif key not in rated:
            row["billed, not rated"] += 1
        elif billed[key] != rated[key].quantize(CENT, rounding=ROUND_HALF_UP):
            row["lines off"] += 1
    return [
        {"month": f"{month:%Y-%m}", **row, "rated": str(row["rated"]), "billed usage": str(row["billed usage"])}
        for month, row in sorted(months.items())
    ]


def _current_context() -> dg.AssetCheckExecutionContext | None:
    """The check's execution context; None when the function is called directly (a test, or a
    person at a prompt): it then checks every billed month."""
    try:
        return dg.AssetCheckExecutionContext.get()
    except dg.DagsterInvariantViolationError:
        return None


def months_checked(context: dg.AssetCheckExecutionContext | None) -> list[date] | None:
    """The billing months of the check's run (first days); None: every billed month (a run of the
    checks alone, or a direct call)."""
    keys = run_partition_keys(context.run.tags, BILLING_MONTHS) if context is not None else None
    return None if keys is None else sorted(date.fromisoformat(key) for key in keys)


def _next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def rating_changed_meanwhile(context: dg.AssetCheckExecutionContext, months: list[date]) -> list[str]:
    """The days of `months` that a rating run may have swapped in since this billing run started
    (a rating run of them in progress, or finished since): their bills are due again, and a
    break they cause is the next billing run's to mend, not this one's."""
    record = context.instance.get_run_record_by_id(context.run.run_id)
    started = record.start_time if record and record.start_time else None
    if started is None:
        return []
    rating = {STAGE_TAG: "rating"}
    runs = [
        *context.instance.get_runs(filters=dg.RunsFilter(tags=rating, statuses=IN_PROGRESS)),
        *context.instance.get_runs(
            filters=dg.RunsFilter(tags=rating, updated_after=datetime.fromtimestamp(started, UTC))
        ),
    ]
    days = {run.tags.get(PARTITION_TAG) for run in runs} - {None}
    return sorted(day for day in days if date.fromisoformat(day).replace(day=1) in months)


@dg.asset_check(
    asset=BILLING_CDRS_KEY,
    blocking=True,
    description="Per billing month (the run's month; every billed month in a run of the checks alone), the rated "
    "total of rating_cdrs against the usage lines billed: every rated subscriber and usage type is billed at its "
    "rated total rounded to the cent, nothing else is billed, and every bill took in exactly the rated CDRs its "
    "subscriber and month have now (no stale or partial bill). Blocking: a failure stops the marts and BI until it "
    "passes again; a break that a rating run of the month since the billing started explains only warns (the month "
    "is billed again).",
)
def billing_reconciles_with_rating(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    context = _current_context()
    months = months_checked(context)
    window = {"start": months[0], "end": _next_month(months[-1])} if months else None
    in_months = " and billing_month >= %(start)s and billing_month < %(end)s" if months else ""
    in_days = "where rating_day >= %(start)s and rating_day < %(end)s" if months else ""
    billing = warehouse.billing_schema
    # the bills and the rating of one version of the months: no billing build and no rating swap
    # of them while the check reads (the same locks as a billing build)
    with billing_locks(warehouse, months or []):
        rerated = rating_changed_meanwhile(context, months) if context is not None and months else []
        with warehouse.connect() as conn:
            billed_lines = [
                (month, (msisdn, document), line_type, amount)
                for month, msisdn, document, line_type, amount in conn.execute(
                    f"select l.billing_month, l.msisdn, b.document_type, l.line_type, l.amount"
                    f" from {billing}.invoice_lines l inner join {billing}.billing_cdrs b"
                    " on b.invoice_number = l.invoice_number and b.billing_month = l.billing_month"
                    f" where l.line_type in ('usage_voice', 'usage_sms', 'usage_data')"
                    f"{in_months.replace('billing_month', 'l.billing_month')}",
                    window,
                ).fetchall()
            ]
            billed_months = [
                m
                for (m,) in conn.execute(
                    f"select distinct billing_month from {billing}.billing_cdrs where 1 = 1{in_months}", window
                )
            ]
            # each day's usage on the document of the plan in force that day (an invoice under
            # postpaid or business, a statement otherwise), worked out here from the periods
            rated = [
                (day, (msisdn, document), record_type, cost, cdrs)
                for day, msisdn, document, record_type, cost, cdrs in conn.execute(
                    "select daily.rating_day, daily.msisdn, case when plans.billing_type in ('postpaid', 'business')"
                    " then 'invoice' else 'usage_statement' end, daily.record_type, sum(daily.cost), sum(daily.cdrs)"
                    " from (select rating_day, served_msisdn as msisdn, record_type, sum(cost) as cost,"
                    f" count(*) as cdrs from {warehouse.rating_schema}.rating_cdrs {in_days}"
                    " group by rating_day, served_msisdn, record_type) daily"
                    f" left join {SUBSCRIBER_PERIODS_TABLE.qualified} periods on periods.msisdn = daily.msisdn"
                    " and periods.valid_from <= daily.rating_day"
                    " and (periods.valid_to is null or daily.rating_day <= periods.valid_to)"
                    f" left join {billing}.plan_catalogue plans on plans.plan_name = periods.plan"
                    " group by daily.rating_day, daily.msisdn, case when plans.billing_type in ('postpaid', 'business')"
                    " then 'invoice' else 'usage_statement' end, daily.record_type",
                    window,
                ).fetchall()
            ]
            took_in = [
                (month, (msisdn, document), cdrs, cost)
                for month, msisdn, document, cdrs, cost in conn.execute(
                    f"select billing_month, msisdn, document_type, rated_cdrs, rated_cost from {billing}.billing_cdrs"
                    f" where 1 = 1{in_months}",
                    window,
                ).fetchall()
            ]
    # the months that have been billed: a month rated but not billed yet is not a break
    billed = {f"{month:%Y-%m}" for month in billed_months}
    table = [row for row in reconcile(rated, billed_lines, took_in) if row["month"] in billed]
    for row in table:
        row["breaks"] = row["rated, not billed"] + row["billed, not rated"] + row["lines off"] + row["stale bills"]
    breaks = sum(r["breaks"] for r in table)
    checked = [f"{m:%Y-%m-%d}" for m in months] if months else [f"{m:%Y-%m-%d}" for m in billed_months]
    failed = [f"{row['month']}-01" for row in table if row["breaks"]]
    if not table:
        failed, description = checked, "no bill for " + (", ".join(checked) or "any month")
    elif breaks:
        description = "; ".join(
            f"{r['month']}: {r['rated, not billed']} rated not billed, {r['billed, not rated']} billed not rated,"
            f" {r['lines off']} lines off, {r['stale bills']} stale bills"
            for r in table
            if r["breaks"]
        )
        if rerated:
            description += f" (rating changed {', '.join(rerated)} while it was billed: the month is due again)"
    else:
        description = "every month's usage lines are its rated totals to the cent: " + ", ".join(
            f"{r['month']} {r['billed usage']}" for r in table
        )
    return dg.AssetCheckResult(
        passed=bool(table) and breaks == 0,
        severity=dg.AssetCheckSeverity.WARN if rerated else dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata={
            "months": dg.MetadataValue.md(markdown_table(table)),
            "breaks": breaks,
            "stale_bills": sum(r["stale bills"] for r in table),
            "rating_changed_meanwhile": ", ".join(rerated) or "-",
            **partition_metadata(checked, failed),
        },
    )
