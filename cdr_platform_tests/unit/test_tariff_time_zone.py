"""Rating in the operator's time zone: time bands, weekdays, midnight and rating days are local.

The demo operator is in Morocco (Africa/Casablanca): UTC+1 for most of the year, UTC+0 during
Ramadan. In 2026 the clocks go back on 15 February (03:00 -> 02:00 local, at 02:00 UTC) and
forward on 22 March (02:00 -> 03:00 local, at 02:00 UTC). The default tariff's peak starts at
08:00 local, Monday to Friday. Every case is rated by the plain engine and by the bulk path.
"""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdr_platform.lib.rating.bulk import BulkRater, plain_outcome
from cdr_platform.lib.rating.cdr import rate_cdr
from cdr_platform.lib.rating.engine import RatingEngine
from cdr_platform.lib.rating.plan import load_tariff_plan
from cdr_platform.lib.settings import REPO_ROOT
from cdr_platform.lib.tariff_clock import TariffClock
from cdr_platform_tests.unit.tariff_fixtures import write_plan
from cdr_platform_tests.unit.test_bulk_rating import SCHEMA, both_ways, random_records

CASABLANCA = ZoneInfo("Africa/Casablanca")
CLOCK = TariffClock("Africa/Casablanca")
DEFAULT_PLAN = load_tariff_plan(REPO_ROOT / "dbt_project" / "seeds" / "tariff")
# 2026's clock changes in Casablanca, as UTC instants
FALL_BACK = datetime(2026, 2, 15, 2, 0, tzinfo=UTC)  # 03:00 +01 -> 02:00 +00
SPRING_FORWARD = datetime(2026, 3, 22, 2, 0, tzinfo=UTC)  # 02:00 +00 -> 03:00 +01


def local(*args) -> datetime:
    """A Casablanca wall time as a UTC instant."""
    return datetime(*args, tzinfo=CASABLANCA).astimezone(UTC)


def on_net_call(engine: RatingEngine, start: datetime, seconds: int):
    """An IAM subscriber calling an IAM mobile (on-net: per second, peak 0.50, off-peak 0.25,
    weekend 0.20 MAD a minute)."""
    return rate_cdr(
        engine,
        record_type="voice",
        direction="outgoing",
        served_operator_id="IAM",
        segment="consumer_prepaid",
        other_msisdn="+212661000001",
        technology="4G",
        start_time=start,
        duration_s=seconds,
        data_volume_bytes=None,
    )


def bulk_equals_plain(engine: RatingEngine, rows: list[dict]) -> dict:
    """Rate rows both ways; they must agree on every column. Returns the bulk output."""
    rater = BulkRater(engine)
    batch = pa.Table.from_pylist(rows, schema=SCHEMA).combine_chunks().to_batches()[0]
    got = rater.rate(batch)
    for i, row in enumerate(batch.to_pylist()):
        expected = plain_outcome(engine, row)
        assert {k: got[k][i].as_py() for k in expected} == expected, row
    return got


def voice_row(start: datetime, seconds: int) -> dict:
    return {
        "record_type": "voice",
        "direction": "outgoing",
        "served_operator_id": "IAM",
        "segment": "consumer_prepaid",
        "other_msisdn": "+212661000001",
        "technology": "4G",
        "start_time": start,
        "duration_s": seconds,
        "data_volume_bytes": None,
    }


@pytest.fixture(scope="module")
def engine() -> RatingEngine:
    return RatingEngine(DEFAULT_PLAN, clock=CLOCK)


def test_peak_starts_at_08_00_local_time_not_utc(engine):
    # Wednesday 2026-11-25, UTC+1: 07:59 local is 06:59 UTC, 08:00 local is 07:00 UTC
    before = on_net_call(engine, local(2026, 11, 25, 7, 59), 60)
    at = on_net_call(engine, local(2026, 11, 25, 8, 0), 60)
    assert (before.cost, at.cost) == (Decimal("0.25"), Decimal("0.50"))
    # the same UTC instants rated in UTC would both be off-peak... and 08:00 UTC peak
    utc = RatingEngine(DEFAULT_PLAN)
    assert on_net_call(utc, local(2026, 11, 25, 8, 0), 60).cost == Decimal("0.25")
    bulk_equals_plain(engine, [voice_row(local(2026, 11, 25, 7, 59), 60), voice_row(local(2026, 11, 25, 8, 0), 60)])


