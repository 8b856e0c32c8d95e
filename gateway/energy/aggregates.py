"""Site energy aggregates: `energy_15m` rows -> site sums per 15-minute interval -> hourly, daily and monthly
site figures (energy with its coverage, cost, peak 15-minute demand, CO2), in the site's local calendar.

Pure: rows, a zone, a price function and a carbon factor in; frozen values out. No clock, no store.

Two steps, so that a month of a large site never has to be in memory as per-miner rows:
1. `site_intervals(columns)`: per-miner rows (any chunk of them) -> one `SiteInterval` per interval start,
   integer sums. `merge_site_intervals` adds chunks; because every field is an integer sum, how the rows were
   split into chunks, or ordered, cannot change a figure.
2. `aggregate(intervals, ...)`: site intervals of whole local months -> hourly, daily and monthly figures.
   Every figure is summed from the same intervals, so hours add up to days and days to months exactly in
   joules and seconds; money and CO2 are computed exactly per figure and rounded once (half-even), so a
   month's cost is the rounded exact month, not the sum of rounded days.

Coverage (carried by `EnergyFigure`): an interval's `miner_s` is 900 s for each miner with a row in it, so
time the meter did not account for (a miner that vanished mid-interval, the interval still running) shows
as missing, and `covered_s` / `estimated_s` say how much of the rest was measured or estimated.

Peak demand is the highest site 15-minute average: the interval's summed joules / 900 s / 1000. An
interval the meter only partly covered counts its missing time as zero power: it is reported with its own
coverage and never scaled up, so a gap can lower a peak but never invent one. Ties go to the earliest
interval, so a month's peak is always one of its days' peaks.

Local calendar: hours, days and months follow the site's IANA zone, so DST days have 92 or 100 intervals
and the repeated autumn hour is two hourly figures (told apart by their UTC offset). Every zone in use has
offsets in whole quarter hours, so each interval lies in exactly one local hour, day and month; a zone
that does not (historic local mean time) is refused rather than split.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from gateway.energy.carbon import CarbonAmount, CarbonFactor, co2_kg
from gateway.energy.settlement_alloc import MAX_ROW_J
from gateway.energy.settlement_model import IntervalColumns, minor_units
from gateway.energy.settlement_output import EnergyFigure
from gateway.energy.units import J_PER_KW_S, J_PER_KWH, display, round_money, site_zone, to_epoch
from gateway.metering import INTERVAL_S

__all__ = [
    "INTERVAL_S",
    "Level",
    "PeakDemand",
    "PriceFn",
    "SiteAggregates",
    "SiteFigure",
    "SiteInterval",
    "aggregate",
    "merge_site_intervals",
    "month_start",
    "months_covering",
    "site_intervals",
]

PriceFn = Callable[[int], Decimal]  # $/kWh for the 15-minute interval starting at that UTC second
MAX_CHUNK_ROWS = 50_000_000  # so a chunk's int64 sums of rows <= MAX_ROW_J cannot overflow

I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True, kw_only=True)
class SiteInterval:
    """The whole site in one 15-minute interval: integer sums over the `miners` rows metered in it.

    `estimated_j` is each row's energy share of its estimated time, `joules x estimated_s // covered_s`,
    the same rule settlement uses, so the two never disagree on how much of a kWh was estimated."""

    interval_start: int
    miners: int
    energy_j: int
    estimated_j: int
    covered_s: int
    uncovered_s: int
    estimated_s: int

    @property
    def figure(self) -> EnergyFigure:
        return EnergyFigure(
            energy_j=self.energy_j,
            estimated_j=self.estimated_j,
            miner_s=self.miners * INTERVAL_S,
            covered_s=self.covered_s,
            uncovered_s=self.uncovered_s,
            estimated_s=self.estimated_s,
        )

    def __add__(self, other: SiteInterval) -> SiteInterval:
        if other.interval_start != self.interval_start:
            raise ValueError("only site sums of the same interval add")
        return SiteInterval(
            interval_start=self.interval_start,
            miners=self.miners + other.miners,
            energy_j=self.energy_j + other.energy_j,
            estimated_j=self.estimated_j + other.estimated_j,
            covered_s=self.covered_s + other.covered_s,
            uncovered_s=self.uncovered_s + other.uncovered_s,
            estimated_s=self.estimated_s + other.estimated_s,
        )


def _first_bad(columns: IntervalColumns, bad: npt.NDArray[np.bool_], what: str) -> None:
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        miner = columns.miner_ids[int(columns.miner[k])]
        raise ValueError(
            f"energy row of miner {miner} at interval_start {int(columns.interval_start[k])}: {what}"
        )


def site_intervals(columns: IntervalColumns) -> tuple[SiteInterval, ...]:
    """Per-miner interval rows -> site sums per interval start, sorted. Rows the meter cannot have produced
    are refused with the first offending row named (nothing is summed from a bad chunk)."""
    n = len(columns)
    if n == 0:
        return ()
    if n > MAX_CHUNK_ROWS:
        raise ValueError(f"a chunk of {n} rows is over {MAX_CHUNK_ROWS}: split it (merge_site_intervals)")
    st, m = columns.interval_start.astype(np.int64), columns.miner.astype(np.int64)
    j, cov = columns.joules.astype(np.int64), columns.covered_s.astype(np.int64)
    unc, es = columns.uncovered_s.astype(np.int64), columns.estimated_s.astype(np.int64)
    _first_bad(columns, st % INTERVAL_S != 0, f"interval_start off the {INTERVAL_S} s grid")
    _first_bad(columns, (j < 0) | (j > MAX_ROW_J), f"joules outside [0, {MAX_ROW_J}]")
    _first_bad(columns, (cov < 0) | (unc < 0) | (es < 0), "negative seconds")
    _first_bad(columns, cov + unc > INTERVAL_S, f"covered_s + uncovered_s > {INTERVAL_S}")
    _first_bad(columns, es > cov, "estimated_s > covered_s")
    _first_bad(columns, (j > 0) & (cov == 0), "energy without covered time")
    order = np.lexsort((m, st))
    st_o, m_o = st[order], m[order]
    dup = np.zeros(n, dtype=bool)
    dup[1:] = (st_o[1:] == st_o[:-1]) & (m_o[1:] == m_o[:-1])
    _first_bad(columns, dup[np.argsort(order)], "duplicate row (the same miner and interval twice)")
    est_j = np.where(cov > 0, j * es // np.maximum(cov, 1), 0)
    starts = np.flatnonzero(np.r_[True, st_o[1:] != st_o[:-1]])
    counts = np.diff(np.r_[starts, n])
    sums = [np.add.reduceat(col[order], starts) for col in (j, est_j, cov, unc, es)]
    return tuple(
        SiteInterval(
            interval_start=int(st_o[i]),
            miners=int(counts[g]),
            energy_j=int(sums[0][g]),
            estimated_j=int(sums[1][g]),
            covered_s=int(sums[2][g]),
            uncovered_s=int(sums[3][g]),
            estimated_s=int(sums[4][g]),
        )
        for g, i in enumerate(starts)
    )


def merge_site_intervals(parts: Iterable[Iterable[SiteInterval]]) -> tuple[SiteInterval, ...]:
    """Add the site sums of disjoint chunks of rows (the table's key keeps a miner's interval in one row,
    so chunks read by interval range or by miner are disjoint), sorted by interval start."""
    merged: dict[int, SiteInterval] = {}
    for part in parts:
        for iv in part:
            prev = merged.get(iv.interval_start)
            merged[iv.interval_start] = iv if prev is None else prev + iv
    return tuple(merged[k] for k in sorted(merged))


# --------------------------------------------------------------------------------------------- calendar


def month_start(ts: int, tz: str | ZoneInfo) -> int:
    """UTC second of local 00:00 on the 1st of the month holding `ts` in zone `tz`."""
    zone = site_zone(tz)
    local = datetime.fromtimestamp(ts, zone)
    return to_epoch(datetime(local.year, local.month, 1, tzinfo=zone))


def months_covering(since: int, until: int, tz: str | ZoneInfo) -> tuple[int, int]:
    """`[start, end)`: the whole local months that hold `[since, until)`."""
    if until <= since:
        raise ValueError(f"empty window [{since}, {until})")
    zone = site_zone(tz)
    last = datetime.fromtimestamp(until - 1, zone)
    following = datetime(last.year + last.month // 12, last.month % 12 + 1, 1, tzinfo=zone)
    return month_start(since, zone), to_epoch(following)


# ---------------------------------------------------------------------------------------------- figures


class Level(StrEnum):
    HOUR = "hour"
    DAY = "day"
    MONTH = "month"


@dataclass(frozen=True, slots=True, kw_only=True)
class PeakDemand:
    """The highest site 15-minute average power, in the interval starting at `interval_start`, with that
    interval's energy and coverage (a partly covered interval is shown as such, not scaled up)."""

    interval_start: int
    energy: EnergyFigure

    @property
    def kw(self) -> Fraction:
        """Exact kW: the interval's joules / 900 s / 1000."""
        return Fraction(self.energy.energy_j, INTERVAL_S * J_PER_KW_S)

    @property
    def kw_display(self) -> Decimal:
        return display(self.kw, 3)

    def as_record(self) -> dict[str, object]:
        return {
            "interval_start": self.interval_start,
            "interval_s": INTERVAL_S,
            "kw": str(self.kw_display),
            "energy": self.energy.as_record(),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class SiteFigure:
    """One local hour, day or month `[start, end)` of the site.

    `intervals` is how many 15-minute intervals the bucket spans (92 or 100 on a DST day) and
    `intervals_with_data` how many had any metered row; `cost` (None without prices) and `co2` (None
    without a factor) are each rounded once from the exact figure."""

    level: Level
    start: int
    end: int
    label: str
    tz: str
    intervals: int
    intervals_with_data: int
    energy: EnergyFigure
    peak: PeakDemand | None
    cost: Decimal | None
    currency: str
    co2: CarbonAmount | None

    def as_record(self) -> dict[str, object]:
        """Wire form: integers exact; kWh, kW, money and kg as decimal strings (ARCHITECTURE §3)."""
        return {
            "level": str(self.level),
            "start": self.start,
            "end": self.end,
            "label": self.label,
            "tz": self.tz,
            "intervals": self.intervals,
            "intervals_with_data": self.intervals_with_data,
            "energy": self.energy.as_record(),
            "peak": None if self.peak is None else self.peak.as_record(),
            "cost": None if self.cost is None else str(self.cost),
            "currency": self.currency,
            "co2": None if self.co2 is None else self.co2.as_record(),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class SiteAggregates:
    hourly: tuple[SiteFigure, ...]
    daily: tuple[SiteFigure, ...]
    monthly: tuple[SiteFigure, ...]

    @property
    def figures(self) -> tuple[SiteFigure, ...]:
        return self.hourly + self.daily + self.monthly


class _Bucket:
    """One open hour/day/month while the intervals are walked in order (private, mutable, short-lived)."""

    __slots__ = ("cost", "energy", "key", "label", "n", "peak", "start", "with_data")

    def __init__(self, key: Any, start: int, label: str) -> None:
        self.key, self.start, self.label = key, start, label
        self.n = self.with_data = 0
        self.energy = EnergyFigure()
        self.peak: SiteInterval | None = None
        self.cost = Fraction(0)

    def add(self, iv: SiteInterval | None, cost: Fraction) -> None:
        self.n += 1
        if iv is None:
            return
        self.with_data += 1
        self.energy = self.energy + iv.figure
        if self.peak is None or iv.energy_j > self.peak.energy_j:
            self.peak = iv
        self.cost += cost


def _price(price_fn: PriceFn, t: int) -> Fraction:
    price = price_fn(t)
    if not isinstance(price, Decimal) or not price.is_finite():
        when = datetime.fromtimestamp(t, UTC).isoformat()
        raise TypeError(f"price for the interval at {t} ({when}) is {price!r}: need a finite Decimal $/kWh")
    return Fraction(price)


def aggregate(
    intervals: Iterable[SiteInterval],
    *,
    start: int,
    end: int,
    tz: str | ZoneInfo,
    price_fn: PriceFn | None = None,
    carbon: CarbonFactor | None = None,
    currency: str = "USD",
    horizon: int | None = None,
) -> SiteAggregates:
    """Hourly, daily and monthly figures of the whole local months `[start, end)` in zone `tz`.

    `horizon` (default `end`): buckets starting at or after it are not reported yet (the rest of the
    current month); site intervals at or after it are refused, like intervals outside the window."""
    zone = site_zone(tz)
    if month_start(start, zone) != start or month_start(end, zone) != end or end <= start:
        raise ValueError(f"[{start}, {end}) is not a window of whole local months in {zone.key}")
    limit = end if horizon is None else min(end, horizon)
    by_start: dict[int, SiteInterval] = {}
    for iv in intervals:
        if not start <= iv.interval_start < limit or iv.interval_start % INTERVAL_S:
            raise ValueError(
                f"site interval at {iv.interval_start} is outside [{start}, {limit}) or off grid"
            )
        if iv.interval_start in by_start:
            raise ValueError(f"site interval at {iv.interval_start} given twice (merge_site_intervals first)")
        by_start[iv.interval_start] = iv
    mu = minor_units(currency)
    out: dict[Level, list[SiteFigure]] = {level: [] for level in Level}
    open_: dict[Level, _Bucket] = {}

    def close(level: Level, b: _Bucket, until: int) -> None:
        if b.start >= limit:
            return
        peak = (
            None if b.peak is None else PeakDemand(interval_start=b.peak.interval_start, energy=b.peak.figure)
        )
        out[level].append(
            SiteFigure(
                level=level,
                start=b.start,
                end=until,
                label=b.label,
                tz=zone.key,
                intervals=b.n,
                intervals_with_data=b.with_data,
                energy=b.energy,
                peak=peak,
                cost=None if price_fn is None else round_money(b.cost, mu),
                currency=currency,
                co2=None if carbon is None else co2_kg(b.energy.energy_j, carbon),
            )
        )

    for t in range(start, end, INTERVAL_S):
        local = datetime.fromtimestamp(t, zone)
        offset = local.utcoffset()
        offset_s = 0 if offset is None else int(offset.total_seconds())
        if offset_s % INTERVAL_S:
            raise ValueError(f"{zone.key} is at UTC offset {offset} at {t}: not on the 15-minute grid")
        day: date = local.date()
        keys: dict[Level, tuple[Any, str]] = {
            Level.HOUR: ((day, local.hour, offset_s), local.isoformat(timespec="minutes")),
            Level.DAY: (day, day.isoformat()),
            Level.MONTH: ((local.year, local.month), f"{local.year:04d}-{local.month:02d}"),
        }
        here = by_start.get(t)
        cost = Fraction(0)
        if here is not None and here.energy_j and price_fn is not None:
            cost = Fraction(here.energy_j, J_PER_KWH) * _price(price_fn, t)
        for level, (key, label) in keys.items():
            bucket = open_.get(level)
            if bucket is None or bucket.key != key:
                if bucket is not None:
                    close(level, bucket, t)
                bucket = open_[level] = _Bucket(key, t, label)
            bucket.add(here, cost)
    for level, bucket in open_.items():
        close(level, bucket, end)
    return SiteAggregates(
        hourly=tuple(out[Level.HOUR]), daily=tuple(out[Level.DAY]), monthly=tuple(out[Level.MONTH])
    )
