"""The rating engine: CGRateS's own asserted costs, each rule alone, and refused plans."""

import shutil
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from click.testing import CliRunner

from cdr_platform.cli import cdr
from cdr_platform.lib.rating.engine import NotRated, RatingEngine, round_money
from cdr_platform.lib.rating.plan import TariffPlanError, load_tariff_plan, parse_duration_ns
from cdr_platform_tests.conformance_data import require_conformance_data
from cdr_platform_tests.unit.tariff_fixtures import BASE, write_plan

S = 1_000_000_000


def _shared_conformance_data():
    return require_conformance_data()


def test_cdr_rating_conformance_passes_every_shared_case_and_says_so_last():
    shared = _shared_conformance_data()
    result = CliRunner().invoke(
        cdr, ["rating", "conformance", "--plans", str(shared), "--cases", str(shared / "cases.csv")]
    )
    assert result.exit_code == 0, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.endswith(" passed, 0 failed") and int(last.split()[0]) > 0


def test_cdr_rating_conformance_exits_1_when_a_case_fails(tmp_path):
    shared = _shared_conformance_data()
    cases = (shared / "cases.csv").read_text().splitlines()
    header = cases[0].split(",")
    first = cases[1].split(",")
    first[header.index("expected_cost")] = "123456.789"  # no tariff gives this
    (tmp_path / "cases.csv").write_text("\n".join([cases[0], ",".join(first)]) + "\n")
    result = CliRunner().invoke(
        cdr, ["rating", "conformance", "--plans", str(shared), "--cases", str(tmp_path / "cases.csv")]
    )
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == "0 passed, 1 failed"


@pytest.fixture
def engine(tmp_path):
    return RatingEngine(load_tariff_plan(write_plan(tmp_path / "plan", **BASE)), rounding_decimals=5)


def rate(engine, number, when, seconds, subject="anyone", tor="*voice"):
    return engine.rate(
        tor=tor,
        tenant="op",
        category="call",
        subject=subject,
        destination=number,
        setup_time=datetime.fromisoformat(when).replace(tzinfo=UTC),
        usage_ns=seconds * S,
    )


def test_peak_call_with_connect_fee_60_60_then_per_second(engine):
    r = rate(engine, "212661234567", "2026-11-25T10:00:00", 95)  # Wednesday 10:00, peak
    assert r.destination_id == "MOBILE" and r.matched_prefix == "2126"  # longest prefix, not NAT
    # 0.10 connect + first 60 s as one 60 s increment (0.60) + 35 s at 0.30/min per second
    assert r.cost == Decimal("0.10") + Decimal("0.60") + Decimal("0.00500") * 35
    assert [s.increments for s in r.spans] == [1, 35]


def test_a_call_crossing_from_offpeak_into_peak_is_split(engine):
    r = rate(engine, "212661234567", "2026-11-25T07:59:00", 120)
    # the peak part starts 60 s into the call: its rate group is the per-second one
    assert [(s.rates_tag, s.increments) for s in r.spans] == [("R_OFF", 60), ("R_PEAK", 60)]
    # no connect fee: it comes from the first span's rate; rounding of the first span's DR
    assert r.connect_fee == 0
    assert r.cost == round_money(Decimal("0.00200") * 60 + Decimal("0.00500") * 60, 2, "*up") == Decimal("0.42")


def test_weight_wins_over_start_time_and_timing_days_months(engine):
    r = rate(engine, "212661234567", "2026-01-01T10:00:00", 600)  # New Year, a Thursday
    assert r.spans[0].rates_tag == "R_FREE" and r.cost == 0


def test_max_cost_free_caps_and_disconnect_does_not(engine):
    capped = rate(engine, "212661234567", "2026-11-28T12:00:00", 3600)  # Saturday: offpeak
    assert capped.cost == Decimal("1.5")
    uncapped = rate(engine, "33612345678", "2026-11-28T12:00:00", 3600)
    assert uncapped.cost == Decimal("0.05") + Decimal("0.60000") * 120  # *disconnect: as computed


