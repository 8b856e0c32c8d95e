"""The plan contract between the planner and its consumers (executor, savings, override, CLI).

Kept deliberately small and stable: the executor only needs to know, for any moment, how many miners of
each class should be on and why. Everything is frozen so a plan handed to another task cannot change
under it.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class MinerClass:
    """Identical miners (same model and mode): the planner only decides how many of them run.

    `key` is unique within a plan (e.g. "S21:normal"); power and hashrate are per miner at that mode.
    """

    key: str
    model: str
    mode: str
    count: int
    ths_per_miner: float
    kw_per_miner: float


@dataclass(frozen=True, slots=True, kw_only=True)
class PeriodPlan:
    """One period: miners on per class key, the reason in words, the price used, whether it was forecast."""

    start: int
    on_by_class: Mapping[str, int]
    reason: str
    price_per_kwh: Decimal
    forecast: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """A rolling-horizon plan: `periods` are contiguous, `period_s` apart, sorted by `start`.

    `status` is "optimal" when a solver's integral solution was accepted, else "fallback:<why>" (the plan
    is still feasible and safe to execute). `objective_usd` is the plan's net value over the horizon;
    `lp_bound_usd` the LP relaxation's value (an upper bound), so their difference is the optimality gap.
    """

    created_at: int
    period_s: int
    classes: tuple[MinerClass, ...]
    periods: tuple[PeriodPlan, ...]
    status: str
    solver: str
    solve_s: float
    objective_usd: Decimal | None
    lp_bound_usd: Decimal | None
    explanation: str

    def target_at(self, ts: int) -> PeriodPlan | None:
        """The period covering `ts` (start <= ts < start + period_s), or None outside the horizon."""
        if not self.periods:
            return None
        starts = [p.start for p in self.periods]
        i = bisect.bisect_right(starts, ts) - 1
        if i < 0:
            return None
        period = self.periods[i]
        if ts >= period.start + self.period_s:
            return None
        return period