def test_a_call_across_08_00_local_is_split_at_the_local_band_change(engine):
    # 07:59:30 local for 60 s: 30 s off-peak (0.125) + 30 s peak (0.25) = 0.375 -> 0.38 (*middle, 2)
    assert on_net_call(engine, local(2026, 11, 25, 7, 59, 30), 60).cost == Decimal("0.38")
    bulk_equals_plain(engine, [voice_row(local(2026, 11, 25, 7, 59, 30), 60)])


def test_a_call_across_local_midnight_into_saturday_takes_the_weekend_rate_from_local_midnight(engine):
    # Friday 2026-11-27 23:59:00 local (22:59 UTC) for 120 s: 60 s off-peak, 60 s weekend
    assert on_net_call(engine, local(2026, 11, 27, 23, 59), 120).cost == Decimal("0.45")
    got = bulk_equals_plain(engine, [voice_row(local(2026, 11, 27, 23, 59), 120)])
    assert got["rating_day"][0].as_py() == date(2026, 11, 27)  # rated on the local day it starts


def test_the_rating_day_is_the_local_date_of_the_start(engine):
    # 23:30 UTC on 30 November is 00:30 local on 1 December
    got = bulk_equals_plain(engine, [voice_row(datetime(2026, 11, 30, 23, 30, tzinfo=UTC), 10)])
    assert got["rating_day"][0].as_py() == date(2026, 12, 1)
    assert CLOCK.local_date(datetime(2026, 11, 30, 22, 59, tzinfo=UTC)) == date(2026, 11, 30)


def test_peak_follows_the_clock_during_ramadan_when_morocco_is_on_utc(engine):
    # Monday 2026-03-02, UTC+0: 08:00 local is 08:00 UTC
    assert on_net_call(engine, datetime(2026, 3, 2, 7, 59, tzinfo=UTC), 60).cost == Decimal("0.25")
    assert on_net_call(engine, datetime(2026, 3, 2, 8, 0, tzinfo=UTC), 60).cost == Decimal("0.50")


def test_local_days_are_25_and_23_hours_long_on_the_days_the_clocks_change():
    start, end = CLOCK.day_bounds(date(2026, 2, 15))
    assert (start, end - start) == (datetime(2026, 2, 14, 23, tzinfo=UTC), timedelta(hours=25))
    start, end = CLOCK.day_bounds(date(2026, 3, 22))
    assert (start, end - start) == (datetime(2026, 3, 22, 0, tzinfo=UTC), timedelta(hours=23))
    start, end = CLOCK.day_bounds(date(2026, 11, 25))
    assert (start, end - start) == (datetime(2026, 11, 24, 23, tzinfo=UTC), timedelta(hours=24))
    assert TariffClock("UTC").day_bounds(date(2026, 11, 25))[0] == datetime(2026, 11, 25, tzinfo=UTC)


# A plan whose band starts at 02:30 local: on 22 March that wall time never shows (02:00 -> 03:00),
# so the band takes over at the clock change itself; on 15 February 02:30 shows twice.
CHANGE_PLAN = {
    "Destinations": "ANY_MA,212",
    "Timings": "NIGHT,*any,*any,*any,*any,00:00:00\nLATE,*any,*any,*any,*any,02:30:00",
    "Rates": "R_NIGHT,0,0.60,60s,1s,0s\nR_LATE,0,6.00,60s,1s,0s",
    "DestinationRates": "DR_NIGHT,ANY_MA,R_NIGHT,*middle,4,0,\nDR_LATE,ANY_MA,R_LATE,*middle,4,0,",
    "RatingPlans": "RP,DR_NIGHT,NIGHT,10\nRP,DR_LATE,LATE,10",
    "RatingProfiles": "IAM,call,*any,2026-01-01T00:00:00Z,RP,",
}


