import os
import random
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from cdr_platform.lib.ingest.generator import CdrGenerator, GeneratorConfig, InjectedError
from cdr_platform.lib.mediation.reasons import Reason
from cdr_platform.lib.mediation.rules import (
    mediate,
    normalise_msisdn,
    normalise_technology,
    parse_utc,
)
from cdr_platform.lib.schema import CLEAN_COLUMNS, MANDATORY_FIELDS_BY_TYPE

RECEIVED = datetime(2026, 11, 20, 12, tzinfo=UTC)

# What mediation must answer for each class of the generator's catalogue. DUPLICATE is
# decided against the warehouse, so a duplicate passes validation.
EXPECTED_REASON = {
    InjectedError.MISSING_MANDATORY_FIELD: Reason.MISSING_FIELD,
    InjectedError.MALFORMED_JSON: Reason.MALFORMED_JSON,
    InjectedError.WRONG_TYPE: Reason.WRONG_TYPE,
    InjectedError.INVALID_MSISDN: Reason.INVALID_MSISDN,
    InjectedError.NON_POSITIVE_DURATION: Reason.NON_POSITIVE_DURATION,
    InjectedError.UNKNOWN_TECHNOLOGY: Reason.UNKNOWN_TECHNOLOGY,
    InjectedError.FUTURE_TIMESTAMP: Reason.FUTURE_TIMESTAMP,
    InjectedError.UNKNOWN_CELL: Reason.UNKNOWN_CELL,
    InjectedError.DUPLICATE_RECORD: None,
}


def valid_record(**changes) -> dict:
    rec = {
        "schema_version": 1,
        "record_id": "0b1c7c52-8c1f-4c7e-9b7e-2f3d4a5b6c7d",
        "record_type": "voice",
        "served_msisdn": "+212661234567",
        "other_msisdn": "0612345678",
        "direction": "Outgoing",
        "start_time": "2026-11-20T10:00:00.000+01:00",
        "duration_s": 75,
        "data_volume_bytes": None,
        "cell_id": "604-01-01000-00010",
        "technology": "lte",
        "roaming": False,
        "visited_network": None,
    }
    rec.update(changes)
    return rec


def reasons_of(rec) -> tuple:
    return mediate(orjson.dumps(rec), RECEIVED).reasons


def test_a_valid_record_is_normalised():
    result = mediate(orjson.dumps(valid_record()), RECEIVED)
    assert result.reasons == ()
    r = result.record
    assert tuple(r) == CLEAN_COLUMNS
    assert r["served_msisdn"] == "+212661234567" and r["served_operator_id"] == "IAM"
    assert r["other_msisdn"] == "+212612345678" and r["other_operator_id"] == "ORANGE"
    assert r["destination_class"] == "off_net" and r["destination_zone"] == "NATIONAL"
    assert r["technology"] == "4G" and r["direction"] == "outgoing"
    assert r["start_time"] == datetime(2026, 11, 20, 9, tzinfo=UTC)  # to UTC
    assert r["roaming"] == 0


def test_normalisation_helpers():
    assert normalise_msisdn("00212 661-234567") == "+212661234567"
    assert normalise_msisdn("0661234567") == "+212661234567"
    assert normalise_msisdn("212661234567") == "+212661234567"
    assert normalise_technology(" nr ") == "5G" and normalise_technology("GSM") == "2G"
    assert normalise_technology("6G") is None
    assert parse_utc("2026-11-20T10:00:00") == datetime(2026, 11, 20, 10, tzinfo=UTC)
    assert parse_utc("yesterday") is None


def test_roaming_is_derived_from_the_cell_and_international_from_the_number():
    r = mediate(orjson.dumps(valid_record(cell_id="234-15-00123-00456", other_msisdn="0033612345678")), RECEIVED).record
    assert r["roaming"] == 1 and r["visited_network"] == "234-15"
    assert r["destination_class"] == "international" and r["other_country"] == "FR"


