"""Collect one CDR file: check it as a file, decode it, publish its records to raw-cdrs, file it away.

    1. The file's SHA-256: a file already in the ledger is not read again (collecting it again
       changes nothing), unless its collection died while publishing (status `collecting`).
    2. The source: declared by its first collection, with the format given or detected from the
       bytes; a later file of the source is read in the declared format.
    3. Decoding as a whole: a file not readable in its format (broken header, framing) is
       quarantined with the reason, unread.
    4. The file sequence number (the TS 32.297 header's, else the last number in the file name for
       the formats whose names carry one, formats.NAME_SEQUENCE_FORMATS):
       one the source already delivered in another file is a duplicate file, refused unread.
    5. The same call collected before under another id (by a second source, or in a file sent
       again renamed: same parties, type and duration, starts within CDR_DUPLICATE_CONTENT_TOLERANCE_S)
       is published marked `duplicate_of` the record kept, and mediation rejects it
       DUPLICATE_CONTENT: never rated twice. (ledger.content_duplicates; the calls' fingerprints
       are written before any record is published.)
    6. A partial record of a long call or session goes to the partials topic, keyed by its chain,
       for `cdr stitch` to make one CDR of each chain (lib.collection.stitching).
    7. Every record accounted for: a decoded CDR is published as a cdr.v1 message, an undecodable
       record as a message mediation rejects (UNDECODABLE_RECORD), each carrying its `origin`
       (source, file, index, the original bytes) so that any reject names where it came from; a
       call that was not charged (unanswered, busy) is counted and not published.
    8. The ledger row says collected, with its counts, and the file goes to `archive/`.

Records keep deterministic ids, so a file published twice (a collector that died between
publishing and step 6, then ran again) is rated once: mediation rejects the second copies as
DUPLICATE. The publisher is passed in (lib.ingest's producers), so this module stays independent.
"""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from cdr_platform.lib.collection import ledger
from cdr_platform.lib.collection.formats import FORMATS, NAME_SEQUENCE_FORMATS, decoder, detect_format
from cdr_platform.lib.collection.formats.base import DecodedRecord, FileFormatError, SourceProfile
from cdr_platform.lib.reference.numbering_plan import normalise_msisdn
from cdr_platform.lib.schema import (
    DUPLICATE_OF_MARK,
    SCHEMA_HEADER,
    SCHEMA_HEADER_VALUE,
    SCHEMA_VERSION,
    UNDECODABLE_MARK,
)

ARCHIVE, QUARANTINE = "archive", "quarantine"
SOURCE_HEADER = "cdr-source"  # Kafka header: the source a collected record came from
# the original record rides along in the message up to this size (a BER record or a CSV line is
# far smaller); a bigger one is named by its SHA-256 only, so no message nears the payload limit
ORIGIN_RECORD_MAX_BYTES = 8192
# a published record's message at most (mediation's CDR_MEDIATION_MAX_PAYLOAD_BYTES default): a
# bigger one is published as an undecodable record (its origin naming the original by SHA-256)
MAX_MESSAGE_BYTES = 65_536
# a file bigger than this is quarantined unread (it would be read whole): network elements close
# their files at a few MB
MAX_FILE_BYTES = 512 * 2**20
# a TS 32.297 file sequence number is 4 octets; a decoder's header details may say otherwise
# (`sequence_min`, `sequence_max`); numbers from a file name run from 0 to the width's maximum
THREEGPP_SEQUENCE_MAX = 2**32 - 1
SOURCE_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# the last run of digits of a file name, before its extensions: "MSC01_20261125_000123.ber" -> 000123
_NAME_SEQUENCE = re.compile(r"(\d+)(?=(?:\.[A-Za-z][A-Za-z0-9]*)*$)")
# a file being written: taken only once renamed
IN_PROGRESS_SUFFIXES = (".tmp", ".part")


# formats whose records name no radio cell (a PBX, a SIP proxy): their source declares one
CELL_LESS_FORMATS = ("asterisk-csv", "kamailio-acc")


@dataclass(frozen=True)
class SourceDeclaration:
    """What a source seen for the first time is declared with, beyond its format."""

    cell_id: str | None = None
    technology: str | None = None
    timezone: str = "UTC"


class CollectionError(ValueError):
    """The collection cannot start (a bad source name, a format contradicting the declared one)."""


