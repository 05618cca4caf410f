"""3GPP CDR files: TS 32.297 files of TS 32.298 records (ASN.1 BER), decoded into cdr.v1 messages.

A network element (MSC, PGW...) writes one file per period: a file header, then each CDR behind
its own CDR header. The records are decoded with pycrate's compiled TS 32.298 modules
(`pycrate_asn1dir.CDR`); this module reads the framing, picks the record type and maps the values.

File layout (TS 32.297 §6.1.1, all integers big-endian):
    file length (4)  header length (4, counts the whole header from octet 1)
    high release/version (1)  low release/version (1)   release: 3 bits, version: 5 bits
    file opening timestamp (4)  last CDR append timestamp (4)
        month 4 bits, day 5, hour 5, minute 6, offset sign 1 (1 = '+'), offset hours 5, minutes 6:
        the CGF's local time, no year
    number of CDRs (4, FFFFFFFF = not known)  file sequence number (4)
    file closure trigger reason (1)  node IP address (20: the last 16 octets an IPv6 address,
        IPv4 written IPv4-compatible or IPv4-mapped)  lost CDR indicator (1)
    CDR routeing filter length (2) + filter   private extension length (2) + extension
    high / low release identifier extensions (1 each, when the header still has octets):
        release = 10 + extension when the 3-bit release identifier is 7 (Release 10 and later)
Each CDR (§6.1.2): CDR length (2, the record's octets, header excluded), release/version (1),
data record format (3 bits: 1 = BER) + TS number (5 bits: 6 = TS 32.250 CS, 7 = TS 32.251 PS),
release identifier extension (1, only when the release identifier is 7), then the record.

The file as a whole raises FileFormatError (the collector quarantines it) when its header or its
framing cannot be trusted: the file length is not the file's size, the header length is shorter
than the mandatory fields or runs past the file, a CDR header or a CDR runs past the end, octets
are left over. A header that announces another number of CDRs than the file holds is no reason
to refuse the CDRs it does hold: FileHeader.record_count says what it announced, and the collector
notes the difference. A single
record that does not decode is a DecodedRecord with `error` (and its raw bytes); the file goes on.

Which records (the TS number of the CDR header picks the ASN.1 CHOICE: CSRecord for TS 32.250,
GPRSRecord for TS 32.251; their context tags overlap, so the tag alone is not enough):
    moCallRecord -> voice outgoing        mtCallRecord -> voice incoming
    moSMSRecord  -> sms outgoing          mtSMSRecord  -> sms incoming
    pGWRecord    -> data
Any other record of those CHOICEs (SGW, SGSN, roaming, gateway, transit...) decodes and is counted
as not chargeable: this platform bills the subscriber's MSC and PGW records only. A record of
another TS or data record format than BER is an error.

Mapping rules:
- Numbers (AddressString: TON/NPI octet, then TBCD digits, low nibble first, F filler):
  international TON -> "+" + digits; national TON -> national form with the trunk prefix "0"
  (mediation's normalise_msisdn reads "0..." as +212...); other TONs -> the digits as written.
  served_msisdn comes from servedMSISDN only (no IMSI lookup here): a record without it is an
  error. An MO SMS's other party is its TP destination (SmsTpDestinationNumber: digit count,
  TON/NPI, TBCD; an alphanumeric address is not a number and gives None).
- Other party: MO call calledNumber, MT call callingNumber, MO SMS destinationNumber. The MT SMS
  record has no originator field at all: other_msisdn None, direction "incoming". A data record
  has no other party and no direction. A party the standard lets the record omit is None, not
  an error: mediation decides what it accepts.
- start_time: voice answerTime (else seizureTime): callDuration counts from the answer; SMS
  originationTime (MO) / deliveryTime (MT); data recordOpeningTime (of this partial record).
  TimeStamp is 9 octets YYMMDDhhmmss BCD + '+'/'-' (ASCII) + hh mm BCD, local time and its
  offset: converted to UTC, ISO-8601 with milliseconds and "Z". Years are 20YY. record_time is
  the same instant (aware).
- duration_s: callDuration / duration, seconds, as the record says. sms: None.
- data_volume_bytes: uplink + downlink over listOfServiceData (datavolumeFBC*) when the record
  has it, else over listOfTrafficVolumes (dataVolumeGPRS*): the two lists are two views of the
  same traffic, so they are never added together.
- technology: PGW rATType (TS 29.274: 1 UTRAN 3G, 2 GERAN 2G, 4 GAN 2G, 5 HSPA evolution 3G,
  6 EUTRAN / 8 NB-IoT / 9 LTE-M 4G, 10 NR 5G), else the kind of location the record carries
  (ECGI 4G, SAI 3G, CGI 2G), else the source profile's. MSC/SMS systemType (iuUTRAN 3G, gERAN
  2G); absent means a GSM air interface (TS 32.298: the field is only written for UTRAN/GERAN),
  so 2G unless the profile declares a technology.
- cell_id "MCC-MNC-LAC-CI" (lib.reference.network.cell_global_id): MSC/SMS location
  (locationAreaCode, cellId) with the PLMN of its mCC-MNC when present, else the network of the
  profile's declared cell (an MSC serves the cells of its own network), else the served IMSI's
  PLMN (MCC + 2-digit MNC, 3 digits for MCC 302-316). PGW userLocationInformation (the GTPv2
  ULI): ECGI with the TAI's TAC as LAC and the ECI as CI; else CGI (LAC, CI) or SAI (LAC, SAC);
  a record with no usable location takes the profile's cell; none at all is an error.
- roaming / visited_network: the serving PLMN (the location's) is not a national operator's
  network (numbering_plan.NATIONAL_OPERATORS) -> roaming true and visited_network its MCC-MNC.
- record_id: deterministic from the record's identity, a prefix naming the record type, then
    moc/mtc: recordingEntity digits, callReference (hex), sequenceNumber when present
    smo: recordingEntity, servedIMSI, originationTime (YYMMDDhhmmss), messageReference (hex)
    smt: recordingEntity, servedIMSI, deliveryTime (the record has no message reference: two
         SMS delivered to one IMSI by one MSC in one second get one id)
    pgw: pGWAddress, chargingID, recordSequenceNumber when present
  joined by "-"; when that is longer than RECORD_ID_REGEX allows or holds another character,
  "h-" + a BLAKE2b digest of it.
- partial: PGW records and MSC call records with a record sequence number are parts of one call
  or session: chain_id = the record_id without its sequence number, sequence = that number.
  `last` unless the closing cause is a partial closing: causeForRecClosing partialRecord,
  volumeLimit, timeLimit, servingNodeChange, maxChangeCond, intraSGSNIntersystemChange,
  rATChange, mSTimeZoneChange, sGSNPLMNIDChange, sGWChange, aPNAMBRChange,
  mOExceptionDataCounterReceipt, listofDownstreamNodeChange; causeForTerm partialRecord,
  partialRecordCallReestablishment. Any other cause (normal or abnormal release, management
  intervention, a value this list does not know) ends the chain. No sequence number: partial None.
- not chargeable: a call with callDuration 0 (unanswered, busy) and an SMS with an smsResult
  (the standard writes it only when delivery failed).
- FileHeader: the header's opening and append times carry no year: the year is the one that puts
  the time nearest the file's first record time (or now, for a file without a dated record).

pycrate's compiled types hold the last decoded value: one decode at a time per process (the
collector decodes files in processes, not threads).
"""