def test_round_down(engine):
    r = rate(engine, "33612345678", "2026-11-28T12:00:00", 31)  # two 30 s increments
    assert r.cost == round_money(Decimal("0.05") + 2 * Decimal("0.6"), 2, "*down")


def test_profile_activation_and_fallback_subject(engine):
    assert rate(engine, "212661234567", "2026-05-01T10:00:00", 60, subject="vip").rating_plan_id == "RP_STD"
    assert rate(engine, "212661234567", "2026-07-01T10:00:00", 60, subject="vip").rating_plan_id == "RP_CHEAP"
    # RP_CHEAP has no France: the fallback subject's plan (vip -> RP_CHEAP) has none either
    with pytest.raises(NotRated) as err:
        rate(engine, "33612345678", "2026-07-01T10:00:00", 60, subject="nofr")
    assert err.value.reason == "NO_DESTINATION"


def test_cheapest_of_several_plans(engine):
    r = engine.rate(
        tor="*voice",
        tenant="op",
        category="call",
        subject="(RatingPlan RP_STD|RP_CHEAP)",
        destination="212661234567",
        setup_time=datetime(2026, 11, 25, 10, tzinfo=UTC),
        usage_ns=300 * S,
    )
    assert r.rating_plan_id == "RP_CHEAP"


def test_unrated_records_are_refused_not_zero(engine):
    with pytest.raises(NotRated) as err:
        rate(engine, "4915112345678", "2026-11-25T10:00:00", 60)
    assert err.value.reason == "NO_DESTINATION"
    with pytest.raises(NotRated) as err:
        engine.rate(
            tor="*voice",
            tenant="other",
            category="call",
            subject="x",
            destination="212661234567",
            setup_time=datetime(2026, 11, 25, tzinfo=UTC),
            usage_ns=S,
        )
    assert err.value.reason == "NO_RATING_PROFILE"


def test_zero_usage_costs_nothing_and_sms_data_are_not_split(engine):
    assert rate(engine, "212661234567", "2026-11-25T10:00:00", 0).cost == 0
    sms = engine.rate(
        tor="*sms",
        tenant="op",
        category="call",
        subject="a",
        destination="212661234567",
        setup_time=datetime(2026, 11, 25, 7, 59, 59, tzinfo=UTC),
        usage_ns=3600 * S,
    )
    assert {s.rates_tag for s in sms.spans} == {"R_OFF"}  # priced whole by the row active at the start


def test_durations():
    assert parse_duration_ns("60s") == 60 * S
    assert parse_duration_ns("1m30s") == 90 * S
    assert parse_duration_ns("1ns") == 1 and parse_duration_ns("10") == 10
    for bad in ("", "60 s", "sixty", "1.5ns", "-1s"):
        with pytest.raises(ValueError):
            parse_duration_ns(bad)


@pytest.mark.parametrize(
    "file, change, line, reason",
    [
        ("DestinationRates", "DR_PEAK,NOWHERE,R_PEAK,*middle,4,0,", 2, "unknown destination 'NOWHERE'"),
        ("DestinationRates", "DR_PEAK,MOBILE,R_NONE,*middle,4,0,", 2, "unknown rate 'R_NONE'"),
        ("RatingPlans", "RP_STD,DR_PEAK,LUNCH,10", 2, "unknown timing 'LUNCH'"),
        ("RatingPlans", "RP_STD,DR_GONE,PEAK,10", 2, "unknown destination rate 'DR_GONE'"),
        ("RatingProfiles", "op,call,*any,2026-01-01T00:00:00Z,RP_GONE,", 2, "unknown rating plan 'RP_GONE'"),
        ("Rates", "R_PEAK,0.10,0.60,60 sec,60s,0s", 2, "malformed duration"),
        ("Rates", "R_PEAK,0.10,abc,60s,60s,0s", 2, "malformed rate"),
        ("Timings", "PEAK,*any,*any,*any,1;8,08:00:00", 2, "week days"),
    ],
)
def test_broken_plans_are_refused_with_file_line_and_reason(tmp_path, file, change, line, reason):
    files = dict(BASE)
    rows = files[file].splitlines()
    rows[0] = change
    files[file] = "\n".join(rows)
    with pytest.raises(TariffPlanError) as err:
        load_tariff_plan(write_plan(tmp_path / "broken", **files))
    assert (err.value.file, err.value.line) == (f"{file}.csv", line)
    assert reason in err.value.reason


