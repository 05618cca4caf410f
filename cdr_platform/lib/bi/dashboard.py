"""The local dashboard: one self-contained HTML file of the marts, for people without Power BI.

The KPI cards are the measures of the Power BI model, computed by their SQL twins
(measure_twins.py), so the dashboard and the report show the same numbers; each card carries
its exact value in `data-value`. The charts are Plotly figures with plotly.js inlined once: the
file opens from disk with no network. Every query names the marts it reads, and `tables_read()`
finds them, so the Dagster asset's dependencies come from the SQL itself.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from cdr_platform.lib.bi.measure_twins import twins_for

# The cards, in order: the measure, how to show it
KPIS: tuple[tuple[str, str], ...] = (
    ("Total Revenue", "{:,.2f} MAD"),
    ("ARPU", "{:,.2f} MAD"),
    ("Average Call Duration", "{:,.1f} s"),
    ("Minutes of Use", "{:,.0f} min"),
    ("SMS Count", "{:,.0f}"),
    ("Data Volume", "{:,.2f} GB"),
    ("Top Customers by Usage", "{:,.2f} MAD"),
    ("Rejection Rate", "{:.2%}"),
    ("Revenue vs Previous Month", "{:+,.2f} MAD"),
    ("Revenue Leakage", "{:,.2f} MAD"),
)

# One query per chart, over the marts (schema "marts", renamed for the configured one)
CHART_QUERIES: dict[str, str] = {
    "revenue_by_day_and_operator": """
select d.calendar_date, o.operator_name, sum(f.revenue) as revenue
from marts.fct_revenue_daily as f
inner join marts.dim_date as d on d.date_key = f.date_key
inner join marts.dim_operator as o on o.operator_key = f.operator_key
group by d.calendar_date, o.operator_name
order by d.calendar_date, o.operator_name
""",
    "top_customers": """
select s.msisdn, o.operator_name, s.plan_name, sum(u.usage_amount) as usage_amount
from marts.fct_subscriber_usage_monthly as u
inner join marts.dim_subscriber as s on s.subscriber_key = u.subscriber_key
inner join marts.dim_operator as o on o.operator_key = s.operator_key
group by s.msisdn, o.operator_name, s.plan_name
order by sum(u.usage_amount) desc, s.msisdn
offset 0 rows fetch next 10 rows only
""",
    "call_distribution": """
select o.operator_name, c.destination_class, sum(c.calls) as calls, sum(c.minutes) as minutes,
    sum(c.revenue) as revenue
from marts.fct_call_distribution_daily as c
inner join marts.dim_operator as o on o.operator_key = c.operator_key
group by o.operator_name, c.destination_class
order by o.operator_name, c.destination_class
""",
    "average_call_duration": """
select o.operator_name, cast(cast(sum(c.call_seconds) as decimal(38, 10)) / nullif(sum(c.calls), 0)
    as decimal(18, 2)) as average_seconds
from marts.fct_call_distribution_daily as c
inner join marts.dim_operator as o on o.operator_key = c.operator_key
group by o.operator_name
order by o.operator_name
""",
    "rejections_by_reason": """
select reason, sum(records) as records
from marts.fct_rejections_daily
group by reason
order by sum(records) desc, reason
""",
    "revenue_assurance": """
select d.calendar_date, a.messages_received, a.clean, a.rejected, a.duplicates, a.rejects_open,
    a.recovered, a.discarded, a.rated, a.in_suspense, a.unrated, a.billed, a.rated_amount, a.billed_amount,
    a.recovered_amount