class Publisher(Protocol):
    """What collection needs of a Kafka producer (lib.ingest.producers.CdrProducer has it)."""

    stats: object  # .failed, .first_error

    def send(self, topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> None: ...

    def flush(self, timeout_s: float = 60.0) -> None: ...


@dataclass
class FileOutcome:
    """What became of one file (also what `cdr collect` prints, one line per file)."""

    path: Path
    source: str
    status: str  # collected | duplicate | quarantined | already collected | already refused as a duplicate
    sha256: str
    file_format: str | None = None
    sequence_number: int | None = None
    records_read: int = 0
    published: int = 0
    not_charged: int = 0
    undecodable: int = 0
    duplicate_content: int = 0
    partials: int = 0  # published to the partials topic, for stitching
    reason: str | None = None
    moved_to: Path | None = None
    seconds: float = 0.0
    not_charged_reasons: dict[str, int] = field(default_factory=dict)

    @property
    def refused(self) -> bool:
        return self.status in (ledger.DUPLICATE, ledger.QUARANTINED)

    def summary(self) -> str:
        sequence = f" #{self.sequence_number}" if self.sequence_number is not None else ""
        line = f"{self.path.name} ({self.source}{sequence}): {self.status}"
        if self.status == ledger.COLLECTED:
            line += (
                f", {self.records_read:,} records: {self.published:,} published"
                f" ({self.undecodable:,} of them undecodable, {self.duplicate_content:,} calls collected before),"
                f" {self.not_charged:,} not charged"
            )
        if self.reason:
            line += f" - {self.reason}"
        return line


def name_sequence(file_name: str) -> tuple[int, int] | None:
    """(sequence number, where it wraps) from the last run of digits in a file name, if any."""
    match = _NAME_SEQUENCE.search(file_name)
    if not match:
        return None
    digits = match.group(1)
    return int(digits), 10 ** len(digits) - 1


def check_source_name(name: str) -> str:
    if not SOURCE_NAME_PATTERN.fullmatch(name):
        raise CollectionError(
            f"source name {name!r}: letters, digits, '_', '.', '-' (at most 64), starting with a letter or digit"
        )
    return name


def check_time_zone(zone: str) -> str:
    """A source's zone is checked when it is declared, not at its first file's decoding."""
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise CollectionError(f"time zone {zone!r} is not an IANA zone (for example Africa/Casablanca)") from None
    return zone


def fingerprint_of(record: DecodedRecord) -> ledger.Fingerprint | None:
    """A charged, decoded call's content (None for anything mediation will reject anyway)."""
    cdr = record.cdr
    if record.error is not None or not record.charged or not cdr:
        return None
    record_id, served, other, start = (cdr.get(k) for k in ("record_id", "served_msisdn", "other_msisdn", "start_time"))
    if not (isinstance(record_id, str) and isinstance(served, str) and isinstance(start, str)):
        return None
    try:
        instant = datetime.fromisoformat(start)
    except ValueError:
        return None
    duration = cdr.get("duration_s")
    return ledger.Fingerprint(
        record_id=record_id[:64],
        served_msisdn=normalise_msisdn(served)[:32],
        other_msisdn=normalise_msisdn(other)[:32] if isinstance(other, str) and other.strip() else None,
        record_type=str(cdr.get("record_type"))[:8],
        duration_s=duration if isinstance(duration, int) and not isinstance(duration, bool) else None,
        start_time=(instant.astimezone(UTC) if instant.tzinfo else instant).replace(tzinfo=None),
    )


def undecodable_record_id(source: str, sha256: str, index: int) -> str:
    """A deterministic id for a record that has none of its own (it could not be decoded)."""
    return f"undecodable.{source[:24]}.{sha256[:20]}.{index}"


def origin_of(source: str, file_name: str, sha256: str, record: DecodedRecord) -> dict:
    """Where a record came from, as the message carries it (and a reject keeps it)."""
    origin = {"source": source, "file": file_name, "file_sha256": sha256, "index": record.index}
    if len(record.raw) <= ORIGIN_RECORD_MAX_BYTES:
        origin["record"] = base64.b64encode(record.raw).decode("ascii")
    else:
        origin["record_sha256"] = hashlib.sha256(record.raw).hexdigest()
        origin["record_bytes"] = len(record.raw)
    return origin


def message_of(
    source: str, file_name: str, sha256: str, record: DecodedRecord, duplicate_of: str | None = None
) -> tuple[bytes, bytes]:
    """(Kafka key, value) of a published record: its cdr.v1 message, or the undecodable record as a
    message mediation rejects with its reason; `duplicate_of`: the record id of the same call
    collected before (mediation rejects it DUPLICATE_CONTENT, the payload naming the one kept)."""
    origin = origin_of(source, file_name, sha256, record)
    if record.error is not None:
        doc = {
            "schema_version": SCHEMA_VERSION,
            "record_id": undecodable_record_id(source, sha256, record.index),
            UNDECODABLE_MARK: record.error[:500],
            "origin": origin,
        }
        return source.encode(), orjson.dumps(doc)
    doc = {**record.cdr, "origin": origin}
    if duplicate_of is not None:
        doc[DUPLICATE_OF_MARK] = duplicate_of
    if record.partial is not None:
        doc["partial"] = {
            "chain_id": record.partial.chain_id,
            "sequence": record.partial.sequence,
            "last": record.partial.last,
        }
        return record.partial.chain_id.encode(), orjson.dumps(doc)
    served = record.cdr.get("served_msisdn")
    key = served.encode() if isinstance(served, str) else source.encode()
    return key, orjson.dumps(doc)


def _utc(value: datetime | None) -> datetime | None:
    """A naive UTC timestamp for the warehouse (its timestamp columns hold UTC)."""
    return value.astimezone(UTC).replace(tzinfo=None) if value is not None else None


def _file_away(path: Path, folder: Path, sha256: str, reason: str | None, move: bool) -> Path:
    """Move (landing) or copy (by hand) the file into `folder`; a quarantined one gets its reason
    beside it. A name already taken there by other bytes gets the SHA-256's start appended."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    if target.exists() and target.resolve() != path.resolve():
        target = folder / f"{path.name}.{sha256[:12]}"
    if target.resolve() != path.resolve():
        if move:
            shutil.move(str(path), target)
        else:
            shutil.copy2(path, target)
    if reason is not None:
        target.with_name(target.name + ".reason").write_text(reason + "\n")
    return target


def collect_file(
    path: Path,
    *,
    source_name: str,
    format_name: str | None,
    conn,
    tables: ledger.CollectionTables,
    publisher: Publisher,
    topic: str,
    source_folder: Path,
    move: bool,
    declaration: SourceDeclaration | None = None,
    duplicate_tolerance_s: float = 2.0,
    partials_topic: str | None = None,
    max_file_bytes: int = MAX_FILE_BYTES,
    max_message_bytes: int = MAX_MESSAGE_BYTES,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> FileOutcome:
    """Collect the file at `path` for source `source_name` (see the module's steps).

    `source_folder`: the source's folder (its `archive/` and `quarantine/`); `move`: a landing
    file is moved there, a file collected by hand is copied (the user's own stays). `declaration`:
    the cell, technology and time zone of a source seen for the first time (needed by the
    formats that carry no cell, CELL_LESS_FORMATS). `partials_topic`: where partial records go, to
    be stitched into one CDR per chain (lib.collection.stitching); None: to `topic` as they are."""
    started = clock()
    check_source_name(source_name)
    if format_name is not None and format_name not in FORMATS:
        raise CollectionError(f"unknown format {format_name!r}; one of: {', '.join(FORMATS)}")
    size = path.stat().st_size
    if size > max_file_bytes:
        outcome = FileOutcome(path=path, source=source_name, status=ledger.QUARANTINED, sha256="")
        outcome.reason = f"{size:,} bytes: more than the {max_file_bytes:,} a file may have (read whole)"
        outcome.moved_to = _file_away(path, source_folder / QUARANTINE, f"{size:x}", outcome.reason, move)
        return outcome
    data = path.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    outcome = FileOutcome(path=path, source=source_name, status="", sha256=sha256)
    conn.execute(tables.lock_sql())
    try:
        _collect(
            conn, tables, outcome, data, format_name, publisher, topic, source_folder, move, declaration, clock,
            duplicate_tolerance_s, partials_topic, max_message_bytes,
        )  # fmt: skip
    finally:
        conn.execute(tables.lock_sql(release=True))
        conn.commit()
    outcome.seconds = (clock() - started).total_seconds()
    return outcome


def _collect(
    conn, tables, outcome, data, format_name, publisher, topic, source_folder, move, declaration, clock, tolerance_s,
    partials_topic, max_message_bytes,
):  # fmt: skip
    path, sha256, source_name = outcome.path, outcome.sha256, outcome.source
    known = ledger.find_file(conn, tables, sha256)
    if known is not None and known.status == ledger.QUARANTINED:
        # a quarantined file collected again is tried again: its source may be declared by now, or
        # its decoder mended; its row is replaced by what happens this time
        ledger.forget_file(conn, tables, sha256)
        known = None
    if known is not None and known.status != ledger.COLLECTING:
        # the same bytes again: nothing changes; a landing copy leaves the landing folder
        outcome.status = {
            ledger.COLLECTED: "already collected",
            ledger.DUPLICATE: "already refused as a duplicate",
        }[known.status]
        outcome.file_format, outcome.sequence_number = known.file_format, known.sequence_number
        outcome.reason = f"byte-identical to {known.file_name} of {known.source}"
        if move:
            outcome.moved_to = _file_away(path, source_folder / QUARANTINE, sha256, outcome.reason, move)
        return

    received = _utc(clock())
    row = {"sha256": sha256, "source": source_name, "file_name": path.name, "bytes": len(data), "received_at": received}

    def refuse(status: str, reason: str, **extra) -> None:
        outcome.status, outcome.reason = status, reason
        ledger.insert_file(conn, tables, {**row, **extra, "status": status, "reason": reason, "finished_at": received})
        conn.commit()
        outcome.moved_to = _file_away(path, source_folder / QUARANTINE, sha256, reason, move)

    source = ledger.find_source(conn, tables, source_name)
    if source is None:
        chosen = format_name or detect_format(data)
        if chosen is None:
            refuse(ledger.QUARANTINED, f"format not recognised (one of {', '.join(FORMATS)}): give --format")
            return
        declaration = declaration or SourceDeclaration()
        if chosen in CELL_LESS_FORMATS and not (declaration.cell_id and declaration.technology):
            refuse(
                ledger.QUARANTINED,
                f"source {source_name} is not declared, and {chosen} records carry no cell: declare it with "
                f"`cdr collect --source {source_name} --format {chosen} --cell-id CGI --technology 4G "
                "[--timezone ZONE] FILE`",
            )
            return
        source = SourceProfile(source_name, chosen, declaration.cell_id, declaration.technology, declaration.timezone)
        check_time_zone(source.timezone)
        ledger.declare_source(conn, tables, source, received)
        conn.commit()
    elif format_name is not None and format_name != source.format:
        raise CollectionError(f"source {source_name} is declared as {source.format}, not {format_name}")
    outcome.file_format = row["file_format"] = source.format

    try:
        decoded = decoder(source.format).decode_file(data, source)
        records = list(decoded.records)  # framing errors surface here, before anything is published
    except FileFormatError as exc:
        refuse(ledger.QUARANTINED, f"not a readable {source.format} file: {exc}")
        return
    except Exception as exc:  # a decoder's own failure on hostile bytes: this file waits, the rest flows
        refuse(ledger.QUARANTINED, f"the {source.format} decoder failed on this file: {type(exc).__name__}: {exc}")
        return

    header = decoded.header
    if header is not None and header.sequence_number is not None:
        sequence = (
            header.sequence_number,
            header.details.get("sequence_max", THREEGPP_SEQUENCE_MAX),
            header.details.get("sequence_min", 0),
        )
    else:
        named = name_sequence(path.name) if source.format in NAME_SEQUENCE_FORMATS else None
        sequence = (*named, 0) if named else None
    if sequence is not None:
        outcome.sequence_number = row["sequence_number"] = sequence[0]
        row["sequence_max"], row["sequence_min"] = sequence[1], sequence[2]
        earlier = ledger.find_sequence(conn, tables, source_name, sequence[0])
        if earlier is not None and earlier.sha256 != sha256:
            refuse(
                ledger.DUPLICATE,
                f"sequence {sequence[0]} was collected already, from {earlier.file_name}",
                duplicate_of=earlier.sha256,
            )
            return

    notes = []
    if header is not None and header.record_count is not None and header.record_count != len(records):
        notes.append(f"the header announces {header.record_count} CDRs, the file holds {len(records)}")
    # the same call collected before under another id (another source, a file sent again renamed)
    candidates = [f for f in map(fingerprint_of, records) if f is not None]
    if candidates:
        margin = timedelta(seconds=tolerance_s)
        collected_calls = ledger.fingerprints_near(
            conn,
            tables,
            {f.served_msisdn for f in candidates},
            min(f.start_time for f in candidates) - margin,
            max(f.start_time for f in candidates) + margin,
        )
        duplicate_of, new_calls = ledger.content_duplicates(candidates, collected_calls, tolerance_s)
    else:
        duplicate_of, new_calls = {}, []
    if known is None:
        ledger.insert_file(conn, tables, {**row, "status": ledger.COLLECTING, "reason": "; ".join(notes) or None})
    ledger.insert_fingerprints(conn, tables, source_name, sha256, new_calls)
    conn.commit()  # what is being collected, and its calls, before any record is published

    headers = [(SCHEMA_HEADER, SCHEMA_HEADER_VALUE), (SOURCE_HEADER, source_name.encode())]
    times = []
    for record in records:
        outcome.records_read += 1
        if record.error is None and not record.charged:
            outcome.not_charged += 1
            reason = record.not_charged_reason or "not charged"
            outcome.not_charged_reasons[reason] = outcome.not_charged_reasons.get(reason, 0) + 1
            continue
        if record.error is None and record.cdr is None:
            record = DecodedRecord(index=record.index, raw=record.raw, error="the decoder returned no CDR")
        kept = duplicate_of.get(record.cdr.get("record_id")) if record.cdr is not None else None
        key, value = message_of(source_name, path.name, sha256, record, kept)
        if len(value) > max_message_bytes:  # no record of a file may stop the stream: a reject instead
            size = len(value)
            record = DecodedRecord(
                index=record.index,
                raw=record.raw,
                error=f"its message would be {size:,} bytes, more than the {max_message_bytes:,} a CDR may take",
            )
            key, value = message_of(source_name, path.name, sha256, record)
        to_stitch = record.partial is not None and record.error is None and kept is None and partials_topic
        publisher.send(partials_topic if to_stitch else topic, key, value, headers)
        outcome.published += 1
        outcome.partials += bool(to_stitch)
        outcome.undecodable += record.error is not None
        outcome.duplicate_content += kept is not None
        if record.record_time is not None:
            times.append(record.record_time)
    publisher.flush()
    failed = getattr(publisher.stats, "failed", 0)
    if failed:
        raise RuntimeError(
            f"{path.name}: {failed} records were not delivered to {topic} ({publisher.stats.first_error}); "
            "the file stays `collecting`: collect it again (records already delivered are rejected as duplicates)"
        )
    ledger.finish_file(
        conn,
        tables,
        sha256,
        {
            "records_read": outcome.records_read,
            "records_published": outcome.published,
            "records_not_charged": outcome.not_charged,
            "records_undecodable": outcome.undecodable,
            "records_duplicate_content": outcome.duplicate_content,
            "first_record_at": _utc(min(times)) if times else None,
            "last_record_at": _utc(max(times)) if times else None,
            "status": ledger.COLLECTED,
            "finished_at": _utc(clock()),
        },
    )
    conn.commit()
    outcome.status = ledger.COLLECTED
    outcome.reason = "; ".join(notes) or None
    outcome.moved_to = _file_away(path, source_folder / ARCHIVE, sha256, None, move)


def settled_files(source_folder: Path, settle_s: float, now: float) -> list[Path]:
    """The files of a source's landing folder that are complete: not being written (no leading
    '.', no .tmp / .part suffix) and unchanged for `settle_s` seconds. Oldest first."""
    if not source_folder.is_dir():
        return []
    ready = []
    for path in source_folder.iterdir():
        if not path.is_file() or path.name.startswith(".") or path.name.endswith(IN_PROGRESS_SUFFIXES):
            continue
        if path.name.endswith(".reason"):
            continue
        stat = path.stat()
        if now - stat.st_mtime >= settle_s:
            ready.append((stat.st_mtime, path.name, path))
    return [p for _, _, p in sorted(ready)]


def collect_landing(
    landing_dir: Path,
    *,
    settle_s: float,
    conn,
    tables: ledger.CollectionTables,
    publisher: Publisher,
    topic: str,
    now: float,
    duplicate_tolerance_s: float = 2.0,
    partials_topic: str | None = None,
) -> Iterator[FileOutcome]:
    """Collect every settled file of every source folder under `landing_dir` (a folder per source,
    named after it), oldest first; each file is moved to its source's archive/ or quarantine/."""
    if not landing_dir.is_dir():
        return
    for folder in sorted(p for p in landing_dir.iterdir() if p.is_dir() and SOURCE_NAME_PATTERN.fullmatch(p.name)):
        for path in settled_files(folder, settle_s, now):
            yield collect_file(
                path,
                source_name=folder.name,
                format_name=None,
                conn=conn,
                tables=tables,
                publisher=publisher,
                topic=topic,
                source_folder=folder,
                move=True,
                duplicate_tolerance_s=duplicate_tolerance_s,
                partials_topic=partials_topic,
            )