def test_a_band_whose_start_the_clock_skips_takes_over_at_the_clock_change(tmp_path):
    engine = RatingEngine(load_tariff_plan(write_plan(tmp_path / "plan", **CHANGE_PLAN)), clock=CLOCK)
    # 01:59:00 local (+00) for 120 s: 60 s at night (0.60/min), then at 02:00 UTC the wall shows
    # 03:00, past the 02:30 start: 60 s at the late rate (6.00/min)
    start = SPRING_FORWARD - timedelta(seconds=60)
    rating = engine.rate(
        tor="*voice",
        tenant="IAM",
        category="call",
        subject="*any",
        destination="212661",
        setup_time=start,
        usage_ns=120 * 10**9,
    )
    assert [(s.start, s.usage_ns // 10**9, s.rate) for s in rating.spans] == [
        (start, 60, Decimal("0.60")),
        (SPRING_FORWARD, 60, Decimal("6.00")),
    ]
    assert rating.cost == Decimal("6.6000")
    bulk_equals_plain(engine, [voice_row(start, 120) | {"segment": None}])


def test_a_call_through_the_fall_back_is_cut_where_the_wall_clock_jumps_back(tmp_path):
    engine = RatingEngine(load_tariff_plan(write_plan(tmp_path / "plan", **CHANGE_PLAN)), clock=CLOCK)
    # 02:59:00 local (+01) for 120 s: 60 s late rate, then at 02:00 UTC the wall shows 02:00 again,
    # before 02:30: night rate until 02:30 local (+00)
    start = FALL_BACK - timedelta(seconds=60)
    rating = engine.rate(
        tor="*voice",
        tenant="IAM",
        category="call",
        subject="*any",
        destination="212661",
        setup_time=start,
        usage_ns=120 * 10**9,
    )
    assert [(s.start, s.rate) for s in rating.spans] == [(start, Decimal("6.00")), (FALL_BACK, Decimal("0.60"))]
    bulk_equals_plain(engine, [voice_row(start, 120) | {"segment": None}])


def test_bulk_equals_plain_in_local_time_on_the_weeks_the_clocks_change(engine):
    from cdr_platform.lib.reference.subscribers import generate_subscribers

    subscribers = generate_subscribers()
    numbers = [s.msisdn for s in subscribers[:40]] + ["+212522000000", "+33612345678", "+14155550100"]
    rng = np.random.default_rng(21)
    rows = []
    for week in (FALL_BACK, SPRING_FORWARD, datetime(2026, 11, 23, tzinfo=UTC)):
        rows += random_records(rng, 1500, numbers, ["IAM", "ORANGE", "INWI"], [None, "business"], week, 4)
        # and calls that start just before the change itself
        rows += [voice_row(week - timedelta(seconds=int(s)), int(d)) for s, d in rng.integers(1, 4000, (200, 2))]
    rater, rated = both_ways(engine, rows)
    assert rated > 0.9 * len(rows) and rater.fast_rows > 0.8 * len(rows), (rater.fast_rows, rater.plain_rows)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=4_102_444_800 * 10**6))  # 1970 .. 2100, in µs
def test_local_wall_time_in_bulk_is_what_zoneinfo_says(utc_us):
    instant = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=utc_us)
    wall = instant.astimezone(CASABLANCA).replace(tzinfo=None)
    expected = (wall - datetime(1970, 1, 1)) // timedelta(microseconds=1)
    assert int(CLOCK.to_local_us(np.array([utc_us]))[0]) == expected


def test_an_unknown_time_zone_is_refused_with_its_name(monkeypatch):
    from cdr_platform.lib.settings import load_settings

    monkeypatch.setenv("CDR_TARIFF_TIMEZONE", "Mars/Olympus_Mons")
    with pytest.raises(ValueError, match="Mars/Olympus_Mons"):
        load_settings()
