"""Partial records into one CDR per chain: the state function's rules, without Spark.

(Spark's state API, the checkpoint and the timeout run for real in
integration/test_collection_flow.py.)
"""

import orjson
from hypothesis import given
from hypothesis import strategies as st

from cdr_platform.lib.collection.collector import message_of
from cdr_platform.lib.collection.formats.base import DecodedRecord, Partial
from cdr_platform.lib.collection.stitching import Part, is_complete, part_of, step
from cdr_platform_tests.unit.test_mediation_bulk import GOOD

SESSION = {**GOOD, "record_type": "data", "other_msisdn": None, "direction": None, "duration_s": 600}


def part(sequence: int, last: bool, volume: int = 1000, minute: int = 0) -> Part:
    record = DecodedRecord(
        index=sequence,
        raw=b"ber",
        cdr={
            **SESSION,
            "record_id": f"pgw-10.0.0.1-77-{sequence}",
            "data_volume_bytes": volume,
            "start_time": f"2026-11-03T10:{minute:02d}:00.000Z",
        },
        partial=Partial("pgw-10.0.0.1-77", sequence, last),
    )
    _, value = message_of("pgw-1", f"PGW_{sequence:06d}.ber", "aa" * 32, record)
    return part_of(value, arrived_ms=1_700_000_000_000 + sequence)


def test_a_chain_is_one_cdr_once_its_last_part_has_come_with_durations_and_volumes_summed():
    first = step("pgw-10.0.0.1-77", [], [part(2, False, 200, 10), part(1, False, 100, 0)], timed_out=False)
    assert first.emitted is None and first.added == 2 and len(first.parts) == 2
    done = step("pgw-10.0.0.1-77", first.parts, [part(3, True, 300, 20)], timed_out=False)
    assert done.parts == [] and done.added == 1
    cdr = done.emitted
    assert cdr["record_id"] == "pgw-10.0.0.1-77"
    assert (cdr["duration_s"], cdr["data_volume_bytes"]) == (1800, 600)
    assert cdr["start_time"] == "2026-11-03T10:00:00.000Z"
    assert "partial" not in cdr
    assert cdr["stitched"] == {
        "partials": 3,
        "sequences": [1, 2, 3],
        "files": ["PGW_000001.ber", "PGW_000002.ber", "PGW_000003.ber"],
        "incomplete": False,
        "missing": [],
    }


def test_the_last_part_before_a_missing_one_waits_and_a_timeout_emits_what_came_flagged_incomplete():
    held = step("c", [], [part(1, False), part(3, True)], timed_out=False)
    assert held.emitted is None and not is_complete(held.parts)
    timed_out = step("c", held.parts, [], timed_out=True)
    assert timed_out.parts == []
    assert timed_out.emitted["stitched"]["incomplete"] is True
    assert timed_out.emitted["stitched"]["missing"] == [2]
    assert timed_out.emitted["data_volume_bytes"] == 2000


def test_a_part_seen_twice_is_counted_once():
    held = step("c", [], [part(1, False)], timed_out=False)
    again = step("c", held.parts, [part(1, False), part(2, True)], timed_out=False)
    assert (again.added, again.seen_twice) == (1, 1)
    assert again.emitted["stitched"]["partials"] == 2


@given(order=st.permutations(range(1, 6)), cut=st.integers(0, 5))
def test_whatever_order_and_however_the_parts_are_split_over_batches_the_cdr_is_the_same(order, cut):
    parts = {n: part(n, n == 5, volume=n * 10, minute=n) for n in range(1, 6)}
    batches = [[parts[n] for n in order[:cut]], [parts[n] for n in order[cut:]]]
    held, emitted = [], []
    for batch in batches:
        result = step("c", held, batch, timed_out=False)
        held = result.parts
        emitted += [result.emitted] if result.emitted else []
    assert len(emitted) == 1 and held == []
    assert emitted[0]["data_volume_bytes"] == 150 and emitted[0]["duration_s"] == 3000
    assert orjson.loads(orjson.dumps(emitted[0]))["stitched"]["sequences"] == [1, 2, 3, 4, 5]
