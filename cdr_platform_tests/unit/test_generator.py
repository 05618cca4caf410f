from collections import Counter
from datetime import UTC, datetime, timedelta
from statistics import median

import orjson
import pytest

from cdr_platform.lib.ingest.generator import (
    ALL_ERROR_CLASSES,
    CHUNK_SIZE,
    CdrGenerator,
    GeneratorConfig,
    GeneratorConfigError,
    InjectedError,
    parse_error_classes,
)
from cdr_platform.lib.reference import numbering_plan
from cdr_platform.lib.reference.network import CELLS_BY_ID
from cdr_platform.lib.schema import (
    FIELD_TYPES,
    FIELDS,
    INJECTED_ERROR_HEADER,
    MANDATORY_FIELDS_BY_TYPE,
    TECHNOLOGIES,
    TECHNOLOGY_ALIASES,
    mandatory_fields,
)

START = datetime(2026, 11, 1, tzinfo=UTC)
NOW = datetime(2026, 11, 20, tzinfo=UTC)


def generate(count, **kw):
    kw.setdefault("start_time", START)
    kw.setdefault("reference_time", NOW)
    chunks = list(CdrGenerator(GeneratorConfig(count=count, **kw)).chunks())
    keys = [k for c in chunks for k in c.keys]
    values = [v for c in chunks for v in c.values]
    injected = [e for c in chunks for e in c.injected]
    headers = [c.headers(i) for c in chunks for i in range(len(c))]
    return keys, values, injected, headers


@pytest.fixture(scope="module")
def clean_records():
    keys, values, injected, _ = generate(30_000, error_rate=0.0)
    assert not any(injected)
    return keys, [orjson.loads(v) for v in values]


def test_valid_records_follow_the_schema(clean_records):
    keys, records = clean_records
    for key, rec in zip(keys, records):
        assert tuple(rec) == FIELDS
        for name in MANDATORY_FIELDS_BY_TYPE[rec["record_type"]]:
            assert rec[name] is not None, (name, rec)
        for name, value in rec.items():
            if value is not None:
                assert isinstance(value, FIELD_TYPES[name]), (name, value)
        assert key == rec["served_msisdn"].encode()
        assert numbering_plan.is_valid_msisdn(rec["served_msisdn"])
        assert rec["technology"] in TECHNOLOGIES or rec["technology"] in TECHNOLOGY_ALIASES
        assert START <= datetime.fromisoformat(rec["start_time"]) < START + timedelta(hours=24)
        assert rec["roaming"] or rec["cell_id"] in CELLS_BY_ID
        if rec["record_type"] != "sms":
            assert rec["duration_s"] > 0


def test_record_ids_are_unique(clean_records):
    _, records = clean_records
    ids = [r["record_id"] for r in records]
    assert len(set(ids)) == len(ids)


def test_same_seed_same_messages_other_seed_others():
    a = generate(12_000, seed=7)
    b = generate(12_000, seed=7)
    c = generate(12_000, seed=8)
    assert a == b
    assert a[1] != c[1]


@pytest.mark.parametrize("rate", [0.05, 0.2])
def test_every_error_class_at_the_asked_rate(rate):
    count = 45_000
    _, values, injected, headers = generate(count, error_rate=rate)
    by_class = Counter(e for e in injected if e)
    assert sum(by_class.values()) == pytest.approx(rate * count, abs=len(range(0, count, CHUNK_SIZE)))
    expected_each = rate * count / len(ALL_ERROR_CLASSES)
    for cls in ALL_ERROR_CLASSES:
        assert by_class[cls.value] == pytest.approx(expected_each, abs=len(ALL_ERROR_CLASSES)), cls
    for h, e in zip(headers, injected):
        assert dict(h).get(INJECTED_ERROR_HEADER) == (e.encode() if e else None)


