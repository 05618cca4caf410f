"""Bulk rating gives exactly what the plain engine gives, record by record, on every plan we have.

The bulk path (numpy over Arrow batches) is how Spark rates; the plain engine is the definition.
Each test rates the same records both ways and compares every output column, and checks that
the bulk path settled most records itself (so a pass does not just mean "all went to plain").
"""

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from cdr_platform.lib.ingest.generator import CdrGenerator, GeneratorConfig
from cdr_platform.lib.mediation.rules import mediate
from cdr_platform.lib.rating.bulk import INPUT_COLUMNS, BulkRater, plain_outcome
from cdr_platform.lib.rating.engine import RatingEngine
from cdr_platform.lib.rating.plan import load_tariff_plan
from cdr_platform.lib.reference.subscribers import generate_subscribers
from cdr_platform.lib.settings import REPO_ROOT
from cdr_platform_tests.conformance_data import require_conformance_data
from cdr_platform_tests.unit.tariff_fixtures import BASE, write_plan

SCHEMA = pa.schema(
    [
        ("record_type", pa.string()),
        ("direction", pa.string()),
        ("served_operator_id", pa.string()),
        ("segment", pa.string()),
        ("other_msisdn", pa.string()),
        ("technology", pa.string()),
        ("start_time", pa.timestamp("us", tz="UTC")),
        ("duration_s", pa.int64()),
        ("data_volume_bytes", pa.int64()),
    ]
)

# BASE plus what the CDR mapping reaches: a technology category whose plan lacks FR (so records
# fall back to the service's category), SMS and data, and received calls.
BULK = dict(BASE)
BULK.update(
    Destinations=BASE["Destinations"] + "\nUK,44",
    Rates=BASE["Rates"] + "\nR_SMS,0,0.2,1,1,0\nR_DATA,0,0.01,1048576,1024,0\nR_DATA,0.005,0.02,1048576,1024,"
    "10485760\nR_4G,0.123456,0.5,60s,7s,0s",
    DestinationRates=BASE["DestinationRates"] + "\nDR_SMS,*any,R_SMS,*middle,4,0,\nDR_DATA,*any,R_DATA,*up,3,2.5,"
    "*free\nDR_4G,MOBILE,R_4G,*up,6,0,\nDR_4G,NAT,R_4G,*down,1,0,",
    RatingPlans=BASE["RatingPlans"] + "\nRP_SMS,DR_SMS,*any,10\nRP_DATA,DR_DATA,*any,10\nRP_4G,DR_4G,*any,10",
    RatingProfiles=BASE["RatingProfiles"] + "\nop,sms,*any,2026-01-01T00:00:00Z,RP_SMS,\n"
    "op,data,*any,2026-01-01T00:00:00Z,RP_DATA,\n"
    "op,call_4G,*any,2026-03-01T00:00:00Z,RP_4G,\n"
    "op,call_in,*any,2026-01-01T00:00:00Z,RP_CHEAP,",
)


def both_ways(engine: RatingEngine, rows: list[dict], batch_size: int = 4096) -> tuple[BulkRater, int]:
    """Rate rows in bulk (several batches, so caches carry over) and plainly; assert equal.

    Returns the rater (with its fast/plain counts) and how many records the engine rated.
    """
    rater = BulkRater(engine)
    rated = 0
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    for offset in range(0, len(rows), batch_size):
        batch = table.slice(offset, batch_size).combine_chunks().to_batches()[0]
        got = {k: v.to_pylist() for k, v in rater.rate(batch).items()}
        for i, row in enumerate(batch.to_pylist()):
            expected = plain_outcome(engine, row)
            actual = {k: got[k][i] for k in expected}
            assert actual == expected, f"record {offset + i}: {row}"
            rated += expected["kind"] == "rated"
    return rater, rated


