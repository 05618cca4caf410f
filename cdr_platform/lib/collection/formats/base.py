"""What every file format's decoder gives the collector: the contract between the two.

A decoder reads one whole file (bytes) of one source and returns a `DecodedFile`: the file's own
header when the format has one (TS 32.297), and one `DecodedRecord` per record, in file order.
Every record of the file is returned - decoded, undecodable, or not chargeable - so the collector
can account for each one: records read = published + not chargeable, and an undecodable record is
published as a reject naming its file and index (never dropped).

A file that cannot be decoded at all (not the format, a broken file header, truncated framing)
raises `FileFormatError`: the collector moves it to quarantine/ with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime


class FileFormatError(ValueError):
    """The file as a whole is not readable in its format; the message says why (quarantine reason)."""


@dataclass(frozen=True)
class SourceProfile:
    """What a source (a network element of a declared format) adds to records that lack it.

    `cell_id` and `technology`: a PBX or a SIP proxy reports no radio cell; their CDRs carry the
    source's declared ones (a cell of the operator's catalogue), so mediation's rules still hold.
    `timezone`: the IANA zone of times a format writes without an offset (Asterisk's Master.csv
    writes the PBX's local time unless it runs with usegmtime).
    """

    name: str
    format: str
    cell_id: str | None = None
    technology: str | None = None
    timezone: str = "UTC"


@dataclass(frozen=True)
class FileHeader:
    """The file's own description, when its format has one (TS 32.297's file header)."""

    sequence_number: int | None = None  # the file sequence number the node wrote
    record_count: int | None = None  # the number of CDRs the header announces
    opened_at: datetime | None = None  # file opening timestamp, aware
    closed_at: datetime | None = None  # last CDR append timestamp, aware
    node_address: str | None = None  # the node's IP address
    details: dict = field(default_factory=dict)  # anything else worth showing (release, trigger...)


@dataclass(frozen=True)
class Partial:
    """A record that is one part of a longer call or session (TS 32.298 partial records).

    `chain_id` names the logical CDR: deterministic from the record's identity (for a PGW record:
    node address + charging id; for an MSC record: node + call reference). `sequence` is the
    record sequence number (1, 2, ...); `last` is true when the cause for record closing says the
    call or session ended (normal release, abnormal release...), false for partial closings
    (time limit, volume limit, change of conditions...).
    """

    chain_id: str
    sequence: int
    last: bool


@dataclass(frozen=True)
class DecodedRecord:
    """One record of a file, in file order (`index` counts from 0).

    Exactly one of these holds:
    - `cdr` is a cdr.v1 message (a dict of lib.schema.FIELDS, JSON-ready, `record_id`
      deterministic from the record's own identity) and `error` is None: publish it;
    - `error` says why the record could not be turned into a cdr.v1 message (undecodable,
      a mandatory element missing...): published as a reject with its origin;
    - `charged` is False (an unanswered or busy call, a disposition other than ANSWERED): read,
      counted, not published; `not_charged_reason` says why.
    `raw` is the record's original bytes (a BER record) or line (CSV, one acc line), for the reject
    store and for tracing a CDR back to the file.
    """

    index: int
    raw: bytes
    cdr: dict | None = None
    error: str | None = None
    charged: bool = True
    not_charged_reason: str | None = None
    partial: Partial | None = None
    record_time: datetime | None = None  # when the call or session started, aware (ledger's first/last)


@dataclass(frozen=True)
class DecodedFile:
    header: FileHeader | None
    records: Iterable[DecodedRecord]
