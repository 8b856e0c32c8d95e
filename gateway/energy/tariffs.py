"""Tariff model: flat, time-of-use and real-time energy charges, demand, fixed and minimum charges (§5).

Everything here is a frozen keyword-only dataclass, validated when it is built: a tariff that cannot price
every instant of the year (a gap or an overlap in its time-of-use windows, a tier limit that goes down, a
period name the schedule uses but nobody defined) fails at import with a message, never on the night it
first matters. Pricing itself lives in `gateway.energy.pricing`; importers in `tariffs_urdb` and `prices`.

Time-of-use is resolved on the site's *local wall clock* (its IANA zone, passed to the pricing call), because
that is how utilities write tariffs: "14:00-19:00 weekdays" means 14:00 local on the 23-hour spring day and
on the 25-hour autumn day alike, i.e. 19:00Z in CDT but 20:00Z in CST. A window's months and weekdays apply
to the local date of each instant, so the 00:00-06:00 part of a window that wraps midnight belongs to the
morning of the day it is written for. Windows have minute resolution; the meter splits its intervals at
period boundaries (§5), so an interval is priced by the period in force at its start.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, time
from decimal import Decimal
from itertools import pairwise
from typing import Literal

from gateway.energy.units import to_epoch

__all__ = [
    "ALL_DAYS",
    "ALL_MONTHS",
    "WEEKDAYS",
    "WEEKEND",
    "DemandCharges",
    "EnergyCharge",
    "FixedCharges",
    "FlatEnergy",
    "MinimumCharge",
    "PriceSeries",
    "RatePeriod",
    "RateTier",
    "RealTimeEnergy",
    "Tariff",
    "TariffError",
    "TouEnergy",
    "TouSchedule",
    "TouWindow",
    "tariff_at",
]

ALL_MONTHS = frozenset(range(1, 13))
ALL_DAYS = frozenset(range(7))  # datetime.weekday(): Monday = 0
WEEKDAYS = frozenset(range(5))  # URDB's "weekday" is Mon-Fri; it has no holiday list
WEEKEND = frozenset({5, 6})
DEMAND_INTERVALS_S = (900, 1800, 3600)
_DAY_MIN = 1440


class TariffError(ValueError):
    """A tariff that cannot be priced as written."""


def _check_money(what: str, value: object) -> None:
    # Floats would already have lost the cent; NaN/inf would poison every sum they touch.
    if not isinstance(value, Decimal) or not value.is_finite():
        raise TariffError(f"{what} must be a finite Decimal, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class RateTier:
    """One block of a tiered rate: `rate` $ per unit (kWh for energy, kW for demand) up to `limit`.

    `limit` is cumulative over the billing period (URDB `max`): tier 1 covers [0, limit1), tier 2
    [limit1, limit2) and so on; `None` is unbounded and only the last tier may have it."""

    rate: Decimal
    limit: Decimal | None = None

    def __post_init__(self) -> None:
        _check_money("rate", self.rate)
        if self.limit is not None:
            _check_money("tier limit", self.limit)
            if self.limit <= 0:
                raise TariffError(f"tier limit must be > 0, got {self.limit}")


@dataclass(frozen=True, slots=True, kw_only=True)
class RatePeriod:
    """A named period (energy or demand) and its tiers."""

    name: str
    tiers: tuple[RateTier, ...]

    def __post_init__(self) -> None:
        if not self.name:
            raise TariffError("a period needs a name")
        if not self.tiers:
            raise TariffError(f"period {self.name!r} has no tiers")
        previous = Decimal(0)
        for i, tier in enumerate(self.tiers):
            last = i == len(self.tiers) - 1
            if tier.limit is None and not last:
                raise TariffError(f"period {self.name!r}: only the last tier may be unbounded")
            if tier.limit is not None and tier.limit <= previous:
                raise TariffError(
                    f"period {self.name!r}: tier {i + 1} limit {tier.limit} is not above {previous}"
                )
            previous = tier.limit if tier.limit is not None else previous


def single_rate(name: str, rate: Decimal) -> RatePeriod:
    return RatePeriod(name=name, tiers=(RateTier(rate=rate),))


def _minute_of(t: time, what: str) -> int:
    if t.second or t.microsecond or t.tzinfo is not None:
        raise TariffError(f"{what} {t.isoformat()} must be a naive local time on a whole minute")
    return t.hour * 60 + t.minute


@dataclass(frozen=True, slots=True, kw_only=True)
class TouWindow:
    """`period` applies on local dates in `months` x `weekdays`, from `start` (inclusive) to `end`.

    `end` is exclusive; `time(0)` as `end` means the midnight that ends the day. `start > end` wraps
    midnight (22:00-06:00 covers 22:00-24:00 and 00:00-06:00 of each listed day); 00:00-00:00 is all day."""

    period: str
    months: frozenset[int] = ALL_MONTHS
    weekdays: frozenset[int] = ALL_DAYS
    start: time = time(0)
    end: time = time(0)

    def __post_init__(self) -> None:
        if not self.months or not self.months <= ALL_MONTHS:
            raise TariffError(f"window {self.period!r}: months must be a non-empty subset of 1..12")
        if not self.weekdays or not self.weekdays <= ALL_DAYS:
            raise TariffError(f"window {self.period!r}: weekdays must be a non-empty subset of 0..6 (Mon=0)")
        start, end = _minute_of(self.start, "start"), _minute_of(self.end, "end") or _DAY_MIN
        if start == end:
            raise TariffError(f"window {self.period!r}: start == end ({self.start}) covers nothing")

    def segments(self) -> tuple[tuple[int, int], ...]:
        """Minute-of-day ranges [a, b) this window covers on each listed day."""
        start, end = _minute_of(self.start, "start"), _minute_of(self.end, "end") or _DAY_MIN
        if start < end:
            return ((start, end),)
        return ((start, _DAY_MIN), (0, end))


# (month, weekday) -> (segment starts, segment ends, period names), sorted by start
_Table = dict[tuple[int, int], tuple[tuple[int, ...], tuple[int, ...], tuple[str, ...]]]


@dataclass(frozen=True, slots=True, kw_only=True)
class TouSchedule:
    """Windows that together cover every local minute of every day of the year exactly once."""

    windows: tuple[TouWindow, ...]
    _table: _Table = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not self.windows:
            raise TariffError("a time-of-use schedule needs at least one window")
        table: _Table = {}
        for month in sorted(ALL_MONTHS):
            for day in sorted(ALL_DAYS):
                segs = sorted(
                    (a, b, w.period)
                    for w in self.windows
                    if month in w.months and day in w.weekdays
                    for a, b in w.segments()
                )
                reached = 0
                for a, b, name in segs:
                    if a != reached:
                        kind = "overlaps" if a < reached else "leaves a gap before"
                        raise TariffError(
                            f"time-of-use windows: {name!r} {kind} {_hhmm(a)} on month {month} weekday {day}"
                        )
                    reached = b
                if reached != _DAY_MIN:
                    raise TariffError(
                        f"time-of-use windows leave {_hhmm(reached)}-24:00 uncovered on month {month} "
                        f"weekday {day}"
                    )
                table[(month, day)] = (
                    tuple(a for a, _, _ in segs),
                    tuple(b for _, b, _ in segs),
                    tuple(n for _, _, n in segs),
                )
        object.__setattr__(self, "_table", table)

    @property
    def period_names(self) -> frozenset[str]:
        return frozenset(w.period for w in self.windows)

    def period_at(self, local: datetime) -> str:
        """The period at a local wall-clock time (aware, in the site zone; or that zone's naive wall time)."""
        starts, _, names = self._table[(local.month, local.weekday())]
        return names[bisect_right(starts, local.hour * 60 + local.minute) - 1]


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


@dataclass(frozen=True, slots=True, kw_only=True)
class FlatEnergy:
    """One price per kWh at all times."""

    rate_per_kwh: Decimal
    period: str = "energy"

    def __post_init__(self) -> None:
        _check_money("rate_per_kwh", self.rate_per_kwh)


@dataclass(frozen=True, slots=True, kw_only=True)
class TouEnergy:
    """Named periods with (optionally tiered) $/kWh rates, chosen by a local-time schedule."""

    periods: tuple[RatePeriod, ...]
    schedule: TouSchedule

    def __post_init__(self) -> None:
        _check_periods("energy", self.periods, self.schedule)


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceSeries:
    """Imported market prices: `prices_per_kwh[i]` holds over `[starts[i], starts[i] + interval_s)`.

    Intervals are whole multiples of 15 minutes and start on 15-minute instants, so a metered 15-minute
    interval never straddles two prices. Gaps are allowed here (a feed can miss an interval); pricing energy
    that falls into a gap is refused rather than guessed."""

    interval_s: int
    starts: tuple[int, ...]
    prices_per_kwh: tuple[Decimal, ...]
    source: str = ""

    def __post_init__(self) -> None:
        if self.interval_s <= 0 or self.interval_s % 900:
            raise TariffError(f"price interval must be a multiple of 900 s, got {self.interval_s}")
        if len(self.starts) != len(self.prices_per_kwh):
            raise TariffError("price series: starts and prices differ in length")
        previous: int | None = None
        for ts, price in zip(self.starts, self.prices_per_kwh, strict=True):
            _check_money("price", price)
            if ts % 900:
                raise TariffError(f"price interval start {ts} is not on a 15-minute instant")
            if previous is not None and ts < previous + self.interval_s:
                raise TariffError(f"price intervals at {previous} and {ts} overlap or are out of order")
            previous = ts

    def index_of(self, ts: int) -> int | None:
        """Index of the price interval containing instant `ts`, or None."""
        i = bisect_right(self.starts, ts) - 1
        if i >= 0 and ts < self.starts[i] + self.interval_s:
            return i
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class RealTimeEnergy:
    """Market price per interval, plus an optional fixed adder (delivery, retail margin) on its own line."""

    prices: PriceSeries
    adder_per_kwh: Decimal = Decimal(0)
    period: str = "real-time"

    def __post_init__(self) -> None:
        _check_money("adder_per_kwh", self.adder_per_kwh)


EnergyCharge = FlatEnergy | TouEnergy | RealTimeEnergy


def _check_periods(kind: str, periods: tuple[RatePeriod, ...], schedule: TouSchedule | None) -> None:
    names = [p.name for p in periods]
    if len(set(names)) != len(names):
        raise TariffError(f"{kind} period names are not unique: {names}")
    if schedule is not None:
        missing = schedule.period_names - set(names)
        if missing:
            raise TariffError(f"{kind} schedule uses undefined period(s) {sorted(missing)}")


@dataclass(frozen=True, slots=True, kw_only=True)
class DemandCharges:
    """Demand: the highest average kW over one demand interval, charged per period of a billing period.

    `interval_s` (900/1800/3600) is a site setting: tariffs say "15-minute demand" in prose and URDB does not
    carry it. TOU demand: the peak inside each period's windows x that period's $/kW tiers. Flat monthly
    demand: the peak over the whole month x `flat_periods[flat_months[month - 1]]` (None = no charge)."""

    interval_s: int = 900
    tou_periods: tuple[RatePeriod, ...] = ()
    tou_schedule: TouSchedule | None = None
    flat_periods: tuple[RatePeriod, ...] = ()
    flat_months: tuple[str | None, ...] = ()

    def __post_init__(self) -> None:
        if self.interval_s not in DEMAND_INTERVALS_S:
            raise TariffError(f"demand interval must be one of {DEMAND_INTERVALS_S} s, got {self.interval_s}")
        if bool(self.tou_periods) != (self.tou_schedule is not None):
            raise TariffError("TOU demand needs both periods and a schedule")
        _check_periods("demand", self.tou_periods, self.tou_schedule)
        _check_periods("flat demand", self.flat_periods, None)
        if self.flat_periods or self.flat_months:
            if len(self.flat_months) != 12:
                raise TariffError("flat_months must name a flat-demand period (or None) for all 12 months")
            unknown = {m for m in self.flat_months if m is not None} - {p.name for p in self.flat_periods}
            if unknown:
                raise TariffError(f"flat_months uses undefined flat-demand period(s) {sorted(unknown)}")


def flat_demand(rate_per_kw: Decimal, *, interval_s: int = 900) -> DemandCharges:
    """The common case: one $/kW on the month's peak, every month."""
    return DemandCharges(
        interval_s=interval_s,
        flat_periods=(single_rate("demand", rate_per_kw),),
        flat_months=("demand",) * 12,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class FixedCharges:
    per_month: Decimal = Decimal(0)
    per_day: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        _check_money("per_month", self.per_month)
        _check_money("per_day", self.per_day)


@dataclass(frozen=True, slots=True, kw_only=True)
class MinimumCharge:
    """The bill is never below `amount` per month (or per day of the billing period)."""

    amount: Decimal
    per: Literal["month", "day"] = "month"

    def __post_init__(self) -> None:
        _check_money("minimum charge", self.amount)
        if self.per not in ("month", "day"):
            raise TariffError(f"minimum charge per {self.per!r}: only month or day")


@dataclass(frozen=True, slots=True, kw_only=True)
class Tariff:
    """A complete tariff, in force over `[valid_from, valid_to)` (UTC epoch s; `valid_to` None = open).

    History is kept by keeping every version with its own validity (see `tariff_at`), never by editing
    one in place: an old invoice must still be reproducible from the tariff it was priced under."""

    name: str
    energy: EnergyCharge
    valid_from: int
    valid_to: int | None = None
    demand: DemandCharges = field(default_factory=DemandCharges)
    fixed: FixedCharges = field(default_factory=FixedCharges)
    minimum: MinimumCharge | None = None
    currency: str = "USD"
    minor_unit: int = 2
    notes: tuple[str, ...] = ()  # what the source had that we do not apply (say it, never drop it silently)

    def __post_init__(self) -> None:
        if not self.name:
            raise TariffError("a tariff needs a name")
        to_epoch(self.valid_from, what="valid_from")
        if self.valid_to is not None and to_epoch(self.valid_to, what="valid_to") <= self.valid_from:
            raise TariffError(f"tariff {self.name!r}: valid_to must be after valid_from")
        if not 0 <= self.minor_unit <= 4:
            raise TariffError(f"minor unit {self.minor_unit} is not a currency's")

    def covers(self, ts: int) -> bool:
        return self.valid_from <= ts and (self.valid_to is None or ts < self.valid_to)


def tariff_at(history: Sequence[Tariff], ts: int) -> Tariff:
    """The tariff in force at `ts`; refuses a history whose validity ranges overlap (ambiguous price)."""
    ordered = sorted(history, key=lambda t: t.valid_from)
    for a, b in pairwise(ordered):
        if a.valid_to is None or a.valid_to > b.valid_from:
            raise TariffError(f"tariffs {a.name!r} and {b.name!r} overlap in validity")
    for tariff in ordered:
        if tariff.covers(ts):
            return tariff
    raise TariffError(f"no tariff in force at {ts}")