def test_a_true_ambiguity_is_refused(tmp_path):
    files = dict(BASE)
    files["DestinationRates"] += "\nDR_OTHER,MOBILE,R_FREE,*middle,4,0,"
    files["RatingPlans"] += "\nRP_STD,DR_OTHER,PEAK,10"  # same destination, weight, start, days
    with pytest.raises(TariffPlanError, match="ambiguous") as err:
        load_tariff_plan(write_plan(tmp_path / "ambiguous", **files))
    assert err.value.file == "RatingPlans.csv" and err.value.line == 7


def test_a_shared_plan_loads_from_its_folder(tmp_path):
    plan = load_tariff_plan(shutil.copytree(require_conformance_data("tp_engine_unit"), tmp_path / "tp"))
    assert "EVENING" in plan.rating_plans and plan.destinations["NAT"][:2] == ["0256", "0257"]


@pytest.mark.parametrize(
    "value, decimals, expected",
    [
        ("1.00000009", 2, "1.01"),  # 9e-6 of a cent left over: far above 1e-7 of it
        ("1.0000000011", 2, "1.01"),  # 1.1e-7 of a cent: just above the threshold
        ("1.0000000009", 2, "1.00"),  # 9e-8 of a cent: just below, float noise to CGRateS
        ("1.000000001", 8, "1.00000001"),  # at 8 decimals the threshold is 1e-8 of the last unit
        ("1.00000000000000011", 8, "1.00000001"),  # 1.1e-8 of the last unit: just above
        ("1.00000000000000009", 8, "1.00000000"),  # 9e-9 of it: just below
        ("1.00", 2, "1.00"),  # nothing left over: nothing to round
    ],
)
def test_up_rounding_counts_a_remainder_from_ten_to_the_minus_max_7_decimals_of_the_last_unit(
    value, decimals, expected
):
    assert round_money(Decimal(value), decimals, "*up") == Decimal(expected)


@pytest.mark.parametrize(
    "value, method, expected",
    [
        ("2.935", "*middle", "2.94"),  # half up on the exact value, never a float's 2.93499...
        ("2.9349999", "*middle", "2.93"),
        ("2.945", "*middle", "2.95"),
        ("2.939", "*down", "2.93"),
        ("2.93000001", "*down", "2.93"),
    ],
)
def test_middle_rounds_half_up_exactly_and_down_truncates(value, method, expected):
    assert round_money(Decimal(value), 2, method) == Decimal(expected)


# Bands at 08:00 (day), 20:00 (evening) and midnight (night), every day; first increments of 60 s
# (day, evening) and 1 s (night); a destination whose second rate group starts off an increment.
SPLITS = {
    "Destinations": "MOB,2126\nODD,2125",
    "Timings": "DAY,*any,*any,*any,*any,08:00:00\nEVE,*any,*any,*any,*any,20:00:00\nNIGHT,*any,*any,*any,*any,00:00:00",
    "Rates": "R_DAY,0,0.60,60s,60s,0s\nR_DAY,0,0.60,60s,1s,60s\nR_EVE,0,0.30,60s,60s,0s\nR_EVE,0,0.30,60s,1s,60s\n"
    "R_NIGHT,0.05,0.12,60s,1s,0s\nR_ODD,0,0.60,60s,60s,0s\nR_ODD,0,0.60,60s,1s,30s",
    "DestinationRates": "DR_DAY,MOB,R_DAY,*middle,4,0,\nDR_EVE,MOB,R_EVE,*middle,4,0,\n"
    "DR_NIGHT,MOB,R_NIGHT,*middle,4,0,\nDR_ODD,ODD,R_ODD,*middle,4,0,",
    "RatingPlans": "RP,DR_DAY,DAY,10\nRP,DR_EVE,EVE,10\nRP,DR_NIGHT,NIGHT,10\nRP,DR_ODD,*any,10",
    "RatingProfiles": "op,call,*any,2026-01-01T00:00:00Z,RP,",
}


