"""Bulk mediation: the mediation rules (rules.py) recognised on whole Arrow columns at once.

`rules.mediate` stays the one definition of every rule; this module restates none of the
rejections. It recognises, with vectorised tests, the records that are certainly clean in their
canonical form (the exact JSON types, the record type, direction and technology spelled as the
schema lists them, numbers of digits in E.164, national or international form, the start time
as the schema writes it, a known cell...) and normalises those columns at once, with the
numbering plan, network and technology tables the rules use. Every other record - anything
rejected, and anything valid but written differently - goes to `mediate` itself, one by one.
The unit tests mediate the same messages both ways and require identical results.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from cdr_platform.lib.mediation.reasons import Reason
from cdr_platform.lib.mediation.rules import (
    DEFAULT_LIMITS,
    HOME_NETWORKS,
    MAX_TEXT_LENGTH,
    ROAMING_NETWORKS,
    TECHNOLOGY_NAMES,
    Limits,
    destination_class,
    mediate,
    parse_utc,
)
from cdr_platform.lib.reference import numbering_plan as plan
from cdr_platform.lib.schema import (
    CLEAN_RECORD,
    CONTROL_CHARACTER_RE2,
    DIRECTIONS,
    DUPLICATE_OF_MARK,
    FIELD_TYPES,
    MANDATORY_FIELDS_BY_TYPE,
    OUTGOING_MANDATORY_FIELDS,
    RECORD_ID_REGEX,
    RECORD_TYPES,
    SCHEMA_VERSION,
    UNDECODABLE_MARK,
)
from cdr_platform.lib.warehouse.columns import arrow_schema

# Arrow types of the clean record (start_time is UTC)
CLEAN_SCHEMA = arrow_schema(CLEAN_RECORD)
# Canonical spellings the bulk path accepts; any other goes to `mediate` (which may normalise it).
_CANONICAL_NUMBER = r"^(\+|00|0)?[0-9]{1,20}$"  # digits only: nothing for strip() or the dash/space removal
_CANONICAL_TIME = (
    r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(\.[0-9]{3}|\.[0-9]{6})?Z$"
)
_CANONICAL_RECORD_ID = f"^{RECORD_ID_REGEX}$"  # RE2: $ is the end of the text, as fullmatch
_CANONICAL_CELL = r"^[0-9A-Za-z]{3}-[0-9A-Za-z]{2}-[0-9A-Za-z-]+$"  # nothing for strip() to remove
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_EMPTY: dict = {}
_FIELD_NAMES = tuple(FIELD_TYPES)
_ARROW_TYPES = {str: pa.string(), int: pa.int64(), bool: pa.bool_()}
_NONE = type(None)


@dataclass
class BulkMediated:
    clean: pa.Table  # CLEAN_SCHEMA, the clean records in input order
    clean_rows: np.ndarray  # input index of each clean record
    rejected: list[tuple[int, tuple[str, ...]]]  # (input index, reasons) of every rejected message
    plain_rows: int  # how many went to `mediate` one by one
    # input index -> "ExceptionClass: message" of the records rejected as UNPROCESSABLE
    errors: dict[int, str] = field(default_factory=dict)


def unprocessable(exc: BaseException) -> str:
    """What a reject says of the exception that made its record unprocessable (one line)."""
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:500]


def _load(value):
    try:
        doc = orjson.loads(value)
    except (orjson.JSONDecodeError, TypeError):
        return _EMPTY
    return doc if type(doc) is dict else _EMPTY


@functools.lru_cache(maxsize=4)
def _cell_set(cells: frozenset[str]) -> pa.Array:
    """The known cells as an Arrow value set, built once per catalogue, not per batch."""
    return pa.array(sorted(cells), pa.string())


def _plan_index():
    """Numbering plan as Arrow lookups: prefixes by length (longest first) -> entry index."""
    entries = list(plan.NUMBERING_PLAN)
    by_length: dict[int, list[int]] = {}
    for i, e in enumerate(entries):
        by_length.setdefault(len(e.prefix), []).append(i)
    return entries, sorted(
        ((length, pa.array([entries[i].prefix for i in idx]), np.array(idx)) for length, idx in by_length.items()),
        key=lambda t: -t[0],
    )


_ENTRIES, _PREFIXES = _plan_index()
# per plan entry (and a last null for "none"): the attributes a clean record takes from it
_ENTRY_ATTRS = {
    attr: pa.array([getattr(e, attr) for e in _ENTRIES] + [None], pa.string())
    for attr in ("operator_id", "country", "zone")
}
# rules.destination_class of every (served entry, other entry) pair, then null
_CLASSES = pa.array([destination_class(s, o) for s in _ENTRIES for o in _ENTRIES] + [None], pa.string())


def _lookup(e164: pa.Array) -> np.ndarray:
    """plan.lookup on a column of '+digits' numbers: entry index, or -1 (unknown or wrong length)."""
    digits = pc.utf8_slice_codeunits(e164, 1)
    found = np.full(len(e164), -1, np.int64)
    for length, prefixes, idx in _PREFIXES:
        hit = pc.fill_null(pc.index_in(pc.utf8_slice_codeunits(digits, 0, length), value_set=prefixes), -1)
        hit = hit.to_numpy(zero_copy_only=False).astype(np.int64)
        found = np.where((found < 0) & (hit >= 0), idx[np.maximum(hit, 0)], found)
    lengths = pc.fill_null(pc.utf8_length(digits), -1).to_numpy(zero_copy_only=False)
    number_length = np.array([e.number_length for e in _ENTRIES] + [0])[found]
    valid = _mask(pc.match_substring_regex(e164, plan.E164_PATTERN.pattern))
    return np.where((found >= 0) & (lengths == number_length) & valid, found, -1)


def _normalise_number(column: pa.Array) -> pa.Array:
    """rules.normalise_msisdn for numbers already known to be canonical (digits, one prefix)."""
    plus = pc.starts_with(column, "+")
    international = pc.starts_with(column, "00")
    national = pc.starts_with(column, "0")
    return pc.if_else(
        plus,
        column,
        pc.if_else(
            international,
            pc.binary_join_element_wise("+", pc.utf8_slice_codeunits(column, 2), ""),
            pc.if_else(
                national,
                pc.binary_join_element_wise("+" + plan.HOME_COUNTRY_CODE, pc.utf8_slice_codeunits(column, 1), ""),
                pc.binary_join_element_wise("+", column, ""),
            ),
        ),
    )


def _mask(array) -> np.ndarray:
    return pc.fill_null(array, False).to_numpy(zero_copy_only=False)


def mediate_batch(values: list, received_us: np.ndarray, limits: Limits = DEFAULT_LIMITS) -> BulkMediated:
    """`mediate` over a batch of message values; `received_us`: Kafka timestamps, UTC microseconds."""
    n = len(values)
    # an oversized message is never parsed: `mediate` rejects it on its length
    cap = limits.max_payload_bytes
    docs = [_EMPTY if v is not None and len(v) > cap else _load(v) for v in values]
    # not a JSON object, or a record collection could not decode or found twice: mediate says why
    plain = np.array([d is _EMPTY or UNDECODABLE_MARK in d or DUPLICATE_OF_MARK in d for d in docs], bool)

    # JSON types exactly as validation checks them (bool is not an int), text not too long.
    # Fields are taken out of every document in one C-level pass (map, zip); a column is checked
    # value by value only when it holds a value of another type, or an int beyond int64.
    columns: dict[str, pa.Array] = {}
    fields = (tuple(map(d.get, _FIELD_NAMES)) for d in docs)
    by_field = list(zip(*fields)) if n else [() for _ in _FIELD_NAMES]
    for name, raw in zip(_FIELD_NAMES, by_field):
        expected = FIELD_TYPES[name]
        arrow_type = _ARROW_TYPES[expected]
        kinds = list(map(type, raw))
        if not set(kinds) <= {expected, _NONE}:
            kind_ids = np.fromiter(map(id, kinds), np.uint64, count=len(kinds))  # compared by identity
            bad = (kind_ids != id(expected)) & (kind_ids != id(_NONE))
            plain |= bad
            raw = list(raw)
            for i in np.flatnonzero(bad).tolist():
                raw[i] = None
        try:
            columns[name] = pa.array(raw, arrow_type)
        except (OverflowError, pa.ArrowInvalid):  # an int beyond int64: fine for mediate, not here
            too_big = np.array([v is not None and not -(2**63) <= v < 2**63 for v in raw], bool)
            plain |= too_big
            columns[name] = pa.array([None if b else v for v, b in zip(raw, too_big)], arrow_type)
        if expected is str:
            plain |= _mask(pc.greater(pc.utf8_length(columns[name]), MAX_TEXT_LENGTH))

    c = columns
    record_type = c["record_type"]
    plain |= ~_mask(pc.is_in(record_type, pa.array(RECORD_TYPES)))
    is_data, is_sms = _mask(pc.equal(record_type, "data")), _mask(pc.equal(record_type, "sms"))
    # the direction exactly as the schema spells it: anything else goes to mediate anyway
    incoming = _mask(pc.equal(c["direction"], "incoming"))
    for kind in RECORD_TYPES:
        of_kind = _mask(pc.equal(record_type, kind))
        for mandatory in MANDATORY_FIELDS_BY_TYPE[kind]:
            plain |= of_kind & ~c[mandatory].is_valid().to_numpy(zero_copy_only=False)
        if kind != "data":  # an outgoing record's other party (schema.mandatory_fields)
            for mandatory in OUTGOING_MANDATORY_FIELDS:
                plain |= of_kind & ~incoming & ~c[mandatory].is_valid().to_numpy(zero_copy_only=False)
    plain |= ~_mask(pc.equal(c["schema_version"], SCHEMA_VERSION))
    plain |= ~_mask(pc.match_substring_regex(c["record_id"], _CANONICAL_RECORD_ID))

    served_ok = _mask(pc.match_substring_regex(c["served_msisdn"], _CANONICAL_NUMBER))
    served = _normalise_number(c["served_msisdn"])
    served_entry = _lookup(served)
    mobile = np.array([e.operator_id is not None and e.number_type == "mobile" for e in _ENTRIES] + [False])
    plain |= ~served_ok | ~mobile[served_entry]

    other_given = c["other_msisdn"].is_valid().to_numpy(zero_copy_only=False)
    other_ok = _mask(pc.match_substring_regex(c["other_msisdn"], _CANONICAL_NUMBER))
    other = _normalise_number(c["other_msisdn"])
    other_entry = _lookup(other)
    plain |= other_given & (~other_ok | (other_entry < 0))

    direction_given = c["direction"].is_valid().to_numpy(zero_copy_only=False)
    plain |= direction_given & ~_mask(pc.is_in(c["direction"], pa.array(DIRECTIONS)))

    # the start time as the schema writes it; anything else (offsets, other layouts) to mediate
    time_ok = _mask(pc.match_substring_regex(c["start_time"], _CANONICAL_TIME))
    plain |= ~time_ok
    start_us = np.zeros(n, np.int64)
    if time_ok.any():
        text = pc.if_else(pa.array(time_ok), c["start_time"], "1970-01-01T00:00:00Z")
        try:
            parsed = pc.cast(text, pa.timestamp("us", tz="UTC"))
        except pa.ArrowInvalid:  # a canonical-looking impossible date in the batch: parse one by one
            parsed = pa.array([parse_utc(t) for t in text.to_pylist()], pa.timestamp("us", tz="UTC"))
            plain |= ~parsed.is_valid().to_numpy(zero_copy_only=False)
        start_us = pc.fill_null(parsed.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
    plain |= start_us > received_us + limits.future_tolerance // _MICROSECOND
    plain |= start_us < received_us - limits.late_arrival // _MICROSECOND  # stale: mediate says so

    duration = c["duration_s"]
    plain |= ~is_sms & _mask(pc.less_equal(duration, 0))
    plain |= _mask(pc.less(c["data_volume_bytes"], 0))
    plain |= _mask(pc.greater(duration, limits.max_duration_s))
    plain |= _mask(pc.greater(c["data_volume_bytes"], limits.max_volume_bytes))
    # Control characters: the anchored canonical patterns and the exact name sets above already
    # send any to `mediate`, but for visited_network, which only its type was checked for.
    plain |= _mask(pc.match_substring_regex(c["visited_network"], CONTROL_CHARACTER_RE2))

    technology = c["technology"]
    names = pa.array(list(TECHNOLOGY_NAMES))
    technology_at = pc.index_in(technology, value_set=names)
    plain |= ~technology_at.is_valid().to_numpy(zero_copy_only=False)

    cell = c["cell_id"]
    network = pc.utf8_slice_codeunits(cell, 0, 6)
    roaming = _mask(pc.is_in(network, pa.array(sorted(ROAMING_NETWORKS))))
    home_cell = _mask(pc.is_in(network, pa.array(sorted(HOME_NETWORKS)))) & _mask(
        pc.is_in(cell, _cell_set(limits.known_cells))
    )
    plain |= ~_mask(pc.match_substring_regex(cell, _CANONICAL_CELL)) | ~(roaming | home_cell)

    # -- the clean records of the fast path, normalised ------------------------------------
    fast = np.flatnonzero(~plain)
    take = pa.array(fast)
    not_data = ~is_data[fast]
    served_e, other_e = served_entry[fast], other_entry[fast]
    has_other = not_data & (other_e >= 0)

    def entry_attr(entries: np.ndarray, attr: str, where: np.ndarray) -> pa.Array:
        return _ENTRY_ATTRS[attr].take(pa.array(np.where(where, entries, len(_ENTRIES))))

    classes = _CLASSES.take(pa.array(np.where(has_other, served_e * len(_ENTRIES) + other_e, len(_CLASSES) - 1)))
    canonical_technology = pa.array([TECHNOLOGY_NAMES[k] for k in names.to_pylist()])
    fast_table = pa.table(
        {
            "record_id": c["record_id"].take(take),
            "record_type": record_type.take(take),
            "served_msisdn": served.take(take),
            "served_operator_id": entry_attr(served_e, "operator_id", np.ones(len(fast), bool)),
            "other_msisdn": pc.if_else(pa.array(not_data), other.take(take), None),
            "other_operator_id": entry_attr(other_e, "operator_id", has_other),
            "other_country": entry_attr(other_e, "country", has_other),
            "destination_class": classes,
            "destination_zone": entry_attr(other_e, "zone", has_other),
            "direction": pc.if_else(pa.array(not_data), c["direction"].take(take), None),
            "start_time": pa.array(start_us[fast], pa.timestamp("us", tz="UTC")),
            "duration_s": pc.if_else(pa.array(~is_sms[fast]), duration.take(take), None),
            "data_volume_bytes": pc.if_else(pa.array(is_data[fast]), c["data_volume_bytes"].take(take), None),
            "cell_id": cell.take(take),
            "technology": canonical_technology.take(technology_at.take(take)),
            "roaming": pa.array(roaming[fast].astype(np.int16)),
            "visited_network": pc.if_else(pa.array(roaming[fast]), network.take(take), None),
            "schema_version": pa.array(np.full(len(fast), SCHEMA_VERSION, np.int16)),
        },
        schema=CLEAN_SCHEMA,
    )

    # -- everything else, one by one, by the rules themselves ------------------------------
    slow = np.flatnonzero(plain)
    rejected: list[tuple[int, tuple[str, ...]]] = []
    errors: dict[int, str] = {}
    slow_clean_rows, slow_records = [], []
    for i in slow.tolist():
        try:
            result = mediate(values[i], _EPOCH + _MICROSECOND * int(received_us[i]), limits)
            if result.record is not None:  # a clean record must also convert to the clean schema
                pa.Table.from_pylist([result.record], schema=CLEAN_SCHEMA)
        except Exception as exc:  # the last line of defence: this record, not the batch
            rejected.append((i, (Reason.UNPROCESSABLE.value,)))
            errors[i] = unprocessable(exc)
            continue
        if result.record is None:
            rejected.append((i, result.reasons))
        else:
            slow_clean_rows.append(i)
            slow_records.append(result.record)
    clean, clean_rows = fast_table, fast
    if slow_records:
        slow_table = pa.Table.from_pylist(slow_records, schema=CLEAN_SCHEMA)
        clean_rows = np.concatenate([fast, np.array(slow_clean_rows, np.int64)])
        order = np.argsort(clean_rows, kind="stable")
        clean = pa.concat_tables([fast_table, slow_table]).take(pa.array(order))
        clean_rows = clean_rows[order]
    return BulkMediated(clean, clean_rows, rejected, len(slow), errors)


def mediate_batch_safely(values: list, received_us: np.ndarray, limits: Limits = DEFAULT_LIMITS) -> BulkMediated:
    """`mediate_batch`, and if one message makes the batch raise, the batch again one message at a
    time: only the message that raises becomes a reject (UNPROCESSABLE, with the exception), and
    every other gets the outcome it would have had. No single message can fail a batch."""
    try:
        return mediate_batch(values, received_us, limits)
    except Exception:
        pass
    tables, rows, rejected, errors, plain_rows = [], [], [], {}, 0
    for i, value in enumerate(values):
        try:
            one = mediate_batch([value], received_us[i : i + 1], limits)
        except Exception as exc:
            rejected.append((i, (Reason.UNPROCESSABLE.value,)))
            errors[i] = unprocessable(exc)
            continue
        plain_rows += one.plain_rows
        rejected += [(i, reasons) for _, reasons in one.rejected]
        if one.errors:  # one message: at most one error, under index 0
            errors[i] = one.errors[0]
        if one.clean.num_rows:
            tables.append(one.clean)
            rows.append(i)
    clean = pa.concat_tables(tables) if tables else CLEAN_SCHEMA.empty_table()
    return BulkMediated(clean, np.array(rows, np.int64), rejected, plain_rows, errors)