def test_each_injected_error_really_breaks_its_rule():
    keys, values, injected, _ = generate(20_000, error_rate=0.3)
    seen_ids: set[str] = set()
    for key, value, error in zip(keys, values, injected):
        if error == InjectedError.MALFORMED_JSON.value:
            with pytest.raises(orjson.JSONDecodeError):
                orjson.loads(value)
            continue
        rec = orjson.loads(value)
        if error is None:
            seen_ids.add(rec["record_id"])
        elif error == InjectedError.DUPLICATE_RECORD.value:
            assert rec["record_id"] in seen_ids  # an earlier record, re-sent
        elif error == InjectedError.MISSING_MANDATORY_FIELD.value:
            assert rec.get("record_type") is None or any(
                rec.get(f) is None for f in mandatory_fields(rec["record_type"], rec.get("direction"))
            )
        elif error == InjectedError.WRONG_TYPE.value:
            assert any(v is not None and not isinstance(v, FIELD_TYPES[k]) for k, v in rec.items())
        elif error == InjectedError.INVALID_MSISDN.value:
            assert not numbering_plan.is_valid_msisdn(rec["served_msisdn"])
            assert key == rec["served_msisdn"].encode()
        elif error == InjectedError.NON_POSITIVE_DURATION.value:
            assert rec["duration_s"] <= 0 and rec["record_type"] in ("voice", "data")
        elif error == InjectedError.UNKNOWN_TECHNOLOGY.value:
            assert rec["technology"] not in TECHNOLOGIES and rec["technology"] not in TECHNOLOGY_ALIASES
        elif error == InjectedError.FUTURE_TIMESTAMP.value:
            assert datetime.fromisoformat(rec["start_time"]) > NOW
        elif error == InjectedError.UNKNOWN_CELL.value:
            assert rec["cell_id"] not in CELLS_BY_ID and not rec["roaming"]


def test_only_selected_error_classes_are_injected():
    _, _, injected, _ = generate(10_000, error_rate=0.1, error_classes=parse_error_classes(["unknown_cell"]))
    assert set(injected) == {None, "unknown_cell"}


def test_traffic_has_a_realistic_shape(clean_records):
    _, records = clean_records
    n = len(records)
    types = Counter(r["record_type"] for r in records)
    assert types["voice"] / n == pytest.approx(0.55, abs=0.02)
    assert types["sms"] / n == pytest.approx(0.25, abs=0.02)
    assert types["data"] / n == pytest.approx(0.20, abs=0.02)
    durations = sorted(r["duration_s"] for r in records if r["record_type"] == "voice")
    assert 40 <= median(durations) <= 75
    assert durations[int(0.99 * len(durations))] > 10 * median(durations)  # long tail
    hours = Counter(datetime.fromisoformat(r["start_time"]).hour for r in records)
    assert hours[19] > 5 * hours[3]  # evening busy hour vs night
    roaming = sum(r["roaming"] for r in records) / n
    assert roaming == pytest.approx(0.03, abs=0.01)
    others = [r["other_msisdn"] for r in records if r["other_msisdn"]]
    international = sum(o.startswith("00") or (o.startswith("+") and not o.startswith("+212")) for o in others)
    assert international / len(others) == pytest.approx(0.10, abs=0.02)
    served = Counter(r["served_msisdn"] for r in records)
    top10 = sum(c for _, c in served.most_common(10))
    assert top10 / n > 10 / 300 * 2  # heavy users: the top 10 do far more than their share


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"count": -1}, "count"),
        ({"count": 10, "error_rate": 1.5}, "error_rate"),
        ({"count": 10, "error_rate": -0.1}, "error_rate"),
        ({"count": 10, "span_hours": 0}, "span_hours"),
        ({"count": 10, "start_time": datetime(2026, 11, 1)}, "time zone"),
        ({"count": 10, "start_time": NOW - timedelta(hours=1)}, "future"),
    ],
)
def test_settings_out_of_range_are_refused(kwargs, message):
    kwargs.setdefault("start_time", START)
    with pytest.raises(GeneratorConfigError, match=message):
        GeneratorConfig(reference_time=NOW, **kwargs)


def test_unknown_error_class_is_refused():
    with pytest.raises(GeneratorConfigError, match="unknown error class"):
        parse_error_classes(["missing_mandatory_field", "alien_invasion"])
