"""Property-based tests (Hypothesis) of mediation: no message can raise, and both paths agree.

`mediate` must answer every message with a clean record or reasons, never an exception; the
bulk path must give exactly what `mediate` gives; and if anything does raise while mediating
one record, that record alone is rejected as UNPROCESSABLE. The example database lives in
.hypothesis/ (ignored by git).
"""

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdr_platform.lib.mediation import bulk
from cdr_platform.lib.mediation.bulk import mediate_batch, mediate_batch_safely
from cdr_platform.lib.mediation.reasons import Reason
from cdr_platform.lib.mediation.rules import DEFAULT_LIMITS, mediate
from cdr_platform.lib.schema import FIELDS
from cdr_platform_tests.unit.test_mediation_bulk import GOOD, RECEIVED, both_ways

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
INT64 = 2**63

# any JSON value: every Unicode category in text, integers far outside 64 bits, tiny and huge floats
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from([INT64 - 1, INT64, 2**64 - 1, 2**64, -INT64, -INT64 - 1, 0, -1, 1])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(codec="utf-8"), max_size=80),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=6,
)


def _json_bytes(doc: dict) -> bytes:
    """The document as JSON text (the standard library's writer: it writes integers of any size)."""
    return json.dumps(doc, ensure_ascii=False).encode()


@PROPERTY
@given(st.binary(max_size=300))
def test_mediate_never_raises_on_arbitrary_bytes(payload):
    result = mediate(payload, RECEIVED)
    assert (result.record is None) != (not result.reasons)


@PROPERTY
@given(st.sampled_from(FIELDS), json_values, st.sampled_from(["voice", "sms", "data"]))
def test_any_json_value_in_any_field_is_mediated_the_same_both_ways_without_raising(field, value, record_type):
    doc = {**GOOD, "record_type": record_type, field: value}
    both_ways([_json_bytes(doc)], [RECEIVED])


@PROPERTY
@given(st.lists(st.tuples(st.sampled_from(FIELDS), json_values), min_size=1, max_size=4), st.integers(0, 3))
def test_batches_of_hostile_and_valid_records_are_mediated_the_same_both_ways(changes, valid_copies):
    hostile = {**GOOD, **dict(changes)}
    values = [_json_bytes(hostile)] + [orjson.dumps({**GOOD, "record_id": f"ok-{i}"}) for i in range(valid_copies)]
    bulk_result = both_ways(values, [RECEIVED] * len(values))
    assert set(bulk_result.clean_rows.tolist()) >= set(range(1, len(values)))  # the valid ones stay clean


@PROPERTY
@given(st.text(st.characters(codec="utf-8"), min_size=1, max_size=40))
def test_text_with_a_control_character_is_rejected_both_ways(text):
    has_control = any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F or ch in "\u2028\u2029" for ch in text)
    result = both_ways([orjson.dumps({**GOOD, "visited_network": text})], [RECEIVED])
    assert (result.rejected == [(0, (Reason.CONTROL_CHARACTER.value,))]) == has_control


@pytest.mark.parametrize(
    "field, raw",
    [
        ("duration_s", b"9223372036854775808"),  # 2**63: the first integer beyond int64
        ("duration_s", b"18446744073709551615"),  # 2**64 - 1: the largest orjson still reads as int
        ("duration_s", b"86401"),  # a second more than a day
        ("data_volume_bytes", b"9223372036854775808"),
        ("data_volume_bytes", b"1000000000001"),  # a byte more than 1 TB
    ],
)
def test_numbers_beyond_the_limits_are_rejected_as_out_of_range_and_never_fail_the_batch(field, raw):
    doc = {**GOOD, "record_type": "data", "other_msisdn": None, "direction": None, "data_volume_bytes": 1}
    payload = orjson.dumps(doc).replace(f'"{field}":{doc[field]}'.encode(), f'"{field}":'.encode() + raw)
    assert raw in payload
    assert mediate(payload, RECEIVED).reasons == (Reason.VALUE_OUT_OF_RANGE,)
    result = both_ways([payload, orjson.dumps(GOOD)], [RECEIVED] * 2)
    assert result.clean_rows.tolist() == [1]