@pytest.mark.parametrize("record_type", ["voice", "sms", "data"])
def test_a_null_or_missing_mandatory_field_never_passes(record_type):
    base = valid_record(record_type=record_type)
    if record_type == "sms":
        base["duration_s"] = None
    if record_type == "data":
        base.update(other_msisdn=None, direction=None, data_volume_bytes=1000)
    assert reasons_of(base) == ()
    for name in MANDATORY_FIELDS_BY_TYPE[record_type]:
        for spoil in ("null", "absent"):
            rec = dict(base)
            if spoil == "null":
                rec[name] = None
            else:
                del rec[name]
            assert Reason.MISSING_FIELD in reasons_of(rec), (name, spoil)


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"duration_s": 0}, Reason.NON_POSITIVE_DURATION),
        ({"duration_s": -5}, Reason.NON_POSITIVE_DURATION),
        ({"duration_s": "75"}, Reason.WRONG_TYPE),
        ({"duration_s": True}, Reason.WRONG_TYPE),
        ({"duration_s": 75.5}, Reason.WRONG_TYPE),
        ({"roaming": "no"}, Reason.WRONG_TYPE),
        ({"record_type": "fax"}, Reason.UNKNOWN_RECORD_TYPE),
        ({"schema_version": 2}, Reason.UNSUPPORTED_SCHEMA_VERSION),
        ({"served_msisdn": "+2126612345"}, Reason.INVALID_MSISDN),
        ({"served_msisdn": "+212522123456"}, Reason.INVALID_MSISDN),  # a fixed line is not a subscriber
        ({"other_msisdn": "+999123"}, Reason.INVALID_OTHER_MSISDN),
        ({"direction": "sideways"}, Reason.INVALID_DIRECTION),
        ({"start_time": "not a time"}, Reason.INVALID_TIMESTAMP),
        ({"start_time": (RECEIVED + timedelta(hours=1)).isoformat()}, Reason.FUTURE_TIMESTAMP),
        ({"technology": "WIMAX"}, Reason.UNKNOWN_TECHNOLOGY),
        ({"cell_id": "604-01-99999-99999"}, Reason.UNKNOWN_CELL),
        ({"cell_id": "999-99-00001-00001"}, Reason.UNKNOWN_CELL),
        ({"record_id": "x'); drop table clean_cdrs; --"}, Reason.INVALID_RECORD_ID),
        ({"cell_id": "A" * 10_000}, Reason.FIELD_TOO_LONG),
    ],
)
def test_each_rule_rejects_with_its_reason(changes, reason):
    assert reason in reasons_of(valid_record(**changes))


def test_a_record_may_carry_several_reasons():
    reasons = reasons_of(valid_record(technology="6G", duration_s=0, cell_id="604-01-99999-00001"))
    assert set(reasons) == {Reason.UNKNOWN_TECHNOLOGY, Reason.NON_POSITIVE_DURATION, Reason.UNKNOWN_CELL}


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b"", Reason.EMPTY_MESSAGE),
        (None, Reason.EMPTY_MESSAGE),
        (b'{"record_id": "abc"', Reason.MALFORMED_JSON),
        (b"[1, 2, 3]", Reason.MALFORMED_JSON),
        (b"null", Reason.MALFORMED_JSON),
        (b"\xff\xfe\x00garbage", Reason.INVALID_ENCODING),
    ],
)
def test_messages_that_are_not_records(payload, reason):
    assert mediate(payload, RECEIVED).reasons == (reason,)


def test_every_generator_error_class_is_detected_with_its_reason():
    config = GeneratorConfig(
        count=20_000,
        error_rate=0.2,
        start_time=datetime(2026, 11, 19, tzinfo=UTC),
        span_hours=24,
        reference_time=RECEIVED,
    )
    seen = dict.fromkeys(InjectedError, 0)
    for chunk in CdrGenerator(config).chunks():
        for value, injected in zip(chunk.values, chunk.injected):
            result = mediate(value, RECEIVED)
            if injected is None:
                assert result.reasons == (), (value, result.reasons)
                continue
            cls = InjectedError(injected)
            seen[cls] += 1
            expected = EXPECTED_REASON[cls]
            assert result.reasons == ((expected,) if expected else ()), (cls, value, result.reasons)
    assert all(seen.values())


def test_random_bytes_are_rejected_never_raised():
    rng = random.Random(5)
    for _ in range(3000):
        payload = (
            os.urandom(rng.randint(0, 300))
            if rng.random() < 0.5
            else orjson.dumps(valid_record())[: rng.randint(0, 300)]
        )
        result = mediate(payload, RECEIVED)
        assert (result.record is None) == bool(result.reasons)
