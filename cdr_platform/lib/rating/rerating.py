"""The re-rating report: what re-rating days (after a tariff correction) changed, per subscriber.

    cdr rate --from 2026-11-01 --to 2026-11-30

Before a day's new rows are swapped in, the rating job reads the day's per-subscriber totals
(rated CDRs and their cost) as they stand; after the swap, the new ones. This module holds the
pure part: diffing the two, adding the days of a range up, and the report's totals. A day that
had never been rated (no rated nor suspended row) is a first rating, not a re-rating: it is
named in `first_rated_days` and adds no row (every subscriber would otherwise "change" from 0).
Money is Decimal throughout, summed exactly as the warehouse holds it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

# served_msisdn -> (rated CDRs, sum of their cost) of one day
Totals = Mapping[str, tuple[int, Decimal]]
_ZERO = (0, Decimal(0))


@dataclass(frozen=True)
class ReportRow:
    """One subscriber whose rated CDRs or cost changed: before and after, over the days that changed."""

    msisdn: str
    old_cdrs: int
    new_cdrs: int
    old_cost: Decimal
    new_cost: Decimal

    @property
    def delta(self) -> Decimal:
        return self.new_cost - self.old_cost

    def __add__(self, other: ReportRow) -> ReportRow:
        assert self.msisdn == other.msisdn
        return ReportRow(
            self.msisdn,
            self.old_cdrs + other.old_cdrs,
            self.new_cdrs + other.new_cdrs,
            self.old_cost + other.old_cost,
            self.new_cost + other.new_cost,
        )

    def as_dict(self) -> dict:
        """For JSON and markdown: money as exact strings."""
        return {
            "msisdn": self.msisdn,
            "old_cost": str(self.old_cost),
            "new_cost": str(self.new_cost),
            "delta": str(self.delta),
            "old_cdrs": self.old_cdrs,
            "new_cdrs": self.new_cdrs,
        }


def diff_totals(old: Totals, new: Totals) -> list[ReportRow]:
    """The subscribers whose count or cost differs between `old` and `new` (one missing from a
    side has 0 there), by MSISDN."""
    rows = []
    for msisdn in sorted(set(old) | set(new)):
        (old_cdrs, old_cost), (new_cdrs, new_cost) = old.get(msisdn, _ZERO), new.get(msisdn, _ZERO)
        if old_cdrs != new_cdrs or old_cost != new_cost:
            rows.append(ReportRow(msisdn, old_cdrs, new_cdrs, Decimal(old_cost), Decimal(new_cost)))
    return rows


@dataclass
class RerateReport:
    """The report of a range of days rated in one run, added up day by day as they are swapped in.

    A subscriber's row holds its totals over every re-rated day of the range (not only the days
    it changed on), so old and new cost are what its bill saw of those days before and after;
    it has a row if it changed on any day. The totals are the whole re-rated days' (every
    subscriber's), so their delta is the rows' deltas added up. Holds one entry per subscriber
    rated in the range.
    """

    rated_days: list[date] = field(default_factory=list)
    first_rated_days: list[date] = field(default_factory=list)
    changed_days: list[date] = field(default_factory=list)
    _by_msisdn: dict[str, ReportRow] = field(default_factory=dict)
    _changed: set[str] = field(default_factory=set)

    def add_day(self, day: date, old: Totals, new: Totals, *, first_rating: bool) -> list[ReportRow]:
        """Add a day rated: its totals before and after its swap; the day's own changed rows."""
        self.rated_days.append(day)
        if first_rating:
            self.first_rated_days.append(day)
            return []
        changed = diff_totals(old, new)
        if changed:
            self.changed_days.append(day)
        self._changed.update(r.msisdn for r in changed)
        for msisdn in set(old) | set(new):
            (old_cdrs, old_cost), (new_cdrs, new_cost) = old.get(msisdn, _ZERO), new.get(msisdn, _ZERO)
            row = ReportRow(msisdn, old_cdrs, new_cdrs, Decimal(old_cost), Decimal(new_cost))
            self._by_msisdn[msisdn] = self._by_msisdn[msisdn] + row if msisdn in self._by_msisdn else row
        return changed

    @property
    def rows(self) -> list[ReportRow]:
        """Every subscriber that changed on a re-rated day, with its totals over the re-rated days, by MSISDN."""
        return [self._by_msisdn[m] for m in sorted(self._changed)]

    def top(self, n: int) -> list[ReportRow]:
        """The `n` largest changes by |delta| (ties by MSISDN)."""
        return sorted(self.rows, key=lambda r: (-abs(r.delta), r.msisdn))[:n]

    def totals(self) -> dict:
        """Subscribers changed, and the re-rated days' CDRs and cost before and after (every subscriber's)."""
        return {**report_totals(self._by_msisdn.values()), "subscribers_changed": len(self._changed)}

    def summary(self) -> dict:
        """The report's totals and days, as `cdr rate` prints them (JSON: exact money as strings)."""
        totals = self.totals()
        return {
            **{k: str(v) if isinstance(v, Decimal) else v for k, v in totals.items()},
            "rerated_days": [d.isoformat() for d in self.rated_days if d not in self.first_rated_days],
            "changed_days": [d.isoformat() for d in self.changed_days],
            "first_rated_days": [d.isoformat() for d in self.first_rated_days],
        }


def report_totals(rows: Iterable[ReportRow]) -> dict:
    """Subscribers changed, CDRs and cost before and after, and the delta."""
    rows = list(rows)
    old_cost = sum((r.old_cost for r in rows), Decimal(0))
    new_cost = sum((r.new_cost for r in rows), Decimal(0))
    return {
        "subscribers_changed": len(rows),
        "old_cdrs": sum(r.old_cdrs for r in rows),
        "new_cdrs": sum(r.new_cdrs for r in rows),
        "old_total": old_cost,
        "new_total": new_cost,
        "delta": new_cost - old_cost,
    }


def totals_from_rows(rows: Iterable[tuple]) -> dict[str, tuple[int, Decimal]]:
    """A day's totals from the warehouse's (served_msisdn, count, sum(cost)) rows."""
    return {msisdn: (int(cdrs), Decimal(cost)) for msisdn, cdrs, cost in rows}


def markdown_report(summary: dict, top: list[dict], limit: int) -> str:
    """The report for people: totals, then the largest changes (rows as ReportRow.as_dict)."""
    from cdr_platform.lib.markdown import markdown_table

    days = summary["rerated_days"]
    lines = [
        f"**{summary['subscribers_changed']:,} subscriber(s) changed** over {len(days)} re-rated day(s)"
        + (f" ({days[0]} to {days[-1]})" if days else "")
        + f": old total {summary['old_total']}, new total {summary['new_total']}, delta {summary['delta']}"
        f" ({summary['old_cdrs']:,} -> {summary['new_cdrs']:,} rated CDRs, every subscriber's).",
    ]
    if summary["first_rated_days"]:
        lines.append(f"First rating (not in the report): {', '.join(summary['first_rated_days'])}.")
    if top:
        lines += ["", f"Largest changes by |delta| (top {limit}):", "", markdown_table(top)]
    return "\n".join(lines)
