"""The PBX and SIP-proxy decoders on literal sample lines: Asterisk's Master.csv and Kamailio's acc CDRs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cdr_platform.lib.collection.formats import asterisk_csv, detect_format, kamailio_acc
from cdr_platform.lib.collection.formats.base import FileFormatError, SourceProfile
from cdr_platform.lib.schema import is_valid_record_id

CELL = "604-01-01000-00010"
PBX = SourceProfile(name="pbx-rabat", format="asterisk-csv", cell_id=CELL, technology="4G", timezone="Europe/Paris")
SBC = SourceProfile(name="sbc-1", format="kamailio-acc", cell_id=CELL, technology="LTE")

# accountcode,src,dst,dcontext,clid,channel,dstchannel,lastapp,lastdata,start,answer,end,duration,billsec,
# disposition,amaflags[,uniqueid,userfield]: what cdr_csv writes with loguniqueid and loguserfield on
ANSWERED_LINE = (
    b'"acme","+212612345678","0661234567","from-internal","""Karim, B."" <0612345678>",'
    b'"PJSIP/100-00000001","PJSIP/trunk-00000002","Dial","PJSIP/0661234567@trunk,30,tT",'
    b'"2026-07-01 12:00:00","2026-07-01 12:00:07","2026-07-01 12:01:07",67,60,"ANSWERED","DOCUMENTATION",'
    b'"1782900000.17","vip, gold"'
)


def master_csv(*lines: bytes) -> bytes:
    return b"\n".join(lines) + b"\n"


def asterisk_line(
    *,
    src: str = "+212612345678",
    dst: str = "0661234567",
    start: str = "2026-07-01 12:00:00",
    answer: str = "2026-07-01 12:00:07",
    end: str = "2026-07-01 12:01:07",
    duration: str = "67",
    billsec: str = "60",
    disposition: str = "ANSWERED",
    amaflags: str = "DOCUMENTATION",
    optional: tuple[str, ...] = ("1782900000.17", ""),
) -> bytes:
    """A line as cdr_csv writes it: strings and times quoted, numbers bare, an unreached time empty."""

    def quoted(value: str) -> str:
        return '"' + value.replace('"', '""') + '"'

    def time(value: str) -> str:
        return quoted(value) if value else ""

    fields = [quoted(v) for v in ("", src, dst, "from-internal", "", "SIP/1", "SIP/2", "Dial", "SIP/2")]
    fields += [time(start), time(answer), time(end), duration, billsec, quoted(disposition), quoted(amaflags)]
    fields += [quoted(v) for v in optional]
    return ",".join(fields).encode()


def decode_asterisk(data: bytes, profile: SourceProfile = PBX) -> list:
    return list(asterisk_csv.decode_file(data, profile).records)


# -- Asterisk Master.csv ---------------------------------------------------------------------------


def test_asterisk_answered_call_is_an_outgoing_voice_record_charged_for_billsec_from_the_answer():
    (record,) = decode_asterisk(master_csv(ANSWERED_LINE))
    assert record.error is None and record.charged
    assert record.cdr == {
        "schema_version": 1,
        "record_id": "ast-pbx-rabat-1782900000.17",
        "record_type": "voice",
        "served_msisdn": "+212612345678",
        "other_msisdn": "0661234567",
        "direction": "outgoing",
        "start_time": "2026-07-01T10:00:07.000Z",  # the answer, 12:00:07 in Paris (CEST, +02:00)
        "duration_s": 60,
        "data_volume_bytes": None,
        "cell_id": CELL,
        "technology": "4G",
        "roaming": False,
        "visited_network": None,
    }
    assert record.raw == ANSWERED_LINE


def test_asterisk_quoted_commas_and_doubled_quotes_stay_inside_their_fields():
    # the caller name holds a comma and quotes, lastdata and userfield commas: still 18 columns
    (record,) = decode_asterisk(master_csv(ANSWERED_LINE))
    assert record.cdr["served_msisdn"] == "+212612345678"
    assert record.cdr["other_msisdn"] == "0661234567"
    assert record.cdr["duration_s"] == 60


def test_asterisk_malformed_lines_are_reported_with_their_index_and_the_file_goes_on():
    data = master_csv(
        asterisk_line(),
        b",".join(asterisk_line().split(b",")[:12]),  # too few columns
        asterisk_line(answer="2026-07-01 25:00:07"),
        asterisk_line(billsec="sixty"),
        asterisk_line(src="anonymous"),
        asterisk_line()[:-40],  # cut inside a quoted field
        asterisk_line(optional=("1782900000.18", "")),
    )
    records = decode_asterisk(data)
    assert [r.index for r in records] == [0, 1, 2, 3, 4, 5, 6]
    assert [r.error is None for r in records] == [True, False, False, False, False, False, True]
    assert records[1].error.startswith("12 columns")
    assert records[2].error.startswith("answer is not a time")
    assert records[3].error.startswith("billsec is not a number")
    assert records[4].error.startswith("src is not a telephone number")
    assert records[5].error.startswith("not a CSV line")
    assert records[5].raw == asterisk_line()[:-40]


