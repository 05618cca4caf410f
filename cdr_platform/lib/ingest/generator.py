"""Synthetic CDR generator: realistic voice, SMS and data records, with injected errors.

Deterministic for a seed: chunk `i` of a run is drawn from `numpy.random.default_rng((seed, i))`,
so the same configuration always yields the same messages, however they are consumed.
Columns are drawn with numpy a chunk at a time and serialised with orjson, which is what
makes a million records a few seconds of work.

Shape of the traffic:
  * record types: 55% voice, 25% SMS, 20% data;
  * a few heavy users (log-normal popularity), busy hours (morning and evening peaks);
  * call durations log-normal (median about a minute, long tail to two hours);
  * destinations on-net, off-net (other national operator), international and fixed; some
    other-party numbers arrive in national (0...) or international (00...) format;
  * about 3% of records are roaming on a partner network; 10% carry a vendor's name for the
    technology (LTE, UMTS, ...), which mediation normalises.

Errors: `error_rate` of the records (exactly, to within one per chunk) are spoiled with one
class of `InjectedError`, assigned in turn, and labelled in the `injected-error` header.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum

import numpy as np
import orjson

from cdr_platform.lib.reference import numbering_plan as plan
from cdr_platform.lib.reference.network import CELL_CATALOGUE, CELLS_BY_ID
from cdr_platform.lib.reference.subscribers import Subscriber, generate_subscribers
from cdr_platform.lib.schema import (
    INJECTED_ERROR_HEADER,
    RECORD_TYPES,
    SCHEMA_HEADER,
    SCHEMA_HEADER_VALUE,
    SCHEMA_VERSION,
    TECHNOLOGIES,
    mandatory_fields,
)

CHUNK_SIZE = 10_000  # part of the determinism contract: changing it changes the records


class InjectedError(str, Enum):
    MISSING_MANDATORY_FIELD = "missing_mandatory_field"
    MALFORMED_JSON = "malformed_json"
    WRONG_TYPE = "wrong_type"
    INVALID_MSISDN = "invalid_msisdn"
    NON_POSITIVE_DURATION = "non_positive_duration"
    UNKNOWN_TECHNOLOGY = "unknown_technology"
    FUTURE_TIMESTAMP = "future_timestamp"
    DUPLICATE_RECORD = "duplicate_record"
    UNKNOWN_CELL = "unknown_cell"


ALL_ERROR_CLASSES: tuple[InjectedError, ...] = tuple(InjectedError)


class GeneratorConfigError(ValueError):
    """A generator setting is out of range; raised before anything is produced."""


def default_start_time() -> datetime:
    """Midnight UTC of yesterday: a full day of traffic that is entirely in the past."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=1)


def parse_error_classes(names: Sequence[str] | None) -> tuple[InjectedError, ...]:
    if names is None:
        return ALL_ERROR_CLASSES
    known = {e.value: e for e in InjectedError}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise GeneratorConfigError(f"unknown error class(es) {unknown}; known: {sorted(known)}")
    if not names:
        raise GeneratorConfigError("error_classes is empty; leave it unset for all classes")
    return tuple(dict.fromkeys(known[n] for n in names))


@dataclass(frozen=True)
class GeneratorConfig:
    count: int
    seed: int = 42
    error_rate: float = 0.05
    start_time: datetime = field(default_factory=default_start_time)
    span_hours: float = 24.0
    error_classes: tuple[InjectedError, ...] = ALL_ERROR_CLASSES
    # The clock that "in the future" is measured against (default: now). Pass it to make
    # future-timestamp errors reproducible too.
    reference_time: datetime | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.count, int) or self.count < 0:
            raise GeneratorConfigError(f"count must be a non-negative integer, got {self.count!r}")
        if not 0.0 <= self.error_rate <= 1.0:
            raise GeneratorConfigError(f"error_rate must be between 0 and 1, got {self.error_rate}")
        if not self.span_hours > 0:
            raise GeneratorConfigError(f"span_hours must be positive, got {self.span_hours}")
        if self.start_time.tzinfo is None:
            raise GeneratorConfigError("start_time must carry a time zone (use UTC)")
        for e in self.error_classes:
            if not isinstance(e, InjectedError):
                raise GeneratorConfigError(f"unknown error class {e!r}")
        if not self.error_classes and self.error_rate > 0:
            raise GeneratorConfigError("error_rate > 0 needs at least one error class")
        end = self.start_time + timedelta(hours=self.span_hours)
        if end > self.now:
            raise GeneratorConfigError(
                f"start_time + span_hours ends at {end.isoformat()}, after the reference time "
                f"{self.now.isoformat()}: valid records must not lie in the future"
            )

    @property
    def now(self) -> datetime:
        return self.reference_time or datetime.now(UTC)


