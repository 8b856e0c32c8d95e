"""Price forecast for periods with no known price (pure).

Method, deliberately simple and explainable: the median of the prices at the same time of day on the
last `days` days (same UTC offset from midnight, 24 h steps) that are already known; if there is none, the
most recent known price. Real prices replace forecasts as they arrive, because every re-plan asks again
and a known price always wins. The median (not the mean) keeps one scarcity spike from making the next
week's afternoons look unprofitable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal

__all__ = ["fill_prices"]

_DAY_S = 86_400


def _median(values: list[Decimal]) -> Decimal:
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2


def fill_prices(
    *,
    known: Mapping[int, Decimal],
    starts: Sequence[int],
    now: int,
    days: int = 7,
    last_known: Decimal | None = None,
) -> tuple[tuple[Decimal, ...], tuple[bool, ...]]:
    """(price, forecast?) for each period start; `known[ts]` counts only for ts <= now (what was known then).

    `last_known` is the fallback when no same-time-of-day price exists; if it is None too, the latest
    known price at or before `now` is searched for, and a ValueError is raised when there is none."""
    prices: list[Decimal] = []
    flags: list[bool] = []
    fallback = last_known
    for ts in starts:
        if ts <= now and ts in known:
            prices.append(known[ts])
            flags.append(False)
            continue
        same_time = [
            known[past] for k in range(1, days + 1) if (past := ts - k * _DAY_S) <= now and past in known
        ]
        if same_time:
            prices.append(_median(same_time))
        else:
            if fallback is None:
                earlier = [t for t in known if t <= now]
                if not earlier:
                    raise ValueError("no known price at or before now: nothing to forecast from")
                fallback = known[max(earlier)]
            prices.append(fallback)
        flags.append(True)
    return tuple(prices), tuple(flags)
