"""Asterisk's cdr_csv backend: Master.csv, one CDR per line, to cdr.v1 voice records.

The columns, in the order cdr_csv.c writes them (build_csv_record):

    accountcode, src, dst, dcontext, clid, channel, dstchannel, lastapp, lastdata,
    start, answer, end, duration, billsec, disposition, amaflags

then the optional ones, in this order, as cdr.conf's [csv] section enables them:

    uniqueid (loguniqueid=yes), userfield (loguserfield=yes),
    peeraccount, linkedid, sequence (newcdrcolumns=yes)

Text columns and times are double-quoted (a quote inside doubled), numbers are not; a time not
reached (no answer) is an empty field. Times are "YYYY-MM-DD HH:MM:SS", the PBX's local time
unless usegmtime=yes: they carry no offset and are read in the source profile's time zone. A
line of 17 or 20 columns holds one of uniqueid and userfield: it is the uniqueid when it has a
uniqueid's shape ("[systemname-]<epoch>.<counter>"), else the userfield.

A line becomes an outgoing voice record from `src` (served) to `dst` (other party):
- start_time is the answer time (the charged part of the call), the start time if unanswered;
  both are written in UTC with milliseconds. In the hour a DST change repeats, the reading of a
  time that agrees with the line's own billsec (or duration) is taken; a local time that does
  not exist in the zone (a DST gap) is an error: the profile names the wrong zone.
- duration_s is billsec (answer to hangup, the charged duration);
- cell_id and technology are the profile's (a PBX reports no radio cell);
- record_id is the source name and uniqueid (and sequence) when present and short enough for
  lib.schema.RECORD_ID_REGEX, else a hash of them or, without a uniqueid, of the line.

Not charged (read, counted, not published): a disposition other than ANSWERED (NO ANSWER, BUSY,
FAILED, CONGESTION: the reason is the disposition), an ANSWERED call with billsec 0 (nothing to
charge; mediation would reject a voice call of 0 s), and amaflags OMIT (the PBX marks the call as
not for billing).

A line that cannot be read (a wrong number of columns, a time or number that does not parse, a
party that is not a telephone number) is a record with an `error`; the file goes on. Blank lines
are not records. An empty file has no records; a binary file, or one none of whose lines has the
columns of Master.csv, is not this format (FileFormatError).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cdr_platform.lib.collection.formats.base import DecodedFile, DecodedRecord, FileFormatError, SourceProfile
from cdr_platform.lib.collection.formats.common import (
    LineError,
    cdr_time_text,
    first_text_line,
    hashed_record_id,
    readable_record_id,
    telephone_number,
)
from cdr_platform.lib.schema import SCHEMA_VERSION

BASE_COLUMNS = (
    "accountcode",
    "src",
    "dst",
    "dcontext",
    "clid",
    "channel",
    "dstchannel",
    "lastapp",
    "lastdata",
    "start",
    "answer",
    "end",
    "duration",
    "billsec",
    "disposition",
    "amaflags",
)
NEW_CDR_COLUMNS = ("peeraccount", "linkedid", "sequence")
# the layouts cdr_csv can write, by their column count (17 and 20 are settled per line)
LAYOUTS: dict[int, tuple[str, ...]] = {
    16: BASE_COLUMNS,
    18: BASE_COLUMNS + ("uniqueid", "userfield"),
    19: BASE_COLUMNS + NEW_CDR_COLUMNS,
    21: BASE_COLUMNS + ("uniqueid", "userfield") + NEW_CDR_COLUMNS,
}
_ONE_OPTIONAL_COLUMN = {17: 16, 20: 16}  # column count -> position of the uniqueid-or-userfield column
_COUNTS = (*LAYOUTS, *_ONE_OPTIONAL_COLUMN)

ANSWERED = "ANSWERED"
NOT_ANSWERED_DISPOSITIONS = ("NO ANSWER", "BUSY", "FAILED", "CONGESTION")
AMA_OMIT = "OMIT"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

_UNIQUEID_PATTERN = re.compile(r"(?:[A-Za-z0-9_.-]+-)?[0-9]{9,11}\.[0-9]+")
_TIME_PATTERN = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")


def looks_like(data: bytes) -> bool:
    """The first non-blank line has Master.csv's columns, a start time where cdr_csv writes it."""
    line = first_text_line(data)
    if line is None:
        return False
    try:
        fields = _fields(line)
    except LineError:
        return False
    return _layout(fields) is not None and _TIME_PATTERN.fullmatch(fields[9]) is not None


def decode_file(data: bytes, profile: SourceProfile) -> DecodedFile:
    if b"\x00" in data:
        raise FileFormatError("binary content: not an Asterisk Master.csv")
    zone = profile_zone(profile)
    lines = [line for line in data.split(b"\n") if line.strip()]
    if lines and not any(_has_master_csv_columns(line) for line in lines):
        raise FileFormatError(
            f"no line has the columns of an Asterisk Master.csv ({', '.join(map(str, sorted(_COUNTS)))})"
        )
    return DecodedFile(header=None, records=_records(lines, profile, zone))


