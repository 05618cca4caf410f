"""Bulk mediation gives exactly what `mediate` gives, message by message.

The bulk path (vectorised over a batch) is how Spark mediates; `rules.mediate` is the
definition. Each test mediates the same messages both ways and compares the outcome of every
message: clean with the same normalised record, or rejected with the same reasons. It also
checks the bulk path settled the canonical clean records itself.
"""

from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
import pytest

from cdr_platform.lib.ingest.generator import CdrGenerator, GeneratorConfig, InjectedError
from cdr_platform.lib.mediation.bulk import mediate_batch
from cdr_platform.lib.mediation.rules import mediate
from cdr_platform_tests.unit.message_corpus import fuzz_messages

RECEIVED = datetime(2026, 11, 3, 12, tzinfo=UTC)
TWO_TO_63 = str(2**63).encode()
GOOD = {
    "schema_version": 1,
    "record_id": "r-1",
    "record_type": "voice",
    "served_msisdn": "+212661234567",
    "other_msisdn": "+212612345678",
    "direction": "outgoing",
    "start_time": "2026-11-03T10:00:00.250Z",
    "duration_s": 60,
    "data_volume_bytes": None,
    "cell_id": "604-01-01000-00010",
    "technology": "4G",
    "roaming": False,
    "visited_network": None,
}


def both_ways(values: list, received: list[datetime]):
    received_us = np.array(
        [(r - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) for r in received], np.int64
    )
    bulk = mediate_batch(values, received_us)
    clean = dict(zip(bulk.clean_rows.tolist(), bulk.clean.to_pylist()))
    rejected = dict(bulk.rejected)
    assert len(clean) + len(rejected) == len(values) and not clean.keys() & rejected.keys()
    assert bulk.clean_rows.tolist() == sorted(bulk.clean_rows.tolist())  # input order kept
    for i, (value, at) in enumerate(zip(values, received)):
        expected = mediate(value, at)
        if expected.record is None:
            assert rejected.get(i) == expected.reasons, (i, value)
        else:
            assert clean.get(i) == expected.record, (i, value)
    return bulk


def variants() -> list[bytes]:
    """Valid and invalid records written in every way the rules normalise or refuse."""
    changes = [
        {},
        {"record_type": "VOICE"},
        {"record_type": " sms", "duration_s": None},
        {"record_type": "data", "data_volume_bytes": 10},
        {"record_type": "sms", "duration_s": 0},
        {"record_type": "data", "duration_s": 0, "data_volume_bytes": 1},
        {"record_type": "fax"},
        {"served_msisdn": "0661234567"},
        {"served_msisdn": "00212661234567"},
        {"served_msisdn": "212661234567"},
        {"served_msisdn": " +212 661-234-567 "},
        {"served_msisdn": "+21266123456"},
        {"served_msisdn": "+212522123456"},
        {"served_msisdn": "+33612345678"},
        {"other_msisdn": "0612345678"},
        {"other_msisdn": "0033612345678"},
        {"other_msisdn": "+4479460000000"},
        {"other_msisdn": "+999"},
        {"other_msisdn": "0522123456"},
        {"other_msisdn": "+212٦١٢٣٤٥٦٧٨"},
        {"direction": "INCOMING"},
        {"direction": "sideways"},
        {"direction": None},
        {"start_time": "2026-11-03T10:00:00Z"},
        {"start_time": "2026-11-03T10:00:00.123456Z"},
        {"start_time": "2026-11-03T11:00:00+01:00"},
        {"start_time": "2026-11-03 10:00:00"},
        {"start_time": "2026-02-30T10:00:00.000Z"},
        {"start_time": "2026-11-03T24:00:00Z"},
        {"start_time": "2026-11-03T12:04:59.999Z"},
        {"start_time": "2026-11-03T12:05:00.001Z"},
        {"start_time": "yesterday"},
        {"duration_s": -5},
        {"duration_s": 2**63},
        {"duration_s": 60.0},
        {"duration_s": True},
        {"duration_s": "60"},
        {"data_volume_bytes": -1},
        {"technology": "LTE"},
        {"technology": "lte"},
        {"technology": " 5G"},
        {"technology": "6G"},
        {"cell_id": "208-01-00001-00001"},
        {"cell_id": " 604-01-01000-00010"},
        {"cell_id": "604-01-99999-99999"},
        {"cell_id": "999-99-1"},
        {"roaming": 1},
        {"visited_network": 5},
        {"schema_version": 2},
        {"schema_version": True},
        {"record_id": "bad id"},
        {"record_id": "ok\n"},
        {"record_id": "x" * 65},
        {"record_id": None},
        {"served_msisdn": None},
        {"cell_id": "😀"},
        {"unexpected": "field"},
    ]
    values = [
        orjson.dumps(
            {**GOOD, **change, "record_id": change.get("record_id", f"v-{i}")}, option=orjson.OPT_PASSTHROUGH_DATACLASS
        )
        if change != {"duration_s": 2**63}
        # orjson writes no integer beyond 64 bits, but reads 2**63 .. 2**64-1 as int: write them here
        else orjson.dumps({**GOOD, "record_id": "huge"}).replace(b'"duration_s":60', b'"duration_s":' + TWO_TO_63)
        for i, change in enumerate(changes)
    ]
    huge_volume = {**GOOD, "record_id": "huge-volume", "record_type": "data", "other_msisdn": None, "direction": None}
    values.append(orjson.dumps(huge_volume).replace(b'"data_volume_bytes":null', b'"data_volume_bytes":' + TWO_TO_63))
    return values + [b"", None, b"\xff\xfe", b"[1, 2]", b'{"record_id": "dup", "record_id": "twice"}']


def test_bulk_equals_mediate_on_every_variant_of_a_record():
    values = variants()
    both_ways(values, [RECEIVED] * len(values))


def test_bulk_equals_mediate_on_hostile_messages():
    values = [value for _, value in fuzz_messages()]
    both_ways(values, [RECEIVED] * len(values))


@pytest.mark.parametrize("error_rate", [0.0, 0.3])
def test_bulk_equals_mediate_on_generated_traffic_with_every_error_class(error_rate):
    config = GeneratorConfig(
        count=12_000,
        seed=21,
        error_rate=error_rate,
        error_classes=tuple(InjectedError),
        start_time=datetime(2026, 11, 2, tzinfo=UTC),
        span_hours=24,
        reference_time=RECEIVED,
    )
    values = [v for chunk in CdrGenerator(config).chunks() for v in chunk.values]
    received = [RECEIVED - timedelta(seconds=i % 7) for i in range(len(values))]
    bulk = both_ways(values, received)
    # every clean record the generator writes (national and international numbers, vendor
    # technology names, roaming cells...) is settled by the bulk path; only rejects go to mediate
    assert bulk.plain_rows == len(bulk.rejected), (bulk.plain_rows, len(bulk.rejected))