from __future__ import annotations

import hashlib
import ipaddress
import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

from cdr_platform.lib.collection.formats.base import (
    DecodedFile,
    DecodedRecord,
    FileFormatError,
    FileHeader,
    Partial,
    SourceProfile,
)
from cdr_platform.lib.collection.formats.common import cdr_time_text
from cdr_platform.lib.reference.network import cell_global_id
from cdr_platform.lib.reference.numbering_plan import NATIONAL_OPERATORS
from cdr_platform.lib.schema import RECORD_ID_PATTERN, SCHEMA_VERSION

FORMAT = "3gpp-ber"  # its name in formats.FORMAT_MODULES

# -- TS 32.297 framing ----------------------------------------------------------------------------
_FIXED_HEADER = struct.Struct(">IIBB4s4sIIB20sB")  # file length ... lost CDR indicator
MIN_HEADER_LENGTH = _FIXED_HEADER.size + 2 + 2  # + the two (possibly empty) length-prefixed fields
NOT_KNOWN_COUNT = 0xFFFFFFFF
_CDR_HEADER = struct.Struct(">HBB")  # CDR length, release/version, format/TS number
RELEASE_BEYOND_9 = 7  # the 3-bit release identifier whose extension octet holds release - 10
# 3-bit release identifier -> release (0 is Release 99)
_RELEASES = {0: 99, 1: 4, 2: 5, 3: 6, 4: 7, 5: 8, 6: 9, 7: 10}
BER = 1
DATA_RECORD_FORMATS = {1: "BER", 2: "unaligned PER", 3: "aligned PER", 4: "XER"}
TS_32250_CS = 6
TS_32251_PS = 7
TS_NUMBERS = {  # TS 32.297 §6.1.2: the 5-bit TS number -> the charging TS its records follow
    0: "32.005", 1: "32.015", 2: "32.205", 3: "32.215", 4: "32.225", 5: "32.235", 6: "32.250",
    7: "32.251", 9: "32.260", 10: "32.270", 11: "32.271", 12: "32.272", 13: "32.273",
    14: "32.275", 15: "32.274", 16: "32.277", 17: "32.296", 18: "32.278", 19: "32.253",
    20: "32.255", 21: "32.254", 22: "32.256", 23: "28.201", 24: "28.202", 25: "32.257",
}  # fmt: skip
CLOSURE_REASONS = {
    0: "normal closure",
    1: "file size limit",
    2: "file open-time limit",
    3: "maximum number of CDRs",
    4: "manual closure",
    5: "CDR release, version or encoding change",
    128: "abnormal closure",
    129: "file system error",
    130: "file system storage exhausted",
    131: "file integrity error",
}

