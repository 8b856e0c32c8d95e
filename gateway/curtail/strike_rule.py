"""The strike-price rule competitors ship, as a baseline (pure): a class runs iff the price is at or
below its breakeven, period by period, with no regard for ramp, minimum on/off, caps or peak windows.
"""

from __future__ import annotations

from gateway.curtail.planner_model import PlanRequest, margins_usd

__all__ = ["strike_rule_counts"]


def strike_rule_counts(req: PlanRequest) -> list[list[int]]:
    """on[c][t]: the whole class on when its margin at that period's price is >= 0, else off."""
    margins = margins_usd(req)
    return [
        [c.count if margins[ci][t] >= 0 else 0 for t in range(req.horizon)]
        for ci, c in enumerate(req.classes)
    ]
