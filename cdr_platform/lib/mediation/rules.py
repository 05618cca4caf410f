"""Mediation rules: validate and normalise one raw CDR. The one definition of every rule.

`mediate(payload, received_at)` takes the raw Kafka message value and the time the broker
received it, and returns either a normalised record (no reasons) or the list of stable
rejection reason codes (a record may carry several). The Spark job applies the rules to Arrow
batches through `bulk.mediate_batch`, which settles canonical clean records in bulk
and hands every other message to `mediate`; the tests hold the two to identical outcomes.

Every check is written so that a missing or null value can never pass it: a record is
clean only if `reasons` is empty, and every code path that finds a problem appends a
reason, so no record falls through both filters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson

from cdr_platform.lib.mediation.reasons import Reason
from cdr_platform.lib.reference import numbering_plan as plan
from cdr_platform.lib.reference.network import CELLS_BY_ID
from cdr_platform.lib.reference.numbering_plan import normalise_msisdn
from cdr_platform.lib.schema import (
    COMMON_MANDATORY_FIELDS,
    CONTROL_CHARACTER_PATTERN,
    DIRECTIONS,
    DUPLICATE_OF_MARK,
    FIELD_TYPES,
    RECORD_TYPES,
    SCHEMA_VERSION,
    TECHNOLOGIES,
    TECHNOLOGY_ALIASES,
    UNDECODABLE_MARK,
    is_valid_record_id,
    mandatory_fields,
)

# A record may start at most this far after the broker received it (switch clock skew).
MAX_TEXT_LENGTH = 64  # no text field of the schema is longer; longer is garbage, not data


@dataclass(frozen=True)
class Limits:
    """What a plausible CDR stays within; beyond them a record is rejected, never stored.

    They also keep every stored number inside 64 bits, so no single message can make the bulk
    path's Arrow conversion (or the warehouse) fail a whole batch. Settings: CDR_MAX_DURATION_S,
    CDR_MAX_DATA_VOLUME_BYTES, CDR_LATE_ARRIVAL_DAYS (README, "Settings").
    """

    # a cdr.v1 message is under 1 KB; a bigger one is rejected on its length, before parsing,
    # so no message can cost the parser (or a reject echoing it) more than this
    max_payload_bytes: int = 65_536
    max_duration_s: int = 86_400  # a call or data session longer than a day is a switch error
    max_volume_bytes: int = 10**12  # 1 TB in one data record
    late_arrival: timedelta = timedelta(days=60)  # older CDRs are too late to rate and bill
    future_tolerance: timedelta = timedelta(minutes=5)  # switch clocks ahead of the broker's
    # the home-network cells a CDR may name (UNKNOWN_CELL otherwise): the operator's catalogue as
    # loaded in reference.cell_catalogue when the job starts, else the generated one
    known_cells: frozenset[str] = frozenset(CELLS_BY_ID)

    @classmethod
    def from_settings(cls, settings, known_cells: frozenset[str] | None = None) -> Limits:
        return cls(
            max_payload_bytes=settings.mediation_max_payload_bytes,
            max_duration_s=settings.max_duration_s,
            max_volume_bytes=settings.max_volume_bytes,
            late_arrival=timedelta(days=settings.late_arrival_days),
            known_cells=frozenset(CELLS_BY_ID) if known_cells is None else known_cells,
        )


DEFAULT_LIMITS = Limits()
ROAMING_NETWORKS = frozenset(plan.ROAMING_PARTNERS)
HOME_NETWORKS = frozenset(op.mcc_mnc for op in plan.NATIONAL_OPERATORS)
TECHNOLOGY_NAMES = {**{t: t for t in TECHNOLOGIES}, **TECHNOLOGY_ALIASES}


@dataclass(frozen=True)
class Mediated:
    record: dict | None  # normalised, CLEAN_COLUMNS keys; None when rejected
    reasons: tuple[str, ...]  # empty when clean


def normalise_technology(value: str) -> str | None:
    return TECHNOLOGY_NAMES.get(value.strip().upper())


def parse_utc(value: str) -> datetime | None:
    """ISO-8601 to an aware UTC datetime; a time without an offset is taken as UTC."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # year 1 with a positive offset, year 9999 with a negative one
        return None


def destination_class(served: plan.PlanEntry, other: plan.PlanEntry) -> str:
    if other.country != plan.HOME_COUNTRY:
        return "international"
    if other.number_type == "fixed":
        return "fixed"
    return "on_net" if other.operator_id == served.operator_id else "off_net"


def _decode(payload: bytes | None, limits: Limits = DEFAULT_LIMITS) -> tuple[object, str | None]:
    if payload is None or len(payload) == 0:
        return None, Reason.EMPTY_MESSAGE
    if len(payload) > limits.max_payload_bytes:
        return None, Reason.PAYLOAD_TOO_LARGE
    try:
        return orjson.loads(payload), None
    except orjson.JSONDecodeError:
        try:
            payload.decode("utf-8")
        except UnicodeDecodeError:
            return None, Reason.INVALID_ENCODING
        return None, Reason.MALFORMED_JSON


def has_control_character(text: str) -> bool:
    return CONTROL_CHARACTER_PATTERN.search(text) is not None