# -- TS 32.298 values -----------------------------------------------------------------------------
# causeForRecClosing / causeForTerm values that close a part, not the call or session
PARTIAL_CLOSING_CAUSES = frozenset({1, 16, 17, 18, 19, 21, 22, 23, 24, 25, 26, 27, 59})
PARTIAL_TERM_CAUSES = frozenset({1, 2})
RAT_TECHNOLOGY = {1: "3G", 2: "2G", 4: "2G", 5: "3G", 6: "4G", 8: "4G", 9: "4G", 10: "5G"}
SYSTEM_TYPE_TECHNOLOGY = {"iuUTRAN": "3G", "gERAN": "2G"}
GSM_TECHNOLOGY = "2G"  # what an MSC record without systemType means
HOME_NETWORKS = frozenset(op.mcc_mnc for op in NATIONAL_OPERATORS)
TON_INTERNATIONAL = 1
TON_NATIONAL = 2
TON_ALPHANUMERIC = 5
NATIONAL_TRUNK_PREFIX = "0"
_TBCD_SYMBOLS = "0123456789*#abc"  # nibble values 0-14; 15 is the filler


def _tbcd_table() -> tuple[str, ...]:
    def symbol(nibble: int) -> str:
        return _TBCD_SYMBOLS[nibble] if nibble < 15 else ""

    return tuple(symbol(b & 0x0F) + symbol(b >> 4) for b in range(256))


_TBCD = _tbcd_table()
_BCD = tuple((b >> 4) * 10 + (b & 0x0F) if (b >> 4) < 10 and (b & 0x0F) < 10 else -1 for b in range(256))
_ZONES: dict[int, timezone] = {}


class RecordError(ValueError):
    """A record decoded but cannot become a cdr.v1 message; the message says why."""


# -- small decoders -------------------------------------------------------------------------------
def tbcd(octets: bytes) -> str:
    """TBCD digits (TS 29.002): two per octet, the low nibble first, F as filler."""
    return "".join([_TBCD[b] for b in octets])


def address_string(octets: bytes | None) -> str | None:
    """An AddressString (TON/NPI octet + TBCD digits) as cdr.v1 writes numbers (see the docstring)."""
    if not octets or len(octets) < 2:
        return None
    digits = tbcd(octets[1:])
    if not digits:
        return None
    nature = (octets[0] >> 4) & 0x07
    if nature == TON_INTERNATIONAL:
        return "+" + digits
    if nature == TON_NATIONAL and not digits.startswith(NATIONAL_TRUNK_PREFIX):
        return NATIONAL_TRUNK_PREFIX + digits
    return digits


def sms_tp_address(octets: bytes | None) -> str | None:
    """A TP address (TS 23.040 §9.1.2.5: digit count, type of address, TBCD), as address_string."""
    if not octets or len(octets) < 3:
        return None
    if (octets[1] >> 4) & 0x07 == TON_ALPHANUMERIC:
        return None  # a GSM 7-bit name, not a number
    number = address_string(octets[1:])
    if number is None:
        return None
    digit_count = octets[0]
    prefix = len(number) - len(tbcd(octets[2:]))  # "+" or the added trunk "0"
    return number[: prefix + digit_count]


