"""Price forecast for periods with no known price (pure).

Order of trust for one period, given what is known at `now`:
1. its actual (real-time) price, if the period has started by `now`;
2. its day-ahead price, once published: ERCOT publishes day D's day-ahead market results on D-1 at about
   13:30 local, so before that moment day D's day-ahead price is *not* information and is not used.
   Optionally (`debias_days`) plus the median of (actual - day-ahead) at the same local time over the last
   days: summer evening day-ahead prices carry a risk premium the real-time price mostly does not pay;
3. otherwise the median of the actual prices at the same local time of day on the last `days` local days
   already known. Local days, not 24 h UTC steps: after a DST change a 24 h step lands an hour off the
   same wall-clock time for a week, and prices follow the wall clock (load, solar), not UTC;
4. if there is none, the most recent known price.

Optionally (`persist`), the current real-time deviation from that forecast carries into the next
periods, decaying geometrically: real-time prices are autocorrelated (a scarcity spike usually lasts
more than one interval, a glut too), while the day-ahead price and the median know nothing of now.

Deliberately simple and explainable. Real prices replace forecasts as they arrive, because every
re-plan asks again and a known price always wins. The median (not the mean) keeps one scarcity spike
from making the next week's afternoons look unprofitable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from gateway.energy.units import site_zone

__all__ = ["DAM_PUBLISHED", "day_ahead_known_from", "fill_prices", "persist_deviation", "same_local_time"]

DAM_PUBLISHED = time(13, 30)  # local time on D-1 when day D's day-ahead prices are public


def _median(values: list[Decimal]) -> Decimal:
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2


def day_ahead_known_from(ts: int, zone: ZoneInfo, published: time = DAM_PUBLISHED) -> int:
    """Epoch second from which the day-ahead price of the period starting at `ts` is public: `published`
    local time on the local day before the period's local day."""
    day = datetime.fromtimestamp(ts, zone).date() - timedelta(days=1)
    return int(datetime.combine(day, published, tzinfo=zone).timestamp())


def same_local_time(ts: int, zone: ZoneInfo, days_back: int) -> int | None:
    """The epoch second at the same local wall-clock time `days_back` local days before `ts`; None when
    that wall-clock time did not exist (the hour skipped by a spring-forward change). In the repeated
    autumn hour the same occurrence (first or second) is taken."""
    local = datetime.fromtimestamp(ts, zone)
    wall = local.replace(tzinfo=None) - timedelta(days=days_back)
    past = int(wall.replace(tzinfo=zone, fold=local.fold).timestamp())
    if datetime.fromtimestamp(past, zone).replace(tzinfo=None) != wall:
        return None
    return past


def fill_prices(
    *,
    known: Mapping[int, Decimal],
    starts: Sequence[int],
    now: int,
    days: int = 7,
    last_known: Decimal | None = None,
    tz: str | ZoneInfo = "UTC",
    day_ahead: Mapping[int, Decimal] | None = None,
    published: time = DAM_PUBLISHED,
    debias_days: int = 0,
) -> tuple[tuple[Decimal, ...], tuple[bool, ...]]:
    """(price, forecast?) for each period start; `known[ts]` counts only for ts <= now (what was known then).

    `tz` is the site zone that "same time of day" is measured in (pass it: the UTC default exists only for
    callers that predate it). `day_ahead[ts]` is used for a period only once it is public at `now`
    (see `day_ahead_known_from`). `last_known` is the fallback when no same-time-of-day price exists; if
    it is None too, the latest known price at or before `now` is searched for, and a ValueError is raised
    when there is none."""
    zone = site_zone(tz)
    prices: list[Decimal] = []
    flags: list[bool] = []
    fallback = last_known
    for ts in starts:
        if ts <= now and ts in known:
            prices.append(known[ts])
            flags.append(False)
            continue
        flags.append(True)
        if day_ahead is not None and ts in day_ahead and day_ahead_known_from(ts, zone, published) <= now:
            errors = [
                known[past] - day_ahead[past]
                for k in range(1, debias_days + 1)
                if (past := same_local_time(ts, zone, k)) is not None
                and past <= now
                and past in known
                and past in day_ahead
            ]
            prices.append(day_ahead[ts] + (_median(errors) if errors else Decimal(0)))
            continue
        same_time = [
            known[past]
            for k in range(1, days + 1)
            if (past := same_local_time(ts, zone, k)) is not None and past <= now and past in known
        ]
        if same_time:
            prices.append(_median(same_time))
            continue
        if fallback is None:
            earlier = [t for t in known if t <= now]
            if not earlier:
                raise ValueError("no known price at or before now: nothing to forecast from")
            fallback = known[max(earlier)]
        prices.append(fallback)
    return tuple(prices), tuple(flags)


def persist_deviation(
    prices: Sequence[Decimal], flags: Sequence[bool], *, deviation: Decimal, decay: Decimal
) -> tuple[Decimal, ...]:
    """`prices` with `deviation` (actual minus forecast, of the current period) added to the k-th period
    after the first as `deviation * decay**k`; only forecast periods (`flags`) change. `decay` in [0, 1)."""
    if not Decimal(0) <= decay < 1:
        raise ValueError(f"decay must be in [0, 1), not {decay}")
    out: list[Decimal] = []
    carry = deviation
    for k, (price, forecast) in enumerate(zip(prices, flags, strict=True)):
        if k:
            carry *= decay
        out.append(price + carry if k and forecast else price)
    return tuple(out)
