"""What collection adds to a record, as mediation and the ledger see it.

- A collected record carries `origin` (and `partial`) beside its cdr.v1 fields: mediation judges
  the record as if they were not there, on the bulk path as in `mediate`.
- A record collection could not decode is rejected UNDECODABLE_RECORD, and its message names the
  source, file and index and carries the original bytes.
- An incoming call or SMS may lack the other party (TS 32.298: an MT-SMS has no originator); an
  outgoing one may not.
- A source's missing file sequence numbers, with wrap-around.
- The same call reported twice under different ids is found by its content, and the later report
  is rejected DUPLICATE_CONTENT naming the record kept.
"""

import base64
import hashlib
from datetime import datetime, timedelta

import orjson
from hypothesis import given
from hypothesis import strategies as st

from cdr_platform.lib.collection.collector import fingerprint_of, message_of, name_sequence, undecodable_record_id
from cdr_platform.lib.collection.formats.base import DecodedRecord, Partial
from cdr_platform.lib.collection.ledger import Fingerprint, content_duplicates, missing_ranges
from cdr_platform.lib.mediation.reasons import Reason
from cdr_platform.lib.mediation.rules import mediate
from cdr_platform_tests.unit.test_mediation_bulk import GOOD, RECEIVED, both_ways

T0 = datetime(2026, 11, 3, 10, 0)
SMS_IN = {
    **GOOD,
    "record_id": "sms-in-1",
    "record_type": "sms",
    "direction": "incoming",
    "duration_s": None,
}


def collected(cdr: dict, index: int = 3, partial: Partial | None = None) -> bytes:
    record = DecodedRecord(index=index, raw=b"\x30\x03\x02\x01\x07", cdr=cdr, partial=partial)
    return message_of("msc-casa-1", "MSC1_000042.ber", "ab" * 32, record)[1]


def test_a_collected_record_is_judged_as_if_its_origin_and_partial_were_not_there():
    plain = orjson.dumps(GOOD)
    with_origin = collected(GOOD, partial=Partial("pgw-1:77", 2, last=False))
    assert orjson.loads(with_origin)["origin"]["file"] == "MSC1_000042.ber"
    bulk = both_ways([plain, with_origin], [RECEIVED, RECEIVED])
    assert bulk.rejected == []
    assert bulk.clean.to_pylist()[0] == bulk.clean.to_pylist()[1] == mediate(plain, RECEIVED).record


def test_an_undecodable_record_is_rejected_with_its_file_index_and_original_bytes():
    raw = b"\x30\x80\xff garbage"
    key, value = message_of("sgsn-2", "PGW2_000007.ber", "cd" * 32, DecodedRecord(index=11, raw=raw, error="bad tag"))
    doc = orjson.loads(value)
    assert key == b"sgsn-2"
    assert doc["record_id"] == undecodable_record_id("sgsn-2", "cd" * 32, 11)
    assert doc["origin"]["file"] == "PGW2_000007.ber" and doc["origin"]["index"] == 11
    assert base64.b64decode(doc["origin"]["record"]) == raw
    bulk = both_ways([value], [RECEIVED])
    assert bulk.rejected == [(0, (Reason.UNDECODABLE_RECORD,))]


def test_an_incoming_sms_without_originator_is_clean_and_an_outgoing_one_is_missing_a_field():
    incoming = {k: v for k, v in SMS_IN.items() if k != "other_msisdn"}
    outgoing = {**incoming, "record_id": "sms-out-1", "direction": "outgoing"}
    voice_in = {k: v for k, v in GOOD.items() if k != "other_msisdn"} | {"record_id": "v-in", "direction": "incoming"}
    messages = [orjson.dumps(incoming), orjson.dumps(outgoing), orjson.dumps(voice_in)]
    bulk = both_ways(messages, [RECEIVED] * 3)
    assert dict(bulk.rejected) == {1: (Reason.MISSING_FIELD,)}
    clean = {row["record_id"]: row for row in bulk.clean.to_pylist()}
    assert clean["sms-in-1"]["other_msisdn"] is None and clean["sms-in-1"]["destination_class"] is None
    assert clean["v-in"]["direction"] == "incoming" and clean["v-in"]["duration_s"] == GOOD["duration_s"]


def test_the_file_sequence_is_the_last_number_of_the_name_and_wraps_at_its_width():
    assert name_sequence("MSC01_20261125_000123.ber") == (123, 999_999)
    assert name_sequence("acc_cdrs-42.csv.gz") == (42, 99)
    assert name_sequence("Master.csv") is None