def random_records(
    rng: np.random.Generator,
    n: int,
    numbers: list[str],
    tenants: list[str],
    subjects: list,
    first_day: datetime,
    days: int,
) -> list[dict]:
    rows = []
    for _ in range(n):
        record_type = str(rng.choice(["voice", "voice", "voice", "sms", "data"]))
        start = first_day + timedelta(days=int(rng.integers(days)))
        # times near band changes and midnight as well as anywhere
        start += timedelta(
            seconds=int(rng.choice([rng.integers(86_400), 8 * 3600 - 30, 20 * 3600 - 5, 86_400 - 40, 0])),
            microseconds=int(rng.integers(0, 2) * 250),
        )
        duration = int(
            rng.choice(
                [0, 1, 59, 60, 61, rng.integers(1, 600), rng.integers(600, 40_000), rng.integers(40_000, 400_000)]
            )
        )
        rows.append(
            {
                "record_type": record_type,
                "direction": rng.choice(["outgoing", "outgoing", "incoming", None]),
                "served_operator_id": str(rng.choice(tenants)),
                "segment": subjects[int(rng.integers(len(subjects)))],
                "other_msisdn": numbers[int(rng.integers(len(numbers)))],
                "technology": str(rng.choice(["2G", "3G", "4G", "5G"])),
                "start_time": start,
                "duration_s": duration if record_type == "voice" else None,
                "data_volume_bytes": (
                    int(rng.choice([0, 1, rng.integers(1, 50_000_000)])) if record_type == "data" else None
                ),
            }
        )
    return rows


@pytest.mark.parametrize("increment_decimals", [5, 8])  # 8: integer money finer than the output's 6
def test_bulk_equals_plain_on_a_plan_with_every_feature(tmp_path, increment_decimals):
    engine = RatingEngine(load_tariff_plan(write_plan(tmp_path / "plan", **BULK)), rounding_decimals=increment_decimals)
    numbers = [
        "+212612345678",
        "2126999",
        "212522000000",
        "+33612345678",
        "33",
        "+4420794",
        "+1555000",
        "",
        None,
        "+٣٣٦١٢",
        "++212600000000",
    ]
    rows = random_records(
        np.random.default_rng(7),
        6000,
        numbers,
        ["op", "op", "op", "nobody"],
        [None, "", "anyone", "vip", "nofr", "(RatingPlan RP_STD|RP_CHEAP)"],
        datetime(2025, 12, 30, tzinfo=UTC),
        190,
    )
    rater, rated = both_ways(engine, rows)
    # handed to the plain engine besides what it does not rate: the cheapest-of-plans subject
    # and calls cut more often than max_segments
    cheapest_of = sum(r["segment"] == "(RatingPlan RP_STD|RP_CHEAP)" for r in rows)
    assert rater.fast_rows >= 0.95 * (rated - cheapest_of), (rater.fast_rows, rated, cheapest_of)


def test_bulk_equals_plain_on_the_default_tariff_and_generated_traffic():
    engine = RatingEngine(load_tariff_plan(REPO_ROOT / "dbt_project" / "seeds" / "tariff"))
    segments = {s.msisdn: s.segment for s in generate_subscribers()}
    config = GeneratorConfig(
        count=12_000, seed=11, error_rate=0.0, start_time=datetime(2026, 11, 6, 18, tzinfo=UTC), span_hours=60
    )
    received = datetime(2026, 11, 9, tzinfo=UTC)
    rows = []
    for chunk in CdrGenerator(config).chunks():
        for value in chunk.values:
            record = mediate(value, received).record
            if record is None:
                continue  # rejected by the mediation rules (an odd generated value): never rated
            rows.append(
                {name: record[name] for name in INPUT_COLUMNS if name != "segment"}
                | {"segment": segments.get(record["served_msisdn"])}
            )
    rater, rated = both_ways(engine, rows)
    assert rated > 0.9 * len(rows) and rater.plain_rows < 0.01 * len(rows), (rater.fast_rows, rater.plain_rows)


@pytest.mark.parametrize(
    "folder", ["tp_engine_unit", "tp_general_costs1", "tp_general_datachrg1", "tp_general_smschrg1", "tp_tutorial"]
)
def test_bulk_equals_plain_on_the_cgrates_plans(folder):
    plan = load_tariff_plan(require_conformance_data(folder))
    engine = RatingEngine(plan, rounding_decimals=6)
    prefixes = [p for values in plan.destinations.values() for p in values]
    rng = np.random.default_rng(3)
    numbers = [p + "".join(map(str, rng.integers(0, 10, int(rng.integers(0, 6))))) for p in prefixes] + ["999"]
    tenants = sorted({p.tenant for p in plan.rating_profiles})
    subjects = sorted({p.subject for p in plan.rating_profiles}) + [None]
    rows = random_records(rng, 3000, numbers, tenants, subjects, datetime(2012, 1, 1, tzinfo=UTC), 1200)
    both_ways(engine, rows)


