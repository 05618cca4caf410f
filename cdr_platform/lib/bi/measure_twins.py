"""A SQL twin of every measure of the semantic model: its value over all the marts, with no filter.

A twin returns one row with one column, `measure_value`, equal to what the measure shows on an empty
report page (no filter, no row-level security role), so the measure can be checked against
the warehouse without Power BI. The keys are exactly the TMDL measure names.

Rules the twins follow, to mirror DAX and to run unchanged on PostgreSQL and SQL Server:
- exact decimals only: sums of decimal(18, 4) stay decimal; a DIVIDE() is computed as
  decimal(38, 10) and rounded to decimal(18, 6), so both engines return the same digits
  (SQL Server truncates a division at the result scale, rounding happens only in the cast);
- DAX BLANK is SQL NULL: SUM over no rows, DIVIDE by zero or blank (nullif), BLANK - BLANK;
  BLANK - x is -x, and x - BLANK is x (`_minus`);
- cast() only, no `::`, no LIMIT, no ILIKE, no boolean columns; lowercase, CTEs first.

Top Customers by Usage mirrors TOPN(10, ..., DESC): TOPN keeps every row tied with the 10th,
which is rank() <= 10 (competition rank), not a fetch-first of 10 rows; subscribers without
usage rank as zero (DAX sorts BLANK as zero) and add nothing to the sum.
"""

from __future__ import annotations

TOP_CUSTOMERS = 10  # the N of TOPN in [Top Customers by Usage]
BYTES_PER_GB = 1_000_000_000


def _divide(numerator: str, denominator: str) -> str:
    """DAX DIVIDE(numerator, denominator): NULL on a zero or NULL denominator, exact decimals."""
    return f"cast(cast({numerator} as decimal(38, 10)) / nullif({denominator}, 0) as decimal(18, 6))"


def _minus(left: str, right: str) -> str:
    """DAX left - right: blank only if both are blank, otherwise a blank counts as zero."""
    return f"case when {left} is null and {right} is null then null else coalesce({left}, 0) - coalesce({right}, 0) end"


MEASURE_TWINS: dict[str, str] = {
    "Total Revenue": """
select sum(revenue) as measure_value
from marts.fct_revenue_daily
""",
    "Average Call Duration": f"""
select {_divide("sum(call_seconds)", "sum(calls)")} as measure_value
from marts.fct_call_distribution_daily
""",
    "Top Customers by Usage": f"""
with subscriber_usage as (
    select
        s.subscriber_key,
        sum(u.usage_amount) as usage_amount
    from marts.dim_subscriber as s
    left join marts.fct_subscriber_usage_monthly as u
        on u.subscriber_key = s.subscriber_key
    group by s.subscriber_key
),

ranked as (
    select
        usage_amount,
        rank() over (order by coalesce(usage_amount, 0) desc) as usage_rank
    from subscriber_usage
)

select sum(usage_amount) as measure_value
from ranked
where usage_rank <= {TOP_CUSTOMERS}
""",
    # no filter: every operator is in context, so the share is 1 wherever there are calls
    "Call Distribution per Operator": f"""
select {_divide("sum(calls)", "sum(calls)")} as measure_value
from marts.fct_call_distribution_daily
""",
    "ARPU": """
with monthly as (
    select
        month_date_key,
        cast(sum(amount_before_tax) as decimal(38, 10)) / count(distinct subscriber_key) as arpu
    from marts.fct_subscriber_usage_monthly
    group by month_date_key
)

select cast(avg(arpu) as decimal(18, 6)) as measure_value
from monthly
""",
    "Minutes of Use": """
select sum(minutes) as measure_value
from marts.fct_call_distribution_daily
""",
    "SMS Count": """
select sum(sms_count) as measure_value
from marts.fct_revenue_daily
""",
    "Data Volume": f"""
select {_divide("sum(data_volume_bytes)", str(BYTES_PER_GB))} as measure_value
from marts.fct_revenue_daily
""",
    # messages, not reasons: fct_rejections_daily counts a message with two reasons twice
    "Rejection Rate": f"""
select {_divide("sum(rejected)", "sum(messages_received)")} as measure_value
from marts.fct_revenue_assurance_daily
""",
    # month to date against the same days of the previous month, for the month of the last day with
    # revenue rows (month index: year * 12 + month); a month-end day stands for the whole month (31);
    # NULL when the previous month has no revenue on those days
    "Revenue vs Previous Month": """
with month_lengths as (
    select
        dd.year,
        dd.month,
        max(dd.day_of_month) as days_in_month
    from marts.dim_date as dd
    group by dd.year, dd.month
),

last_day as (
    select
        d.year * 12 + d.month as month_index,
        case when d.day_of_month = m.days_in_month then 31 else d.day_of_month end as day_of_month
    from marts.dim_date as d
    inner join month_lengths as m
        on m.year = d.year and m.month = d.month
    where d.date_key = (select max(f.date_key) from marts.fct_revenue_daily as f)
),

compared as (
    select
        sum(case when d.year * 12 + d.month = l.month_index then f.revenue end) as month_to_date_revenue,
        sum(case when d.year * 12 + d.month = l.month_index - 1 then f.revenue end) as previous_revenue
    from marts.fct_revenue_daily as f
    inner join marts.dim_date as d
        on d.date_key = f.date_key
    cross join last_day as l
    where d.day_of_month <= l.day_of_month
)

select
    case
        when coalesce(previous_revenue, 0) = 0 then null
        else coalesce(month_to_date_revenue, 0) - previous_revenue
    end as measure_value
from compared
""",
    "Revenue Leakage": f"""
with amounts as (
    select
        sum(rated_amount) as rated_amount,
        sum(billed_amount) as billed_amount
    from marts.fct_revenue_assurance_daily
)

select {_minus("rated_amount", "billed_amount")} as measure_value
from amounts
""",
}


def twins_for(marts_schema: str = "marts") -> dict[str, str]:
    """The twins over the marts in `marts_schema` (CDR_MARTS_SCHEMA): the same SQL, its schema named."""
    import re

    return {name: re.sub(r"\bmarts\.", f"{marts_schema}.", sql) for name, sql in MEASURE_TWINS.items()}
