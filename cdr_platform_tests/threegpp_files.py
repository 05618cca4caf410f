"""TS 32.297 files of TS 32.298 records for tests and benchmarks: what an MSC or a PGW would write.

A record is described by a dataclass (MoCall, MtCall, MoSms, MtSms, PgwRecord) in cdr.v1's terms
(E.164 numbers, aware datetimes, seconds, bytes, cells); `encode_record` turns it into the
TS 32.298 values and encodes them with pycrate's compiled modules - never hand-written BER. The file
and CDR headers follow the layout in lib/collection/formats/threegpp.py's docstring (TS 32.297
§6.1), written here independently of the decoder so a test compares two readings of the standard.

    build_file([MoCall(...), MtSms(...)], sequence_number=7)      a normal file
    build_file([Spoiled(MoCall(...)), ...])                       one record whose BER is cut short
    break_header(build_file([...]), "file_length")                a file the collector quarantines
    pgw_session(..., parts=3)                                     partial PGW records of one session
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone

from pycrate_asn1dir import CDR

CS_RECORD = CDR.CSChargingDataTypes.CSRecord
GPRS_RECORD = CDR.GPRSChargingDataTypes.GPRSRecord
TS_32250_CS = 6
TS_32251_PS = 7
BER = 1
# AddressString first octets: extension bit, nature of address, numbering plan ISDN/E.164
INTERNATIONAL = 0x91
NATIONAL = 0xA1
UNKNOWN_NATURE = 0x81
CAUSE_NORMAL_RELEASE = 0
CAUSE_PARTIAL_RECORD = 1
CAUSE_VOLUME_LIMIT = 16
CAUSE_TIME_LIMIT = 17
RAT_EUTRAN = 6


@dataclass(frozen=True)
class Cell:
    """A serving cell: LAC and CI (for a 4G cell: the TAC and the ECI), and its PLMN "MCC-MNC"."""

    network: str
    lac: int
    ci: int

    @classmethod
    def of(cls, cell_id: str) -> Cell:
        mcc, mnc, lac, ci = cell_id.split("-")
        return cls(f"{mcc}-{mnc}", int(lac), int(ci))


HOME_CELL = Cell("604-01", 1000, 10)  # a cell of IAM's catalogue: "604-01-01000-00010"
T0 = datetime(2026, 11, 25, 10, 15, tzinfo=UTC)


@dataclass(frozen=True)
class MoCall:
    served_msisdn: str | None
    called_number: str | None
    start: datetime  # the answer time
    duration_s: int
    cell: Cell | None = HOME_CELL
    cell_network_in_record: bool = True  # False: the record's location has no mCC-MNC
    served_imsi: str = "604010000000001"
    msc: str = "212600000001"  # recordingEntity (international E.164 digits)
    call_reference: int = 1
    sequence_number: int | None = None
    cause_for_term: int = CAUSE_NORMAL_RELEASE
    system_type: str | None = "gERAN"
    utc_offset_minutes: int = 0  # the offset the MSC writes its local times with


@dataclass(frozen=True)
class MtCall:
    served_msisdn: str | None
    calling_number: str | None
    start: datetime
    duration_s: int
    cell: Cell | None = HOME_CELL
    cell_network_in_record: bool = True
    served_imsi: str = "604010000000002"
    msc: str = "212600000001"
    call_reference: int = 2
    sequence_number: int | None = None
    cause_for_term: int = CAUSE_NORMAL_RELEASE
    system_type: str | None = "iuUTRAN"
    utc_offset_minutes: int = 0


@dataclass(frozen=True)
class MoSms:
    served_msisdn: str | None
    destination: str | None
    sent_at: datetime
    cell: Cell | None = HOME_CELL
    served_imsi: str = "604010000000003"
    msc: str = "212600000001"
    message_reference: int = 1
    delivery_failed: bool = False
    system_type: str | None = "gERAN"
    utc_offset_minutes: int = 0


@dataclass(frozen=True)
class MtSms:
    """An MT SMS record: TS 32.298 gives it no originator field."""

    served_msisdn: str | None
    delivered_at: datetime
    cell: Cell | None = HOME_CELL
    served_imsi: str = "604010000000004"
    msc: str = "212600000001"
    system_type: str | None = "gERAN"
    utc_offset_minutes: int = 0


@dataclass(frozen=True)
class PgwRecord:
    served_msisdn: str | None
    opened_at: datetime  # recordOpeningTime of this (partial) record
    duration_s: int
    volumes: tuple[tuple[int, int], ...] = ((1000, 4000),)  # (uplink, downlink) per container
    in_service_data: bool = True  # listOfServiceData; False: listOfTrafficVolumes
    cell: Cell | None = HOME_CELL  # ECGI + TAI in userLocationInformation
    served_imsi: str = "604010000000005"
    pgw_address: str = "10.20.0.1"
    charging_id: int = 4242
    sequence_number: int | None = None
    cause_for_closing: int = CAUSE_NORMAL_RELEASE
    rat_type: int | None = RAT_EUTRAN
    utc_offset_minutes: int = 0


@dataclass(frozen=True)
class Spoiled:
    """A record that does not decode: its BER cut `cut` octets short (the CDR header frames what is
    left), or with `wrong_ts` a whole record framed under the other TS number (a CS record read as a
    GPRSRecord finds no alternative for its tag)."""

    record: object
    cut: int = 4
    wrong_ts: bool = False


# -- value encoders ---------------------------------------------------------------------------------
def tbcd(digits: str) -> bytes:
    symbols = "0123456789*#abc"
    nibbles = [symbols.index(d) for d in digits] + ([15] if len(digits) % 2 else [])
    return bytes(low | high << 4 for low, high in zip(nibbles[::2], nibbles[1::2], strict=True))


def address(number: str) -> bytes:
    """An AddressString: "+..." international, "0..." national (trunk prefix dropped), else as dialled."""
    if number.startswith("+"):
        return bytes([INTERNATIONAL]) + tbcd(number[1:])
    if number.startswith("0") and not number.startswith("00"):
        return bytes([NATIONAL]) + tbcd(number[1:])
    return bytes([UNKNOWN_NATURE]) + tbcd(number)


def tp_address(number: str) -> bytes:
    """An SMS TP address: the number of digits, the type of address, the TBCD digits."""
    encoded = address(number)
    digits = 2 * len(encoded[1:]) - (1 if encoded[-1] >> 4 == 15 else 0)
    return bytes([digits]) + encoded


def bcd(value: int) -> int:
    return (value // 10) << 4 | value % 10


def timestamp(instant: datetime, utc_offset_minutes: int = 0) -> bytes:
    """TS 32.298 TimeStamp: the local time at that offset, YYMMDDhhmmss, sign, hh mm."""
    local = instant.astimezone(timezone(timedelta(minutes=utc_offset_minutes)))
    sign = b"+" if utc_offset_minutes >= 0 else b"-"
    hours, minutes = divmod(abs(utc_offset_minutes), 60)
    fields = (local.year % 100, local.month, local.day, local.hour, local.minute, local.second)
    return bytes(bcd(v) for v in fields) + sign + bytes([bcd(hours), bcd(minutes)])


def plmn(network: str) -> bytes:
    mcc, mnc = network.split("-")
    mnc3 = int(mnc[2]) if len(mnc) == 3 else 15
    return bytes([int(mcc[1]) << 4 | int(mcc[0]), mnc3 << 4 | int(mcc[2]), int(mnc[1]) << 4 | int(mnc[0])])


def location(cell: Cell, with_network: bool = True) -> dict:
    value = {"locationAreaCode": cell.lac.to_bytes(2, "big"), "cellId": cell.ci.to_bytes(2, "big")}
    if with_network:
        value["mCC-MNC"] = plmn(cell.network)
    return value


def user_location(cell: Cell) -> bytes:
    """GTPv2 ULI with a TAI (TAC = the cell's LAC) and an ECGI (ECI = the cell's CI)."""
    tai = plmn(cell.network) + cell.lac.to_bytes(2, "big")
    ecgi = plmn(cell.network) + cell.ci.to_bytes(4, "big")
    return bytes([0x08 | 0x10]) + tai + ecgi


def gsn_address(text: str) -> tuple:
    ip = ipaddress.ip_address(text)
    if ip.version == 4:
        return ("iPBinaryAddress", ("iPBinV4Address", ip.packed))
    return ("iPBinaryAddress", ("iPBinV6Address", ("iPBinV6Address", ip.packed)))


def _common_msc(values: dict, record, with_network: bool = True) -> dict:
    if record.cell is not None:
        values["location"] = location(record.cell, with_network)
    if record.system_type is not None:
        values["systemType"] = record.system_type
    return values


def record_values(record) -> tuple[int, tuple[str, dict]]:
    """(TS number, the record's CHOICE value in pycrate's terms) of a record description."""
    offset = getattr(record, "utc_offset_minutes", 0)
    if isinstance(record, MoCall | MtCall):
        outgoing = isinstance(record, MoCall)
        values = {
            "recordType": 1 if outgoing else 2,
            "servedIMSI": tbcd(record.served_imsi),
            "recordingEntity": address("+" + record.msc),
            "seizureTime": timestamp(record.start - timedelta(seconds=5), offset),
            "answerTime": timestamp(record.start, offset),
            "releaseTime": timestamp(record.start + timedelta(seconds=record.duration_s), offset),
            "callDuration": record.duration_s,
            "causeForTerm": record.cause_for_term,
            "callReference": record.call_reference.to_bytes(4, "big"),
        }
        if record.served_msisdn is not None:
            values["servedMSISDN"] = address(record.served_msisdn)
        other = record.called_number if outgoing else record.calling_number
        if other is not None:
            values["calledNumber" if outgoing else "callingNumber"] = address(other)
        if record.sequence_number is not None:
            values["sequenceNumber"] = record.sequence_number
        name = "moCallRecord" if outgoing else "mtCallRecord"
        return TS_32250_CS, (name, _common_msc(values, record, record.cell_network_in_record))
    if isinstance(record, MoSms):
        values = {
            "recordType": 6,
            "servedIMSI": tbcd(record.served_imsi),
            "msClassmark": b"\x53\x19\xa2",
            "serviceCentre": address("+212600000100"),
            "recordingEntity": address("+" + record.msc),
            "messageReference": bytes([record.message_reference]),
            "originationTime": timestamp(record.sent_at, offset),
        }
        if record.served_msisdn is not None:
            values["servedMSISDN"] = address(record.served_msisdn)
        if record.destination is not None:
            values["destinationNumber"] = tp_address(record.destination)
        if record.delivery_failed:
            values["smsResult"] = ("gsm0408Cause", 38)
        return TS_32250_CS, ("moSMSRecord", _common_msc(values, record))
    if isinstance(record, MtSms):
        values = {
            "recordType": 7,
            "serviceCentre": address("+212600000100"),
            "servedIMSI": tbcd(record.served_imsi),
            "msClassmark": b"\x53\x19\xa2",
            "recordingEntity": address("+" + record.msc),
            "deliveryTime": timestamp(record.delivered_at, offset),
        }
        if record.served_msisdn is not None:
            values["servedMSISDN"] = address(record.served_msisdn)
        return TS_32250_CS, ("mtSMSRecord", _common_msc(values, record))
    if isinstance(record, PgwRecord):
        containers = [
            {"ratingGroup": 10, "serviceConditionChange": (0, 32), "timeOfReport": timestamp(record.opened_at, offset)}
            | ({"datavolumeFBCUplink": up, "datavolumeFBCDownlink": down} if record.in_service_data else {})
            for up, down in record.volumes
        ]
        values = {
            "recordType": 85,
            "servedIMSI": tbcd(record.served_imsi),
            "p-GWAddress": gsn_address(record.pgw_address),
            "chargingID": record.charging_id,
            "servingNodeAddress": [gsn_address("10.30.0.1")],
            "accessPointNameNI": "internet",
            "recordOpeningTime": timestamp(record.opened_at, offset),
            "duration": record.duration_s,
            "causeForRecClosing": record.cause_for_closing,
            "chargingCharacteristics": b"\x08\x00",
            "servingNodeType": ["gTPSGW"],
        }
        if record.in_service_data:
            values["listOfServiceData"] = containers
        else:
            values["listOfTrafficVolumes"] = [
                {
                    "dataVolumeGPRSUplink": up,
                    "dataVolumeGPRSDownlink": down,
                    "changeCondition": "recordClosure",
                    "changeTime": timestamp(record.opened_at + timedelta(seconds=record.duration_s), offset),
                }
                for up, down in record.volumes
            ]
        if record.served_msisdn is not None:
            values["servedMSISDN"] = address(record.served_msisdn)
        if record.sequence_number is not None:
            values["recordSequenceNumber"] = record.sequence_number
        if record.rat_type is not None:
            values["rATType"] = record.rat_type
        if record.cell is not None:
            values["userLocationInformation"] = user_location(record.cell)
        return TS_32251_PS, ("pGWRecord", values)
    raise TypeError(f"not a record description: {record!r}")


def encode_record(record) -> tuple[int, bytes]:
    """(TS number, BER octets) of a record description, encoded by pycrate."""
    if isinstance(record, Spoiled):
        ts_number, raw = encode_record(record.record)
        if record.wrong_ts:
            return (TS_32251_PS if ts_number == TS_32250_CS else TS_32250_CS), raw
        return ts_number, raw[: -record.cut]
    ts_number, value = record_values(record)
    choice = CS_RECORD if ts_number == TS_32250_CS else GPRS_RECORD
    choice.set_val(value)
    return ts_number, choice.to_ber()


# -- TS 32.297 headers ------------------------------------------------------------------------------
RELEASE_IDENTIFIERS = {99: 0, 4: 1, 5: 2, 6: 3, 7: 4, 8: 5, 9: 6}  # Release 10 and later: 7 + extension


def release_octets(release: int, version: int) -> tuple[int, int | None]:
    """(release/version octet, release identifier extension or None)."""
    if release in RELEASE_IDENTIFIERS:
        return RELEASE_IDENTIFIERS[release] << 5 | version, None
    return 7 << 5 | version, release - 10


def cdr_header(ts_number: int, length: int, release: int = 15, version: int = 2) -> bytes:
    octet, extension = release_octets(release, version)
    header = struct.pack(">HBB", length, octet, BER << 5 | ts_number)
    return header + (bytes([extension]) if extension is not None else b"")


def header_time(instant: datetime, utc_offset_minutes: int = 0) -> bytes:
    local = instant.astimezone(timezone(timedelta(minutes=utc_offset_minutes)))
    hours, minutes = divmod(abs(utc_offset_minutes), 60)
    sign = 1 if utc_offset_minutes >= 0 else 0  # 1 is '+'
    value = local.month << 28 | local.day << 23 | local.hour << 18 | local.minute << 12
    return (value | sign << 11 | hours << 6 | minutes).to_bytes(4, "big")


def node_address(text: str) -> bytes:
    ip = ipaddress.ip_address(text)
    if ip.version == 4:
        return b"\xff" * 4 + bytes(12) + ip.packed
    return b"\xff" * 4 + ip.packed


def frame_records(encoded: list[tuple[int, bytes]], release: int = 15, version: int = 2) -> bytes:
    return b"".join(cdr_header(ts, len(raw), release, version) + raw for ts, raw in encoded)


def build_file(
    records: list,
    *,
    sequence_number: int = 1,
    node: str = "10.1.1.1",
    opened_at: datetime = T0,
    appended_at: datetime | None = None,
    utc_offset_minutes: int = 0,
    closure_reason: int = 0,
    record_count: int | None = None,
    release: int = 15,
    version: int = 2,
    routeing_filter: bytes = b"",
    private_extension: bytes = b"",
    lost_cdrs: int = 0,
) -> bytes:
    """A TS 32.297 file of the records; `record_count` overrides the header's count (for tests)."""
    return file_of_encoded(
        [encode_record(r) for r in records],
        sequence_number=sequence_number,
        node=node,
        opened_at=opened_at,
        appended_at=appended_at,
        utc_offset_minutes=utc_offset_minutes,
        closure_reason=closure_reason,
        record_count=record_count,
        release=release,
        version=version,
        routeing_filter=routeing_filter,
        private_extension=private_extension,
        lost_cdrs=lost_cdrs,
    )


