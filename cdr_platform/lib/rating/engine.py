"""The rating engine: the cost of one usage record under a tariff plan, CGRateS semantics.

1. Profile: (tenant, category, subject) exact, else subject *any; the latest activation at or
   before the call start. Its fallback subjects are tried when no destination matches.
2. Destination: the longest prefix of the dialled number among the destinations the plan
   prices; else the plan's *any destination.
3. Time bands (voice only), in the operator's local time (lib/tariff_clock.py): the call is split at
   local midnight, wherever another plan row becomes active and where the clocks change; at
   any instant the highest weight wins, then the latest start time. SMS and data are priced
   whole by the row active at the start.
4. Rate groups by GroupIntervalStart, counted from the start of the usage.
5. Spans end at a band change, at the next rate group or at the end of the usage; each rounds up
   to whole increments (at least one), and the next span starts where the rounded one ends (a
   span that rounding lengthens extends into the next, as CGRateS's roundTimeSpansToIncrement).
   One increment costs increment x rate / unit, rounded half-up to `rounding_decimals` (G),
   times the count.
6. Connect fee once, from the first span's rate; none for zero usage.
7. Max cost: *free caps the cost; *disconnect leaves it.
8. Final rounding by the destination rate's method (*up, *middle, *down) and decimals.

Money is Decimal throughout: the rules decide every rounding, never binary floats.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal

from cdr_platform.lib.rating.plan import ANY, DestinationRate, RateSlot, RatingPlanRow, TariffPlan
from cdr_platform.lib.tariff_clock import UTC_CLOCK, TariffClock

DEFAULT_ROUNDING_DECIMALS = 5  # a running CGRateS; its engine unit tests use 6
NS_PER_S = 1_000_000_000
MAX_ROUNDING_PRECISION = 7  # CGRateS utils.Round's maxPrec
_MICROSECOND = timedelta(microseconds=1)


class NotRated(Exception):
    """No profile, plan or destination covers the record: it goes to suspense, never to 0."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}")


@dataclass(frozen=True)
class Span:
    start: datetime
    usage_ns: int  # as used, before rounding up to increments
    rated_ns: int  # rounded up to whole increments
    rates_tag: str
    rate: Decimal
    rate_unit_ns: int
    rate_increment_ns: int
    increments: int
    cost: Decimal


@dataclass
class Rating:
    cost: Decimal
    connect_fee: Decimal
    rating_plan_id: str
    destination_id: str
    matched_prefix: str | None
    spans: list[Span] = field(default_factory=list)


def up_threshold(decimals: int) -> Decimal:
    """The least remainder *up rounds up, in units of the last decimal kept: CGRateS's
    utils.Round ignores a remainder below 10^-max(7, decimals) of that unit (its cut of float
    noise); at or above it, even a tiny one, it rounds up."""
    return Decimal(1).scaleb(-max(MAX_ROUNDING_PRECISION, decimals))


def round_money(value: Decimal, decimals: int, method: str) -> Decimal:
    """CGRateS's rounding methods at `decimals`, on the exact value: *up (see up_threshold),
    *down (floor), *middle (half up: 2.935 -> 2.94, no float noise)."""
    quantum = Decimal(1).scaleb(-decimals)
    down = value.quantize(quantum, rounding=ROUND_FLOOR)
    if method == "*up":
        return down + quantum if (value - down).scaleb(decimals) >= up_threshold(decimals) else down
    if method == "*down":
        return down
    return value.quantize(quantum, rounding=ROUND_HALF_UP)  # *middle


