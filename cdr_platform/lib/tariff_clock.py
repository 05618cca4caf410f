"""The operator's clock: tariff time bands, weekdays and rating days are read in local time.

A tariff says "peak from 08:00, Monday to Friday" in the operator's own time (Morocco: UTC+1,
UTC+0 during Ramadan). CDRs carry UTC instants. This module is the one place that turns one
into the other, for the plain engine, the bulk path and the rating job alike:

* `local(instant)`: the wall time of a UTC instant;
* `next_change(instant, wall)`: the first instant at or after which the wall clock shows
  `wall`, or at which the clock is changed (a jump of the wall time is itself a band change);
* `day_bounds(day)`: the UTC instants [start, end) of a local day (23 or 25 hours long on the
  days the clocks change);
* `offsets(lo_us, hi_us)`: the UTC offset as a step function over a range, for numpy.

The zone database is the `tzdata` package (a dependency), so results do not depend on the
machine. The CGRateS conformance plans keep UTC, as CGRateS's own tests do.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
# the longest UTC offset change the zone database holds is under a day; scanned in steps of 6 h
_SCAN = timedelta(hours=6)


def zone(name: str) -> tzinfo:
    """The IANA zone of a setting, with a clear error for a name the zone database lacks."""
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}: an IANA name such as Africa/Casablanca or UTC") from None


def _us(instant: datetime) -> int:
    return (instant - _EPOCH) // _US


def _at_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=int(us))


class TariffClock:
    """Local time of one zone. UTC (the default) makes every method the identity it should be."""

    def __init__(self, tz: tzinfo | str = UTC) -> None:
        self.tz = zone(tz) if isinstance(tz, str) else tz
        self.is_utc = self.tz is UTC

    def __repr__(self) -> str:
        return f"TariffClock({getattr(self.tz, 'key', str(self.tz))!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TariffClock) and str(self.tz) == str(other.tz)

    def __hash__(self) -> int:
        return hash(str(self.tz))

    def __reduce__(self):  # pickled into Spark's workers by zone name
        return (TariffClock, (getattr(self.tz, "key", "UTC"),))

    # -- instants and wall times --------------------------------------------------------

    def local(self, instant: datetime) -> datetime:
        """The wall time (aware, in the zone) of an instant."""
        return instant.astimezone(self.tz)

    def _offset_at(self, instant: datetime) -> timedelta:
        return instant.astimezone(self.tz).utcoffset() or timedelta(0)

    def _first_with_offset(self, lo: datetime, hi: datetime) -> datetime:
        """The clock change in (lo, hi]: the first instant whose offset is hi's (offset(lo) differs)."""
        target = self._offset_at(hi)
        while hi - lo > _US:
            mid = lo + (hi - lo) // 2
            if self._offset_at(mid) == target:
                hi = mid
            else:
                lo = mid
        return hi

    def next_change(self, instant: datetime, wall: datetime) -> datetime:
        """The instant at which the wall clock, now showing `local(instant)`, reaches `wall` (a
        later wall time, aware in this zone), or the clock change before that, whichever is first.

        Between two changes the wall clock runs with UTC, so the answer is `instant` plus the
        wall-time difference, unless the offset differs by then: then the change comes first.
        """
        now = self.local(instant)
        guess = instant + (wall.replace(tzinfo=None) - now.replace(tzinfo=None))
        if self.is_utc or self._offset_at(guess) == now.utcoffset():
            return guess
        return self._first_with_offset(instant, guess)

    # -- local days ---------------------------------------------------------------------

    def day_start(self, day: date) -> datetime:
        """The first UTC instant whose local date is `day` (midnight, or the clock change that
        skips it)."""
        guess = datetime.combine(day, time(), self.tz).astimezone(UTC)
        if self.is_utc or (self.local(guess).date() == day and self.local(guess - _US).date() < day):
            return guess  # midnight exists, as it does on every day in most zones
        lo, hi = guess - timedelta(days=1), guess + timedelta(days=1)
        while hi - lo > _US:  # local dates only grow with the instant
            mid = lo + (hi - lo) // 2
            if self.local(mid).date() >= day:
                hi = mid
            else:
                lo = mid
        return hi

    def day_bounds(self, day: date) -> tuple[datetime, datetime]:
        """[start, end) of a local day as UTC instants."""
        return self.day_start(day), self.day_start(day + timedelta(days=1))

    def day_bounds_naive(self, day: date) -> tuple[datetime, datetime]:
        """The same as naive UTC wall times, as the warehouse stores start_time."""
        start, end = self.day_bounds(day)
        return start.replace(tzinfo=None), end.replace(tzinfo=None)

    def local_date(self, instant: datetime) -> date:
        return self.local(instant).date()

    # -- vectorised --------------------------------------------------------------------

    def offsets(self, lo_us: int, hi_us: int) -> tuple[np.ndarray, np.ndarray]:
        """(change instants, offsets) over [lo_us, hi_us] in µs since the epoch (UTC): the offset at
        u is offsets[searchsorted(changes, u, side='right')]; len(offsets) == len(changes) + 1."""
        years = range(_at_us(lo_us).year, _at_us(hi_us).year + 1)
        found = sorted({change for year in years for change in _changes_in_year(self, year)})
        first = self._offset_at(_at_us(lo_us)) if not found or found[0] > lo_us else None
        offsets = [first if first is not None else self._offset_at(_at_us(found[0] - 1))]
        offsets += [self._offset_at(_at_us(change)) for change in found]
        return np.array(found, dtype=np.int64), np.array([o // _US for o in offsets], dtype=np.int64)

    def to_local_us(self, utc_us: np.ndarray) -> np.ndarray:
        """UTC µs since the epoch -> local wall-time µs since the epoch (years 1900-2199; other
        instants are left as they are: no CDR the pipeline rates is dated there)."""
        utc_us = np.asarray(utc_us, dtype=np.int64)
        if self.is_utc or not len(utc_us):
            return utc_us
        plausible = (utc_us >= _PLAUSIBLE_US[0]) & (utc_us < _PLAUSIBLE_US[1])
        if not plausible.any():
            return utc_us
        changes, offsets = self.offsets(int(utc_us[plausible].min()), int(utc_us[plausible].max()))
        return np.where(plausible, utc_us + offsets[np.searchsorted(changes, utc_us, side="right")], utc_us)


_PLAUSIBLE_US = (_us(datetime(1900, 1, 1, tzinfo=UTC)), _us(datetime(2200, 1, 1, tzinfo=UTC)))


@lru_cache(maxsize=1024)
def _changes_in_year(clock: TariffClock, year: int) -> tuple[int, ...]:
    """The clock changes of one UTC year (µs since the epoch), found by reading the offset every
    few hours and bisecting each change to the microsecond."""
    at = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    changes = []
    while at < end:
        step = min(at + _SCAN, end)
        if clock._offset_at(step) != clock._offset_at(at):
            changes.append(_us(clock._first_with_offset(at, step)))
        at = step
    return tuple(changes)


UTC_CLOCK = TariffClock(UTC)
