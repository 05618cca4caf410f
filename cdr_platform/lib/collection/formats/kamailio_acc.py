"""Kamailio's acc module, dialog-based CDRs (cdr_enable) written by db_flatstore, to cdr.v1.

A SIP proxy with the dialog and acc modules writes one CDR when a call (dialog) ends; with
`db_url = "flatstore:<dir>"` and `cdrs_table = "acc_cdrs"`, db_flatstore appends it as a line to
`<dir>/acc_cdrs_<process rank>.log` - the acc module's own flat-file backend: append-only, flushed
after each CDR, rotated by renaming the files and `kamcmd flatstore.k_rotate`. (db_text, the other
text backend, rewrites whole tables at shutdown only; syslog mixes CDRs with the log.)

A line is the columns the acc module inserts, separated by '|' (a '|' inside a value is written
%7C, flatstore's encode_delimiter):

    start_time|end_time|duration|callid|from_tag|caller|callee|sip_code|sip_reason

- start_time, end_time: Unix seconds (acc's time_mode 0 stores times as datetimes, which
  db_flatstore writes as seconds since the epoch): UTC by definition, no zone to guess;
- duration: seconds with decimals;
- the rest is `cdr_extra` (CDR_EXTRA below), which the proxy's configuration must declare in this
  order (cdr_platform_tests/sip/kamailio.cfg): the dialog's Call-ID and From-tag, the caller's
  From URI, the dialled Request-URI, and the final SIP status code and reason of the INVITE.

With `cdr_start_on_confirmed = 1` the start is the answer and the duration the talk time: the
charged part of the call. With `cdr_on_failed = 1` (the default) a call that was not answered is
written too, with duration 0 and its final status (486 Busy Here, 487 Request Terminated after a
CANCEL, 480...).

A line becomes an outgoing voice record from the caller's user part (served) to the callee's
(sip:+212612345678@host, sip:0612345678@host, tel:+212612345678); duration_s is the duration
rounded to the nearest second; cell_id and technology are the profile's (a SIP proxy reports no
radio cell); record_id is a hash of the Call-ID and From-tag (a dialog's identity, unique by SIP's
rules), so collecting a file again gives the same ids.

Not charged (read, counted, not published): a final status other than 2xx (the reason is the
status, "SIP 486 Busy Here"), and an answered call shorter than half a second (0 s to charge).
A line that cannot be read (a wrong number of columns, a time or number that does not parse, a
party that is not a telephone number) is a record with an `error`; the file goes on. Blank lines
are not records; a binary file, or one none of whose lines has these columns, is not this format.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import unquote

from cdr_platform.lib.collection.formats.base import DecodedFile, DecodedRecord, FileFormatError, SourceProfile
from cdr_platform.lib.collection.formats.common import (
    LineError,
    cdr_time_text,
    first_text_line,
    hashed_record_id,
    telephone_number,
)
from cdr_platform.lib.schema import SCHEMA_VERSION

CORE_COLUMNS = ("start_time", "end_time", "duration")
# the proxy's cdr_extra, in order: "callid=$dlg_var(callid);from_tag=...;sip_reason=$dlg_var(sip_reason)"
CDR_EXTRA = ("callid", "from_tag", "caller", "callee", "sip_code", "sip_reason")
COLUMNS = CORE_COLUMNS + CDR_EXTRA
DELIMITER = b"|"

_EPOCH_SECONDS = re.compile(r"[0-9]{1,11}")
_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_SIP_STATUS = re.compile(r"[1-6][0-9]{2}")


def looks_like(data: bytes) -> bool:
    """The first non-blank line has the columns of an acc_cdrs line, with Unix times first."""
    line = first_text_line(data)
    return line is not None and _has_acc_cdr_columns(line)


def decode_file(data: bytes, profile: SourceProfile) -> DecodedFile:
    if b"\x00" in data:
        raise FileFormatError("binary content: not a Kamailio acc CDR file")
    lines = [line for line in data.split(b"\n") if line.strip()]
    if lines and not any(_has_acc_cdr_columns(line) for line in lines):
        raise FileFormatError(f"no line has the {len(COLUMNS)} columns of an acc_cdrs line ({'|'.join(COLUMNS)})")
    return DecodedFile(header=None, records=_records(lines, profile))


def _has_acc_cdr_columns(line: bytes) -> bool:
    fields = line.rstrip(b"\r").split(DELIMITER)
    return (
        len(fields) == len(COLUMNS)
        and _EPOCH_SECONDS.fullmatch(fields[0].decode("latin-1")) is not None
        and _SECONDS.fullmatch(fields[2].decode("latin-1")) is not None
    )


def _records(lines: list[bytes], profile: SourceProfile) -> Iterator[DecodedRecord]:
    for index, line in enumerate(lines):
        raw = line.rstrip(b"\r")
        try:
            yield _record(index, raw, profile)
        except LineError as exc:
            yield DecodedRecord(index=index, raw=raw, error=str(exc))


def _record(index: int, raw: bytes, profile: SourceProfile) -> DecodedRecord:
    fields = raw.split(DELIMITER)
    if len(fields) != len(COLUMNS):
        raise LineError(f"{len(fields)} columns; an acc_cdrs line has {len(COLUMNS)} ({'|'.join(COLUMNS)})")
    # flatstore's %7C and SIP's own escapes (%2B for '+') read the same way
    row = {name: unquote(value.decode("utf-8", errors="replace")) for name, value in zip(COLUMNS, fields, strict=True)}
    start = _instant(row, "start_time")
    _instant(row, "end_time")  # a broken end is a broken record, even though the duration is given
    if not _SECONDS.fullmatch(row["duration"]):
        raise LineError(f"duration is not a number of seconds: {row['duration']!r}")
    # nearest second, halves up (as Asterisk rounds billsec)
    duration_s = math.floor(float(row["duration"]) + 0.5)
    if not row["callid"] or not row["from_tag"]:
        raise LineError("no Call-ID or From-tag: the dialog's identity (cdr_extra) is missing")

    status = row["sip_code"].strip()
    if not _SIP_STATUS.fullmatch(status):
        raise LineError(f"sip_code is not a SIP status code: {row['sip_code']!r}")
    if not status.startswith("2"):
        reason = f"SIP {status} {row['sip_reason'].strip()}".rstrip()
        return DecodedRecord(index=index, raw=raw, charged=False, not_charged_reason=reason, record_time=start)
    if duration_s == 0:
        return DecodedRecord(
            index=index, raw=raw, charged=False, not_charged_reason="answered, under half a second", record_time=start
        )

    cdr = {
        "schema_version": SCHEMA_VERSION,
        "record_id": hashed_record_id("kam", row["callid"], row["from_tag"]),
        "record_type": "voice",
        "served_msisdn": telephone_number(uri_user(row["caller"]), "caller"),
        "other_msisdn": telephone_number(uri_user(row["callee"]), "callee"),
        "direction": "outgoing",
        "start_time": cdr_time_text(start),
        "duration_s": duration_s,
        "data_volume_bytes": None,
        "cell_id": profile.cell_id,
        "technology": profile.technology,
        "roaming": False,
        "visited_network": None,
    }
    return DecodedRecord(index=index, raw=raw, cdr=cdr, record_time=start)


def _instant(row: dict[str, str], column: str) -> datetime:
    value = row[column].strip()
    if not _EPOCH_SECONDS.fullmatch(value):
        raise LineError(f"{column} is not a Unix time: {row[column]!r}")
    return datetime.fromtimestamp(int(value), UTC)


def uri_user(uri: str) -> str:
    """The user part of a SIP or tel URI: sip:+212612345678@10.0.0.1;transport=udp -> +212612345678."""
    text = uri.strip()
    if "<" in text:  # a name-addr: "Alice" <sip:...>
        text = text[text.find("<") + 1 : text.rfind(">")]
    scheme, _, rest = text.partition(":")
    if scheme.lower() == "tel":
        return rest.split(";", 1)[0]
    if scheme.lower() not in ("sip", "sips") or "@" not in rest:
        raise LineError(f"not a SIP URI with a user part: {uri!r}")
    # user parameters (sip:+212...;npdi@host) are not part of the number
    return rest.rsplit("@", 1)[0].split(";", 1)[0]
