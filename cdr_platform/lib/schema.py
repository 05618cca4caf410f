"""The CDR schemas: the wire record (version 1) and the clean record mediation stores.

One definition for the generator, mediation, rating, the warehouse, the asset checks and the tests.

The wire record (CDR v1): one JSON object per Kafka message, keyed by served MSISDN.

Fields (JSON types):
    schema_version     int      always 1 for this version
    record_id          string   unique id of the record (UUID); the de-duplication key
    record_type        string   voice | sms | data
    served_msisdn      string   E.164 number of the subscriber the record is billed to
    other_msisdn       string   the other party (voice, sms); E.164, national (0...) or
                                international (00...) format as switches emit it; null for data;
                                mandatory when outgoing, may be absent when incoming
    direction          string   outgoing | incoming (voice, sms); null for data
    start_time         string   ISO-8601 UTC with milliseconds, "2026-11-25T10:15:00.123Z"
    duration_s         int      seconds, > 0 (voice, data); null for sms
    data_volume_bytes  int      bytes up + down (data); null otherwise
    cell_id            string   serving cell, CGI "MCC-MNC-LAC-CI"
    technology         string   2G | 3G | 4G | 5G, or a vendor alias (GSM, UMTS, LTE, NR)
    roaming            bool     true when the cell belongs to a foreign network
    visited_network    string   MCC-MNC of the visited network when roaming, else null

Optional fields that collection adds to the records of network elements' files (mediation does not
judge them; a reject keeps them in its payload):
    origin             object   where the record came from: source, file, file_sha256, index, and
                                `record` (the original bytes, base64) or record_sha256 + record_bytes
    partial            object   a part of a longer call or session: chain_id, sequence, last
    decode_error       string   the record could not be decoded: rejected UNDECODABLE_RECORD
    duplicate_of       string   the record id of the same call collected before (another source, or
                                a file sent again under another name): rejected DUPLICATE_CONTENT

Kafka headers: `cdr-schema` = "cdr.v1"; `injected-error` = the error class, only on records
the generator spoiled on purpose (for tests; mediation must never read it).
"""

from __future__ import annotations

import re

from cdr_platform.lib.warehouse.columns import Column, names

SCHEMA_VERSION = 1
# the field collection sets on a record of a file it could not decode (see the docstring)
UNDECODABLE_MARK = "decode_error"
# the field collection sets on a record that is a call it collected before (see the docstring)
DUPLICATE_OF_MARK = "duplicate_of"
SCHEMA_HEADER = "cdr-schema"
SCHEMA_HEADER_VALUE = b"cdr.v1"
INJECTED_ERROR_HEADER = "injected-error"

RECORD_TYPES = ("voice", "sms", "data")
DIRECTIONS = ("outgoing", "incoming")
TECHNOLOGIES = ("2G", "3G", "4G", "5G")
# Names that switches of different vendors and generations emit for the same technology.
TECHNOLOGY_ALIASES = {
    "GSM": "2G",
    "GPRS": "2G",
    "EDGE": "2G",
    "UMTS": "3G",
    "HSPA": "3G",
    "WCDMA": "3G",
    "LTE": "4G",
    "EUTRAN": "4G",
    "NR": "5G",
    "5GNR": "5G",
}

FIELDS = (
    "schema_version",
    "record_id",
    "record_type",
    "served_msisdn",
    "other_msisdn",
    "direction",
    "start_time",
    "duration_s",
    "data_volume_bytes",
    "cell_id",
    "technology",
    "roaming",
    "visited_network",
)

# Fields that must be present and non-null for every record type...
COMMON_MANDATORY_FIELDS = (
    "schema_version",
    "record_id",
    "record_type",
    "served_msisdn",
    "start_time",
    "cell_id",
    "technology",
)
# ...and per record type.
MANDATORY_FIELDS_BY_TYPE = {
    "voice": COMMON_MANDATORY_FIELDS + ("direction", "duration_s"),
    "sms": COMMON_MANDATORY_FIELDS + ("direction",),
    "data": COMMON_MANDATORY_FIELDS + ("duration_s", "data_volume_bytes"),
}
# ...and the other party of an outgoing call or SMS: what was called is what is rated. An incoming
# one may lack it, as the standards allow (TS 32.298: an MT-SMS record carries no originator, an
# MT call record no calling number when the caller withheld it); a record whose direction is
# missing or unknown is held to the outgoing rule.
OUTGOING_MANDATORY_FIELDS = ("other_msisdn",)


def mandatory_fields(record_type: str, direction: object) -> tuple[str, ...]:
    """The fields a record of `record_type` must carry, given its `direction` (as written)."""
    fields = MANDATORY_FIELDS_BY_TYPE[record_type]
    incoming = isinstance(direction, str) and direction.strip().lower() == "incoming"
    return fields if record_type == "data" or incoming else fields + OUTGOING_MANDATORY_FIELDS


