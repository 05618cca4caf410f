"""What the decoders share: cdr.v1's time text, deterministic record ids, line errors and numbers."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

from cdr_platform.lib.schema import is_valid_record_id

_NUMBER_PATTERN = re.compile(r"\+?[0-9]{3,15}")
SNIFF_BYTES = 4096  # how much of a file format detection reads


def first_text_line(data: bytes) -> bytes | None:
    """The first non-blank line of a text file's start, for format detection; None for binary
    content (a NUL byte) or a blank start."""
    head = data[:SNIFF_BYTES]
    if b"\x00" in head:
        return None
    return next((line for line in head.split(b"\n") if line.strip()), None)


class LineError(ValueError):
    """A line (or one of its values) that cannot be turned into a cdr.v1 record; says why."""


def cdr_time_text(instant: datetime) -> str:
    """cdr.v1's start_time: ISO-8601 UTC with milliseconds and "Z", "2026-11-25T10:15:00.000Z"."""
    utc = instant.astimezone(UTC) if instant.tzinfo is not None else instant
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T"
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}.{utc.microsecond // 1000:03d}Z"
    )


def hashed_record_id(prefix: str, *identity: str | bytes) -> str:
    """A deterministic record id from identity parts: prefix + 40 hex digits of their SHA-256."""
    digest = hashlib.sha256()
    for part in identity:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\x00")  # ("ab", "c") and ("a", "bc") are different identities
    return f"{prefix}-{digest.hexdigest()[:40]}"


def readable_record_id(prefix: str, *identity: object) -> str:
    """The identity parts joined with '-' when that is a valid record id (people can read it back to
    the network element's own ids), else their hash (hashed_record_id)."""
    readable = "-".join([prefix, *(str(part) for part in identity)])
    return readable if is_valid_record_id(readable) else hashed_record_id(prefix, *(str(p) for p in identity))


def telephone_number(value: str, column: str) -> str:
    """The number as the switch wrote it, without visual separators; mediation normalises it."""
    number = re.sub(r"[\s().-]", "", value)
    if not _NUMBER_PATTERN.fullmatch(number):
        raise LineError(f"{column} is not a telephone number: {value!r}")
    return number