def test_files_collected_out_of_order_leave_no_gap_and_a_missing_one_is_named():
    assert missing_ranges([5, 3, 4, 1, 2], maximum=None) == []
    assert missing_ranges([1, 2, 4, 5], maximum=None) == [(2, 4, 1)]
    assert missing_ranges([1, 2, 5], maximum=99) == [(2, 5, 2)]


def test_the_wrap_from_the_maximum_back_to_the_start_is_no_gap():
    assert missing_ranges([98, 99, 0, 1], maximum=99) == []
    assert missing_ranges([98, 99, 1, 2], maximum=99, minimum=1) == []  # a node numbering from 1 skips 0
    assert missing_ranges([98, 99, 1, 2], maximum=99) == [(99, 1, 1)]  # from 0: file 0 is missing
    assert missing_ranges([97, 99, 2], maximum=99) == [(97, 99, 1), (99, 2, 2)]


@given(
    start=st.integers(0, 999),
    length=st.integers(2, 60),
    dropped=st.sets(st.integers(1, 58), max_size=10),
    order_seed=st.randoms(use_true_random=False),
)
def test_the_gaps_are_exactly_the_files_not_collected_around_the_cycle(start, length, dropped, order_seed):
    maximum = 999
    written = [(start + i) % (maximum + 1) for i in range(length)]
    lost = {written[i] for i in dropped if i < length - 1}  # the first and last files always arrive
    collected_files = [s for s in written if s not in lost]
    order_seed.shuffle(collected_files)
    missing = sum(gap[2] for gap in missing_ranges(collected_files, maximum))
    assert missing == len(lost)


def call(record_id: str, served="+212661234567", other="+212612345678", start_s=0, duration=60, kind="voice"):
    return Fingerprint(record_id, served, other, kind, duration, T0 + timedelta(seconds=start_s))


def test_the_same_call_from_a_second_source_is_a_duplicate_of_the_one_collected_first():
    known = [call("msc1-7")]
    duplicate_of, new = content_duplicates([call("msc2-9", start_s=1), call("msc2-10", start_s=600)], known, 2)
    assert duplicate_of == {"msc2-9": "msc1-7"}
    assert [f.record_id for f in new] == ["msc2-10"]


def test_calls_that_differ_in_a_party_the_type_the_duration_or_beyond_the_tolerance_are_not_duplicates():
    known = [call("k")]
    others = [
        call("a", other="+212612345679"),
        call("b", served="+212661234568"),
        call("c", duration=61),
        call("d", kind="sms"),
        call("e", start_s=3),
        call("f", other=None),
    ]
    duplicate_of, new = content_duplicates(others, known, 2)
    assert duplicate_of == {} and len(new) == len(others)


def test_a_call_reported_twice_in_one_file_keeps_the_first_and_the_file_collected_again_gets_the_same_verdict():
    duplicate_of, new = content_duplicates([call("x1"), call("x2", start_s=-2)], [], 2)
    assert duplicate_of == {"x2": "x1"} and [f.record_id for f in new] == ["x1"]
    # the same file again after a crash: x1 is known by its own id (no duplicate of itself, no new
    # call), x2 is again the duplicate of x1
    assert content_duplicates([call("x1"), call("x2", start_s=-2)], new, 2) == ({"x2": "x1"}, [])


def test_a_duplicate_call_is_published_naming_the_kept_record_and_rejected_duplicate_content():
    record = DecodedRecord(index=0, raw=b"x", cdr=GOOD)
    _, value = message_of("sbc-2", "acc_cdrs_1.log", "ef" * 32, record, duplicate_of="kam-kept")
    assert orjson.loads(value)["duplicate_of"] == "kam-kept"
    bulk = both_ways([value], [RECEIVED])
    assert bulk.rejected == [(0, (Reason.DUPLICATE_CONTENT,))]


def test_numbers_written_differently_by_two_sources_make_the_same_fingerprint():
    national = DecodedRecord(
        index=0, raw=b"x", cdr={**GOOD, "served_msisdn": "0661234567", "other_msisdn": "0612345678"}
    )
    assert fingerprint_of(national) == fingerprint_of(DecodedRecord(index=1, raw=b"y", cdr=GOOD))


def test_an_oversized_record_is_rejected_by_its_sha256_and_length_so_its_message_stays_small():
    raw = b"{" + b"x" * 70_000 + b"}"
    value = message_of("s", "f.jsonl", "ab" * 32, DecodedRecord(index=4, raw=raw, error="71 kB: too large"))[1]
    origin = orjson.loads(value)["origin"]
    assert origin["record_bytes"] == len(raw) and "record" not in origin
    assert origin["record_sha256"] == hashlib.sha256(raw).hexdigest()
    assert len(value) < 1_000
