"""4CP in the backtest (pure): what is charged, and what a strategy may act on - kept apart on purpose.

ERCOT assesses the 4CP transmission charge ex post, on the load in the month's true system-peak interval,
which nobody knows until the month is over. The backtest's stand-in for that truth is the day whose
day-ahead 16:00-18:00 price averages highest in the month (`true_cp_windows`): it is used ONLY to charge.

Decisions may only use alerts known in advance (`cp_alerts`). The documented causal rule: day D is an
alert day when its day-ahead 16:00-18:00 average is at or above the highest such average of the earlier
days of the same month (the first day of a month is always alerted: nothing is known to beat it). Day
D's day-ahead prices are public on D-1 at 13:30 local, so that is when the alert becomes known. Every
strategy that reacts to 4CP receives these same alerts; a month whose true day was not alerted is
charged on whatever load ran then. With this price stand-in the running maximum always alerts the true
day (the true day is, by definition, at or above every earlier day); the price of that certainty is the
false alarms, which cost curtailed mining and are counted in the results.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from gateway.curtail.forecast import DAM_PUBLISHED
from gateway.curtail.planner_model import Window
from gateway.energy.tariffs import PriceSeries
from gateway.energy.units import site_zone

__all__ = ["CpAlert", "cp_alerts", "day_window", "known_alerts", "true_cp_windows"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CpAlert:
    """A 4CP window a strategy may act on from `known_at` (UTC epoch s) on."""

    window: Window
    known_at: int


def day_window(day: date, *, zone: ZoneInfo, hours: tuple[int, int], charge_per_kw: Decimal) -> Window:
    """The `hours` (local, END may be 24) of local `day` as a 4CP window."""
    start = datetime.combine(day, time(hours[0]), tzinfo=zone)
    if hours[1] < 24:
        end = datetime.combine(day, time(hours[1]), tzinfo=zone)
    else:
        end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    return Window(
        start=int(start.timestamp()), end=int(end.timestamp()), kind="4cp", charge_per_kw=charge_per_kw
    )


def _day_means(series: PriceSeries, zone: ZoneInfo, hours: tuple[int, int]) -> dict[date, Decimal]:
    """Mean price over `hours` (local) per local day, in day order."""
    sums: dict[date, list[Decimal]] = {}
    for ts, price in zip(series.starts, series.prices_per_kwh, strict=True):
        local = datetime.fromtimestamp(ts, zone)
        if hours[0] <= local.hour < hours[1]:
            sums.setdefault(local.date(), []).append(price)
    return {day: sum(p, Decimal(0)) / len(p) for day, p in sorted(sums.items())}


def true_cp_windows(
    series: PriceSeries, *, tz: str | ZoneInfo, hours: tuple[int, int] = (16, 18), charge_per_kw: Decimal
) -> tuple[Window, ...]:
    """Per calendar month, `hours` on the day whose prices in those hours average highest (the first such
    day on a tie). Hindsight by construction - it needs the whole month - so it is only for charging."""
    zone = site_zone(tz)
    best: dict[tuple[int, int], tuple[Decimal, date]] = {}
    for day, mean in _day_means(series, zone, hours).items():
        key = (day.year, day.month)
        if key not in best or mean > best[key][0]:
            best[key] = (mean, day)
    return tuple(
        day_window(day, zone=zone, hours=hours, charge_per_kw=charge_per_kw)
        for _, (_, day) in sorted(best.items())
    )


def cp_alerts(
    day_ahead: PriceSeries,
    *,
    tz: str | ZoneInfo,
    hours: tuple[int, int] = (16, 18),
    charge_per_kw: Decimal,
    published: time = DAM_PUBLISHED,
) -> tuple[CpAlert, ...]:
    """The causal alert rule of the module docstring, over a day-ahead series."""
    zone = site_zone(tz)
    out: list[CpAlert] = []
    highest: dict[tuple[int, int], Decimal] = {}
    for day, mean in _day_means(day_ahead, zone, hours).items():
        key = (day.year, day.month)
        if key not in highest or mean >= highest[key]:
            known = datetime.combine(day - timedelta(days=1), published, tzinfo=zone)
            window = day_window(day, zone=zone, hours=hours, charge_per_kw=charge_per_kw)
            out.append(CpAlert(window=window, known_at=int(known.timestamp())))
        highest[key] = max(mean, highest.get(key, mean))
    return tuple(out)


def known_alerts(alerts: Sequence[CpAlert], *, now: int, start: int, end: int) -> tuple[Window, ...]:
    """The alert windows known at `now` that overlap `[start, end)`."""
    return tuple(
        a.window for a in alerts if a.known_at <= now and a.window.start < end and a.window.end > start
    )
