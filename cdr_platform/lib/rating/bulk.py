"""Bulk rating: the rating engine applied to a whole Arrow batch with numpy and pyarrow.

The plain engine (engine.py, through cdr.py) stays the one definition of the rules. This
module asks it every question whose answer is shared by many records, once:

* which category, subject and rating plan: per distinct (record type, direction, tenant,
  segment, technology) and profile epoch (the span between two activation times, within which
  the profile in force cannot change);
* which destination: the engine's own prefix index, matched on whole columns, longest first;
* which plan row is active in each stretch of a day and where the next one takes over: the
  engine's `active_at` at every start time of the candidate rows (a day's band schedule);
* what an increment of each rate slot costs, the connect fee, the max cost and the rounding.

It then prices every record in integer units of 10^-K of the currency (exact, like Decimal)
with vectorised arithmetic. A record it cannot settle this way alone - a call that crosses a
band change or midnight, a subject fallback, a category fallback, any record not rated, a
value outside the integer range - goes to the plain engine, row by row. The unit tests rate
the same records both ways and require identical results.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cdr_platform.lib.rating.cdr import (
    SERVICE,
    USAGE,
    NotRated,
    destination_of,
    first_category,
    rate_cdr,
    service_of,
    subject_of,
    usage_of,
)
from cdr_platform.lib.rating.engine import MAX_ROUNDING_PRECISION, NS_PER_S, RatingEngine
from cdr_platform.lib.rating.plan import ANY, DestinationRate

INPUT_COLUMNS = (
    "record_type",
    "direction",
    "served_operator_id",
    "segment",
    "other_msisdn",
    "technology",
    "start_time",
    "duration_s",
    "data_volume_bytes",
)
OUTPUT_SCALE = 6  # cost and connect fee leave as decimal(18, 6)
OUTPUT_TYPE = pa.decimal128(18, OUTPUT_SCALE)
US_PER_DAY = 86_400 * 1_000_000
NS_PER_DAY = 86_400 * NS_PER_S
_LONGEST_CALL_NS = 7 * NS_PER_DAY  # longer calls have too many segments for this path anyway
_SAFE_INT = 2**62  # integer money above this goes to the plain engine (no int64 overflow)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SEP = "\x1f"


def _decimals(value: Decimal) -> int:
    return max(0, -value.as_tuple().exponent)


def _at(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=int(us))


@dataclass(frozen=True)
class _Attempt:
    """One (category, plan) the engine would try for a record, in its order of trying."""

    category: str
    subject: str  # as reported: the record's subject, also when a fallback subject's plan rates it
    plan_id: str


class _PricedRates:
    """The destination rates met so far, as integer columns for numpy (money in 10^-scale units)."""

    def __init__(self, engine: RatingEngine, scale: int, pieces: int) -> None:
        self.engine, self.scale, self.pieces = engine, scale, pieces
        self.index: dict[DestinationRate, int] = {}
        self.rows: list[tuple] = []
        self._arrays: tuple | None = None

    def code(self, dr: DestinationRate) -> int:
        """Index of a destination rate, or -1 when it cannot be priced in integers of 10^-scale."""
        if dr not in self.index:
            self.index[dr] = len(self.rows)
            self.rows.append(self._describe(dr))
        return self.index[dr] if self.rows[self.index[dr]] is not None else -1

    def _describe(self, dr: DestinationRate):
        engine = self.engine
        slots = engine.plan.rates[dr.rates_tag]
        # The engine cuts a segment into pieces at every group interval start after 0.
        starts = [0] + sorted({s.group_interval_start_ns for s in slots if s.group_interval_start_ns > 0})
        if len(starts) > self.pieces:
            return None
        prices = [engine.increment_price(engine.slot_at(slots, start)) for start in starts]
        connect_fee = engine.slot_at(slots, 0).connect_fee
        money = prices + [connect_fee, dr.max_cost]
        if any(v < 0 or _decimals(v) > self.scale for v in money):
            return None
        unit = 10**self.scale
        starts += [_SAFE_INT] * (self.pieces - len(starts))
        increments = [engine.slot_at(slots, s).rate_increment_ns if s < _SAFE_INT else 1 for s in starts]
        prices_int = [int(p * unit) for p in prices] + [0] * (self.pieces - len(prices))
        cap = int(dr.max_cost * unit) if dr.max_cost > 0 and dr.max_cost_strategy == "*free" else -1
        return (
            starts,
            increments,
            prices_int,
            int(connect_fee * unit),
            cap,
            dr.rounding_decimals,
            {"*up": 0, "*down": 1}.get(dr.rounding_method, 2),
        )

    def arrays(self):
        """Per-rate numpy columns; rate -1 (not priceable) maps to the last, all-zero row. Rebuilt
        only when a rate was met since the last call."""
        if self._arrays is None or self._arrays[0] != len(self.rows):
            self._arrays = (len(self.rows), self._build_arrays())
        return self._arrays[1]

    def _build_arrays(self):
        filler = ([_SAFE_INT] * self.pieces, [1] * self.pieces, [0] * self.pieces, 0, -1, 0, 2)
        table = [r if r is not None else filler for r in self.rows] + [filler]
        starts = np.array([r[0] for r in table], dtype=np.int64)
        increments = np.array([r[1] for r in table], dtype=np.int64)
        prices = np.array([r[2] for r in table], dtype=np.int64)
        connect = np.array([r[3] for r in table], dtype=np.int64)
        cap = np.array([r[4] for r in table], dtype=np.int64)
        decimals = np.array([r[5] for r in table], dtype=np.int64)
        method = np.array([r[6] for r in table], dtype=np.int64)
        return starts, increments, prices, connect, cap, decimals, method


class BulkRater:
    """Rates Arrow batches of clean CDRs; the same results as `rate_cdr` on each record."""

    def __init__(self, engine: RatingEngine, max_pieces: int = 4, max_segments: int = 6) -> None:
        self.engine, self.max_segments = engine, max_segments
        self.clock = engine.clock
        # K: every increment price has the engine's G decimals; fees and caps may have more.
        plan = engine.plan
        fee_decimals = [_decimals(s.connect_fee) for slots in plan.rates.values() for s in slots]
        cap_decimals = [_decimals(dr.max_cost) for drs in plan.destination_rates.values() for dr in drs]
        self.scale = min(12, max([OUTPUT_SCALE, engine.rounding_decimals] + fee_decimals + cap_decimals))
        self.rates = _PricedRates(engine, self.scale, max_pieces)
        self.activations = np.array(
            sorted({int((p.activation - _EPOCH) // timedelta(microseconds=1)) for p in plan.rating_profiles}),
            dtype=np.int64,
        )
        self._routes: dict[tuple, tuple[_Attempt, ...]] = {}
        self._schedules: dict[tuple[str, str, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._destinations: list[str] = []  # destination ids by code, every plan's prefixes once
        self._prefix_lookups: dict[str, tuple[list, int]] = {}
        self.fast_rows = self.plain_rows = 0

    # -- decisions shared by many records, asked of the engine once --------------------------

    def _route(
        self, record_type: str, incoming: bool, tenant: str, subject: str, technology: str, at: datetime
    ) -> tuple[_Attempt, ...]:
        """The plans `rate_cdr` tries, in order, moving on only when a plan has no destination for
        the number: the first category's subject, its fallback subjects depth first, then the
        service's category the same way. Empty: the plain engine decides."""
        if record_type not in SERVICE or (subject.startswith("(") and subject.endswith(")")):
            return ()
        service = service_of(record_type, "incoming" if incoming else None)
        first = first_category(self.engine, tenant, service, technology, subject, at)
        attempts: list[_Attempt] = []

        def subject_attempts(category: str, candidate: str, tried: set[str], top: bool) -> bool:
            tried.add(candidate)
            selected = self.engine.profile_plan(tenant, category, candidate, at)
            if selected is None:
                return not top  # a fallback without profile is skipped; the subject's own ends the chain
            attempts.append(_Attempt(category, subject, selected[0]))
            for fallback in selected[1]:
                if fallback not in tried:
                    subject_attempts(category, fallback, tried, False)
            return True

        for category in dict.fromkeys((first, service)):
            if not subject_attempts(category, subject, set(), True):
                break  # NO_RATING_PROFILE: the plain engine reports it
        return tuple(attempts)

    def _schedule(self, plan_id: str, destination_id: str, day: int):
        """A local day's band schedule: (start ns after midnight, end ns, destination-rate code) per
        stretch, on the wall clock (day: days since the epoch of the local calendar)."""
        key = (plan_id, destination_id, day)
        if key not in self._schedules:
            candidates = self.engine.candidates(plan_id, destination_id)
            midnight = _at(day * US_PER_DAY)
            starts = sorted(
                {0}
                | {
                    (r.timing.start.hour * 3600 + r.timing.start.minute * 60 + r.timing.start.second) * NS_PER_S
                    + r.timing.start.microsecond * 1000
                    for r, _ in candidates
                }
            )
            codes = []
            for start in starts:
                winner = self.engine.active_at(candidates, midnight + timedelta(microseconds=start // 1000))
                codes.append(-2 if winner is None else self.rates.code(winner[1]))  # -2: nothing active
            ends = starts[1:] + [NS_PER_DAY]
            self._schedules[key] = (np.array(starts, np.int64), np.array(ends, np.int64), np.array(codes, np.int64))
        return self._schedules[key]

    def _prefix_groups(self, plan_id: str):
        """A plan's prefix index as Arrow lookups, longest prefixes first, built once:
        [(length, prefixes, code of the first one in self._destinations)], and the code of *any."""
        if plan_id not in self._prefix_lookups:
            by_prefix, _, has_any = self.engine.prefix_index(plan_id)
            groups = []
            for length in sorted({len(k) for k in by_prefix}, reverse=True):
                prefixes = [k for k in by_prefix if len(k) == length]
                groups.append((length, pa.array(prefixes), len(self._destinations)))
                self._destinations += [by_prefix[k] for k in prefixes]
            any_code = -1
            if has_any:
                any_code = len(self._destinations)
                self._destinations.append(ANY)
            self._prefix_lookups[plan_id] = (groups, any_code)
        return self._prefix_lookups[plan_id]

    def _match(self, plan_id: str, numbers: pa.Array) -> np.ndarray:
        """Longest-prefix destination (a code in self._destinations) per number, or -1."""
        groups, any_code = self._prefix_groups(plan_id)
        found = np.full(len(numbers), -1, np.int64)
        for length, prefixes, base in groups:
            hit = pc.index_in(pc.utf8_slice_codeunits(numbers, 0, length), value_set=prefixes)
            hit = pc.fill_null(hit, -1).to_numpy(zero_copy_only=False).astype(np.int64)
            found = np.where((found < 0) & (hit >= 0), hit + base, found)
        return np.where(found < 0, any_code, found)

    def _stretches(self, plans, plan_code, destination_code, day, tod):
        """(destination-rate code, end ns after midnight) of the stretch each (plan, destination,
        day, time of day) falls in; code -2 when no row is active, -1 when not priceable here."""
        if not len(day):  # every record of the batch went to the plain engine
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        key = (plan_code << 42) | (destination_code << 22) | (day - day.min())
        groups, group_of = np.unique(key, return_inverse=True)
        bounds, ends, codes = [], [], []
        for g, k in enumerate(groups.tolist()):
            s, e, c = self._schedule(
                plans[k >> 42], self._destinations[(k >> 22) & ((1 << 20) - 1)], int(day.min()) + (k & ((1 << 22) - 1))
            )
            bounds.append(s + g * NS_PER_DAY)
            ends.append(e)
            codes.append(c)
        stretch = np.searchsorted(np.concatenate(bounds), group_of * NS_PER_DAY + tod, side="right") - 1
        return np.concatenate(codes)[stretch], np.concatenate(ends)[stretch]

    # -- the batch ---------------------------------------------------------------------------

    def rate(self, batch: pa.RecordBatch | pa.Table) -> dict[str, pa.Array]:
        """Columns kind ('rated' | 'suspense'), reason, detail, usage_amount, usage_unit, tenant,
        category, subject, rating_plan_id, destination_id, cost, connect_fee, rating_day; one row per
        input row."""
        n = batch.num_rows
        col = {name: batch.column(name) for name in INPUT_COLUMNS}
        if isinstance(batch, pa.Table):
            col = {k: v.combine_chunks() for k, v in col.items()}
        start_time = col["start_time"]
        if start_time.type.unit != "us":
            start_time = start_time.cast(pa.timestamp("us", start_time.type.tz))
        start_us = pc.fill_null(start_time.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
        local_us = self.clock.to_local_us(start_us)  # the operator's wall clock
        offset_us = local_us - start_us
        record_type = col["record_type"]
        duration = pc.fill_null(col["duration_s"], 0).to_numpy(zero_copy_only=False).astype(np.int64)
        volume = pc.fill_null(col["data_volume_bytes"], 0).to_numpy(zero_copy_only=False).astype(np.int64)
        is_voice = pc.equal(record_type, "voice").to_numpy(zero_copy_only=False)
        is_sms = pc.equal(record_type, "sms").to_numpy(zero_copy_only=False)
        # usage in engine units and as reported, by USAGE (SMS: one message)
        amount = np.where(is_voice, duration, np.where(is_sms, 1, volume))
        usage = amount * np.where(is_voice, USAGE["voice"][1], 1)
        unit_name = np.where(is_voice, USAGE["voice"][2], np.where(is_sms, USAGE["sms"][2], USAGE["data"][2]))
        metered_null = np.where(
            is_voice,
            pc.is_null(col["duration_s"]).to_numpy(zero_copy_only=False),
            np.where(is_sms, False, pc.is_null(col["data_volume_bytes"]).to_numpy(zero_copy_only=False)),
        )

        # the plain engine takes whatever this path cannot settle
        plain = (
            metered_null
            | (usage < 0)
            | pc.is_null(record_type).to_numpy(zero_copy_only=False)
            | pc.is_null(col["served_operator_id"]).to_numpy(zero_copy_only=False)
            | pc.is_null(col["technology"]).to_numpy(zero_copy_only=False)
            | pc.is_null(col["start_time"]).to_numpy(zero_copy_only=False)
        )

        # 1. route: per distinct key and profile epoch
        incoming = pc.fill_null(pc.equal(col["direction"], "incoming"), False)
        subject = pc.if_else(pc.fill_null(pc.not_equal(col["segment"], ""), False), col["segment"], ANY)
        key = pc.binary_join_element_wise(
            pc.fill_null(record_type, ""),
            pc.if_else(incoming, "1", "0"),
            pc.fill_null(col["served_operator_id"], ""),
            subject,
            pc.fill_null(col["technology"], ""),
            _SEP,
        )
        encoded = key.dictionary_encode()
        key_code = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        epoch = np.searchsorted(self.activations, np.where(plain, 0, start_us), side="right")
        route_key = key_code * (len(self.activations) + 1) + epoch
        unique_routes, first_row, route_of_row = np.unique(route_key, return_index=True, return_inverse=True)
        routes: list[tuple[_Attempt, ...]] = []
        for route_code, row in zip(unique_routes.tolist(), first_row.tolist()):
            parts = encoded.dictionary[route_code // (len(self.activations) + 1)].as_py().split(_SEP)
            cache_key = (*parts, route_code % (len(self.activations) + 1))
            if plain[row]:
                routes.append(())
                continue
            if cache_key not in self._routes:
                self._routes[cache_key] = self._route(
                    parts[0], parts[1] == "1", parts[2], parts[3], parts[4], _at(start_us[row])
                )
            routes.append(self._routes[cache_key])
        plans = sorted({a.plan_id for r in routes for a in r})
        categories = sorted({a.category for r in routes for a in r})
        depth = max((len(r) for r in routes), default=0)
        # attempt a of each route as codes (-1: no such attempt); the extra last route has none
        plan_of = np.full((len(routes) + 1, depth), -1, np.int64)
        category_of = np.full((len(routes) + 1, depth), -1, np.int64)
        for i, attempts in enumerate(routes):
            for a, attempt in enumerate(attempts):
                plan_of[i, a] = plans.index(attempt.plan_id)
                category_of[i, a] = categories.index(attempt.category)
        plain |= (plan_of[route_of_row, 0] < 0) if depth else True

        # 2. destination: longest prefix in the engine's index of the plan, whole columns at once;
        #    a plan with no destination for the number passes the record to the next attempt
        number = pc.if_else(
            pc.and_(pc.not_equal(record_type, "data"), pc.fill_null(pc.not_equal(col["other_msisdn"], ""), False)),
            pc.utf8_ltrim(col["other_msisdn"], "+"),
            "*any",
        )  # = destination_of
        plain |= ~pc.fill_null(pc.string_is_ascii(number), False).to_numpy(zero_copy_only=False)
        destination_code = np.full(n, -1, np.int64)
        plan_code = np.full(n, -1, np.int64)
        category_code = np.full(n, -1, np.int64)
        for a in range(depth):
            plan_a = plan_of[route_of_row, a]
            for p, plan_id in enumerate(plans):
                rows = np.flatnonzero((plan_a == p) & (destination_code < 0) & ~plain)
                if not len(rows):
                    continue
                found = self._match(plan_id, number.take(pa.array(rows)))
                destination_code[rows] = found
                plan_code[rows] = np.where(found >= 0, p, -1)
                category_code[rows] = np.where(found >= 0, category_of[route_of_row[rows], a], -1)
        plain |= destination_code < 0  # no plan has it: suspense, which the plain engine reports

        # 3. spans, as the engine cuts and rounds them: a span ends where another plan row takes over
        #    (voice: also local midnight), at the next rate group (counted from the start of the
        #    usage) or at the end; it is rounded up to whole increments, and the next span starts
        #    where the rounded one ends. SMS and data keep the row active at the start. Days and
        #    times of day are the operator's wall clock; a call during which the clocks change goes
        #    to the plain engine (its wall time jumps).
        call_end_us = np.where(is_voice & (usage > 0) & (usage < _LONGEST_CALL_NS), start_us + usage // 1000, start_us)
        plain |= is_voice & (self.clock.to_local_us(call_end_us) - call_end_us != offset_us)
        fast = np.flatnonzero(~plain)
        voice = is_voice[fast]
        plan_f, dest_f = plan_code[fast], destination_code[fast]
        start_day = local_us[fast] // US_PER_DAY
        start_tod = (local_us[fast] - start_day * US_PER_DAY) * 1000
        total_usage = usage[fast]
        # the row active at the start: the first destination rate (connect fee, max cost, rounding)
        first_code, _ = self._stretches(plans, plan_f, dest_f, start_day, start_tod)
        failed = first_code < 0  # nothing active (NotRated), or a rate not priceable here
        code_now = first_code.copy()
        position = np.zeros(len(fast), np.int64)  # ns from the start of the usage: the next span's start
        spans_cost = np.zeros(len(fast), np.int64)
        for _ in range(self.max_segments * self.rates.pieces):
            todo = np.flatnonzero(~failed & (position < total_usage))
            if not len(todo):
                break
            band_left = np.full(len(todo), _SAFE_INT, np.int64)
            in_voice = voice[todo]
            if in_voice.any():
                calls = todo[in_voice]
                wall = start_tod[calls] + position[calls]
                code, stretch_end = self._stretches(
                    plans, plan_f[calls], dest_f[calls], start_day[calls] + wall // NS_PER_DAY, wall % NS_PER_DAY
                )
                failed[calls[code < 0]] = True
                code_now[calls] = code
                band_left[in_voice] = stretch_end - wall % NS_PER_DAY
            keep = ~failed[todo]
            todo, band_left = todo[keep], band_left[keep]
            starts, increments, prices, *_ = self.rates.arrays()
            code, begin = code_now[todo], position[todo]
            piece = (starts[code] <= begin[:, None]).sum(axis=1) - 1  # the rate group the span starts in
            following = np.concatenate([starts, np.full((len(starts), 1), _SAFE_INT, np.int64)], axis=1)
            group_end = following[code, piece + 1]
            used = np.minimum(np.minimum(total_usage[todo], begin + band_left), group_end) - begin
            step = increments[code, piece]
            count = np.maximum(1, -(-used // step))
            price = prices[code, piece]
            failed[todo[count.astype(np.float64) * price.astype(np.float64) > _SAFE_INT / 64]] = True
            spans_cost[todo] += count * price
            position[todo] = begin + count * step
        failed |= position < total_usage  # more spans than this path follows
        zero_call = voice & (total_usage == 0)  # no span at all: the engine rates it 0
        failed &= ~zero_call
        pieces_cost = spans_cost

        # 4. connect fee (first segment's rate), max cost and final rounding (first destination rate)
        cost_int = np.zeros(n, np.int64)
        fee_int = np.zeros(n, np.int64)
        priced = np.flatnonzero(~failed & ~zero_call)
        if len(priced):
            _, _, _, connect, cap, decimals, method = self.rates.arrays()
            r, u = first_code[priced], total_usage[priced]
            fee = np.where(u > 0, connect[r], 0)
            total = pieces_cost[priced] + fee
            total = np.where((cap[r] >= 0) & (total > cap[r]), cap[r], total)
            drop = np.maximum(self.scale - decimals[r], 0)
            quantum = 10**drop
            down = total // quantum * quantum
            rest = total - down
            # *up: engine.up_threshold of the last kept decimal's unit, in this scale's integer units
            # (at least 1: below one unit of the scale the remainder is exact, any counts)
            threshold = 10 ** np.maximum(drop - np.maximum(MAX_ROUNDING_PRECISION, decimals[r]), 0)
            up = np.where(method[r] == 0, rest >= threshold, np.where(method[r] == 1, False, 2 * rest >= quantum))
            rounded = np.where(drop > 0, down + np.where(up, quantum, 0), total)
            shift = 10 ** (self.scale - OUTPUT_SCALE)
            failed[priced[(rounded % shift != 0) | (fee % shift != 0)]] = True  # not a decimal(18, 6)
            cost_int[fast[priced]] = rounded // shift
            fee_int[fast[priced]] = fee // shift
        plain[fast[failed]] = True

        # 5. assemble; then the plain engine overwrites the rows it was left
        rated_fast = ~plain
        subjects = pa.array([r[0].subject if r else "" for r in routes] + [""])
        route_idx = pa.array(route_of_row)

        def names(values: list[str], codes: np.ndarray) -> pa.Array:
            return pa.array(values + [""]).take(pa.array(np.where(codes >= 0, codes, len(values))))

        out = {
            "kind": pa.array(np.where(rated_fast, "rated", "suspense")),
            "reason": pa.nulls(n, pa.string()),
            "detail": pa.nulls(n, pa.string()),
            "usage_amount": pa.array(amount),
            "usage_unit": pa.array(unit_name),
            "tenant": col["served_operator_id"],
            "category": names(categories, category_code),
            "subject": subjects.take(route_idx),
            "rating_plan_id": names(plans, plan_code),
            "destination_id": names(self._destinations, destination_code),
            "cost": _decimal_array(cost_int),
            "connect_fee": _decimal_array(fee_int),
        }
        slow = np.flatnonzero(plain)
        self.fast_rows += n - len(slow)
        self.plain_rows += len(slow)
        if len(slow):
            out = self._rate_plainly(batch, slow, out)
        # a record is rated on the local day its usage starts
        out["rating_day"] = pa.array((local_us // US_PER_DAY).astype(np.int32), pa.date32())
        return out

    def _rate_plainly(self, batch, rows: np.ndarray, out: dict[str, pa.Array]) -> dict[str, pa.Array]:
        """The plain engine, row by row, for the given rows; their values replace the fast ones."""
        picked = batch.select(list(INPUT_COLUMNS)).take(pa.array(rows)).to_pylist()
        values = {name: [] for name in out}
        for row in picked:
            outcome = plain_outcome(self.engine, row)
            for name, column in values.items():
                column.append(outcome[name])
        mask = np.zeros(len(out["kind"]), bool)
        mask[rows] = True
        mask = pa.array(mask)
        replaced = {}
        for name, column in out.items():
            if isinstance(column, pa.ChunkedArray):
                column = column.combine_chunks()
            replaced[name] = pc.replace_with_mask(column, mask, pa.array(values[name], type=column.type))
        return replaced


def plain_outcome(engine: RatingEngine, row: dict) -> dict:
    """One record by the plain engine, in the bulk output's columns (the reference path)."""
    start = row["start_time"] if row["start_time"].tzinfo else row["start_time"].replace(tzinfo=UTC)
    rating_day = {"rating_day": engine.clock.local_date(start)}  # the local day the usage starts
    try:
        r = rate_cdr(
            engine,
            record_type=row["record_type"],
            direction=row["direction"],
            served_operator_id=row["served_operator_id"],
            segment=row["segment"],
            other_msisdn=row["other_msisdn"],
            technology=row["technology"],
            start_time=start,
            duration_s=row["duration_s"],
            data_volume_bytes=row["data_volume_bytes"],
        )
        return {
            "kind": "rated",
            "reason": None,
            "detail": None,
            "usage_amount": r.usage_amount,
            "usage_unit": r.usage_unit,
            "tenant": r.tenant,
            "category": r.category,
            "subject": r.subject,
            "rating_plan_id": r.rating_plan_id,
            "destination_id": r.destination_id,
            "cost": r.cost,
            "connect_fee": r.connect_fee,
        } | rating_day
    except NotRated as exc:
        _, amount, unit = usage_of(row["record_type"], row["duration_s"], row["data_volume_bytes"])
        return {
            "kind": "suspense",
            "reason": exc.reason,
            "detail": exc.detail[:400],
            "usage_amount": amount,
            "usage_unit": unit,
            "tenant": row["served_operator_id"],
            "category": "",
            "subject": "",
            "rating_plan_id": "",
            "destination_id": "",
            "cost": Decimal(0),
            "connect_fee": Decimal(0),
        } | rating_day


def _decimal_array(unscaled: np.ndarray) -> pa.Array:
    """int64 amounts in 10^-6 units as decimal128(18, 6), without a Python object per value."""
    pairs = np.empty((len(unscaled), 2), np.int64)
    pairs[:, 0] = unscaled
    pairs[:, 1] = np.where(unscaled < 0, -1, 0)  # two's complement high word
    return pa.Array.from_buffers(OUTPUT_TYPE, len(unscaled), [None, pa.py_buffer(pairs.tobytes())])


__all__ = ["BulkRater", "plain_outcome", "destination_of", "subject_of"]