@dataclass
class GeneratedChunk:
    """Messages ready for Kafka, in order, with what the generator knows about each."""

    keys: list[bytes]
    values: list[bytes]
    record_types: list[str]
    injected: list[str | None]  # error class per message, None when valid
    hours: list[int] = field(default_factory=list)  # UTC hour of day each record was drawn for

    def __len__(self) -> int:
        return len(self.values)

    def headers(self, i: int) -> list[tuple[str, bytes]]:
        error = self.injected[i]
        return _VALID_HEADERS if error is None else _ERROR_HEADERS[error]


# Shared, never mutated: building a header list per message costs more than sending it.
_VALID_HEADERS = [(SCHEMA_HEADER, SCHEMA_HEADER_VALUE)]
_ERROR_HEADERS = {
    e.value: [(SCHEMA_HEADER, SCHEMA_HEADER_VALUE), (INJECTED_ERROR_HEADER, e.value.encode())] for e in InjectedError
}

# Relative traffic by hour of day (UTC), with morning and evening busy hours.
_HOURLY_PROFILE = np.array(
    [
        0.10,
        0.06,
        0.04,
        0.04,
        0.05,
        0.10,
        0.25,
        0.50,
        0.75,
        0.90,
        1.00,
        0.95,
        0.85,
        0.85,
        0.80,
        0.80,
        0.85,
        0.90,
        0.98,
        1.00,
        0.90,
        0.70,
        0.45,
        0.25,
    ]
)
_RECORD_TYPE_SHARE = (0.55, 0.25, 0.20)
_TECHNOLOGY_SHARE = (0.07, 0.18, 0.60, 0.15)
_VENDOR_ALIAS = {"2G": "GSM", "3G": "UMTS", "4G": "LTE", "5G": "NR"}
_VENDOR_ALIAS_SHARE = 0.10
# Destination classes of voice and SMS: on-net, off-net national mobile, international, fixed.
_DESTINATION_SHARE = (0.45, 0.38, 0.10, 0.07)
_ROAMING_SHARE = 0.03
_HOME_CELL_SHARE = 0.70
_OUTGOING_SHARE = 0.75
_UNKNOWN_TECHNOLOGIES = ("WIMAX", "6G", "CDMA2000", "TETRA", "DECT")
_INVALID_MSISDNS = ("+2126612345", "+21266A123456", "+999123456789", "+2126612345678901", "212661234567X", "+")


class _SubscriberBase:
    """Column view of the subscribers and the network, prepared once per run."""

    def __init__(self, subscribers: Sequence[Subscriber], seed: int) -> None:
        self.msisdn = [s.msisdn for s in subscribers]
        self.keys = [m.encode() for m in self.msisdn]
        operator_ids = [op.operator_id for op in plan.NATIONAL_OPERATORS]
        self.operator_index = np.array([operator_ids.index(s.operator_id) for s in subscribers])
        self.home_cell = [s.home_cell_id for s in subscribers]
        # Heavy users: popularity is log-normal, fixed for the run.
        weights = np.random.default_rng((seed, 1 << 30)).lognormal(0.0, 1.0, len(subscribers))
        self.popularity = weights / weights.sum()
        self.members_by_operator = [np.flatnonzero(self.operator_index == k) for k in range(len(operator_ids))]
        self.cells_by_operator = [[c.cell_id for c in CELL_CATALOGUE if c.operator_id == op] for op in operator_ids]
        self.mobile_blocks = [plan.mobile_blocks(op) for op in operator_ids]
        self.mcc_mnc = [op.mcc_mnc for op in plan.NATIONAL_OPERATORS]
        self.fixed_blocks = [
            row.prefix[len(plan.HOME_COUNTRY_CODE) :] for row in plan.NUMBERING_PLAN if row.number_type == "fixed"
        ]


def _iso_times(epoch_ms: np.ndarray) -> list[str]:
    stamps = np.datetime_as_string(epoch_ms.astype("datetime64[ms]"), unit="ms")
    return [s + "Z" for s in stamps.tolist()]


