"""The tariff plan, in CGRateS's tariff-plan (TP) model, and its loader from TP CSV files.

Destinations (prefixes) -> Rates (connect fee, rate per unit, increment, by group interval
start) -> DestinationRates (a destination priced by a rate, with rounding and max cost) ->
RatingPlans (destination rates by timing and weight) -> RatingProfiles (tenant, category,
subject -> plan, from an activation time).

A folder is loaded whole and checked before use: a broken reference, a malformed duration or
number, or a true ambiguity is refused with the file, the line and the reason.
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from decimal import Decimal, InvalidOperation
from pathlib import Path

ANY = "*any"
NS_PER_UNIT = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")


class TariffPlanError(ValueError):
    """A tariff plan that cannot be used; says which file, which line and why."""

    def __init__(self, file: str, line: int | None, reason: str) -> None:
        self.file, self.line, self.reason = file, line, reason
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {reason}")


def parse_duration_ns(text: str) -> int:
    """A Go duration ("60s", "1m30s", "1ns") or a bare number of units (nanoseconds)."""
    text = text.strip()
    if re.fullmatch(r"\d+", text):
        return int(text)
    if not text or not re.fullmatch(r"(\d+(?:\.\d+)?(ns|us|µs|ms|s|m|h))+", text):
        raise ValueError(f"malformed duration {text!r}")
    total = Decimal(0)
    for number, unit in _DURATION_PART.findall(text):
        total += Decimal(number) * NS_PER_UNIT[unit]
    if total != total.to_integral_value():
        raise ValueError(f"duration {text!r} is not a whole number of nanoseconds")
    return int(total)


@dataclass(frozen=True)
class Timing:
    timing_id: str
    years: frozenset[int]  # empty = any
    months: frozenset[int]
    month_days: frozenset[int]
    week_days: frozenset[int]  # 1 = Monday ... 7 = Sunday
    start: time

    def applies_on(self, day: datetime) -> bool:
        return (
            (not self.years or day.year in self.years)
            and (not self.months or day.month in self.months)
            and (not self.month_days or day.day in self.month_days)
            and (not self.week_days or day.isoweekday() in self.week_days)
        )

    @property
    def days_key(self) -> tuple:
        return (self.years, self.months, self.month_days, self.week_days)


ALWAYS = Timing(ANY, frozenset(), frozenset(), frozenset(), frozenset(), time(0))


@dataclass(frozen=True)
class RateSlot:
    """One row of a rate: applies from `group_interval_start_ns` of usage on."""

    connect_fee: Decimal
    rate: Decimal
    rate_unit_ns: int
    rate_increment_ns: int
    group_interval_start_ns: int


@dataclass(frozen=True)
class DestinationRate:
    destination_id: str
    rates_tag: str
    rounding_method: str  # *up, *middle, *down
    rounding_decimals: int
    max_cost: Decimal
    max_cost_strategy: str  # "", *free, *disconnect


@dataclass(frozen=True)
class RatingPlanRow:
    destination_rates_id: str
    timing: Timing
    weight: Decimal


@dataclass(frozen=True)
class RatingProfile:
    tenant: str
    category: str
    subject: str
    activation: datetime
    rating_plan_id: str
    fallback_subjects: tuple[str, ...]


@dataclass
class TariffPlan:
    name: str
    destinations: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    timings: dict[str, Timing] = field(default_factory=dict)
    rates: dict[str, list[RateSlot]] = field(default_factory=lambda: defaultdict(list))
    destination_rates: dict[str, list[DestinationRate]] = field(default_factory=lambda: defaultdict(list))
    rating_plans: dict[str, list[RatingPlanRow]] = field(default_factory=lambda: defaultdict(list))
    rating_profiles: list[RatingProfile] = field(default_factory=list)


# -- loading -------------------------------------------------------------------------------

FILES = (
    "Destinations.csv",
    "Timings.csv",
    "Rates.csv",
    "DestinationRates.csv",
    "RatingPlans.csv",
    "RatingProfiles.csv",
)


# The same tables as dbt seeds (dbt_project/seeds/tariff): seed file -> the CGRateS TP file it
# holds, and its columns (CGRateS's, in snake case; plain header line, no '#').
SEED_FILES = {
    "tp_destinations.csv": ("Destinations.csv", ["id", "prefix"]),
    "tp_timings.csv": ("Timings.csv", ["id", "years", "months", "month_days", "week_days", "time"]),
    "tp_rates.csv": ("Rates.csv", ["id", "connect_fee", "rate", "rate_unit", "rate_increment", "group_interval_start"]),
    "tp_destination_rates.csv": (
        "DestinationRates.csv",
        ["id", "destination_id", "rates_tag", "rounding_method", "rounding_decimals", "max_cost", "max_cost_strategy"],
    ),
    "tp_rating_plans.csv": ("RatingPlans.csv", ["id", "destination_rates_id", "timing_tag", "weight"]),
    "tp_rating_profiles.csv": (
        "RatingProfiles.csv",
        ["tenant", "category", "subject", "activation_time", "rating_plan_id", "rates_fallback_subject"],
    ),
}
SEED_NAMES = {tp_file: seed for seed, (tp_file, _) in SEED_FILES.items()}


def _read_csv(path: Path, has_plain_header: bool) -> list[tuple[int, list[str]]]:
    """(line number, fields) of a TP CSV, without header, comment and blank lines."""
    out = []
    with path.open(newline="", encoding="utf-8") as f:
        for number, row in enumerate(csv.reader(f), start=1):
            if (
                (has_plain_header and number == 1)
                or not row
                or not "".join(row).strip()
                or row[0].lstrip().startswith("#")
            ):
                continue
            out.append((number, [c.strip() for c in row]))
    return out


def read_tp_folder(folder: Path) -> dict[str, list[tuple[int, list[str]]]]:
    """The rows of each TP file of a folder of CGRateS TP CSVs or of the dbt tariff seeds."""
    rows = {}
    for name in FILES:
        if (folder / name).exists():
            rows[name] = _read_csv(folder / name, has_plain_header=False)
        elif (folder / SEED_NAMES[name]).exists():
            rows[name] = _read_csv(folder / SEED_NAMES[name], has_plain_header=True)
    return rows


def _int_set(text: str, file: str, line: int, what: str) -> frozenset[int]:
    if text in ("", ANY):
        return frozenset()
    try:
        return frozenset(int(x) for x in text.split(";") if x)
    except ValueError:
        raise TariffPlanError(file, line, f"malformed {what} {text!r}") from None


def _decimal(text: str, file: str, line: int, what: str, default: str | None = None) -> Decimal:
    if text == "" and default is not None:
        return Decimal(default)
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise TariffPlanError(file, line, f"malformed {what} {text!r}") from None
    if not value.is_finite():
        raise TariffPlanError(file, line, f"{what} {text!r} is not a finite number")
    return value


def _duration(text: str, file: str, line: int, what: str) -> int:
    try:
        return parse_duration_ns(text)
    except ValueError as exc:
        raise TariffPlanError(file, line, f"{what}: {exc}") from None


def parse_time(text: str) -> datetime:
    """A profile activation or call setup time; naive times are UTC."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def load_tariff_plan(folder: Path | str) -> TariffPlan:
    """A folder of CGRateS TP CSV files (Rates.csv, ...) or of the dbt seeds (tp_rates.csv, ...)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise TariffPlanError(str(folder), None, "not a folder of CGRateS TP CSV files")
    return build_tariff_plan(folder.name, read_tp_folder(folder))


def build_tariff_plan(name: str, rows_by_file: dict[str, list[tuple[int, list[str]]]]) -> TariffPlan:
    """Check and assemble a plan from the rows of each TP file (from CSV files or tables).

    Errors name the CGRateS file and the row's line (for a table: its row number).
    """
    plan = TariffPlan(name)

    def _rows(path: Path):
        return rows_by_file.get(path.name, [])

    folder = Path(".")

    f = "Destinations.csv"
    for line, row in _rows(folder / f):
        if len(row) < 2 or not row[0] or not row[1]:
            raise TariffPlanError(f, line, "expected Id,Prefix")
        plan.destinations[row[0]].append(row[1])

    f = "Timings.csv"
    for line, row in _rows(folder / f):
        if len(row) < 6:
            raise TariffPlanError(f, line, "expected Id,Years,Months,MonthDays,WeekDays,Time")
        tid, years, months, month_days, week_days, start = row[:6]
        if start in ("*asap", ""):
            start_time = time(0)  # active from the start of every day it applies to
        else:
            try:
                start_time = time.fromisoformat(start)
            except ValueError:
                raise TariffPlanError(f, line, f"malformed time {start!r}") from None
        days = _int_set(week_days, f, line, "week days")
        if any(d < 1 or d > 7 for d in days):
            raise TariffPlanError(f, line, f"week days must be 1 (Monday) to 7 (Sunday), got {week_days!r}")
        plan.timings[tid] = Timing(
            tid,
            _int_set(years, f, line, "years"),
            _int_set(months, f, line, "months"),
            _int_set(month_days, f, line, "month days"),
            days,
            start_time,
        )

    f = "Rates.csv"
    for line, row in _rows(folder / f):
        if len(row) < 6:
            raise TariffPlanError(f, line, "expected Id,ConnectFee,Rate,RateUnit,RateIncrement,GroupIntervalStart")
        rid, fee, rate, unit, increment, gis = row[:6]
        slot = RateSlot(
            _decimal(fee, f, line, "connect fee"),
            _decimal(rate, f, line, "rate"),
            _duration(unit, f, line, "rate unit"),
            _duration(increment, f, line, "rate increment"),
            _duration(gis, f, line, "group interval start"),
        )
        if slot.rate_unit_ns <= 0 or slot.rate_increment_ns <= 0:
            raise TariffPlanError(f, line, "rate unit and rate increment must be positive")
        if slot.rate < 0 or slot.connect_fee < 0:
            raise TariffPlanError(f, line, "a rate or connect fee cannot be negative")
        if any(s.group_interval_start_ns == slot.group_interval_start_ns for s in plan.rates[rid]):
            raise TariffPlanError(f, line, f"rate {rid} has two rows for group interval start {gis}")
        plan.rates[rid].append(slot)
    for slots in plan.rates.values():
        slots.sort(key=lambda s: s.group_interval_start_ns)

    f = "DestinationRates.csv"
    for line, row in _rows(folder / f):
        if len(row) < 5:
            raise TariffPlanError(f, line, "expected Id,DestinationId,RatesTag,RoundingMethod,RoundingDecimals,...")
        row = row + [""] * (7 - len(row))
        drid, dest, rates_tag, method, decimals, max_cost, strategy = row[:7]
        if dest != ANY and dest not in plan.destinations:
            raise TariffPlanError(f, line, f"unknown destination {dest!r}")
        if rates_tag not in plan.rates:
            raise TariffPlanError(f, line, f"unknown rate {rates_tag!r}")
        if method not in ("*up", "*middle", "*down"):
            raise TariffPlanError(f, line, f"unknown rounding method {method!r}")
        if strategy not in ("", "*free", "*disconnect"):
            raise TariffPlanError(f, line, f"unknown max cost strategy {strategy!r}")
        try:
            rounding = int(decimals)
        except ValueError:
            raise TariffPlanError(f, line, f"malformed rounding decimals {decimals!r}") from None
        if any(d.destination_id == dest for d in plan.destination_rates[drid]):
            raise TariffPlanError(f, line, f"destination rate {drid} prices destination {dest} twice")
        plan.destination_rates[drid].append(
            DestinationRate(dest, rates_tag, method, rounding, _decimal(max_cost, f, line, "max cost", "0"), strategy)
        )

    f = "RatingPlans.csv"
    for line, row in _rows(folder / f):
        if len(row) < 4:
            raise TariffPlanError(f, line, "expected Id,DestinationRatesId,TimingTag,Weight")
        rpid, drid, timing_tag, weight = row[:4]
        if drid not in plan.destination_rates:
            raise TariffPlanError(f, line, f"unknown destination rate {drid!r}")
        if timing_tag == ANY:
            timing = ALWAYS
        elif timing_tag in plan.timings:
            timing = plan.timings[timing_tag]
        else:
            raise TariffPlanError(f, line, f"unknown timing {timing_tag!r}")
        new = RatingPlanRow(drid, timing, _decimal(weight, f, line, "weight"))
        _refuse_ambiguity(plan, rpid, new, f, line)
        plan.rating_plans[rpid].append(new)

    f = "RatingProfiles.csv"
    for line, row in _rows(folder / f):
        if len(row) < 5:
            raise TariffPlanError(f, line, "expected Tenant,Category,Subject,ActivationTime,RatingPlanId,...")
        row = row + [""] * (6 - len(row))
        tenant, category, subject, activation, rpid, fallback = row[:6]
        if rpid not in plan.rating_plans:
            raise TariffPlanError(f, line, f"unknown rating plan {rpid!r}")
        try:
            when = parse_time(activation)
        except ValueError:
            raise TariffPlanError(f, line, f"malformed activation time {activation!r}") from None
        plan.rating_profiles.append(
            RatingProfile(tenant, category, subject, when, rpid, tuple(s for s in fallback.split(";") if s))
        )
    if not plan.rating_plans:
        raise TariffPlanError("RatingPlans.csv", None, "the plan has no rating plans")
    return plan


def _refuse_ambiguity(plan: TariffPlan, rpid: str, new: RatingPlanRow, file: str, line: int) -> None:
    """Two rows of one plan pricing one destination, same weight, same start, same days."""
    new_destinations = {d.destination_id for d in plan.destination_rates[new.destination_rates_id]}
    for old in plan.rating_plans[rpid]:
        if (old.weight, old.timing.start, old.timing.days_key) != (new.weight, new.timing.start, new.timing.days_key):
            continue
        shared = new_destinations & {d.destination_id for d in plan.destination_rates[old.destination_rates_id]}
        if shared and old.destination_rates_id != new.destination_rates_id:
            raise TariffPlanError(
                file,
                line,
                f"ambiguous: rating plan {rpid} prices {sorted(shared)} with "
                f"{old.destination_rates_id} and {new.destination_rates_id} at "
                f"the same weight, start time and days",
            )
        if shared:
            raise TariffPlanError(file, line, f"rating plan {rpid} repeats {new.destination_rates_id}")
