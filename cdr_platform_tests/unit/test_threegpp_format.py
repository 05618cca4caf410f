"""The 3GPP decoder: TS 32.297 files of TS 32.298 records (encoded by pycrate and by asn1tools) into cdr.v1."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import asn1tools
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdr_platform.lib.collection.formats import threegpp
from cdr_platform.lib.collection.formats.base import FileFormatError, SourceProfile
from cdr_platform.lib.collection.formats.common import cdr_time_text
from cdr_platform.lib.schema import FIELDS, is_valid_record_id
from cdr_platform_tests import threegpp_files as tf
from cdr_platform_tests.threegpp_files import (
    T0,
    Cell,
    MoCall,
    MoSms,
    MtCall,
    MtSms,
    PgwRecord,
    Spoiled,
    break_header,
    build_file,
    pgw_session,
)

PROFILE = SourceProfile(name="msc-casa-1", format=threegpp.FORMAT)
ROAMING_CELL = Cell("208-01", 3100, 77)  # a cell of a French partner's network


def decode(records, profile: SourceProfile = PROFILE, **file_options):
    return threegpp.decode_file(build_file(records, **file_options), profile)


def only_cdr(record) -> dict:
    decoded = decode([record]).records[0]
    assert decoded.error is None, decoded.error
    return decoded.cdr


def test_a_mo_call_round_trips_to_the_cdr_v1_values_it_was_encoded_from():
    call = MoCall("+212661234567", "+33612345678", T0, 65, cell=Cell("604-01", 1000, 10), system_type="gERAN")
    decoded = decode([call]).records[0]
    assert decoded.cdr == {
        "schema_version": 1,
        "record_id": "moc-212600000001-00000001",
        "record_type": "voice",
        "served_msisdn": "+212661234567",
        "other_msisdn": "+33612345678",
        "direction": "outgoing",
        "start_time": "2026-11-25T10:15:00.000Z",
        "duration_s": 65,
        "data_volume_bytes": None,
        "cell_id": "604-01-01000-00010",
        "technology": "2G",
        "roaming": False,
        "visited_network": None,
    }
    assert tuple(decoded.cdr) == FIELDS
    assert decoded.partial is None and decoded.charged
    assert decoded.record_time == T0


def test_the_raw_bytes_of_a_record_are_its_own_ber_behind_the_cdr_header():
    call = MoCall("+212661234567", "+33612345678", T0, 65)
    _ts, ber = tf.encode_record(call)
    assert decode([call]).records[0].raw == ber


def test_an_mt_call_is_incoming_and_keeps_a_national_caller_in_national_form():
    cdr = only_cdr(MtCall("+212661234567", "0612345678", T0, 30, system_type="iuUTRAN"))
    assert (cdr["direction"], cdr["other_msisdn"], cdr["technology"]) == ("incoming", "0612345678", "3G")


def test_a_caller_number_written_with_unknown_nature_keeps_its_dialled_international_prefix():
    assert only_cdr(MtCall("+212661234567", "0033612345678", T0, 30))["other_msisdn"] == "0033612345678"


def test_an_msc_record_without_system_type_is_gsm():
    assert only_cdr(MoCall("+212661234567", "+33612345678", T0, 65, system_type=None))["technology"] == "2G"


@settings(max_examples=60, deadline=None)
@given(digits=st.text("0123456789", min_size=1, max_size=15))
def test_tbcd_of_any_digit_count_round_trips_odd_counts_dropping_the_filler(digits):
    encoded = tf.tbcd(digits)
    assert len(encoded) == (len(digits) + 1) // 2
    assert threegpp.tbcd(encoded) == digits


def test_tbcd_with_an_odd_digit_count_ends_in_the_f_filler():
    assert tf.tbcd("21266") == bytes([0x12, 0x62, 0xF6])
    assert threegpp.tbcd(bytes([0x12, 0x62, 0xF6])) == "21266"
    assert threegpp.address_string(bytes([0x91, 0x12, 0x62, 0xF6])) == "+21266"


def test_a_timestamp_with_a_negative_utc_offset_lands_at_the_right_utc_instant():
    # 06:45 local at UTC-03:30 is 10:15 UTC
    octets = bytes([0x26, 0x11, 0x25, 0x06, 0x45, 0x00]) + b"-" + bytes([0x03, 0x30])
    assert threegpp.timestamp(octets) == datetime(2026, 11, 25, 10, 15, tzinfo=UTC)


def test_a_timestamp_with_a_positive_offset_across_midnight_lands_on_the_previous_utc_day():
    octets = bytes([0x26, 0x01, 0x01, 0x00, 0x30, 0x00]) + b"+" + bytes([0x01, 0x00])
    assert cdr_time_text(threegpp.timestamp(octets)) == "2025-12-31T23:30:00.000Z"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    start=st.datetimes(min_value=datetime(2001, 1, 2), max_value=datetime(2098, 12, 30)).map(
        lambda d: d.replace(microsecond=0, tzinfo=UTC)
    ),
    offset=st.integers(min_value=-12 * 60, max_value=14 * 60),
    duration=st.integers(min_value=1, max_value=86_400),
    served=st.text("0123456789", min_size=9, max_size=9).map(lambda d: "+2126" + d[:8]),
    called=st.text("0123456789", min_size=6, max_size=14).map(lambda d: "+" + "1" + d),
)
def test_numbers_times_and_durations_round_trip_through_a_file(start, offset, duration, served, called):
    cdr = only_cdr(MoCall(served, called, start, duration, utc_offset_minutes=offset))
    assert (cdr["served_msisdn"], cdr["other_msisdn"], cdr["duration_s"]) == (served, called, duration)
    assert cdr["start_time"] == start.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def test_an_mt_sms_without_originator_is_a_valid_incoming_sms():
    decoded = decode([MtSms("+212661234567", T0)]).records[0]
    assert decoded.error is None and decoded.charged
    cdr = decoded.cdr
    assert (cdr["record_type"], cdr["direction"], cdr["other_msisdn"]) == ("sms", "incoming", None)
    assert (cdr["duration_s"], cdr["data_volume_bytes"]) == (None, None)
    assert cdr["start_time"] == "2026-11-25T10:15:00.000Z"


def test_an_mo_sms_is_outgoing_to_its_tp_destination():
    cdr = only_cdr(MoSms("+212661234567", "+212612345678", T0))
    assert (cdr["record_type"], cdr["direction"], cdr["other_msisdn"]) == ("sms", "outgoing", "+212612345678")


def test_an_mo_sms_to_a_national_destination_with_an_odd_digit_count_keeps_its_digits():
    assert only_cdr(MoSms("+212661234567", "0612345678", T0))["other_msisdn"] == "0612345678"
    assert only_cdr(MoSms("+212661234567", "+2126123456789", T0))["other_msisdn"] == "+2126123456789"


def test_an_sms_that_failed_delivery_is_read_but_not_charged():
    decoded = decode([MoSms("+212661234567", "+212612345678", T0, delivery_failed=True)]).records[0]
    assert (decoded.cdr, decoded.error, decoded.charged) == (None, None, False)
    assert "smsResult" in decoded.not_charged_reason


def test_an_unanswered_call_is_read_but_not_charged():
    decoded = decode([MoCall("+212661234567", "+33612345678", T0, 0, cause_for_term=3)]).records[0]
    assert (decoded.cdr, decoded.error, decoded.charged) == (None, None, False)
    assert "callDuration 0" in decoded.not_charged_reason
    assert decoded.record_time == T0


def test_a_data_record_has_no_other_party_and_sums_uplink_and_downlink_over_its_service_containers():
    cdr = only_cdr(PgwRecord("+212661234567", T0, 900, volumes=((100, 2000), (30, 400))))
    assert (cdr["record_type"], cdr["other_msisdn"], cdr["direction"]) == ("data", None, None)
    assert (cdr["duration_s"], cdr["data_volume_bytes"], cdr["technology"]) == (900, 2530, "4G")
    assert cdr["cell_id"] == "604-01-01000-00010"


def test_a_data_record_with_traffic_volumes_only_sums_those():
    cdr = only_cdr(PgwRecord("+212661234567", T0, 900, volumes=((7, 11), (13, 17)), in_service_data=False))
    assert cdr["data_volume_bytes"] == 48


def test_a_pgw_record_without_rat_type_takes_the_technology_of_its_ecgi():
    assert only_cdr(PgwRecord("+212661234567", T0, 60, rat_type=None))["technology"] == "4G"


def test_an_nr_rat_type_is_5g():
    assert only_cdr(PgwRecord("+212661234567", T0, 60, rat_type=10))["technology"] == "5G"


def test_a_pgw_record_located_on_a_partner_network_is_roaming_there():
    cdr = only_cdr(PgwRecord("+212661234567", T0, 60, cell=ROAMING_CELL))
    assert (cdr["roaming"], cdr["visited_network"], cdr["cell_id"]) == (True, "208-01", "208-01-03100-00077")


def test_a_call_whose_location_has_no_plmn_takes_the_network_of_the_source_cell_then_the_imsi():
    call = MoCall("+212661234567", "+33612345678", T0, 65, cell=Cell("604-00", 1200, 12), cell_network_in_record=False)
    declared = SourceProfile("msc-rabat", threegpp.FORMAT, cell_id="604-00-01200-00099")
    assert decode([call], declared).records[0].cdr["cell_id"] == "604-00-01200-00012"
    # no declared cell: the served IMSI's network (604-01 for the default IMSI)
    assert decode([call]).records[0].cdr["cell_id"] == "604-01-01200-00012"


def test_a_record_without_location_takes_the_cell_the_source_declares():
    declared = SourceProfile("pgw-1", threegpp.FORMAT, cell_id="604-02-01300-00020", technology="4G")
    decoded = decode([PgwRecord("+212661234567", T0, 60, cell=None, rat_type=None)], declared).records[0]
    assert (decoded.cdr["cell_id"], decoded.cdr["technology"]) == ("604-02-01300-00020", "4G")


def test_a_record_without_location_or_declared_cell_is_an_error():
    decoded = decode([PgwRecord("+212661234567", T0, 60, cell=None)]).records[0]
    assert decoded.cdr is None and "no cell" in decoded.error


def test_a_record_without_served_msisdn_is_an_error_naming_the_field():
    decoded = decode([MoCall(None, "+33612345678", T0, 65)]).records[0]
    assert decoded.cdr is None and "servedMSISDN" in decoded.error


def test_pgw_partials_share_a_chain_id_and_only_the_last_is_last():
    records = decode(pgw_session("+212661234567", T0, parts=3)).records
    partials = [r.partial for r in records]
    assert {p.chain_id for p in partials} == {"pgw-10.20.0.1-4242"}
    assert [(p.sequence, p.last) for p in partials] == [(1, False), (2, False), (3, True)]
    assert len({r.cdr["record_id"] for r in records}) == 3
    assert [r.record_time for r in records] == [T0, T0 + timedelta(minutes=10), T0 + timedelta(minutes=20)]


def test_partials_of_one_session_split_across_two_files_chain_together():
    parts = pgw_session("+212661234567", T0, parts=3)
    first = decode(parts[:2], sequence_number=41).records
    second = decode(parts[2:], sequence_number=42).records
    assert {r.partial.chain_id for r in first + second} == {"pgw-10.20.0.1-4242"}
    assert [r.partial.last for r in first] == [False, False]
    assert [(r.partial.sequence, r.partial.last) for r in second] == [(3, True)]


@pytest.mark.parametrize(
    ("cause", "last"),
    [(0, True), (4, True), (20, True), (16, False), (17, False), (18, False), (19, False), (22, False)],
)
def test_the_cause_for_record_closing_says_whether_a_part_is_the_last(cause, last):
    record = PgwRecord("+212661234567", T0, 60, sequence_number=2, cause_for_closing=cause)
    assert decode([record]).records[0].partial.last is last


def test_an_msc_call_with_a_sequence_number_is_a_partial_and_one_without_is_whole():
    part = MoCall("+212661234567", "+33612345678", T0, 65, sequence_number=1, cause_for_term=1)
    whole = MoCall("+212661234567", "+33612345678", T0, 65)
    first, single = decode([part, whole]).records
    assert (first.partial.chain_id, first.partial.sequence, first.partial.last) == (
        "moc-212600000001-00000001",
        1,
        False,
    )
    assert first.cdr["record_id"] == "moc-212600000001-00000001-1"
    assert single.partial is None


@pytest.mark.parametrize("wrong_ts", [False, True], ids=["cut-short", "under-the-other-ts"])
def test_an_undecodable_record_is_reported_with_its_index_and_raw_bytes_and_the_file_goes_on(wrong_ts):
    bad = Spoiled(MoCall("+212661234567", "+33612345678", T0, 65), wrong_ts=wrong_ts)
    records = decode([MtSms("+212661234567", T0), bad, PgwRecord("+212661234567", T0, 60)]).records
    assert [r.index for r in records] == [0, 1, 2]
    assert records[1].cdr is None and records[1].error
    assert records[1].raw == tf.encode_record(bad)[1]
    assert records[0].cdr is not None and records[2].cdr is not None


@pytest.mark.parametrize("how", tf.BROKEN_HEADERS)
def test_a_broken_header_or_framing_raises_file_format_error(how):
    data = break_header(build_file([MoCall("+212661234567", "+33612345678", T0, 65)] * 2), how)
    with pytest.raises(FileFormatError):
        threegpp.decode_file(data, PROFILE)
    assert not threegpp.looks_like(data)


def test_a_header_announcing_more_cdrs_than_the_file_holds_still_gives_the_ones_it_holds():
    data = build_file([MtSms("+212661234567", T0)], record_count=2)
    decoded = threegpp.decode_file(data, PROFILE)
    assert decoded.header.record_count == 2  # the collector notes the difference
    assert [r.cdr["record_type"] for r in decoded.records] == ["sms"]


def test_a_header_that_does_not_know_its_count_says_none():
    data = build_file([MtSms("+212661234567", T0)], record_count=threegpp.NOT_KNOWN_COUNT)
    assert threegpp.decode_file(data, PROFILE).header.record_count is None


def test_looks_like_knows_a_32297_file_from_other_formats():
    assert threegpp.looks_like(build_file([MtSms("+212661234567", T0)]))
    assert not threegpp.looks_like(b'"","1001","2000","default"\n')
    assert not threegpp.looks_like(b"")


def test_an_empty_file_is_a_header_without_records():
    decoded = threegpp.decode_file(build_file([]), PROFILE)
    assert list(decoded.records) == [] and decoded.header.record_count == 0


def test_the_file_header_is_read():
    opened = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    data = build_file(
        [MtSms("+212661234567", T0)],
        sequence_number=1234,
        node="192.0.2.7",
        opened_at=opened,
        appended_at=opened + timedelta(hours=1),
        utc_offset_minutes=60,
        closure_reason=2,
        routeing_filter=b"casa",
        lost_cdrs=3,
    )
    header = threegpp.decode_file(data, PROFILE).header
    assert (header.sequence_number, header.record_count, header.node_address) == (1234, 1, "192.0.2.7")
    assert (header.opened_at, header.closed_at) == (opened, opened + timedelta(hours=1))
    assert header.details["high_release"] == "Rel-15.2"
    assert header.details["closure_reason"] == "file open-time limit"
    assert (header.details["cdr_routeing_filter"], header.details["lost_cdrs"]) == ("casa", 3)


def test_a_release_9_file_without_release_extensions_decodes():
    decoded = decode([MoCall("+212661234567", "+33612345678", T0, 65)], release=9, version=5)
    assert decoded.header.details["high_release"] == "Rel-9.5"
    assert decoded.records[0].cdr["duration_s"] == 65


def test_an_ipv6_pgw_address_names_the_record():
    cdr = only_cdr(PgwRecord("+212661234567", T0, 60, pgw_address="2001:db8::1", sequence_number=None))
    assert cdr["record_id"] == "pgw-2001:db8::1-4242"


def test_record_ids_are_deterministic_and_do_not_depend_on_the_file_or_position():
    call = MoCall("+212661234567", "+33612345678", T0, 65)
    others = [
        MtSms("+212661234567", T0),
        MoSms("+212661234567", "+212612345678", T0),
        PgwRecord("+212661234567", T0, 9),
    ]
    once = decode([call, *others], sequence_number=1).records
    again = decode([*others, call], sequence_number=2).records
    ids = [r.cdr["record_id"] for r in once]
    assert ids == [r.cdr["record_id"] for r in again[-1:] + again[:-1]]
    assert len(set(ids)) == len(ids) and all(is_valid_record_id(i) for i in ids)
    assert only_cdr(replace(call, call_reference=2))["record_id"] != ids[0]


def test_a_record_id_longer_than_the_schema_allows_becomes_a_digest():
    # the longest IPv6 text, the largest charging id and sequence number: 65 characters
    long_id = threegpp.record_id("pgw", "2001:db80:1234:5678:9abc:def0:1234:5678", 4294967295, 4294967295)
    assert long_id.startswith("h-") and is_valid_record_id(long_id)
    assert long_id == threegpp.record_id("pgw", "2001:db80:1234:5678:9abc:def0:1234:5678", 4294967295, 4294967295)


# -- another implementation of TS 32.298: asn1tools -------------------------------------------------
# asn1tools cannot compile TS 32.298's own modules (it fails to parse the X.711 Attribute-ASN1Module
# that GenericChargingDataTypes imports, and the parameterised bounds of CAP-datatypes), so this is
# the part of TS 32.298 (v15) the decoder reads, written out from the standard: the same tags, the
# same optionality. asn1tools encodes from it; the decoder (pycrate's compiled modules) must read
# what it wrote to the same values.
TS_32298_SUBSET = """
TS32298-Subset DEFINITIONS IMPLICIT TAGS ::= BEGIN
CSRecord ::= CHOICE {
    moCallRecord [0] MOCallRecord,
    mtCallRecord [1] MTCallRecord,
    moSMSRecord [6] MOSMSRecord,
    mtSMSRecord [7] MTSMSRecord
}
GPRSRecord ::= CHOICE { pGWRecord [79] PGWRecord }
MOCallRecord ::= SET {
    recordType [0] INTEGER,
    servedIMSI [1] OCTET STRING (SIZE(3..8)) OPTIONAL,
    servedMSISDN [3] OCTET STRING (SIZE(1..9)) OPTIONAL,
    calledNumber [5] OCTET STRING OPTIONAL,
    recordingEntity [9] OCTET STRING (SIZE(1..20)),
    location [12] LocationAreaAndCell OPTIONAL,
    seizureTime [22] TimeStamp OPTIONAL,
    answerTime [23] TimeStamp OPTIONAL,
    releaseTime [24] TimeStamp OPTIONAL,
    callDuration [25] INTEGER,
    causeForTerm [30] INTEGER,
    callReference [32] OCTET STRING (SIZE(1..8)),
    sequenceNumber [33] INTEGER OPTIONAL,
    systemType [61] SystemType OPTIONAL
}
MTCallRecord ::= SET {
    recordType [0] INTEGER,
    servedIMSI [1] OCTET STRING (SIZE(3..8)),
    servedMSISDN [3] OCTET STRING OPTIONAL,
    callingNumber [4] OCTET STRING OPTIONAL,
    recordingEntity [6] OCTET STRING (SIZE(1..20)),
    location [9] LocationAreaAndCell OPTIONAL,
    seizureTime [19] TimeStamp OPTIONAL,
    answerTime [20] TimeStamp OPTIONAL,
    releaseTime [21] TimeStamp OPTIONAL,
    callDuration [22] INTEGER,
    causeForTerm [27] INTEGER,
    callReference [29] OCTET STRING (SIZE(1..8)),
    sequenceNumber [30] INTEGER OPTIONAL,
    systemType [46] SystemType OPTIONAL
}
MOSMSRecord ::= SET {
    recordType [0] INTEGER,
    servedIMSI [1] OCTET STRING (SIZE(3..8)),
    servedMSISDN [3] OCTET STRING (SIZE(1..9)) OPTIONAL,
    msClassmark [4] OCTET STRING,
    serviceCentre [5] OCTET STRING,
    recordingEntity [6] OCTET STRING (SIZE(1..20)),
    location [7] LocationAreaAndCell OPTIONAL,
    messageReference [8] OCTET STRING,
    originationTime [9] TimeStamp,
    destinationNumber [12] OCTET STRING OPTIONAL,
    systemType [14] SystemType OPTIONAL
}
MTSMSRecord ::= SET {
    recordType [0] INTEGER,
    serviceCentre [1] OCTET STRING,
    servedIMSI [2] OCTET STRING (SIZE(3..8)),
    servedMSISDN [4] OCTET STRING (SIZE(1..9)) OPTIONAL,
    msClassmark [5] OCTET STRING,
    recordingEntity [6] OCTET STRING (SIZE(1..20)),
    location [7] LocationAreaAndCell OPTIONAL,
    deliveryTime [8] TimeStamp,
    systemType [11] SystemType OPTIONAL
}
PGWRecord ::= SET {
    recordType [0] INTEGER,
    servedIMSI [3] OCTET STRING (SIZE(3..8)) OPTIONAL,
    p-GWAddress [4] GSNAddress,
    chargingID [5] INTEGER (0..4294967295),
    servingNodeAddress [6] SEQUENCE OF GSNAddress,
    accessPointNameNI [7] IA5String (SIZE(1..63)) OPTIONAL,
    listOfTrafficVolumes [12] SEQUENCE OF ChangeOfCharCondition OPTIONAL,
    recordOpeningTime [13] TimeStamp,
    duration [14] INTEGER,
    causeForRecClosing [15] INTEGER,
    recordSequenceNumber [17] INTEGER OPTIONAL,
    servedMSISDN [22] OCTET STRING (SIZE(1..9)) OPTIONAL,
    chargingCharacteristics [23] OCTET STRING (SIZE(2)),
    rATType [30] INTEGER (0..255) OPTIONAL,
    userLocationInformation [32] OCTET STRING OPTIONAL,
    listOfServiceData [34] SEQUENCE OF ChangeOfServiceCondition OPTIONAL,
    servingNodeType [35] SEQUENCE OF ServingNodeType
}
LocationAreaAndCell ::= SEQUENCE {
    locationAreaCode [0] OCTET STRING (SIZE(2)),
    cellId [1] OCTET STRING (SIZE(2)),
    mCC-MNC [2] OCTET STRING (SIZE(3)) OPTIONAL
}
TimeStamp ::= OCTET STRING (SIZE(9))
SystemType ::= ENUMERATED { unknown (0), iuUTRAN (1), gERAN (2) }
GSNAddress ::= CHOICE { iPBinaryAddress IPBinaryAddress }
IPBinaryAddress ::= CHOICE {
    iPBinV4Address [0] OCTET STRING (SIZE(4)),
    iPBinV6Address IPBinV6AddressWithOrWithoutPrefixLength
}
IPBinV6AddressWithOrWithoutPrefixLength ::= CHOICE { iPBinV6Address [1] OCTET STRING (SIZE(16)) }
ServingNodeType ::= ENUMERATED { sGSN (0), pMIPSGW (1), gTPSGW (2), ePDG (3), hSGW (4), mME (5), tWAN (6) }
ChangeOfCharCondition ::= SEQUENCE {
    dataVolumeGPRSUplink [3] INTEGER OPTIONAL,
    dataVolumeGPRSDownlink [4] INTEGER OPTIONAL,
    changeCondition [5] ENUMERATED { qoSChange (0), tariffTime (1), recordClosure (2) },
    changeTime [6] TimeStamp
}
ChangeOfServiceCondition ::= SEQUENCE {
    ratingGroup [1] INTEGER,
    serviceConditionChange [8] BIT STRING,
    datavolumeFBCUplink [12] INTEGER OPTIONAL,
    datavolumeFBCDownlink [13] INTEGER OPTIONAL,
    timeOfReport [14] TimeStamp
}
END
"""


def _asn1tools_value(value):
    """A pycrate value as asn1tools writes it: the same, but a BIT STRING is (bytes, bit count)."""
    if isinstance(value, dict):
        return {k: _asn1tools_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_asn1tools_value(v) for v in value]
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], int) and isinstance(value[1], int):
        bits, count = value
        return (bits.to_bytes((count + 7) // 8, "big"), count)
    if isinstance(value, tuple):
        return tuple(_asn1tools_value(v) for v in value)
    return value


def test_records_encoded_by_asn1tools_decode_to_the_same_values():
    spec = asn1tools.compile_string(TS_32298_SUBSET, "ber")
    descriptions = [
        MoCall("+212661234567", "+33612345678", T0, 65, utc_offset_minutes=-150, sequence_number=2),
        MtCall("+212661234568", "0612345678", T0, 31, cell=ROAMING_CELL),
        MoSms("+212661234569", "+212612345678", T0, message_reference=200),
        MtSms("+212661234560", T0 + timedelta(seconds=7)),
        PgwRecord("+212661234561", T0, 600, volumes=((5, 6), (7, 8)), sequence_number=4, cause_for_closing=17),
        PgwRecord("+212661234562", T0, 60, in_service_data=False, pgw_address="2001:db8::9", cell=ROAMING_CELL),
    ]
    by_asn1tools = []
    for description in descriptions:
        ts_number, (name, values) = tf.record_values(description)
        type_name = "CSRecord" if ts_number == tf.TS_32250_CS else "GPRSRecord"
        by_asn1tools.append((ts_number, spec.encode(type_name, (name, _asn1tools_value(values)))))
    theirs = threegpp.decode_file(tf.file_of_encoded(by_asn1tools), PROFILE).records
    ours = decode(descriptions).records
    assert [r.error for r in theirs] == [None] * len(descriptions)
    assert [(r.cdr, r.partial, r.record_time) for r in theirs] == [(r.cdr, r.partial, r.record_time) for r in ours]
    # and the values are the ones described, not merely the same mistake twice
    assert [r.cdr["served_msisdn"] for r in theirs] == [d.served_msisdn for d in descriptions]
    assert theirs[0].cdr["start_time"] == "2026-11-25T10:15:00.000Z"
    assert theirs[4].cdr["data_volume_bytes"] == 26 and theirs[4].partial.last is False
    assert theirs[5].cdr["visited_network"] == "208-01"
