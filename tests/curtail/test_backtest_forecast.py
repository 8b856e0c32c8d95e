"""forecast.fill_prices: same local time across DST, day-ahead only once published, never the future."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.curtail.forecast import day_ahead_known_from, fill_prices, persist_deviation, same_local_time

TZ = "America/Chicago"
ZONE = ZoneInfo(TZ)


def _ts(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=ZONE).timestamp())


def _hourly_local(first: int, last: int) -> dict[int, Decimal]:
    """Every 15-min period from `first` to `last`, priced by its LOCAL hour (so 'same time' is checkable)."""
    return {ts: Decimal(datetime.fromtimestamp(ts, ZONE).hour) for ts in range(first, last + 1, 900)}


def test_median_steps_back_local_days_after_spring_forward() -> None:
    # DST began 2024-03-10 02:00 CST -> 03:00 CDT. On 03-12 at 17:00 local, the same local time on the
    # last 7 days is 17:00 every day; 24 h UTC steps would land on 16:00 for the days before the change.
    known = _hourly_local(_ts(2024, 3, 1), _ts(2024, 3, 12, 12))
    now = _ts(2024, 3, 12, 12)
    prices, flags = fill_prices(known=known, starts=[_ts(2024, 3, 12, 17)], now=now, tz=TZ)
    assert prices == (Decimal(17),) and flags == (True,)
    # the old UTC behaviour (tz defaults to UTC) shows the bug it fixes
    utc_prices, _ = fill_prices(known=known, starts=[_ts(2024, 3, 12, 17)], now=now)
    assert utc_prices == (Decimal(16),)


def test_median_after_fall_back_and_skipped_hour() -> None:
    known = _hourly_local(_ts(2024, 10, 25), _ts(2024, 11, 5, 8))
    prices, _ = fill_prices(known=known, starts=[_ts(2024, 11, 5, 9)], now=_ts(2024, 11, 5, 8), tz=TZ)
    assert prices == (Decimal(9),)
    # 02:30 did not exist on 2024-03-10: one local day back from 03-11 02:30 is skipped, not guessed
    assert same_local_time(_ts(2024, 3, 11, 2, 30), ZONE, 1) is None
    assert same_local_time(_ts(2024, 3, 11, 2, 30), ZONE, 2) == _ts(2024, 3, 9, 2, 30)


def test_day_ahead_is_used_only_once_published() -> None:
    known = _hourly_local(_ts(2024, 8, 12), _ts(2024, 8, 19, 16))
    dam = {ts: Decimal(100) for ts in range(_ts(2024, 8, 19), _ts(2024, 8, 22), 900)}
    tomorrow = _ts(2024, 8, 20, 10)
    assert day_ahead_known_from(tomorrow, ZONE) == _ts(2024, 8, 19, 13, 30)
    starts = [_ts(2024, 8, 19, 13), _ts(2024, 8, 19, 14), tomorrow]
    before, flags = fill_prices(known=known, starts=starts, now=_ts(2024, 8, 19, 13), tz=TZ, day_ahead=dam)
    # the current period is actual; today's DAM is public; tomorrow's is not yet: the median stands in
    assert before == (Decimal(13), Decimal(100), Decimal(10)) and flags == (False, True, True)
    after, _ = fill_prices(known=known, starts=starts[1:], now=_ts(2024, 8, 19, 13, 30), tz=TZ, day_ahead=dam)
    assert after == (Decimal(100), Decimal(100))


def test_nothing_known_is_an_error() -> None:
    with pytest.raises(ValueError, match="nothing to forecast"):
        fill_prices(known={}, starts=[_ts(2024, 8, 19)], now=_ts(2024, 8, 19), tz=TZ)
    with pytest.raises(ValueError, match="unknown IANA time zone"):
        fill_prices(known={}, starts=[], now=0, tz="Mars/Olympus")


@settings(max_examples=50, deadline=None)
@given(
    hours_in=st.integers(0, 24 * 9),
    noise=st.lists(st.integers(-500, 5000), min_size=24 * 10 * 4, max_size=24 * 10 * 4),
)
def test_future_prices_never_change_the_forecast(hours_in: int, noise: list[int]) -> None:
    """Whatever happens after `now` (actual or unpublished day-ahead prices), the forecast is the same."""
    first = _ts(2024, 3, 5)  # spans the 2024-03-10 DST change
    grid = [first + 900 * i for i in range(len(noise))]
    now = first + 3600 * hours_in
    known = {ts: Decimal(p) for ts, p in zip(grid, noise, strict=True)}
    dam = {ts: Decimal(p) / 2 for ts, p in zip(grid, noise, strict=True)}
    starts = [t for t in grid if now <= t < now + 86_400]
    base = fill_prices(known=known, starts=starts, now=now, tz=TZ, day_ahead=dam)
    altered = {ts: (p if ts <= now else Decimal(-999)) for ts, p in known.items()}
    hidden = {ts: (p if day_ahead_known_from(ts, ZONE) <= now else Decimal(-999)) for ts, p in dam.items()}
    assert fill_prices(known=altered, starts=starts, now=now, tz=TZ, day_ahead=hidden) == base


def test_persist_deviation_exact() -> None:
    prices = (Decimal(50), Decimal(20), Decimal(20), Decimal(30))
    out = persist_deviation(prices, (False, True, True, False), deviation=Decimal(100), decay=Decimal("0.5"))
    # the actual first period and the known last one stay; forecasts get 100 x 0.5^k
    assert out == (Decimal(50), Decimal(70), Decimal(45), Decimal(30))
    with pytest.raises(ValueError, match="decay"):
        persist_deviation(prices, (False,) * 4, deviation=Decimal(1), decay=Decimal(1))


@settings(max_examples=60, deadline=None)
@given(
    prices=st.lists(st.integers(-100, 5000), min_size=1, max_size=30),
    deviation=st.integers(-5000, 5000),
    decay=st.decimals(min_value=0, max_value="0.99", places=2),
)
def test_persist_deviation_fades(prices: list[int], deviation: int, decay: Decimal) -> None:
    base = tuple(Decimal(p) for p in prices)
    flags = (False,) + (True,) * (len(base) - 1)
    out = persist_deviation(base, flags, deviation=Decimal(deviation), decay=decay)
    shifts = [abs(o - b) for o, b in zip(out, base, strict=True)]
    assert shifts[0] == 0
    assert all(a >= b for a, b in pairwise(shifts[1:]))  # the surprise only fades
    assert all(s <= abs(deviation) for s in shifts)