@pytest.fixture
def split_engine(tmp_path):
    return RatingEngine(load_tariff_plan(write_plan(tmp_path / "splits", **SPLITS)), rounding_decimals=5)


def _call(engine, number: str, start: datetime, seconds: int):
    return engine.rate(
        tor="*voice",
        tenant="op",
        category="call",
        subject="anyone",
        destination=number,
        setup_time=start,
        usage_ns=seconds * S,
    )


@pytest.mark.parametrize(
    "start, seconds, cost, charged",
    [
        # 19:59:30.5, 45 s: the day's 60 s first increment covers the call, evening included (not +16 s of evening)
        ("2026-11-25T19:59:30.500000", 45, "0.6000", [(60, 1)]),
        # 23:59:30, 96 s: 30 s of evening rounded to its 60 s increment, then the night's 36 s
        # (the CGRateS engine's own case in kind: 0.30 + 36 x 0.002, not 0.30 + 66 x 0.002)
        ("2026-11-25T23:59:30", 96, "0.3720", [(60, 1), (36, 36)]),
        # 07:59:59.250, 61 s: a night second (0.75 s rounded to 1 s), then the day's first increment
        # from 1 s to 61 s; the night's connect fee (the first span's rate)
        ("2026-11-25T07:59:59.250000", 61, "0.6520", [(1, 1), (60, 1)]),
        # a day call wholly in one band: 60 s increment, then per second
        ("2026-11-25T10:00:00", 95, "0.9500", [(60, 1), (35, 35)]),
    ],
)
def test_a_split_call_is_charged_its_own_duration_as_cgrates_rounds_it(split_engine, start, seconds, cost, charged):
    r = _call(split_engine, "212661234567", datetime.fromisoformat(start).replace(tzinfo=UTC), seconds)
    assert r.cost == Decimal(cost)
    assert [(s.rated_ns // S, s.increments) for s in r.spans] == charged
    assert sum(s.rated_ns for s in r.spans) >= seconds * S > sum(s.rated_ns for s in r.spans[:-1])


def test_a_rate_group_that_rounding_overruns_is_shortened_not_charged_again(split_engine):
    # R_ODD: 60 s increments until 30 s, then per second: a 45 s call is one 60 s increment
    r = _call(split_engine, "212561234567", datetime(2026, 11, 25, 10, tzinfo=UTC), 45)
    assert r.cost == Decimal("0.6000") and [s.increments for s in r.spans] == [1]
    # 75 s: the first increment reaches 60 s, the second group prices the last 15 s
    r = _call(split_engine, "212561234567", datetime(2026, 11, 25, 10, tzinfo=UTC), 75)
    assert r.cost == Decimal("0.6000") + 15 * Decimal("0.01") and [s.increments for s in r.spans] == [1, 15]


def test_a_call_across_a_clock_change_is_charged_its_duration_once(tmp_path):
    from cdr_platform.lib.tariff_clock import TariffClock

    paris = RatingEngine(
        load_tariff_plan(write_plan(tmp_path / "splits", **SPLITS)),
        rounding_decimals=5,
        clock=TariffClock("Europe/Paris"),
    )
    # 29 March 2026, 01:59:30 in Paris (00:59:30 UTC): the clocks go from 02:00 to 03:00 after 30 s
    r = _call(paris, "212661234567", datetime(2026, 3, 29, 0, 59, 30, tzinfo=UTC), 90)
    assert sum(s.rated_ns for s in r.spans) == 90 * S  # per second at night: exactly the call
    assert r.cost == Decimal("0.05") + 90 * Decimal("0.002")