def timestamp(octets: bytes) -> datetime:
    """A TS 32.298 TimeStamp (YYMMDDhhmmss BCD, '+'/'-', hh mm BCD) as an aware UTC datetime."""
    if len(octets) != 9:
        raise RecordError(f"TimeStamp of {len(octets)} octets, not 9")
    yy, mo, dd, hh, mi, ss, sign, off_h, off_m = octets
    fields = (_BCD[yy], _BCD[mo], _BCD[dd], _BCD[hh], _BCD[mi], _BCD[ss], _BCD[off_h], _BCD[off_m])
    if -1 in fields:
        raise RecordError(f"TimeStamp {octets.hex()} is not BCD")
    if sign not in (0x2B, 0x2D):
        raise RecordError(f"TimeStamp {octets.hex()} has no '+' or '-' before its UTC offset")
    offset = fields[6] * 60 + fields[7]
    if sign == 0x2D:
        offset = -offset
    zone = _ZONES.get(offset)
    if zone is None:
        zone = _ZONES.setdefault(offset, timezone(timedelta(minutes=offset)))
    try:
        local = datetime(2000 + fields[0], fields[1], fields[2], fields[3], fields[4], fields[5], tzinfo=zone)
    except ValueError as exc:
        raise RecordError(f"TimeStamp {octets.hex()}: {exc}") from None
    return local.astimezone(UTC)


def plmn(octets: bytes) -> str:
    """A PLMN identity (TS 24.008: MCC digits 1-2, MCC 3 + MNC 3, MNC 1-2) as "MCC-MNC"."""
    if len(octets) != 3:
        raise RecordError(f"PLMN identity of {len(octets)} octets, not 3")
    digits = tbcd(octets)  # mcc1 mcc2 mcc3 [mnc3] mnc1 mnc2 with the F filler dropped
    if len(digits) == 5:
        return f"{digits[:3]}-{digits[3:]}"
    if len(digits) == 6:
        return f"{digits[:3]}-{digits[4:]}{digits[3]}"
    raise RecordError(f"PLMN identity {octets.hex()} is not MCC-MNC")


def imsi_network(imsi: str) -> str | None:
    """The home network of an IMSI: MCC + MNC (3 MNC digits for MCC 302-316, else 2)."""
    if len(imsi) < 6 or not imsi.isdigit():
        return None
    mnc_digits = 3 if 302 <= int(imsi[:3]) <= 316 else 2
    return f"{imsi[:3]}-{imsi[3 : 3 + mnc_digits]}"


def ip_address(octets: bytes) -> str:
    if len(octets) in (4, 16):
        return str(ipaddress.ip_address(octets))
    raise RecordError(f"IP address of {len(octets)} octets")


def gsn_address(value: tuple) -> str:
    """A GSNAddress CHOICE (binary IPv4/IPv6 or text) as an address string."""
    form, inner = value
    if form == "iPBinaryAddress":
        kind, octets = inner
        if kind == "iPBinV6Address":  # with or without a prefix length
            octets = octets[1] if isinstance(octets, tuple) else octets
            octets = octets["iPBinV6Address"] if isinstance(octets, dict) else octets
        return ip_address(octets)
    kind, text = inner
    text = text["iPTextV6Address"] if isinstance(text, dict) else text
    return str(text)


def node_ip_address(octets: bytes) -> str:
    """The file header's 20-octet node address: IPv6 in the last 16, IPv4 compatible or mapped."""
    address = ipaddress.IPv6Address(octets[4:])
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    if octets[4:16] == bytes(12):
        return str(ipaddress.IPv4Address(octets[16:]))
    return str(address)


def record_id(*parts: object) -> str:
    text = "-".join(str(p) for p in parts)
    if RECORD_ID_PATTERN.fullmatch(text):
        return text
    return "h-" + hashlib.blake2b(text.encode(), digest_size=20).hexdigest()


# -- file header ----------------------------------------------------------------------------------
def _release(identifier: int, extension: int | None) -> int:
    release = _RELEASES[identifier]
    if identifier == RELEASE_BEYOND_9 and extension is not None:
        release += extension
    return release


def _header_time(octets: bytes) -> tuple[int, int, int, int, int]:
    """(month, day, hour, minute, UTC offset in minutes) of a file header timestamp."""
    value = int.from_bytes(octets, "big")
    month, day = value >> 28, (value >> 23) & 0x1F
    hour, minute = (value >> 18) & 0x1F, (value >> 12) & 0x3F
    sign, off_h, off_m = (value >> 11) & 1, (value >> 6) & 0x1F, value & 0x3F
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and off_h < 24 and off_m < 60):
        raise FileFormatError(f"file header timestamp {octets.hex()} is not a month, day, hour and minute")
    offset = off_h * 60 + off_m
    return month, day, hour, minute, offset if sign else -offset