def file_of_encoded(
    encoded: list[tuple[int, bytes]],
    *,
    sequence_number: int = 1,
    node: str = "10.1.1.1",
    opened_at: datetime = T0,
    appended_at: datetime | None = None,
    utc_offset_minutes: int = 0,
    closure_reason: int = 0,
    record_count: int | None = None,
    release: int = 15,
    version: int = 2,
    routeing_filter: bytes = b"",
    private_extension: bytes = b"",
    lost_cdrs: int = 0,
) -> bytes:
    """A TS 32.297 file around records already encoded: (TS number, BER octets) each."""
    body = frame_records(encoded, release, version)
    octet, extension = release_octets(release, version)
    fields = struct.pack(
        ">BB4s4sIIB20sB",
        octet,
        octet,
        header_time(opened_at, utc_offset_minutes),
        header_time(appended_at or opened_at + timedelta(minutes=5), utc_offset_minutes),
        len(encoded) if record_count is None else record_count,
        sequence_number,
        closure_reason,
        node_address(node),
        lost_cdrs,
    )
    fields += struct.pack(">H", len(routeing_filter)) + routeing_filter
    fields += struct.pack(">H", len(private_extension)) + private_extension
    if extension is not None:
        fields += bytes([extension, extension])  # high and low release identifier extensions
    header_length = 8 + len(fields)
    return struct.pack(">II", header_length + len(body), header_length) + fields + body