ROUNDING = {
    "Destinations": "UP_ABOVE,2121\nUP_BELOW,2122\nMIDDLE,2123",
    "Rates": "R_ABOVE,0,1.0000000011,1,1,0\nR_BELOW,0,1.0000000009,1,1,0\nR_MIDDLE,0,2.935,1,1,0",
    "DestinationRates": "DR,UP_ABOVE,R_ABOVE,*up,2,0,\nDR,UP_BELOW,R_BELOW,*up,2,0,\nDR,MIDDLE,R_MIDDLE,*middle,2,0,",
    "RatingPlans": "RP,DR,*any,10",
    "RatingProfiles": "op,sms,*any,2026-01-01T00:00:00Z,RP,",
}


def test_bulk_rounds_up_and_middle_as_cgrates_and_as_the_engine(tmp_path):
    # increments priced at 10 decimals, so the bulk path keeps them in its own integer money
    engine = RatingEngine(load_tariff_plan(write_plan(tmp_path / "plan", **ROUNDING)), rounding_decimals=10)
    rows = [
        {
            "record_type": "sms",
            "direction": "outgoing",
            "served_operator_id": "op",
            "segment": None,
            "other_msisdn": number,
            "technology": "4G",
            "start_time": datetime(2026, 11, 20, 10, tzinfo=UTC),
            "duration_s": None,
            "data_volume_bytes": None,
        }
        for number in ("+2121000000", "+2122000000", "+2123000000")
    ]
    rater, rated = both_ways(engine, rows)
    assert rated == 3 and rater.plain_rows == 0  # all three settled by the bulk path itself
    costs = BulkRater(engine).rate(pa.Table.from_pylist(rows, schema=SCHEMA).to_batches()[0])["cost"].to_pylist()
    assert [str(c) for c in costs] == ["1.010000", "1.000000", "2.940000"]


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris"])
def test_bulk_equals_plain_on_calls_split_at_bands_midnight_and_clock_changes(tmp_path, zone):
    from zoneinfo import ZoneInfo

    from cdr_platform.lib.tariff_clock import TariffClock
    from cdr_platform_tests.unit.test_rating_engine import SPLITS

    engine = RatingEngine(
        load_tariff_plan(write_plan(tmp_path / "plan", **SPLITS)), rounding_decimals=5, clock=TariffClock(zone)
    )
    rng = np.random.default_rng(23)
    rows = []
    # the last minute before 08:00, 20:00 and midnight (local), with fractional-second starts, on
    # an ordinary day and on the night the clocks change in Paris
    for day in (datetime(2026, 11, 25).date(), datetime(2026, 3, 29).date()):
        for boundary_hour in (8, 20, 24):
            # wall-clock arithmetic (Python adds a timedelta to an aware time on its wall clock)
            local_midnight = datetime.combine(day, datetime.min.time(), ZoneInfo(zone))
            boundary = (local_midnight + timedelta(hours=boundary_hour)).astimezone(UTC)
            for _ in range(150):
                start = boundary - timedelta(microseconds=int(rng.integers(1, 90_000_000)))
                rows.append(
                    {
                        "record_type": "voice",
                        "direction": "outgoing",
                        "served_operator_id": "op",
                        "segment": None,
                        "other_msisdn": str(rng.choice(["+212661234567", "+212561234567"])),
                        "technology": "3G",
                        "start_time": start,
                        "duration_s": int(rng.choice([1, 29, 30, 31, 45, 59, 60, 61, 96, 119, 121, 3700])),
                        "data_volume_bytes": None,
                    }
                )
    rater, rated = both_ways(engine, rows)
    assert rated == len(rows)
    assert rater.fast_rows >= 0.9 * len(rows), (rater.fast_rows, rater.plain_rows)  # the bulk path settles them