def mediate(payload: bytes | None, received_at: datetime, limits: Limits = DEFAULT_LIMITS) -> Mediated:
    """Validate and normalise one message value; `received_at`: when the broker appended it (UTC)."""
    doc, reason = _decode(payload, limits)
    if reason:
        return Mediated(None, (reason,))
    if not isinstance(doc, dict):
        return Mediated(None, (Reason.MALFORMED_JSON,))
    if UNDECODABLE_MARK in doc:  # collection could not decode the record: nothing here to judge
        return Mediated(None, (Reason.UNDECODABLE_RECORD,))
    if DUPLICATE_OF_MARK in doc:  # collection found the same call collected before
        return Mediated(None, (Reason.DUPLICATE_CONTENT,))
    reasons: list[str] = []

    # Types first: a value of the wrong JSON type is reported once, then treated as absent.
    values: dict[str, object] = {}
    for name, expected in FIELD_TYPES.items():
        value = doc.get(name)
        if value is None:
            continue
        # bool is an int in Python: never accept true/false where a number is expected
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            if Reason.WRONG_TYPE not in reasons:
                reasons.append(Reason.WRONG_TYPE)
            continue
        if isinstance(value, str) and len(value) > MAX_TEXT_LENGTH:
            if Reason.FIELD_TOO_LONG not in reasons:
                reasons.append(Reason.FIELD_TOO_LONG)
            continue
        if isinstance(value, str) and has_control_character(value):
            if Reason.CONTROL_CHARACTER not in reasons:
                reasons.append(Reason.CONTROL_CHARACTER)
            continue
        values[name] = value

    record_type = values.get("record_type")
    if record_type is not None:
        record_type = record_type.strip().lower()
        if record_type not in RECORD_TYPES:
            reasons.append(Reason.UNKNOWN_RECORD_TYPE)
            record_type = None
    mandatory = mandatory_fields(record_type, values.get("direction")) if record_type else COMMON_MANDATORY_FIELDS
    if any(doc.get(f) is None for f in mandatory):
        reasons.append(Reason.MISSING_FIELD)

    version = values.get("schema_version")
    if version is not None and version != SCHEMA_VERSION:
        reasons.append(Reason.UNSUPPORTED_SCHEMA_VERSION)

    record_id = values.get("record_id")
    if record_id is not None and not is_valid_record_id(record_id):
        reasons.append(Reason.INVALID_RECORD_ID)

    served_entry = None
    served = values.get("served_msisdn")
    if served is not None:
        served = normalise_msisdn(served)
        served_entry = plan.lookup(served)
        # billed subscribers are national mobile numbers
        if served_entry is None or served_entry.operator_id is None or served_entry.number_type != "mobile":
            reasons.append(Reason.INVALID_MSISDN)
            served_entry = None

    other_entry = None
    other = values.get("other_msisdn")
    if other is not None:
        other = normalise_msisdn(other)
        other_entry = plan.lookup(other)
        if other_entry is None:
            reasons.append(Reason.INVALID_OTHER_MSISDN)

    direction = values.get("direction")
    if direction is not None:
        direction = direction.strip().lower()
        if direction not in DIRECTIONS:
            reasons.append(Reason.INVALID_DIRECTION)

    start = None
    raw_start = values.get("start_time")
    if raw_start is not None:
        start = parse_utc(raw_start)
        if start is None:
            reasons.append(Reason.INVALID_TIMESTAMP)
        elif start > received_at + limits.future_tolerance:
            reasons.append(Reason.FUTURE_TIMESTAMP)
        elif start < received_at - limits.late_arrival:
            reasons.append(Reason.STALE_TIMESTAMP)

    duration = values.get("duration_s")
    if duration is not None and duration <= 0 and record_type in ("voice", "data"):
        reasons.append(Reason.NON_POSITIVE_DURATION)
    volume = values.get("data_volume_bytes")
    if volume is not None and volume < 0:
        reasons.append(Reason.NEGATIVE_VOLUME)
    # whatever the record type: a number no CDR can hold is a broken record, not one to trim
    if (duration is not None and duration > limits.max_duration_s) or (
        volume is not None and volume > limits.max_volume_bytes
    ):
        reasons.append(Reason.VALUE_OUT_OF_RANGE)

    technology = values.get("technology")
    if technology is not None:
        technology = normalise_technology(technology)
        if technology is None:
            reasons.append(Reason.UNKNOWN_TECHNOLOGY)

    cell_id = values.get("cell_id")
    visited = values.get("visited_network")
    roaming = False
    if cell_id is not None:
        cell_id = cell_id.strip()
        network = cell_id[:6]
        if network in ROAMING_NETWORKS:
            roaming, visited = True, network  # the cell says where the subscriber is
        elif network not in HOME_NETWORKS or cell_id not in limits.known_cells:
            reasons.append(Reason.UNKNOWN_CELL)

    if reasons:
        return Mediated(None, tuple(reasons))
    assert served_entry is not None and start is not None  # guaranteed by the checks above
    record = {
        "record_id": record_id,
        "record_type": record_type,
        "served_msisdn": served,
        "served_operator_id": served_entry.operator_id,
        "other_msisdn": other if record_type != "data" else None,
        "other_operator_id": other_entry.operator_id if other_entry and record_type != "data" else None,
        "other_country": other_entry.country if other_entry and record_type != "data" else None,
        "destination_class": destination_class(served_entry, other_entry)
        if other_entry and record_type != "data"
        else None,
        "destination_zone": other_entry.zone if other_entry and record_type != "data" else None,
        "direction": direction if record_type != "data" else None,
        "start_time": start,
        "duration_s": duration if record_type != "sms" else None,
        "data_volume_bytes": volume if record_type == "data" else None,
        "cell_id": cell_id,
        "technology": technology,
        "roaming": 1 if roaming else 0,
        "visited_network": visited if roaming else None,
        "schema_version": SCHEMA_VERSION,
    }
    return Mediated(record, ())