# JSON type of each field when present and not null.
FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "schema_version": int,
    "record_id": str,
    "record_type": str,
    "served_msisdn": str,
    "other_msisdn": str,
    "direction": str,
    "start_time": str,
    "duration_s": int,
    "data_volume_bytes": int,
    "cell_id": str,
    "technology": str,
    "roaming": bool,
    "visited_network": str,
}

# A record id: what a switch or mediation platform writes (UUIDs, counters, dotted ids), whole.
# Matched with fullmatch (Python) and ^...$ (Arrow's RE2, where $ is the end of the text): never
# with re.match and $, which lets a trailing newline through.
RECORD_ID_REGEX = r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}"
RECORD_ID_PATTERN = re.compile(RECORD_ID_REGEX)


def is_valid_record_id(value: str) -> bool:
    return RECORD_ID_PATTERN.fullmatch(value) is not None


# No text field may hold a control character: C0, DEL, C1, and the line and paragraph separators.
_CONTROL_RANGES = ((0x00, 0x1F), (0x7F, 0x9F), (0x2028, 0x2029))
CONTROL_CHARACTER_PATTERN = re.compile("[" + "".join(f"{chr(a)}-{chr(b)}" for a, b in _CONTROL_RANGES) + "]")
# the same class for Arrow's RE2 (which takes \x{...} escapes)
CONTROL_CHARACTER_RE2 = "[" + "".join(f"\\x{{{a:x}}}-\\x{{{b:x}}}" for a, b in _CONTROL_RANGES) + "]"


# -- the clean record ------------------------------------------------------------------------
# What mediation makes of a valid CDR: normalised (E.164, 2G-5G, UTC), enriched from the
# numbering plan and the cells. The warehouse table clean_cdrs, the bulk path's Arrow batches,
# the Spark jobs' schemas and the asset checks' SQL all derive from this declaration.
CLEAN_RECORD: tuple[Column, ...] = (
    Column("record_id", "varchar", 64, nullable=False),
    Column("record_type", "varchar", 8, nullable=False),
    Column("served_msisdn", "varchar", 16, nullable=False),
    Column("served_operator_id", "varchar", 16, nullable=False),
    Column("other_msisdn", "varchar", 16),
    Column("other_operator_id", "varchar", 16),
    Column("other_country", "varchar", 2),
    Column("destination_class", "varchar", 16),
    Column("destination_zone", "varchar", 16),
    Column("direction", "varchar", 8),
    Column("start_time", "timestamp", nullable=False),
    Column("duration_s", "bigint"),
    Column("data_volume_bytes", "bigint"),
    Column("cell_id", "varchar", 32, nullable=False),
    Column("technology", "varchar", 4, nullable=False),
    Column("roaming", "smallint", nullable=False),  # 0/1: portable, no boolean column
    Column("visited_network", "varchar", 8),
    Column("schema_version", "smallint", nullable=False),
)
CLEAN_COLUMNS = names(CLEAN_RECORD)
# Where in Kafka a clean record came from: kept with it, so a replayed batch is recognised.
SOURCE_POSITION: tuple[Column, ...] = (
    Column("src_partition", "int", nullable=False),
    Column("src_offset", "bigint", nullable=False),
    Column("kafka_timestamp", "timestamp", nullable=False),
)
# The mediation micro-batch that committed a clean record: the ledger's key. Rated records carry
# it too, so revenue assurance counts each batch's outcomes without joining every record back.
MEDIATION_BATCH: tuple[Column, ...] = (
    Column("query_id", "varchar", 64, nullable=False),
    Column("batch_id", "bigint", nullable=False),
)
# The warehouse table of clean records (in the mediation schema) and its data columns, in order.
CLEAN_CDRS_TABLE = "clean_cdrs"
CLEAN_CDRS_COLUMNS = CLEAN_RECORD + SOURCE_POSITION
# Per record type, the clean columns that must hold a value beyond the always-mandatory ones:
# the wire record's own per-type fields, which mediation carries over normalised.
CLEAN_REQUIRED_BY_TYPE = {
    kind: tuple(f for f in fields if f not in COMMON_MANDATORY_FIELDS)
    for kind, fields in MANDATORY_FIELDS_BY_TYPE.items()
}
# and per record type, the clean columns an outgoing record must hold too (OUTGOING_MANDATORY_FIELDS)
CLEAN_REQUIRED_WHEN_OUTGOING = {kind: OUTGOING_MANDATORY_FIELDS for kind in RECORD_TYPES if kind != "data"}