@pytest.mark.parametrize("start", ["0001-01-01T00:00:00Z", "2026-09-03T11:59:59Z", "1970-01-01T00:00:00.000Z"])
def test_a_start_older_than_the_late_arrival_window_is_stale(start):
    assert RECEIVED - DEFAULT_LIMITS.late_arrival > datetime.fromisoformat(start.replace("Z", "+00:00"))
    payload = orjson.dumps({**GOOD, "record_type": "sms", "duration_s": None, "start_time": start})
    assert mediate(payload, RECEIVED).reasons == (Reason.STALE_TIMESTAMP,)
    both_ways([payload], [RECEIVED])


def test_a_start_just_inside_the_late_arrival_window_is_clean():
    start = (RECEIVED - DEFAULT_LIMITS.late_arrival + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    both_ways([orjson.dumps({**GOOD, "start_time": start})], [RECEIVED])
    assert mediate(orjson.dumps({**GOOD, "start_time": start}), RECEIVED).record is not None


@pytest.mark.parametrize("start", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-14:00"])
def test_a_start_that_overflows_when_moved_to_utc_is_an_invalid_timestamp(start):
    payload = orjson.dumps({**GOOD, "start_time": start})
    assert mediate(payload, RECEIVED).reasons == (Reason.INVALID_TIMESTAMP,)
    both_ways([payload], [RECEIVED])


def test_a_record_whose_mediation_raises_is_rejected_as_unprocessable_and_the_batch_goes_on(monkeypatch):
    poison = orjson.dumps({**GOOD, "record_id": "poison", "record_type": "VOICE"})  # not canonical: plain path
    real_mediate = bulk.mediate

    def mediate_that_breaks_on_poison(payload, received_at, limits=DEFAULT_LIMITS):
        if payload == poison:
            raise OverflowError("int too big to convert")
        return real_mediate(payload, received_at, limits)

    monkeypatch.setattr(bulk, "mediate", mediate_that_breaks_on_poison)
    values = [orjson.dumps({**GOOD, "record_id": "a"}), poison, orjson.dumps({**GOOD, "record_id": "b"}), b"{"]
    received = np.full(len(values), int((RECEIVED - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1)))
    result = mediate_batch(values, received)
    assert result.clean_rows.tolist() == [0, 2]
    assert dict(result.rejected) == {1: (Reason.UNPROCESSABLE.value,), 3: (Reason.MALFORMED_JSON.value,)}
    assert result.errors == {1: "OverflowError: int too big to convert"}


def test_a_batch_that_raises_is_mediated_again_one_message_at_a_time(monkeypatch):
    poison = orjson.dumps({**GOOD, "record_id": "poison"})  # canonical: the bulk path itself
    real_batch = bulk.mediate_batch

    def batch_that_breaks_on_poison(values, received_us, limits=DEFAULT_LIMITS):
        if poison in values:
            raise ValueError("a bug in the bulk path")
        return real_batch(values, received_us, limits)

    monkeypatch.setattr(bulk, "mediate_batch", batch_that_breaks_on_poison)
    values = [orjson.dumps({**GOOD, "record_id": "a"}), poison, b"", orjson.dumps({**GOOD, "record_id": "b"})]
    received = np.full(len(values), int((RECEIVED - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1)))
    result = mediate_batch_safely(values, received)
    assert result.clean_rows.tolist() == [0, 3]
    assert result.clean.column("record_id").to_pylist() == ["a", "b"]
    assert dict(result.rejected) == {1: (Reason.UNPROCESSABLE.value,), 2: (Reason.EMPTY_MESSAGE.value,)}
    assert result.errors == {1: "ValueError: a bug in the bulk path"}
