"""Real SIP calls through Kamailio, and its acc CDRs decoded into the cdr.v1 records SIPp's calls were.

SIPp places five calls in parallel through Debian's Kamailio (sip_traffic.py): three answered and
held 2, 3 and 5 s, one busy (486), one left ringing until the caller's CANCEL (487). Kamailio's
acc module writes a CDR for each dialog, failed ones included (cdr_on_failed): decoding must give
exactly the three answered calls as charged records - with the callers and callees SIPp used and
the durations it held - and the busy and cancelled calls as read but not charged, with their
final SIP status. Needs no Kafka, PostgreSQL or Spark: the test stops at decoding (and mediation's
rules, which are pure functions).
"""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from cdr_platform.lib.collection.formats import detect_format, kamailio_acc
from cdr_platform.lib.collection.formats.base import SourceProfile
from cdr_platform.lib.mediation.rules import mediate
from cdr_platform.lib.reference.network import CELL_CATALOGUE
from cdr_platform_tests.sip_traffic import ANSWER, BUSY, RING, SipCall, place_calls

pytestmark = [pytest.mark.timeout(120), pytest.mark.standalone]  # no shared service: run beside the unit tests

ANSWERED_CALLS = [
    SipCall("+212612345001", "+212661000001", ANSWER, talk_ms=2000),
    SipCall("0612345002", "0661000002", ANSWER, talk_ms=3000),  # national numbers, as dialled
    SipCall("+212600000003", "+212612000003", ANSWER, talk_ms=5000),
]
BUSY_CALL = SipCall("+212612345004", "+212661000004", BUSY)
RINGING_CALL = SipCall("+212612345005", "+212661000005", RING)
PROFILE = SourceProfile(
    name="sbc-casablanca-1",
    format="kamailio-acc",
    cell_id=CELL_CATALOGUE[0].cell_id,
    technology="4G",
)


@pytest.fixture(scope="module")
def decoded_calls(tmp_path_factory):
    placed = place_calls(tmp_path_factory.mktemp("sip"), [*ANSWERED_CALLS, BUSY_CALL, RINGING_CALL])
    assert placed.uac_exit_code == 0 and placed.uas_exit_code == 0, placed.describe()
    assert placed.cdr_files, f"Kamailio wrote no CDR file\n{placed.describe()}"
    records = []
    for path in placed.cdr_files:
        data = path.read_bytes()
        assert detect_format(data) == "kamailio-acc", path.name
        records += list(kamailio_acc.decode_file(data, PROFILE).records)
    return placed, records


def test_kamailio_writes_one_cdr_per_call_failed_calls_included_and_all_decode(decoded_calls):
    placed, records = decoded_calls
    assert len(records) == 5, placed.describe()
    assert [r.error for r in records if r.error] == []


def test_the_charged_records_are_exactly_the_answered_calls_with_sipp_parties_and_durations(decoded_calls):
    placed, records = decoded_calls
    charged = {(r.cdr["served_msisdn"], r.cdr["other_msisdn"]): r.cdr for r in records if r.charged}
    assert set(charged) == {(call.caller, call.callee) for call in ANSWERED_CALLS}
    for call in ANSWERED_CALLS:
        cdr = charged[(call.caller, call.callee)]
        assert abs(cdr["duration_s"] - call.talk_ms / 1000) <= 1, (call, cdr)
        assert cdr["record_type"] == "voice" and cdr["direction"] == "outgoing"
        # the answer, within the run (Kamailio writes whole seconds)
        start = datetime.fromisoformat(cdr["start_time"]).timestamp()
        assert int(placed.started_at) <= start <= placed.ended_at, (call, cdr["start_time"])


def test_busy_and_cancelled_calls_are_read_but_not_charged_with_their_final_sip_status(decoded_calls):
    _, records = decoded_calls
    not_charged = {
        call.caller: r.not_charged_reason
        for r in records
        if not r.charged
        for call in (BUSY_CALL, RINGING_CALL)
        if f"sip:{call.caller}@".encode() in r.raw
    }
    assert not_charged == {BUSY_CALL.caller: "SIP 486 Busy Here", RINGING_CALL.caller: "SIP 487 Request Terminated"}
    assert all(r.cdr is None for r in records if not r.charged)


def test_decoding_the_same_cdr_line_twice_gives_the_same_unique_record_ids(decoded_calls):
    placed, records = decoded_calls
    ids = [r.cdr["record_id"] for r in records if r.charged]
    assert len(set(ids)) == len(ANSWERED_CALLS)
    again = [
        r.cdr["record_id"]
        for path in placed.cdr_files
        for r in kamailio_acc.decode_file(path.read_bytes(), PROFILE).records
        if r.charged
    ]
    assert sorted(again) == sorted(ids)


def test_mediation_accepts_every_decoded_call_as_a_clean_record(decoded_calls):
    _, records = decoded_calls
    received_at = datetime.now(UTC)
    for record in (r for r in records if r.charged):
        outcome = mediate(orjson.dumps(record.cdr), received_at)
        assert outcome.reasons == (), (record.cdr, outcome.reasons)
        assert outcome.record["served_msisdn"].startswith("+2126")
