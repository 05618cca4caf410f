"""The re-rating report (lib/rating/rerating.py), its warehouse statements, and `cdr rate`'s range."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from cdr_platform.cli import cdr
from cdr_platform.lib.rating.rerating import ReportRow, RerateReport, diff_totals, markdown_report, report_totals
from cdr_platform.lib.rating.store import RatingTables
from cdr_platform.lib.warehouse.dialects import SQLSERVER
from cdr_platform_tests.sqlserver_recorder import tsql_problems

DAY = date(2026, 11, 20)
MSISDNS = st.sampled_from([f"21261{i:07d}" for i in range(12)])
COSTS = st.decimals(min_value=0, max_value=10_000, places=6, allow_nan=False, allow_infinity=False)
TOTALS = st.dictionaries(MSISDNS, st.tuples(st.integers(0, 500), COSTS), max_size=12)


def _sum(totals) -> Decimal:
    return sum((cost for _, cost in totals.values()), Decimal(0))


def test_an_identical_rerating_reports_nothing():
    totals = {"212610000001": (3, Decimal("1.500000")), "212610000002": (1, Decimal("0.2"))}
    assert diff_totals(totals, dict(totals)) == []
    report = RerateReport()
    assert report.add_day(DAY, totals, dict(totals), first_rating=False) == []
    assert report.totals() == {
        "subscribers_changed": 0,
        "old_cdrs": 4,
        "new_cdrs": 4,
        "old_total": Decimal("1.7"),
        "new_total": Decimal("1.7"),
        "delta": 0,
    }
    assert report.summary()["rerated_days"] == ["2026-11-20"] and report.summary()["changed_days"] == []


def test_a_subscriber_that_appears_disappears_or_changes_price_is_reported_with_exact_money():
    old = {"a": (2, Decimal("1.10")), "b": (1, Decimal("0.30")), "same": (5, Decimal("2"))}
    new = {"a": (2, Decimal("1.20")), "c": (4, Decimal("0.01")), "same": (5, Decimal("2.000000"))}
    assert diff_totals(old, new) == [
        ReportRow("a", 2, 2, Decimal("1.10"), Decimal("1.20")),
        ReportRow("b", 1, 0, Decimal("0.30"), Decimal(0)),
        ReportRow("c", 0, 4, Decimal(0), Decimal("0.01")),
    ]
    assert [str(r.delta) for r in diff_totals(old, new)] == ["0.10", "-0.30", "0.01"]
    # a count that changes at an equal cost is a change too (a call moved out of suspense at 0)
    assert diff_totals({"a": (1, Decimal(1))}, {"a": (2, Decimal(1))})[0].new_cdrs == 2


def test_a_first_rating_is_named_and_adds_no_row():
    report = RerateReport()
    assert report.add_day(DAY, {}, {"a": (3, Decimal("9"))}, first_rating=True) == []
    report.add_day(DAY + timedelta(days=1), {"a": (1, Decimal("1"))}, {"a": (1, Decimal("2"))}, first_rating=False)
    summary = report.summary()
    assert summary["first_rated_days"] == ["2026-11-20"] and summary["rerated_days"] == ["2026-11-21"]
    assert summary["subscribers_changed"] == 1 and summary["delta"] == "1"
    text = markdown_report(summary, [r.as_dict() for r in report.top(5)], 5)
    assert "First rating (not in the report): 2026-11-20" in text
    assert "| a | 1 | 2 | 1 | 1 | 1 |" in text


def test_a_changed_subscribers_row_holds_its_totals_over_every_rerated_day_and_the_top_is_by_absolute_delta():
    report = RerateReport()
    report.add_day(
        DAY,
        {"a": (1, Decimal("1")), "b": (1, Decimal("5")), "c": (1, Decimal("4"))},
        {"a": (1, Decimal("3")), "b": (1, Decimal("1")), "c": (1, Decimal("4"))},
        first_rating=False,
    )
    report.add_day(
        DAY + timedelta(days=1),
        {"a": (2, Decimal("1")), "c": (1, Decimal("1"))},
        {"a": (2, Decimal("2")), "c": (1, Decimal("2"))},
        first_rating=False,
    )
    assert report.rows == [
        ReportRow("a", 3, 3, Decimal("2"), Decimal("5")),
        ReportRow("b", 1, 1, Decimal("5"), Decimal("1")),
        ReportRow("c", 2, 2, Decimal("5"), Decimal("6")),  # day 1 unchanged, in its totals all the same
    ]
    assert [r.msisdn for r in report.top(3)] == ["b", "a", "c"]  # |-4|, |+3|, |+1|
    assert [r.msisdn for r in report.top(1)] == ["b"]
    assert report.summary()["changed_days"] == ["2026-11-20", "2026-11-21"]


@given(st.lists(st.tuples(TOTALS, TOTALS, st.booleans()), min_size=1, max_size=5))
def test_the_reports_deltas_add_up_to_the_new_total_less_the_old_over_the_rerated_days(days):
    report = RerateReport()
    for i, (old, new, first) in enumerate(days):
        report.add_day(DAY + timedelta(days=i), old, new, first_rating=first)
    rerated = [(old, new) for old, new, first in days if not first]
    totals = report.totals()
    assert totals["old_total"] == sum((_sum(old) for old, _ in rerated), Decimal(0))
    assert totals["new_total"] == sum((_sum(new) for _, new in rerated), Decimal(0))
    # every subscriber left out of the rows has the same totals before and after
    assert (
        sum((r.delta for r in report.rows), Decimal(0)) == totals["delta"] == totals["new_total"] - totals["old_total"]
    )
    assert sum(r.new_cdrs - r.old_cdrs for r in report.rows) == totals["new_cdrs"] - totals["old_cdrs"]
    # exactly the subscribers that differ on some re-rated day, each once, with their range's totals
    none = (0, Decimal(0))
    differing = {m for old, new in rerated for m in set(old) | set(new) if old.get(m, none) != new.get(m, none)}
    assert [r.msisdn for r in report.rows] == sorted(differing)
    for row in report.rows:
        assert (row.old_cdrs, row.old_cost) == (
            sum(old.get(row.msisdn, none)[0] for old, _ in rerated),
            sum((old.get(row.msisdn, none)[1] for old, _ in rerated), Decimal(0)),
        )
        assert row.new_cost == sum((new.get(row.msisdn, none)[1] for _, new in rerated), Decimal(0))
    assert len(report.top(3)) == min(3, len(differing))
    assert report.totals()["subscribers_changed"] == len(differing)
    assert report_totals(report.rows)["delta"] == totals["delta"]


def test_the_report_tables_statements_are_tsql():
    tables = RatingTables("rating", SQLSERVER)
    statements = [
        tables.rerating_report.create_table_sql(SQLSERVER),
        tables.day_totals_sql(),
        tables.day_was_rated_sql(),
        tables.clear_rerating_report_sql(),
    ]
    assert tables.rerating_report.create_table_sql(SQLSERVER) in tables.ddl()
    for sql in statements:
        assert tsql_problems(sql) == [], sql
    assert "group by served_msisdn" in tables.day_totals_sql()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--from", "2026-11-21", "--to", "2026-11-20"], "2026-11-20 is before --from 2026-11-21"),
        (["--from", "2026-11-20"], "--from D1 --to D2"),
        (["--to", "2026-11-20"], "--from D1 --to D2"),
        ([], "--from D1 --to D2"),
        (["--day", "2026-11-20", "--from", "2026-11-20", "--to", "2026-11-21"], "not both"),
        (["--from", "2026-11-20", "--to", "tomorrow"], "--to"),
    ],
    ids=["reversed", "no end", "no start", "nothing", "day and range", "not a date"],
)
def test_rate_refuses_a_reversed_or_missing_range_before_rating_anything(args, says):
    result = CliRunner().invoke(cdr, ["rate", *args])
    assert result.exit_code == 2, result.output
    assert says in result.output


def test_the_rating_assets_metadata_shows_the_largest_changes_and_the_totals():
    from cdr_platform.cli import _rerating_metadata

    report = RerateReport()
    report.add_day(DAY, {}, {"x": (1, Decimal(1))}, first_rating=True)
    old = {f"2126100000{i:02d}": (1, Decimal("1.00")) for i in range(30)}
    new = {m: (1, Decimal("1.00") + Decimal(i) / 100) for i, m in enumerate(old)}
    report.add_day(DAY + timedelta(days=1), old, new, first_rating=False)
    summary = {"rerating": {**report.summary(), "top": [r.as_dict() for r in report.top(20)], "report_id": "r1"}}
    meta = _rerating_metadata(summary)
    table = meta["rerating_report"]["raw_value"]
    assert meta["subscribers_changed"] == 29 and meta["rerating_delta"] == "4.35"  # 0.01 + ... + 0.29
    assert (meta["rerating_old_total"], meta["rerating_new_total"]) == ("30.00", "34.35")
    assert meta["first_rated_days"] == "2026-11-20" and meta["rerated_days"] == "2026-11-21"
    assert "**29 subscriber(s) changed** over 1 re-rated day(s) (2026-11-21 to 2026-11-21)" in table
    lines = [line for line in table.splitlines() if line.startswith("| 2126")]
    assert len(lines) == 20 and lines[0].startswith("| 212610000029 | 1.00 | 1.29 | 0.29 |")