def _dated(parts: tuple[int, int, int, int, int], near: datetime) -> datetime | None:
    """The header time in the year that puts it nearest `near` (the header writes no year)."""
    month, day, hour, minute, offset = parts
    zone = timezone(timedelta(minutes=offset))
    candidates = []
    for year in (near.year - 1, near.year, near.year + 1):
        try:
            candidates.append(datetime(year, month, day, hour, minute, tzinfo=zone))
        except ValueError:  # 29 February of a year without one
            continue
    if not candidates:
        return None
    return min(candidates, key=lambda c: abs(c - near)).astimezone(UTC)


def _parse_header(data: bytes) -> tuple[dict, int]:
    """The file header's fields and its length; FileFormatError when it cannot be trusted."""
    if len(data) < MIN_HEADER_LENGTH:
        raise FileFormatError(f"{len(data)} octets: shorter than a TS 32.297 file header ({MIN_HEADER_LENGTH})")
    (file_length, header_length, high, low, opened, appended, count, sequence, closure, node, lost) = (
        _FIXED_HEADER.unpack_from(data)
    )
    if file_length != len(data):
        raise FileFormatError(f"file length field says {file_length} octets, the file has {len(data)}")
    if not MIN_HEADER_LENGTH <= header_length <= file_length:
        raise FileFormatError(
            f"header length {header_length} is outside {MIN_HEADER_LENGTH}..{file_length} (the file length)"
        )
    offset = _FIXED_HEADER.size
    variable = []
    for name in ("CDR routeing filter", "private extension"):
        if offset + 2 > header_length:
            raise FileFormatError(f"the {name} length runs past the header length {header_length}")
        (length,) = struct.unpack_from(">H", data, offset)
        offset += 2
        if offset + length > header_length:
            raise FileFormatError(f"the {name} ({length} octets) runs past the header length {header_length}")
        variable.append(data[offset : offset + length])
        offset += length
    extensions = data[offset:header_length]
    high_ext = extensions[0] if len(extensions) >= 1 else None
    low_ext = extensions[1] if len(extensions) >= 2 else None
    fields = {
        "high_release": _release(high >> 5, high_ext),
        "high_version": high & 0x1F,
        "low_release": _release(low >> 5, low_ext),
        "low_version": low & 0x1F,
        "opened": _header_time(opened),
        "appended": _header_time(appended),
        "count": None if count == NOT_KNOWN_COUNT else count,
        "sequence": sequence,
        "closure": closure,
        "node": node_ip_address(node),
        "lost": lost,
        "routeing_filter": variable[0],
        "private_extension": variable[1],
    }
    return fields, header_length


def _text_or_hex(octets: bytes) -> str:
    return octets.decode("ascii") if octets.isascii() and octets.decode("ascii").isprintable() else octets.hex()


def _file_header(fields: dict, near: datetime) -> FileHeader:
    lost = fields["lost"]
    return FileHeader(
        sequence_number=fields["sequence"],
        record_count=fields["count"],
        opened_at=_dated(fields["opened"], near),
        closed_at=_dated(fields["appended"], near),
        node_address=fields["node"],
        details={
            "high_release": f"Rel-{fields['high_release']}.{fields['high_version']}",
            "low_release": f"Rel-{fields['low_release']}.{fields['low_version']}",
            "closure_reason": CLOSURE_REASONS.get(fields["closure"], f"unknown ({fields['closure']})"),
            # bit 8 clear: the exact number of lost CDRs; set: at least that many
            "lost_cdrs": lost & 0x7F,
            "lost_cdrs_exact": not lost & 0x80,
            "cdr_routeing_filter": _text_or_hex(fields["routeing_filter"]),
            "private_extension": fields["private_extension"].hex(),
        },
    )


def _frames(data: bytes, header_length: int) -> list[tuple[int, int, bytes]]:
    """(TS number, data record format, record octets) of each CDR, in file order."""
    frames = []
    offset, end = header_length, len(data)
    while offset < end:
        if offset + _CDR_HEADER.size > end:
            raise FileFormatError(f"CDR {len(frames)} at octet {offset}: its header runs past the end of the file")
        length, release_version, format_ts = _CDR_HEADER.unpack_from(data, offset)
        offset += _CDR_HEADER.size
        if release_version >> 5 == RELEASE_BEYOND_9:
            offset += 1  # the release identifier extension
        if offset + length > end:
            raise FileFormatError(
                f"CDR {len(frames)} says {length} octets, the file has {max(end - offset, 0)} left after its header"
            )
        frames.append((format_ts & 0x1F, format_ts >> 5, data[offset : offset + length]))
        offset += length
    return frames