class RatingEngine:
    def __init__(
        self, plan: TariffPlan, rounding_decimals: int = DEFAULT_ROUNDING_DECIMALS, clock: TariffClock = UTC_CLOCK
    ) -> None:
        self.plan = plan
        self.rounding_decimals = rounding_decimals
        self.clock = clock  # the time zone the plan's timings are written in
        self._increment_quantum = Decimal(1).scaleb(-rounding_decimals)
        # Indexes built once: they change how fast a rule is looked up, never what it says.
        self._profiles: dict[tuple[str, str, str], list] = {}
        for p in plan.rating_profiles:
            self._profiles.setdefault((p.tenant, p.category, p.subject), []).append(p)
        self._prefixes: dict[str, tuple[dict[str, str], int, bool]] = {}
        self._candidate_cache: dict[tuple[str, str], list] = {}

    # -- selection ------------------------------------------------------------------------

    def profile_plan(self, tenant: str, category: str, subject: str, at: datetime):
        """(rating plan id, fallback subjects) of the profile in force at `at`, or None."""
        for candidate in (subject, ANY):
            active = [p for p in self._profiles.get((tenant, category, candidate), ()) if p.activation <= at]
            if active:
                best = max(active, key=lambda p: p.activation)
                return best.rating_plan_id, best.fallback_subjects
        return None

    def prefix_index(self, rating_plan_id: str) -> tuple[dict[str, str], int, bool]:
        """(prefix -> destination id, longest prefix length, plan prices *any) of a plan.

        A prefix listed under two destinations belongs to the first the plan lists.
        """
        if rating_plan_id not in self._prefixes:
            by_prefix: dict[str, str] = {}
            has_any = False
            for row in self.plan.rating_plans[rating_plan_id]:
                for dr in self.plan.destination_rates[row.destination_rates_id]:
                    if dr.destination_id == ANY:
                        has_any = True
                        continue
                    for prefix in self.plan.destinations.get(dr.destination_id, ()):
                        by_prefix.setdefault(prefix, dr.destination_id)
            self._prefixes[rating_plan_id] = (by_prefix, max(map(len, by_prefix), default=0), has_any)
        return self._prefixes[rating_plan_id]

    def match_destination(self, rating_plan_id: str, number: str) -> tuple[str, str | None] | None:
        """(destination id, matched prefix) by longest prefix among the plan's destinations."""
        by_prefix, longest, has_any = self.prefix_index(rating_plan_id)
        for length in range(min(longest, len(number)), 0, -1):
            destination_id = by_prefix.get(number[:length])
            if destination_id is not None:
                return destination_id, number[:length]
        return (ANY, None) if has_any else None

    def candidates(self, rating_plan_id: str, destination_id: str) -> list[tuple[RatingPlanRow, DestinationRate]]:
        key = (rating_plan_id, destination_id)
        if key not in self._candidate_cache:
            self._candidate_cache[key] = self._find_candidates(rating_plan_id, destination_id)
        return self._candidate_cache[key]

    def _find_candidates(self, rating_plan_id: str, destination_id: str) -> list[tuple[RatingPlanRow, DestinationRate]]:
        out = []
        for row in self.plan.rating_plans[rating_plan_id]:
            for dr in self.plan.destination_rates[row.destination_rates_id]:
                if dr.destination_id == destination_id:
                    out.append((row, dr))
        return out

    @staticmethod
    def active_at(candidates, instant: datetime):
        """The winning (row, destination rate) at a wall time: highest weight, then latest start."""
        tod = instant.time()
        active = [(row, dr) for row, dr in candidates if row.timing.applies_on(instant) and row.timing.start <= tod]
        if not active:
            return None
        return max(active, key=lambda c: (c[0].weight, c[0].timing.start))

    @staticmethod
    def next_change(candidates, instant: datetime) -> datetime:
        """The next wall time another row may become active: a start time later today, or midnight."""
        midnight = datetime.combine(instant.date() + timedelta(days=1), datetime.min.time(), instant.tzinfo)
        nxt = midnight
        for row, _ in candidates:
            start = datetime.combine(instant.date(), row.timing.start, instant.tzinfo)
            if instant < start < nxt:
                nxt = start
        return nxt

    # -- rating ---------------------------------------------------------------------------

    def rate(
        self,
        *,
        tor: str,
        tenant: str,
        category: str,
        subject: str,
        destination: str,
        setup_time: datetime,
        usage_ns: int,
    ) -> Rating:
        if usage_ns < 0:
            raise NotRated("NEGATIVE_USAGE", f"usage {usage_ns} ns")
        if setup_time.tzinfo is None:  # the warehouse's naive timestamps are UTC
            setup_time = setup_time.replace(tzinfo=UTC)
        if subject.startswith("(") and subject.endswith(")"):  # "(RatingPlan A|B)": the cheapest
            names = [n.strip().removeprefix("RatingPlan").strip() for n in subject[1:-1].split("|")]
            ratings, last_error = [], None
            for name in names:
                if name not in self.plan.rating_plans:
                    raise NotRated("UNKNOWN_RATING_PLAN", name)
                try:
                    ratings.append(self._rate_on_plan(name, tor, destination, setup_time, usage_ns))
                except NotRated as exc:
                    last_error = exc
            if not ratings:
                raise last_error or NotRated("NO_RATING_PLAN", subject)
            return min(ratings, key=lambda r: r.cost)
        return self._rate_subject(tor, tenant, category, subject, destination, setup_time, usage_ns, set())

    def _rate_subject(self, tor, tenant, category, subject, destination, setup_time, usage_ns, tried) -> Rating:
        tried.add(subject)
        selected = self.profile_plan(tenant, category, subject, setup_time)
        if selected is None:
            raise NotRated("NO_RATING_PROFILE", f"{tenant}/{category}/{subject} at {setup_time.isoformat()}")
        plan_id, fallbacks = selected
        try:
            return self._rate_on_plan(plan_id, tor, destination, setup_time, usage_ns)
        except NotRated as exc:
            if exc.reason != "NO_DESTINATION":
                raise
            for fallback in fallbacks:
                if fallback not in tried:
                    try:
                        return self._rate_subject(
                            tor, tenant, category, fallback, destination, setup_time, usage_ns, tried
                        )
                    except NotRated:
                        continue
            raise

    def _rate_on_plan(self, plan_id: str, tor: str, destination: str, setup_time: datetime, usage_ns: int) -> Rating:
        matched = self.match_destination(plan_id, destination)
        if matched is None:
            raise NotRated("NO_DESTINATION", f"{destination!r} in rating plan {plan_id}")
        destination_id, prefix = matched
        candidates = self.candidates(plan_id, destination_id)
        spans, first_dr = self._spans(candidates, plan_id, destination_id, tor, setup_time, usage_ns)
        cost = sum((s.cost for s in spans), Decimal(0))
        connect_fee = Decimal(0)
        if usage_ns > 0 and spans:
            connect_fee = self.slot_at(self.plan.rates[first_dr.rates_tag], 0).connect_fee
        cost += connect_fee
        if first_dr.max_cost > 0 and first_dr.max_cost_strategy == "*free" and cost > first_dr.max_cost:
            cost = first_dr.max_cost
        cost = round_money(cost, first_dr.rounding_decimals, first_dr.rounding_method)
        return Rating(cost, connect_fee, plan_id, destination_id, prefix, spans)

    def _winner(self, candidates, plan_id: str, destination_id: str, instant: datetime):
        wall = self.clock.local(instant)
        winner = self.active_at(candidates, wall)
        if winner is None:
            raise NotRated("NO_ACTIVE_RATE", f"{destination_id} in {plan_id} at {wall.isoformat()}")
        return wall, winner

    def _spans(
        self, candidates, plan_id: str, destination_id: str, tor: str, setup_time: datetime, usage_ns: int
    ) -> tuple[list[Span], DestinationRate]:
        """The usage as CGRateS cuts and rounds it: a span ends at a band change (voice: local midnight,
        another row taking over, a clock change), at the next rate group (counted from the start of
        the usage) or at the end of the usage; it is rounded up to whole increments (at least one),
        and the next span starts where the rounded one ends - so a split call is charged its own
        duration, rounded once per span it still has, never an extra increment per split."""
        if usage_ns == 0 and tor == "*voice":  # a call of no duration: no span, no cost
            return [], candidates[0][1]
        _, (_, first_dr) = self._winner(candidates, plan_id, destination_id, setup_time)
        if usage_ns == 0:  # SMS or data of no volume: one span of nothing, no connect fee
            slot = self.slot_at(self.plan.rates[first_dr.rates_tag], 0)
            zero = Span(
                setup_time,
                0,
                0,
                first_dr.rates_tag,
                slot.rate,
                slot.rate_unit_ns,
                slot.rate_increment_ns,
                0,
                Decimal(0),
            )
            return [zero], first_dr
        spans: list[Span] = []
        position = 0  # ns from the start of the usage: where the next span starts
        dr = first_dr
        while position < usage_ns:
            instant = setup_time + timedelta(microseconds=position // 1000)
            band_end = usage_ns
            if tor == "*voice":  # SMS and data are priced whole by the row active at the start
                wall, (_, dr) = self._winner(candidates, plan_id, destination_id, instant)
                change = self.clock.next_change(instant, self.next_change(candidates, wall))
                band_end = position + (change - instant) // _MICROSECOND * 1000
            slots = self.plan.rates[dr.rates_tag]
            slot = self.slot_at(slots, position)
            group_end = min(
                (s.group_interval_start_ns for s in slots if s.group_interval_start_ns > position), default=usage_ns
            )
            used = min(usage_ns, band_end, group_end) - position
            increments = max(1, -(-used // slot.rate_increment_ns))
            rated = increments * slot.rate_increment_ns
            spans.append(
                Span(
                    instant,
                    used,
                    rated,
                    dr.rates_tag,
                    slot.rate,
                    slot.rate_unit_ns,
                    slot.rate_increment_ns,
                    increments,
                    self.increment_price(slot) * increments,
                )
            )
            position += rated
        return spans, first_dr

    @staticmethod
    def slot_at(slots: list[RateSlot], offset_ns: int) -> RateSlot:
        current = slots[0]
        for slot in slots:
            if slot.group_interval_start_ns <= offset_ns:
                current = slot
        return current

    def increment_price(self, slot: RateSlot) -> Decimal:
        """What one increment of a slot costs: increment x rate / unit, rounded to G decimals."""
        return (Decimal(slot.rate_increment_ns) * slot.rate / Decimal(slot.rate_unit_ns)).quantize(
            self._increment_quantum, rounding=ROUND_HALF_UP
        )