def _record_ids(rng: np.random.Generator, n: int) -> list[str]:
    h = rng.bytes(16 * n).hex()
    # UUID version 4 layout (version nibble 4, variant 8).
    return [
        f"{h[i : i + 8]}-{h[i + 8 : i + 12]}-4{h[i + 13 : i + 16]}-8{h[i + 17 : i + 20]}-{h[i + 20 : i + 32]}"
        for i in range(0, 32 * n, 32)
    ]


class CdrGenerator:
    """Yields `GeneratedChunk`s of at most CHUNK_SIZE messages for a `GeneratorConfig`."""

    def __init__(self, config: GeneratorConfig, subscribers: Sequence[Subscriber] | None = None):
        self.config = config
        self.base = _SubscriberBase(subscribers or generate_subscribers(), config.seed)
        self._now = config.now
        self._start_ms = int(config.start_time.timestamp() * 1000)
        self._span_ms = int(config.span_hours * 3_600_000)

    def chunks(self) -> Iterator[GeneratedChunk]:
        produced = 0
        index = 0
        while produced < self.config.count:
            n = min(CHUNK_SIZE, self.config.count - produced)
            yield self._chunk(index, produced, n)
            produced += n
            index += 1

    # -- one chunk ------------------------------------------------------------------------

    def _start_times_ms(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Uniform over the span, thinned by the hourly profile (busy hours)."""
        accepted: list[np.ndarray] = []
        have = 0
        while have < n:
            offsets = rng.integers(0, self._span_ms, 3 * n + 16)
            hours = ((self._start_ms + offsets) // 3_600_000) % 24
            keep = offsets[rng.random(offsets.size) < _HOURLY_PROFILE[hours]]
            accepted.append(keep)
            have += keep.size
        return self._start_ms + np.concatenate(accepted)[:n]

    def _chunk(self, index: int, first_record: int, n: int) -> GeneratedChunk:
        cfg, base = self.config, self.base
        rng = np.random.default_rng((cfg.seed, index))

        types = rng.choice(3, n, p=_RECORD_TYPE_SHARE)
        served = rng.choice(len(base.msisdn), n, p=base.popularity)
        start_ms = self._start_times_ms(rng, n)
        voice_s = np.clip(np.rint(rng.lognormal(np.log(55.0), 1.1, n)), 1, 7200).astype(np.int64)
        data_s = np.clip(np.rint(rng.lognormal(np.log(240.0), 1.0, n)), 1, 86400).astype(np.int64)
        tech = rng.choice(4, n, p=_TECHNOLOGY_SHARE)
        volume = (rng.lognormal(np.log(2e6), 1.5, n) * np.array([0.05, 0.3, 1.0, 3.0])[tech]).astype(np.int64) + 1
        alias = rng.random(n) < _VENDOR_ALIAS_SHARE
        outgoing = rng.random(n) < _OUTGOING_SHARE
        destination = rng.choice(4, n, p=_DESTINATION_SHARE)
        peer_is_subscriber = rng.random(n) < 0.6
        peer_pick = rng.random(n)
        other_operator_shift = rng.integers(1, len(base.mcc_mnc), n)
        block_pick = rng.random(n)
        suffix = rng.integers(0, 1_000_000, n)
        country = rng.integers(0, len(plan.FOREIGN_COUNTRIES), n)
        long_suffix = rng.integers(0, 10**12, n)
        number_format = rng.random(n)
        roaming = rng.random(n) < _ROAMING_SHARE
        partner = rng.integers(0, len(plan.ROAMING_PARTNERS), n)
        home_cell = rng.random(n) < _HOME_CELL_SHARE
        cell_pick = rng.random(n)
        record_ids = _record_ids(rng, n)
        times = _iso_times(start_ms)

        records: list[dict] = []
        for i in range(n):
            sub = served[i]
            op = base.operator_index[sub]
            rtype = RECORD_TYPES[types[i]]
            technology = TECHNOLOGIES[tech[i]]
            if alias[i]:
                technology = _VENDOR_ALIAS[technology]
            if roaming[i]:
                visited = plan.ROAMING_PARTNERS[partner[i]]
                cell_id = f"{visited}-{(suffix[i] % 900) + 100:05d}-{suffix[i] % 99991:05d}"
            else:
                visited = None
                if home_cell[i]:
                    cell_id = base.home_cell[sub]
                else:
                    cells = base.cells_by_operator[op]
                    cell_id = cells[int(cell_pick[i] * len(cells))]
            rec = {
                "schema_version": SCHEMA_VERSION,
                "record_id": record_ids[i],
                "record_type": rtype,
                "served_msisdn": base.msisdn[sub],
                "other_msisdn": None,
                "direction": None,
                "start_time": times[i],
                "duration_s": None,
                "data_volume_bytes": None,
                "cell_id": cell_id,
                "technology": technology,
                "roaming": visited is not None,
                "visited_network": visited,
            }
            if rtype == "data":
                rec["duration_s"] = int(data_s[i])
                rec["data_volume_bytes"] = int(volume[i])
            else:
                rec["other_msisdn"] = self._other_party(
                    i,
                    sub,
                    op,
                    destination,
                    peer_is_subscriber,
                    peer_pick,
                    other_operator_shift,
                    block_pick,
                    suffix,
                    country,
                    long_suffix,
                    number_format,
                )
                rec["direction"] = "outgoing" if outgoing[i] else "incoming"
                if rtype == "voice":
                    rec["duration_s"] = int(voice_s[i])
            records.append(rec)

        keys = [base.keys[s] for s in served.tolist()]
        # record type as generated (a spoiled record may no longer say it readably)
        sent_types = [rec["record_type"] for rec in records]
        injected: list[str | None] = [None] * n
        error_positions, error_classes = self._error_slots(rng, first_record, n)
        values: list[bytes | None] = [None] * n
        spoiled = set(error_positions.tolist())
        for pos, cls in zip(error_positions.tolist(), error_classes):
            injected[pos] = cls.value
            if cls is InjectedError.DUPLICATE_RECORD:
                continue  # filled below, once the original's bytes exist
            payload = self._spoil(rng, records[pos], cls)
            if records[pos].get("record_type") in RECORD_TYPES:
                sent_types[pos] = records[pos]["record_type"]
            if cls is InjectedError.INVALID_MSISDN:
                keys[pos] = records[pos]["served_msisdn"].encode()
            values[pos] = payload
        for i in range(n):
            if values[i] is None and i not in spoiled:
                values[i] = orjson.dumps(records[i])
        valid_positions = np.array([i for i in range(n) if i not in spoiled])
        for pos, cls in zip(error_positions.tolist(), error_classes):
            if cls is InjectedError.DUPLICATE_RECORD:
                # Re-send an earlier valid record of this chunk, byte for byte, same key.
                earlier = valid_positions[valid_positions < pos]
                source = int(earlier[rng.integers(0, earlier.size)])
                values[pos] = values[source]
                keys[pos] = keys[source]
                sent_types[pos] = sent_types[source]
        return GeneratedChunk(
            keys=keys,
            values=values,  # type: ignore[arg-type]
            record_types=sent_types,
            injected=injected,
            hours=((start_ms // 3_600_000) % 24).tolist(),
        )

    def _other_party(
        self,
        i,
        sub,
        op,
        destination,
        peer_is_subscriber,
        peer_pick,
        other_operator_shift,
        block_pick,
        suffix,
        country,
        long_suffix,
        number_format,
    ) -> str:
        base = self.base
        kind = destination[i]
        if kind == 2:  # international
            c = plan.FOREIGN_COUNTRIES[country[i]]
            prefix = c.mobile_prefixes[int(block_pick[i] * len(c.mobile_prefixes))]
            digits = c.subscriber_digits - len(prefix)
            number = f"{c.country_code}{prefix}{long_suffix[i] % 10**digits:0{digits}d}"
            return ("00" + number) if number_format[i] < 0.3 else ("+" + number)
        if kind == 0 and peer_is_subscriber[i]:  # on-net, to another subscriber
            members = base.members_by_operator[op]
            peer = members[int(peer_pick[i] * members.size)]
            if peer == sub:
                peer = members[(int(peer_pick[i] * members.size) + 1) % members.size]
            national = base.msisdn[peer][1 + len(plan.HOME_COUNTRY_CODE) :]
        else:
            if kind == 3:
                block = base.fixed_blocks[int(block_pick[i] * len(base.fixed_blocks))]
            else:
                target = op if kind == 0 else (op + other_operator_shift[i]) % len(base.mcc_mnc)
                blocks = base.mobile_blocks[target]
                block = blocks[int(block_pick[i] * len(blocks))]
            national = f"{block}{suffix[i]:06d}"
        if number_format[i] < 0.08:
            return "0" + national  # national format, as many switches write it
        return f"+{plan.HOME_COUNTRY_CODE}{national}"

    def _error_slots(self, rng: np.random.Generator, first_record: int, n: int):
        """Exact share of errors: records [first, first+n) get E(first+n) - E(first) errors."""
        rate = self.config.error_rate
        n_errors = int((first_record + n) * rate + 0.5) - int(first_record * rate + 0.5)
        n_errors = min(n_errors, n - 1)  # record 0 of a chunk stays valid: a duplicate's source
        if n_errors <= 0:
            return np.array([], dtype=np.int64), []
        positions = np.sort(rng.choice(np.arange(1, n), n_errors, replace=False))
        classes = self.config.error_classes
        offset = (first_record // CHUNK_SIZE) % len(classes)  # rotate so small runs see every class
        assigned = [classes[(offset + j) % len(classes)] for j in range(n_errors)]
        order = rng.permutation(n_errors)
        return positions, [assigned[k] for k in order]

    def _spoil(self, rng: np.random.Generator, rec: dict, cls: InjectedError) -> bytes:
        if cls is InjectedError.MISSING_MANDATORY_FIELD:
            candidates = [
                f for f in mandatory_fields(rec["record_type"], rec.get("direction")) if f != "schema_version"
            ]
            name = candidates[rng.integers(0, len(candidates))]
            if rng.random() < 0.7:
                del rec[name]
            else:
                rec[name] = None
        elif cls is InjectedError.WRONG_TYPE:
            choices = [
                ("start_time", int(rng.integers(1_600_000_000, 1_800_000_000))),
                ("served_msisdn", int(rec["served_msisdn"][1:])),
                ("record_type", 1),
                ("roaming", "no"),
            ]
            if rec["duration_s"] is not None:
                choices.append(("duration_s", str(rec["duration_s"])))
            if rec["data_volume_bytes"] is not None:
                choices.append(("data_volume_bytes", f"{rec['data_volume_bytes'] // 1_000_000}MB"))
            name, value = choices[rng.integers(0, len(choices))]
            rec[name] = value
        elif cls is InjectedError.INVALID_MSISDN:
            rec["served_msisdn"] = _INVALID_MSISDNS[rng.integers(0, len(_INVALID_MSISDNS))]
        elif cls is InjectedError.NON_POSITIVE_DURATION:
            if rec["record_type"] == "sms":
                rec["record_type"] = "voice"
            rec["duration_s"] = 0 if rng.random() < 0.5 else -int(rng.integers(1, 600))
        elif cls is InjectedError.UNKNOWN_TECHNOLOGY:
            rec["technology"] = _UNKNOWN_TECHNOLOGIES[rng.integers(0, len(_UNKNOWN_TECHNOLOGIES))]
        elif cls is InjectedError.FUTURE_TIMESTAMP:
            ahead = timedelta(seconds=int(rng.integers(2 * 3600, 30 * 86400)))
            rec["start_time"] = (self._now + ahead).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        elif cls is InjectedError.UNKNOWN_CELL:
            op = plan.OPERATORS_BY_ID[plan.lookup(rec["served_msisdn"]).operator_id]  # type: ignore[union-attr]
            while True:  # a home-network CGI outside the catalogue
                cell_id = f"{op.mcc_mnc}-{int(rng.integers(90000, 99999)):05d}-{int(rng.integers(0, 99999)):05d}"
                if cell_id not in CELLS_BY_ID:
                    break
            rec.update(cell_id=cell_id, roaming=False, visited_network=None)
        elif cls is InjectedError.MALFORMED_JSON:
            payload = orjson.dumps(rec)
            variant = rng.integers(0, 3)
            if variant == 0:  # truncated in transit: any proper prefix of an object is invalid
                return payload[: int(len(payload) * rng.uniform(0.2, 0.95))]
            if variant == 1:  # a switch that writes single-quoted keys
                return payload.replace(b'"', b"'", 4)
            return payload.replace(b",", b",,", 1)
        else:  # pragma: no cover - every class is handled above
            raise AssertionError(cls)
        return orjson.dumps(rec)
