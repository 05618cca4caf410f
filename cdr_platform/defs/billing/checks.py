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
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

import dagster as dg

from cdr_platform.defs.resources import WarehouseResource
from cdr_platform.lib.markdown import markdown_table

BILLING_CDRS_KEY = dg.AssetKey(["billing", "billing_cdrs"])
USAGE_LINES = {"usage_voice": "voice", "usage_sms": "sms", "usage_data": "data"}
CENT = Decimal("0.01")


def reconcile(rated_by_day, billed_lines, bills_took_in=()) -> list[dict]:
    """rated_by_day: (rating_day, msisdn, record_type, cost, cdrs); billed_lines: (billing_month,
    msisdn, line_type, amount); bills_took_in: (billing_month, msisdn, rated_cdrs, rated_cost).
    One row per month: totals and the breaks."""
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


@dg.asset_check(
    asset=BILLING_CDRS_KEY,
    description="Per billing month, the rated total of rating_cdrs against the usage lines billed: every rated "
    "subscriber and usage type is billed at its rated total rounded to the cent, nothing else is billed, and "
    "every bill took in exactly the rated CDRs its subscriber and month have now (no stale or partial bill).",
)
def billing_reconciles_with_rating(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.connect() as conn:
        billed_lines = conn.execute(
            f"select billing_month, msisdn, line_type, amount from {warehouse.billing_schema}.invoice_lines"
            " where line_type in ('usage_voice', 'usage_sms', 'usage_data')"
        ).fetchall()
        months = [
            m for (m,) in conn.execute(f"select distinct billing_month from {warehouse.billing_schema}.billing_cdrs")
        ]
        rated = conn.execute(
            "select rating_day, served_msisdn, record_type, sum(cost), count(*)"
            f" from {warehouse.rating_schema}.rating_cdrs group by rating_day, served_msisdn, record_type"
        ).fetchall()
        took_in = conn.execute(
            f"select billing_month, msisdn, rated_cdrs, rated_cost from {warehouse.billing_schema}.billing_cdrs"
        ).fetchall()
    # the months that have been billed: a month rated but not billed yet is not a break
    billed_months = {f"{month:%Y-%m}" for month in months}
    table = [row for row in reconcile(rated, billed_lines, took_in) if row["month"] in billed_months]
    breaks = sum(r["rated, not billed"] + r["billed, not rated"] + r["lines off"] + r["stale bills"] for r in table)
    return dg.AssetCheckResult(
        passed=bool(table) and breaks == 0,
        metadata={
            "months": dg.MetadataValue.md(markdown_table(table)),
            "breaks": breaks,
            "stale_bills": sum(r["stale bills"] for r in table),
        },
    )
