"""What collection adds to a record, as mediation and the ledger see it.

- A collected record carries `origin` (and `partial`) beside its cdr.v1 fields: mediation judges
  the record as if they were not there, on the bulk path as in `mediate`.
- A record collection could not decode is rejected UNDECODABLE_RECORD, and its message names the
  source, file and index and carries the original bytes.
- An incoming call or SMS may lack the other party (TS 32.298: an MT-SMS has no originator); an
  outgoing one may not.
- A source's missing file sequence numbers, with wrap-around.
"""

import base64

import orjson
from hypothesis import given
from hypothesis import strategies as st

from cdr_platform.lib.collection.collector import message_of, name_sequence, undecodable_record_id
from cdr_platform.lib.collection.formats.base import DecodedRecord, Partial
from cdr_platform.lib.collection.ledger import missing_ranges
from cdr_platform.lib.mediation.reasons import Reason
from cdr_platform.lib.mediation.rules import mediate
from cdr_platform_tests.unit.test_mediation_bulk import GOOD, RECEIVED, both_ways

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