def profile_zone(profile: SourceProfile) -> ZoneInfo:
    try:
        return ZoneInfo(profile.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise FileFormatError(f"the source's time zone {profile.timezone!r} is not an IANA zone") from exc


def _records(lines: list[bytes], profile: SourceProfile, zone: ZoneInfo) -> Iterator[DecodedRecord]:
    for index, line in enumerate(lines):
        raw = line.rstrip(b"\r")
        try:
            yield _record(index, raw, profile, zone)
        except LineError as exc:
            yield DecodedRecord(index=index, raw=raw, error=str(exc))


def _record(index: int, raw: bytes, profile: SourceProfile, zone: ZoneInfo) -> DecodedRecord:
    fields = _fields(raw)
    columns = _layout(fields)
    if columns is None:
        raise LineError(f"{len(fields)} columns; Master.csv lines have {', '.join(map(str, sorted(_COUNTS)))}")
    row = dict(zip(columns, fields, strict=True))
    duration = _count(row, "duration")
    billsec = _count(row, "billsec")
    end = _local_time(row, "end", zone)
    if end is None:
        raise LineError("no end time")
    answered_at = _local_time(row, "answer", zone)
    if answered_at is not None:
        start = _closest_reading(answered_at, end, billsec)
    else:
        started_at = _local_time(row, "start", zone)
        if started_at is None:
            raise LineError("neither an answer nor a start time")
        start = _closest_reading(started_at, end, duration)

    disposition = row["disposition"].strip().upper()
    if disposition in NOT_ANSWERED_DISPOSITIONS:
        return DecodedRecord(index=index, raw=raw, charged=False, not_charged_reason=disposition, record_time=start)
    if disposition != ANSWERED:
        raise LineError(f"unknown disposition {row['disposition']!r}")
    if row["amaflags"].strip().upper() == AMA_OMIT:
        return DecodedRecord(index=index, raw=raw, charged=False, not_charged_reason="amaflags OMIT", record_time=start)
    if billsec == 0:
        # answered and hung up within the same second: nothing to charge (mediation would
        # reject a voice call of 0 s as NON_POSITIVE_DURATION)
        return DecodedRecord(
            index=index, raw=raw, charged=False, not_charged_reason="ANSWERED with billsec 0", record_time=start
        )

    cdr = {
        "schema_version": SCHEMA_VERSION,
        "record_id": _record_id(profile, row, raw),
        "record_type": "voice",
        "served_msisdn": telephone_number(row["src"], "src"),
        "other_msisdn": telephone_number(row["dst"], "dst"),
        "direction": "outgoing",
        "start_time": cdr_time_text(start),
        "duration_s": billsec,
        "data_volume_bytes": None,
        "cell_id": profile.cell_id,
        "technology": profile.technology,
        "roaming": False,
        "visited_network": None,
    }
    return DecodedRecord(index=index, raw=raw, cdr=cdr, record_time=start)


def _fields(line: bytes) -> list[str]:
    try:
        text = line.rstrip(b"\r").decode("utf-8")
    except UnicodeDecodeError:
        text = line.rstrip(b"\r").decode("latin-1")  # a caller name in a legacy encoding
    try:
        rows = list(csv.reader([text], strict=True))
    except csv.Error as exc:
        raise LineError(f"not a CSV line: {exc}") from exc
    return rows[0] if rows else []


def _has_master_csv_columns(line: bytes) -> bool:
    try:
        return _layout(_fields(line)) is not None
    except LineError:
        return False


def _layout(fields: list[str]) -> tuple[str, ...] | None:
    """The column names of a line, from its column count (and for 17 or 20, its extra column's shape)."""
    count = len(fields)
    if count in LAYOUTS:
        return LAYOUTS[count]
    if count not in _ONE_OPTIONAL_COLUMN:
        return None
    position = _ONE_OPTIONAL_COLUMN[count]
    optional = "uniqueid" if _UNIQUEID_PATTERN.fullmatch(fields[position]) else "userfield"
    return BASE_COLUMNS + (optional,) + (NEW_CDR_COLUMNS if count == 20 else ())


def _count(row: dict[str, str], column: str) -> int:
    value = row[column].strip()
    if not value.isdigit():
        raise LineError(f"{column} is not a number of seconds: {row[column]!r}")
    return int(value)


def _local_time(row: dict[str, str], column: str, zone: ZoneInfo) -> tuple[datetime, ...] | None:
    """The UTC instants a local time of the line can be: one, or two in the hour a DST change repeats."""
    value = row[column].strip()
    if not value:
        return None
    if not _TIME_PATTERN.fullmatch(value):
        raise LineError(f"{column} is not a time: {row[column]!r}")
    try:
        wall = datetime.strptime(value, TIME_FORMAT)
    except ValueError as exc:
        raise LineError(f"{column} is not a time: {row[column]!r}") from exc
    readings = []
    for fold in (0, 1):
        instant = wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)
        # a wall time in a DST gap comes back as another wall time: the zone never showed it
        if instant.astimezone(zone).replace(tzinfo=None) == wall and instant not in readings:
            readings.append(instant)
    if not readings:
        raise LineError(f"{column} {value} does not exist in {zone.key} (a DST gap): wrong time zone?")
    return tuple(readings)


def _closest_reading(starts: tuple[datetime, ...], ends: tuple[datetime, ...], seconds: int) -> datetime:
    """The reading of the start that, with a reading of the end, spans the line's own seconds best."""
    expected = timedelta(seconds=seconds)
    best = min(((s, e) for s in starts for e in ends), key=lambda pair: abs((pair[1] - pair[0]) - expected))
    return best[0]


def _record_id(profile: SourceProfile, row: dict[str, str], raw: bytes) -> str:
    uniqueid = row.get("uniqueid", "").strip()
    if not uniqueid:
        return hashed_record_id("ast", profile.name, raw)
    # one channel can leave several CDRs (transfers, forks): newcdrcolumns' sequence tells them apart
    identity = [profile.name, uniqueid] + ([row["sequence"].strip()] if row.get("sequence", "").strip() else [])
    return readable_record_id("ast", *identity)