def looks_like(data: bytes) -> bool:
    """A plausible TS 32.297 file: a header whose lengths and times hold, and CDR framing that ends at the end."""
    try:
        _fields, header_length = _parse_header(data)
        _frames(data, header_length)
    except (FileFormatError, ValueError, struct.error):
        return False
    return True


# -- records --------------------------------------------------------------------------------------
def _ber_outer(raw: bytes) -> tuple[int, int | None, int]:
    """(tag number, content length or None if indefinite, header size) of the record's outer TLV."""
    if len(raw) < 2:
        raise RecordError(f"{len(raw)} octets: not a BER record")
    first = raw[0]
    if first & 0xE0 != 0xA0:
        raise RecordError(f"outer tag 0x{first:02x} is not a context-specific constructed tag")
    tag, offset = first & 0x1F, 1
    if tag == 0x1F:
        tag = 0
        while True:
            if offset >= len(raw):
                raise RecordError("the outer tag runs past the record")
            octet = raw[offset]
            offset += 1
            tag = (tag << 7) | (octet & 0x7F)
            if not octet & 0x80:
                break
    if offset >= len(raw):
        raise RecordError("the outer length runs past the record")
    length_octet = raw[offset]
    offset += 1
    if length_octet == 0x80:
        return tag, None, offset
    if length_octet & 0x80:
        size = length_octet & 0x7F
        if offset + size > len(raw):
            raise RecordError("the outer length runs past the record")
        return tag, int.from_bytes(raw[offset : offset + size], "big"), offset + size
    return tag, length_octet, offset


class _Choices:
    """pycrate's record CHOICEs, compiled on first use (importing them takes a second or two)."""

    def __init__(self) -> None:
        self._by_ts: dict | None = None

    def by_ts(self) -> dict:
        if self._by_ts is None:
            from pycrate_asn1dir import CDR

            self._by_ts = {
                TS_32250_CS: CDR.CSChargingDataTypes.CSRecord,
                TS_32251_PS: CDR.GPRSChargingDataTypes.GPRSRecord,
            }
        return self._by_ts


CHOICES = _Choices()


def decode_ber(ts_number: int, raw: bytes) -> tuple[str, dict]:
    """(record type name, values) of one record, with pycrate's TS 32.298 CHOICE for its TS."""
    choice = CHOICES.by_ts().get(ts_number)
    if choice is None:
        ts = TS_NUMBERS.get(ts_number, f"number {ts_number}")
        raise RecordError(f"records of TS {ts} are not decoded (TS 32.250 and 32.251 are)")
    _tag, length, header_size = _ber_outer(raw)
    if length is not None and header_size + length != len(raw):
        raise RecordError(f"the record's BER length {header_size + length} differs from its CDR length {len(raw)}")
    try:
        choice.from_ber(raw)
    except Exception as exc:  # pycrate raises its own errors and, on garbage, Python's
        raise RecordError(f"undecodable BER: {type(exc).__name__}: {exc}") from None
    name, values = choice.get_val()
    return name, values


class _Context:
    """What every record of one file shares: the source's declared cell and technology."""

    def __init__(self, profile: SourceProfile) -> None:
        self.profile = profile
        self.profile_network = profile.cell_id.rsplit("-", 2)[0] if profile.cell_id else None


def _cdr(kind: str, served: str, other: str | None, direction: str | None, start: datetime) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "record_id": None,
        "record_type": kind,
        "served_msisdn": served,
        "other_msisdn": other,
        "direction": direction,
        "start_time": cdr_time_text(start),
        "duration_s": None,
        "data_volume_bytes": None,
        "cell_id": None,
        "technology": None,
        "roaming": False,
        "visited_network": None,
    }


def _place(cdr: dict, cell: str, network: str) -> None:
    cdr["cell_id"] = cell
    roaming = network not in HOME_NETWORKS
    cdr["roaming"] = roaming
    cdr["visited_network"] = network if roaming else None


def _served(values: dict) -> str:
    served = address_string(values.get("servedMSISDN"))
    if served is None:
        raise RecordError("no servedMSISDN: the record names no subscriber to bill")
    return served