@pytest.mark.parametrize("disposition", ["NO ANSWER", "BUSY", "FAILED", "CONGESTION"])
def test_asterisk_unanswered_dispositions_are_read_but_not_charged_with_the_disposition_as_reason(disposition):
    line = asterisk_line(answer="", billsec="0", disposition=disposition)
    (record,) = decode_asterisk(master_csv(line))
    assert (record.error, record.charged, record.not_charged_reason, record.cdr) == (None, False, disposition, None)
    # no answer time: the record's time is the start, 12:00:00 in Paris
    assert record.record_time.isoformat() == "2026-07-01T10:00:00+00:00"


def test_asterisk_answered_call_with_billsec_0_is_not_charged_as_there_is_no_second_to_charge():
    line = asterisk_line(answer="2026-07-01 12:00:07", end="2026-07-01 12:00:07", duration="7", billsec="0")
    (record,) = decode_asterisk(master_csv(line))
    assert (record.charged, record.not_charged_reason) == (False, "ANSWERED with billsec 0")


def test_asterisk_amaflags_omit_marks_a_call_not_for_billing():
    (record,) = decode_asterisk(master_csv(asterisk_line(amaflags="OMIT")))
    assert (record.charged, record.not_charged_reason) == (False, "amaflags OMIT")


def test_asterisk_unknown_disposition_is_an_error_not_a_guess():
    (record,) = decode_asterisk(master_csv(asterisk_line(disposition="MAYBE")))
    assert record.error == "unknown disposition 'MAYBE'"


def test_asterisk_local_times_are_read_in_the_profile_zone_and_written_in_utc():
    line = asterisk_line(start="2026-01-15 08:59:00", answer="2026-01-15 09:00:00", end="2026-01-15 09:01:00")
    winter_paris = decode_asterisk(master_csv(line))[0].cdr["start_time"]
    casablanca = SourceProfile(name="pbx", format="asterisk-csv", timezone="Africa/Casablanca")
    utc = SourceProfile(name="pbx", format="asterisk-csv")  # usegmtime=yes, or a PBX on UTC
    assert winter_paris == "2026-01-15T08:00:00.000Z"  # CET, +01:00
    assert decode_asterisk(master_csv(line), casablanca)[0].cdr["start_time"] == "2026-01-15T08:00:00.000Z"
    assert decode_asterisk(master_csv(line), utc)[0].cdr["start_time"] == "2026-01-15T09:00:00.000Z"


def test_asterisk_answer_in_the_hour_dst_repeats_is_read_as_the_reading_billsec_agrees_with():
    # Paris, 25 Oct 2026: 03:00 CEST becomes 02:00 CET. Answered at the first 02:59:30 (00:59:30Z),
    # hung up 60 s later at the second 02:00:30 (01:00:30Z): the end reads earlier than the answer.
    line = asterisk_line(
        start="2026-10-25 02:59:20", answer="2026-10-25 02:59:30", end="2026-10-25 02:00:30", duration="70"
    )
    (record,) = decode_asterisk(master_csv(line))
    assert record.cdr["start_time"] == "2026-10-25T00:59:30.000Z"
    # the same wall times a call that began after the change: answered at the second 02:59:30
    later = asterisk_line(
        start="2026-10-25 02:59:20", answer="2026-10-25 02:59:30", end="2026-10-25 03:00:30", duration="70"
    )
    assert decode_asterisk(master_csv(later))[0].cdr["start_time"] == "2026-10-25T01:59:30.000Z"


def test_asterisk_time_in_the_dst_gap_is_an_error_naming_the_zone():
    # Paris, 29 Mar 2026: 02:00 CET becomes 03:00 CEST, no clock there ever read 02:30
    line = asterisk_line(start="2026-03-29 02:30:00", answer="2026-03-29 02:30:05", end="2026-03-29 03:31:05")
    (record,) = decode_asterisk(master_csv(line))
    assert record.error == "answer 2026-03-29 02:30:05 does not exist in Europe/Paris (a DST gap): wrong time zone?"