BROKEN_HEADERS = ("file_length", "header_length_past_file", "header_length_too_short", "truncated_cdr")


def break_header(data: bytes, how: str) -> bytes:
    """A copy of a well-formed file whose header or framing no longer holds (see BROKEN_HEADERS)."""
    file_length, header_length = struct.unpack_from(">II", data)
    if how == "file_length":  # the file is shorter than its header says
        return struct.pack(">I", file_length + 10) + data[4:]
    if how == "header_length_past_file":
        return data[:4] + struct.pack(">I", file_length + 1) + data[8:]
    if how == "header_length_too_short":
        return data[:4] + struct.pack(">I", 20) + data[8:]
    if how == "truncated_cdr":  # the last CDR loses octets its CDR header still counts
        cut = data[:-3]
        return struct.pack(">I", len(cut)) + cut[4:]
    raise ValueError(f"unknown breakage {how!r}: one of {BROKEN_HEADERS}")


def pgw_session(
    served_msisdn: str, opened_at: datetime, parts: int, *, part_seconds: int = 600, **fields
) -> list[PgwRecord]:
    """The partial records of one PGW session: each closed by the time limit, the last by release."""
    first = PgwRecord(served_msisdn, opened_at, part_seconds, **fields)
    return [
        replace(
            first,
            opened_at=opened_at + timedelta(seconds=part_seconds * i),
            sequence_number=i + 1,
            cause_for_closing=CAUSE_NORMAL_RELEASE if i == parts - 1 else CAUSE_TIME_LIMIT,
        )
        for i in range(parts)
    ]