def _msc_location(values: dict, context: _Context, imsi: str | None) -> tuple[str, str]:
    """(cell id, serving network) of an MSC record's LocationAreaAndCell (see the docstring)."""
    location = values.get("location")
    if location is None:
        if context.profile.cell_id:
            return context.profile.cell_id, context.profile_network
        raise RecordError("no location and the source declares no cell")
    lac = int.from_bytes(location["locationAreaCode"], "big")
    ci = int.from_bytes(location["cellId"], "big")
    mcc_mnc = location.get("mCC-MNC")
    if mcc_mnc is not None:
        network = plmn(mcc_mnc)
    else:
        network = context.profile_network or (imsi_network(imsi) if imsi else None)
        if network is None:
            raise RecordError("the location has no MCC-MNC, the source declares no cell and there is no IMSI")
    mcc, mnc = network.split("-")
    return cell_global_id(mcc, mnc, lac, ci), network


def _msc_technology(values: dict, context: _Context) -> str:
    system = values.get("systemType")
    technology = SYSTEM_TYPE_TECHNOLOGY.get(system) if system is not None else None
    return technology or context.profile.technology or GSM_TECHNOLOGY


def _call(kind: str, values: dict, context: _Context) -> tuple[dict | None, str | None, Partial | None, datetime]:
    outgoing = kind == "moCallRecord"
    start_octets = values.get("answerTime") or values.get("seizureTime")
    if start_octets is None:
        raise RecordError("neither answerTime nor seizureTime")
    start = timestamp(start_octets)
    node = tbcd(values["recordingEntity"][1:])
    prefix = "moc" if outgoing else "mtc"
    chain = (prefix, node, values["callReference"].hex())
    sequence = values.get("sequenceNumber")
    cause = values["causeForTerm"]
    partial = None
    if sequence is not None:
        partial = Partial(record_id(*chain), sequence, cause not in PARTIAL_TERM_CAUSES)
    duration = values["callDuration"]
    if duration == 0:
        return None, f"unanswered call: callDuration 0 (causeForTerm {cause})", partial, start
    other = address_string(values.get("calledNumber" if outgoing else "callingNumber"))
    cdr = _cdr("voice", _served(values), other, "outgoing" if outgoing else "incoming", start)
    cdr["record_id"] = record_id(*chain, sequence) if sequence is not None else record_id(*chain)
    cdr["duration_s"] = duration
    imsi = values.get("servedIMSI")
    _place(cdr, *_msc_location(values, context, tbcd(imsi) if imsi else None))
    cdr["technology"] = _msc_technology(values, context)
    return cdr, None, partial, start


def _sms(kind: str, values: dict, context: _Context) -> tuple[dict | None, str | None, Partial | None, datetime]:
    outgoing = kind == "moSMSRecord"
    time_octets = values["originationTime" if outgoing else "deliveryTime"]
    start = timestamp(time_octets)
    if values.get("smsResult") is not None:
        return None, f"SMS not delivered: smsResult {values['smsResult']}", None, start
    imsi = tbcd(values["servedIMSI"])
    node = tbcd(values["recordingEntity"][1:])
    when = time_octets[:6].hex()  # YYMMDDhhmmss as written: the node's own wording of the time
    other = sms_tp_address(values.get("destinationNumber")) if outgoing else None
    cdr = _cdr("sms", _served(values), other, "outgoing" if outgoing else "incoming", start)
    if outgoing:
        cdr["record_id"] = record_id("smo", node, imsi, when, values["messageReference"].hex())
    else:
        cdr["record_id"] = record_id("smt", node, imsi, when)
    _place(cdr, *_msc_location(values, context, imsi))
    cdr["technology"] = _msc_technology(values, context)
    return cdr, None, None, start


# GTPv2 ULI (TS 29.274 §8.21): flag bit -> (name, octets), in the order the fields follow the flags
_ULI_FIELDS = ((0x01, "cgi", 7), (0x02, "sai", 7), (0x04, "rai", 7), (0x08, "tai", 5), (0x10, "ecgi", 7))