def test_asterisk_record_ids_are_deterministic_from_source_and_uniqueid_else_from_the_line():
    with_uniqueid = master_csv(asterisk_line(optional=("1782900000.17", "")))
    without = master_csv(asterisk_line(optional=()), asterisk_line(optional=(), billsec="59"))
    first, second = decode_asterisk(without), decode_asterisk(without)
    assert decode_asterisk(with_uniqueid)[0].cdr["record_id"] == "ast-pbx-rabat-1782900000.17"
    assert [r.cdr["record_id"] for r in first] == [r.cdr["record_id"] for r in second]
    assert first[0].cdr["record_id"] != first[1].cdr["record_id"]
    assert all(is_valid_record_id(r.cdr["record_id"]) for r in first)
    # the same uniqueid on another PBX is another call
    other_pbx = SourceProfile(name="pbx-fes", format="asterisk-csv", timezone="Europe/Paris")
    assert decode_asterisk(with_uniqueid, other_pbx)[0].cdr["record_id"] == "ast-pbx-fes-1782900000.17"


def test_asterisk_newcdrcolumns_sequence_tells_apart_cdrs_of_one_channel():
    lines = [asterisk_line(optional=("1782900000.17", "", "", "1782900000.17", str(n))) for n in (0, 1)]
    records = decode_asterisk(master_csv(*lines))
    assert [r.cdr["record_id"] for r in records] == ["ast-pbx-rabat-1782900000.17-0", "ast-pbx-rabat-1782900000.17-1"]


def test_asterisk_seventeenth_column_is_the_uniqueid_only_when_it_has_a_uniqueid_shape():
    as_uniqueid = decode_asterisk(master_csv(asterisk_line(optional=("pbx01-1782900000.17",))))[0]
    as_userfield = decode_asterisk(master_csv(asterisk_line(optional=("gold customer",))))[0]
    assert as_uniqueid.cdr["record_id"] == "ast-pbx-rabat-pbx01-1782900000.17"
    assert as_userfield.cdr["record_id"].startswith("ast-") and "gold" not in as_userfield.cdr["record_id"]


def test_asterisk_empty_file_has_no_records_and_blank_lines_are_not_records():
    assert decode_asterisk(b"") == []
    records = decode_asterisk(b"\n" + master_csv(asterisk_line()) + b"\r\n\n")
    assert [(r.index, r.error) for r in records] == [(0, None)]


@pytest.mark.parametrize(
    "data",
    [b"\x00\x01\x02binary\xff" * 10, b'{"schema_version": 1, "record_id": "a"}\n', b"just some text\nmore\n"],
    ids=["binary", "json-lines", "text"],
)
def test_asterisk_file_that_is_not_master_csv_is_refused_as_a_whole(data):
    with pytest.raises(FileFormatError):
        asterisk_csv.decode_file(data, PBX)


def test_asterisk_unknown_time_zone_in_the_profile_is_refused():
    with pytest.raises(FileFormatError, match="Mars/Olympus"):
        asterisk_csv.decode_file(master_csv(ANSWERED_LINE), SourceProfile("p", "asterisk-csv", timezone="Mars/Olympus"))


# -- Kamailio acc CDRs (db_flatstore) ------------------------------------------------------------------

# start_time|end_time|duration|callid|from_tag|caller|callee|sip_code|sip_reason, as Kamailio wrote them
KAMAILIO_ANSWERED = (
    b"1796499992|1796499994|2.005000|1-28851@127.0.0.1|28851SIPpTag001|"
    b"sip:+212612345001@127.0.0.1:25070|sip:+212661000001@127.0.0.1:25060|200|OK"
)
KAMAILIO_BUSY = (
    b"1796499992|1796499992|0.000000|4-28851@127.0.0.1|28851SIPpTag004|"
    b"sip:+212612345004@127.0.0.1:25070|sip:+212661000004@127.0.0.1:25060|486|Busy Here"
)
KAMAILIO_CANCELLED = (
    b"1796499992|1796499992|0.000000|5-28851@127.0.0.1|28851SIPpTag005|"
    b"sip:+212612345005@127.0.0.1:25070|sip:+212661000005@127.0.0.1:25060|487|Request Terminated"
)


def acc_line(duration: str = "2.005000", caller: str = "sip:+212612345001@10.0.0.1", from_tag: str = "t1") -> bytes:
    return f"1796499992|1796499994|{duration}|c1@host|{from_tag}|{caller}|sip:0661000001@10.0.0.2|200|OK".encode()


def decode_kamailio(*lines: bytes) -> list:
    return list(kamailio_acc.decode_file(b"\n".join(lines) + b"\n", SBC).records)


