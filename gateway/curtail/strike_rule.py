"""The strike-price rule competitors ship, as a baseline (pure): a class runs iff the price is at or
below its breakeven, period by period, with no regard for ramp, minimum on/off or caps - and, like the
competitors' "curtail on 4CP alert", the whole site is off in every alert window it was told about.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from gateway.curtail.planner_model import PlanRequest, Window, margins_usd

__all__ = ["safe_strike_rule_counts", "strike_rule_counts"]


def strike_rule_counts(req: PlanRequest, *, alerts: Sequence[Window] = ()) -> list[list[int]]:
    """on[c][t]: the whole class on when its margin at that period's price is >= 0 and no `alerts`
    window covers the period, else off. `alerts` must be windows the rule knew of in time (the caller's
    job: the backtest passes the same causal alerts the planner gets)."""
    margins = margins_usd(req)
    alerted = [any(w.covers(req.period_start(t), req.period_s) for w in alerts) for t in range(req.horizon)]
    return [
        [c.count if margins[ci][t] >= 0 and not alerted[t] else 0 for t in range(req.horizon)]
        for ci, c in enumerate(req.classes)
    ]


def _recent(seq: list[int], n: int) -> int:
    """Sum of the last `n - 1` entries (the window of a minimum time, excluding the period being decided)."""
    return sum(seq[max(0, len(seq) - n + 1) :]) if n > 1 else 0


def _fits(budget_kw: float, kw: float) -> int:
    """How many miners of `kw` a ramp budget allows (unbounded budget: any number)."""
    return 1 << 62 if math.isinf(budget_kw) else int(budget_kw // kw)


def safe_strike_rule_counts(req: PlanRequest, *, alerts: Sequence[Window] = ()) -> list[list[int]]:
    """The same rule made to respect the ramp and minimum on/off times (count form), greedily, period by
    period: a competitor that added hardware-safe limits, for a like-for-like comparison with the planner.

    Each period moves every class toward the rule's target within what its minimum times allow, shedding
    the least profitable classes first and starting the most profitable first, each direction within the
    ramp (so the net change is within it too). Ahead of a known alert window it ramps down early enough
    to be off at the window's start. Knows no more than the plain rule: this period's price and alerts."""
    margins = margins_usd(req)
    h, n_cls = req.horizon, len(req.classes)
    ramp = req.ramp_kw_per_period
    fleet_kw = sum(c.kw_per_miner * c.count for c in req.classes)
    lead = 0 if ramp is None else math.ceil(fleet_kw / ramp - 1e-9)
    ends = [
        any(w.covers(req.period_start(t + k), req.period_s) for w in alerts for k in range(lead + 1))
        for t in range(h)
    ]
    back = max(req.min_on_periods, req.min_off_periods)
    starts = [list(req.recent_starts.get(c.key, ()))[-back:] for c in req.classes]
    stops = [list(req.recent_stops.get(c.key, ()))[-back:] for c in req.classes]
    current = [req.initial_on.get(c.key, 0) for c in req.classes]
    rows: list[list[int]] = [[] for _ in req.classes]
    for t in range(h):
        target = [0 if ends[t] or margins[ci][t] < 0 else c.count for ci, c in enumerate(req.classes)]
        low = [min(current[ci], _recent(starts[ci], req.min_on_periods)) for ci in range(n_cls)]
        high = [
            max(current[ci], c.count - _recent(stops[ci], req.min_off_periods))
            for ci, c in enumerate(req.classes)
        ]
        nxt = list(current)
        budget = float("inf") if ramp is None else ramp + 1e-9
        for ci in sorted(range(n_cls), key=lambda i: margins[i][t]):  # shed the worst first
            want = max(target[ci], low[ci])
            if want < current[ci]:
                kw = req.classes[ci].kw_per_miner
                step = min(current[ci] - want, _fits(budget, kw))
                nxt[ci] = current[ci] - step
                budget -= step * kw
        budget = float("inf") if ramp is None else ramp + 1e-9
        for ci in sorted(range(n_cls), key=lambda i: -margins[i][t]):  # start the best first
            want = min(target[ci], high[ci])
            if want > current[ci]:
                kw = req.classes[ci].kw_per_miner
                step = min(want - current[ci], _fits(budget, kw))
                nxt[ci] = current[ci] + step
                budget -= step * kw
        for ci in range(n_cls):
            delta = nxt[ci] - current[ci]
            starts[ci].append(max(delta, 0))
            stops[ci].append(max(-delta, 0))
            rows[ci].append(nxt[ci])
        current = nxt
    return rows