from marts.fct_revenue_assurance_daily as a
inner join marts.dim_date as d on d.date_key = a.date_key
order by d.calendar_date
""",
}


def _in_schema(sql: str, marts_schema: str) -> str:
    return re.sub(r"\bmarts\.", f"{marts_schema}.", sql)


def tables_read() -> set[str]:
    """The mart tables the dashboard reads: its lineage in Dagster."""
    import sqlglot
    from sqlglot import exp

    tables = set()
    for sql in [*CHART_QUERIES.values(), *twins_for().values()]:
        for table in sqlglot.parse_one(sql, read="postgres").find_all(exp.Table):
            if table.db == "marts":
                tables.add(table.name)
    return tables


@dataclass
class DashboardData:
    kpis: dict[str, Decimal | None]
    charts: dict[str, list[tuple]]
    generated_at: datetime = field(default_factory=datetime.now)


def collect(conn, marts_schema: str = "marts") -> DashboardData:
    """Every KPI (from the measures' twins) and every chart's rows, from the warehouse."""
    twins = twins_for(marts_schema)
    kpis = {}
    for name, _ in KPIS:
        value = conn.execute(twins[name]).fetchone()[0]
        kpis[name] = None if value is None else Decimal(value)
    charts = {name: conn.execute(_in_schema(sql, marts_schema)).fetchall() for name, sql in CHART_QUERIES.items()}
    return DashboardData(kpis, charts)


def _figures(data: DashboardData) -> dict[str, object]:
    import plotly.graph_objects as go

    layout = {"margin": {"l": 50, "r": 20, "t": 40, "b": 40}, "height": 340, "template": "plotly_white"}
    figures = {}

    by_operator: dict[str, tuple[list, list]] = {}
    for day, operator, revenue in data.charts["revenue_by_day_and_operator"]:
        days, values = by_operator.setdefault(operator, ([], []))
        days.append(str(day))
        values.append(float(revenue))
    figures["revenue_by_day_and_operator"] = go.Figure(
        [go.Bar(name=op, x=days, y=values) for op, (days, values) in sorted(by_operator.items())],
        {**layout, "barmode": "stack", "title": "Revenue by day and operator (MAD)", "xaxis": {"type": "category"}},
    )

    top = data.charts["top_customers"]
    figures["top_customers"] = go.Figure(
        [go.Bar(x=[float(r[3]) for r in top][::-1], y=[f"{r[0]} ({r[1]})" for r in top][::-1], orientation="h")],
        {**layout, "title": "Top 10 customers by usage (MAD)", "margin": {**layout["margin"], "l": 190}},
    )

    classes = sorted({r[1] for r in data.charts["call_distribution"]})
    operators = sorted({r[0] for r in data.charts["call_distribution"]})
    calls = {(r[0], r[1]): int(r[2]) for r in data.charts["call_distribution"]}
    figures["call_distribution"] = go.Figure(
        [go.Bar(name=c, x=operators, y=[calls.get((op, c), 0) for op in operators]) for c in classes],
        {**layout, "barmode": "group", "title": "Calls per operator by destination class"},
    )

    average = data.charts["average_call_duration"]
    figures["average_call_duration"] = go.Figure(
        [go.Bar(x=[r[0] for r in average], y=[float(r[1] or 0) for r in average])],
        {**layout, "title": "Average call duration per operator (s)"},
    )

    rejections = data.charts["rejections_by_reason"]
    figures["rejections_by_reason"] = go.Figure(
        [go.Bar(x=[r[0] for r in rejections], y=[int(r[1]) for r in rejections])],
        {**layout, "title": "Rejected messages by reason"},
    )

    assurance = data.charts["revenue_assurance"]
    days = [str(r[0]) for r in assurance]
    names = (
        "received",
        "clean",
        "rejected",
        "duplicates",
        "rejects open",
        "recovered",
        "discarded",
        "rated",
        "in suspense",
        "unrated",
        "billed",
    )
    recovered_amount = sum((r[-1] for r in assurance), Decimal(0))
    figures["revenue_assurance"] = go.Figure(
        [go.Bar(name=name, x=days, y=[int(r[i + 1]) for r in assurance]) for i, name in enumerate(names)],
        {
            **layout,
            "barmode": "group",
            "title": f"Per day: where every message ended (revenue recovered by replays: {recovered_amount:,.2f} MAD)",
            "xaxis": {"type": "category"},
        },
    )
    return figures


def _card(name: str, fmt: str, value: Decimal | None) -> str:
    shown = "(blank)" if value is None else fmt.format(float(value) if "%" in fmt else value)
    exact = "" if value is None else str(value)
    return (
        f'<div class="kpi" data-measure="{html.escape(name)}" data-value="{exact}">'
        f'<div class="kpi-name">{html.escape(name)}</div><div class="kpi-value">{html.escape(shown)}</div></div>'
    )


def render(data: DashboardData, path: Path) -> Path:
    """Write the dashboard as one HTML file (plotly.js inside); returns its path."""
    import plotly.io as pio
    from plotly.offline import get_plotlyjs

    charts = []
    for name, figure in _figures(data).items():
        div = pio.to_html(
            figure, include_plotlyjs=False, full_html=False, div_id=f"chart-{name}", config={"displayModeBar": False}
        )
        points = len(data.charts[name])
        charts.append(f'<section class="chart" data-chart="{name}" data-rows="{points}">{div}</section>')
    cards = "".join(_card(name, fmt, data.kpis[name]) for name, fmt in KPIS)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>CDR platform dashboard</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; background: #f6f7f9; color: #1d2733; }}
h1 {{ font-size: 22px; margin: 0 0 4px; }} .generated {{ color: #667; margin-bottom: 16px; }}
.kpis {{ display: grid; grid-template-columns: repeat(5, 1fr); gap: 12px; margin-bottom: 16px; }}
.kpi {{ background: white; border-radius: 8px; padding: 12px 14px; box-shadow: 0 1px 2px #0002; }}
.kpi-name {{ font-size: 12px; color: #667; }} .kpi-value {{ font-size: 20px; font-weight: 600; margin-top: 4px; }}
.charts {{ display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }}
.chart {{ background: white; border-radius: 8px; padding: 8px; box-shadow: 0 1px 2px #0002; }}
</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head><body>
<h1>CDR platform: revenue, usage and data quality</h1>
<div class="generated">From the marts, {data.generated_at:%Y-%m-%d %H:%M}. The cards are the Power BI
measures, computed by their SQL twins.</div>
<div class="kpis">{cards}</div>
<div class="charts">{"".join(charts)}</div>
</body></html>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".html.partial")
    partial.write_text(page, encoding="utf-8")
    partial.replace(path)  # a reader never sees half a page
    return path