def test_kamailio_answered_call_is_an_outgoing_voice_record_from_the_caller_uri_to_the_dialled_uri():
    (record,) = decode_kamailio(KAMAILIO_ANSWERED)
    assert record.error is None and record.charged
    cdr = record.cdr
    assert (cdr["served_msisdn"], cdr["other_msisdn"], cdr["direction"]) == (
        "+212612345001",
        "+212661000001",
        "outgoing",
    )
    assert cdr["start_time"] == "2026-12-05T19:46:32.000Z"  # Unix seconds: UTC, whatever the profile's zone
    assert (cdr["duration_s"], cdr["cell_id"], cdr["technology"]) == (2, CELL, "LTE")
    assert re.fullmatch(r"kam-[0-9a-f]{40}", cdr["record_id"])


def test_kamailio_busy_and_cancelled_calls_are_not_charged_with_their_final_sip_status():
    busy, cancelled = decode_kamailio(KAMAILIO_BUSY, KAMAILIO_CANCELLED)
    assert (busy.charged, busy.not_charged_reason, busy.cdr) == (False, "SIP 486 Busy Here", None)
    assert (cancelled.charged, cancelled.not_charged_reason) == (False, "SIP 487 Request Terminated")


@pytest.mark.parametrize(("duration", "seconds"), [("2.499000", 2), ("2.500000", 3), ("0.600000", 1)])
def test_kamailio_duration_is_rounded_to_the_nearest_second_halves_up(duration, seconds):
    assert decode_kamailio(acc_line(duration=duration))[0].cdr["duration_s"] == seconds


def test_kamailio_answered_call_under_half_a_second_is_not_charged():
    (record,) = decode_kamailio(acc_line(duration="0.400000"))
    assert (record.charged, record.not_charged_reason) == (False, "answered, under half a second")


@pytest.mark.parametrize(
    ("caller", "number"),
    [
        ("sip:0612345678@10.0.0.1;transport=udp", "0612345678"),  # national, as dialled
        ("sip:%2B212612345678@10.0.0.1", "+212612345678"),  # SIP's escape of '+'
        ("tel:+212612345678;phone-context=example.ma", "+212612345678"),
        ("sips:+212612345678;npdi@10.0.0.1", "+212612345678"),  # a user parameter is not the number
        ('"Karim %7C B." <sip:+212612345678@10.0.0.1>', "+212612345678"),  # flatstore's %7C for '|'
    ],
)
def test_kamailio_party_is_the_user_part_of_its_uri(caller, number):
    assert decode_kamailio(acc_line(caller=caller))[0].cdr["served_msisdn"] == number


def test_kamailio_malformed_lines_are_reported_with_their_index_and_the_file_goes_on():
    records = decode_kamailio(
        KAMAILIO_ANSWERED,
        b"1796499992|1796499994|2.0|c2@host|t2|sip:+212612345001@h",  # too few columns
        acc_line(duration="two"),
        acc_line(caller="sip:alice@example.com"),
        KAMAILIO_BUSY,
    )
    assert [(r.index, r.error is None) for r in records] == [(0, True), (1, False), (2, False), (3, False), (4, True)]
    assert records[1].error.startswith("6 columns")
    assert records[2].error.startswith("duration is not a number")
    assert records[3].error == "caller is not a telephone number: 'alice'"


def test_kamailio_record_id_is_deterministic_from_call_id_and_from_tag():
    (first,) = decode_kamailio(acc_line())
    (again,) = decode_kamailio(acc_line(duration="3.000000"))  # the same dialog, another file
    (other,) = decode_kamailio(acc_line(from_tag="t2"))
    assert first.cdr["record_id"] == again.cdr["record_id"] != other.cdr["record_id"]
    assert is_valid_record_id(first.cdr["record_id"])


def test_kamailio_config_declares_the_cdr_extra_columns_the_decoder_reads_in_order():
    config = (Path(__file__).parents[1] / "sip" / "kamailio.cfg").read_text()
    (declared,) = re.findall(r'modparam\("acc", "cdr_extra", "([^"]*)"\)', config)
    assert tuple(item.split("=", 1)[0] for item in declared.split(";")) == kamailio_acc.CDR_EXTRA


def test_kamailio_empty_file_has_no_records_and_a_binary_or_foreign_file_is_refused():
    assert list(kamailio_acc.decode_file(b"", SBC).records) == []
    for foreign in (b"\x00\x01binary", master_csv(ANSWERED_LINE)):
        with pytest.raises(FileFormatError):
            kamailio_acc.decode_file(foreign, SBC)


def test_detection_tells_master_csv_from_acc_cdrs():
    assert detect_format(master_csv(ANSWERED_LINE)) == "asterisk-csv"
    assert detect_format(KAMAILIO_ANSWERED + b"\n") == "kamailio-acc"
    assert not asterisk_csv.looks_like(KAMAILIO_ANSWERED)
    assert not kamailio_acc.looks_like(master_csv(ANSWERED_LINE))
