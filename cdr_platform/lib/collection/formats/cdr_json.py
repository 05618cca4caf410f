"""cdr.v1 JSON files: the platform's own messages, one JSON object per line (JSON Lines).

Each non-blank line is a record, taken as the message it would have been on Kafka: mediation
judges it (this module checks only that it is a JSON object). A line that is not one is an
undecodable record, reported with its index. Blank lines are not records.
"""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from cdr_platform.lib.collection.formats.base import DecodedFile, DecodedRecord, FileFormatError, SourceProfile
from cdr_platform.lib.collection.formats.common import SNIFF_BYTES, first_text_line


def looks_like(data: bytes) -> bool:
    """The first non-blank line is a JSON object that names a schema version."""
    first = first_text_line(data)
    if first is None or not first.lstrip().startswith(b"{"):
        return False
    try:
        doc = orjson.loads(first)
    except orjson.JSONDecodeError:
        return b'"schema_version"' in first
    return isinstance(doc, dict) and "schema_version" in doc


def _record_time(value: object) -> datetime | None:
    """The record's start for the ledger's first and last record times (mediation judges it)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def decode_file(data: bytes, profile: SourceProfile) -> DecodedFile:
    if b"\x00" in data[:SNIFF_BYTES]:
        raise FileFormatError("binary content: not a JSON Lines file")
    return DecodedFile(header=None, records=_records(data))


def _records(data: bytes):
    index = 0
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield DecodedRecord(index=index, raw=line, error=f"not JSON: {exc}")
        else:
            if isinstance(doc, dict):
                yield DecodedRecord(index=index, raw=line, cdr=doc, record_time=_record_time(doc.get("start_time")))
            else:
                yield DecodedRecord(index=index, raw=line, error=f"a JSON {type(doc).__name__}, not an object")
        index += 1