def user_location(octets: bytes | None) -> tuple[str, str, str] | None:
    """(cell id, serving network, technology) from a GTPv2 User Location Information, if it has a cell."""
    if not octets:
        return None
    flags, offset, fields = octets[0], 1, {}
    for bit, name, size in _ULI_FIELDS:
        if flags & bit:
            if offset + size > len(octets):
                raise RecordError(f"userLocationInformation {octets.hex()} is shorter than its flags say")
            fields[name] = octets[offset : offset + size]
            offset += size
    if "ecgi" in fields:
        ecgi = fields["ecgi"]
        network = plmn(ecgi[:3])
        eci = int.from_bytes(ecgi[3:], "big") & 0x0FFFFFFF
        tac = int.from_bytes(fields["tai"][3:5], "big") if "tai" in fields else 0
        mcc, mnc = network.split("-")
        return cell_global_id(mcc, mnc, tac, eci), network, "4G"
    for name, technology in (("cgi", "2G"), ("sai", "3G")):
        if name in fields:
            field = fields[name]
            network = plmn(field[:3])
            mcc, mnc = network.split("-")
            lac, ci = int.from_bytes(field[3:5], "big"), int.from_bytes(field[5:7], "big")
            return cell_global_id(mcc, mnc, lac, ci), network, technology
    return None


def data_volume(values: dict) -> int:
    services = values.get("listOfServiceData")
    if services is not None:
        return sum(s.get("datavolumeFBCUplink", 0) + s.get("datavolumeFBCDownlink", 0) for s in services)
    volumes = values.get("listOfTrafficVolumes") or ()
    return sum(v.get("dataVolumeGPRSUplink", 0) + v.get("dataVolumeGPRSDownlink", 0) for v in volumes)


def _pgw(kind: str, values: dict, context: _Context) -> tuple[dict | None, str | None, Partial | None, datetime]:
    start = timestamp(values["recordOpeningTime"])
    chain = ("pgw", gsn_address(values["p-GWAddress"]), values["chargingID"])
    sequence = values.get("recordSequenceNumber")
    partial = None
    if sequence is not None:
        partial = Partial(record_id(*chain), sequence, values["causeForRecClosing"] not in PARTIAL_CLOSING_CAUSES)
    cdr = _cdr("data", _served(values), None, None, start)
    cdr["record_id"] = record_id(*chain, sequence) if sequence is not None else record_id(*chain)
    cdr["duration_s"] = values["duration"]
    cdr["data_volume_bytes"] = data_volume(values)
    located = user_location(values.get("userLocationInformation"))
    if located is not None:
        cell, network, location_technology = located
    elif context.profile.cell_id:
        cell, network, location_technology = context.profile.cell_id, context.profile_network, None
    else:
        raise RecordError("no cell in userLocationInformation and the source declares no cell")
    _place(cdr, cell, network)
    technology = RAT_TECHNOLOGY.get(values.get("rATType"))
    technology = technology or location_technology or context.profile.technology
    if technology is None:
        raise RecordError(f"no technology: rATType {values.get('rATType')}, no cell location, none declared")
    cdr["technology"] = technology
    return cdr, None, partial, start


_MAPPERS: dict[str, Callable] = {
    "moCallRecord": _call,
    "mtCallRecord": _call,
    "moSMSRecord": _sms,
    "mtSMSRecord": _sms,
    "pGWRecord": _pgw,
}


def decode_record(index: int, ts_number: int, record_format: int, raw: bytes, context: _Context) -> DecodedRecord:
    if record_format != BER:
        name = DATA_RECORD_FORMATS.get(record_format, f"format {record_format}")
        return DecodedRecord(index, raw, error=f"data record format {name}: only BER is decoded")
    try:
        kind, values = decode_ber(ts_number, raw)
        mapper = _MAPPERS.get(kind)
        if mapper is None:
            return DecodedRecord(
                index, raw, charged=False, not_charged_reason=f"{kind}: not a record this platform bills"
            )
        cdr, not_charged, partial, start = mapper(kind, values, context)
    except RecordError as exc:
        return DecodedRecord(index, raw, error=str(exc))
    except (KeyError, TypeError, ValueError) as exc:  # a value of an unexpected shape
        return DecodedRecord(index, raw, error=f"unexpected value: {type(exc).__name__}: {exc}")
    if cdr is None:
        return DecodedRecord(
            index, raw, charged=False, not_charged_reason=not_charged, partial=partial, record_time=start
        )
    return DecodedRecord(index, raw, cdr=cdr, partial=partial, record_time=start)


def decode_file(data: bytes, profile: SourceProfile) -> DecodedFile:
    """The file header and every record of a TS 32.297 file, in file order."""
    fields, header_length = _parse_header(data)
    frames = _frames(data, header_length)
    context = _Context(profile)
    records = [decode_record(i, ts, fmt, raw, context) for i, (ts, fmt, raw) in enumerate(frames)]
    first_time = next((r.record_time for r in records if r.record_time is not None), None)
    return DecodedFile(_file_header(fields, first_time or datetime.now(UTC)), records)
