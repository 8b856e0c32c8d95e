"""Backtest: run the rolling planner over a historical price series and compare it with the strike-price
rule and always-on, on the same limits and the same money arithmetic.

Information is kept honest: at each re-plan the planner knows the actual price of the current period
(what the strike rule reacts to) and only forecasts (`forecast.fill_prices`, or the day-ahead series)
for the rest of its horizon; money is then settled on actual prices for all three strategies. Every
strategy's counts go through the same independent checker (`planner_check.check_plan`), so "violations"
means the same thing for each. Sleep draw of curtailed miners is left out for all strategies alike.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from itertools import pairwise
from zoneinfo import ZoneInfo

from gateway.curtail.economics import Economics, breakeven_per_kwh
from gateway.curtail.forecast import fill_prices
from gateway.curtail.plan_model import MinerClass, Plan
from gateway.curtail.planner import objective_usd
from gateway.curtail.planner_check import check_plan
from gateway.curtail.planner_model import PlanRequest, Window, margins_usd
from gateway.curtail.planner_solve import make_plan
from gateway.curtail.solver_proc import SolverWorker
from gateway.curtail.strike_rule import strike_rule_counts
from gateway.devices.profiles import ProfileCatalog
from gateway.energy.tariffs import PriceSeries

__all__ = [
    "BacktestConfig",
    "BacktestResult",
    "StrategyResult",
    "auto_cp_windows",
    "fleet_classes",
    "run_backtest",
]

_CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True, kw_only=True)
class BacktestConfig:
    classes: tuple[MinerClass, ...]
    hashprice: Decimal = Decimal("0.045")
    economics: Economics = field(default_factory=Economics)
    ramp_kw_per_period: float | None = 800.0
    min_on_periods: int = 4
    min_off_periods: int = 4
    site_cap_kw: float | None = None
    windows: tuple[Window, ...] = ()
    horizon: int = 96
    replan_every: int = 8
    solver: str = "highs"
    time_limit_s: float = 10.0
    forecast: str = "profile"  # profile | dam | perfect


@dataclass(frozen=True, slots=True, kw_only=True)
class StrategyResult:
    net_margin_usd: Decimal
    mining_value_usd: Decimal
    energy_cost_usd: Decimal
    peak_charges_usd: Decimal
    energy_kwh: Decimal
    violations: int
    violations_by_kind: Mapping[str, int]
    curtailed_miner_hours: Decimal

    def as_json(self) -> dict[str, object]:
        return {
            "net_margin_usd": str(self.net_margin_usd),
            "mining_value_usd": str(self.mining_value_usd),
            "energy_cost_usd": str(self.energy_cost_usd),
            "peak_charges_usd": str(self.peak_charges_usd),
            "energy_kwh": str(self.energy_kwh),
            "violations": self.violations,
            "violations_by_kind": dict(self.violations_by_kind),
            "curtailed_miner_hours": str(self.curtailed_miner_hours),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class BacktestResult:
    periods: int
    ours: StrategyResult
    strike_rule: StrategyResult
    always_on: StrategyResult
    solves: int
    fallbacks: int
    fallback_reasons: Mapping[str, int]
    solve_median_s: float
    solve_max_s: float


def fleet_classes(
    catalog: ProfileCatalog, counts: Mapping[str, int], mode: str = "normal"
) -> tuple[MinerClass, ...]:
    """One class per model at `mode`, TH/s and W from the firmware profiles (KeyError names a missing one)."""
    out: list[MinerClass] = []
    for model, count in counts.items():
        profile = catalog.match(None, model)
        if profile is None:
            raise KeyError(f"no firmware profile for model {model!r}")
        spec = profile.modes[next(m for m in profile.modes if m.value == mode)]
        out.append(
            MinerClass(
                key=f"{profile.model}:{mode}",
                model=profile.model,
                mode=mode,
                count=count,
                ths_per_miner=spec.hashrate_ths,
                kw_per_miner=spec.power_w / 1000,
            )
        )
    return tuple(out)


def auto_cp_windows(
    series: PriceSeries, *, tz: str, hours: tuple[int, int] = (16, 18), charge_per_kw: Decimal = Decimal(15)
) -> tuple[Window, ...]:
    """One coincident-peak window per calendar month: `hours` (local) on the day whose prices in those hours
    average highest. A stand-in for the operator's 4CP call, which is made ahead of time from forecasts
    (ERCOT publishes the real 4CP intervals only after the month): pass the day-ahead series, not the
    real-time one, or the choice uses hindsight and lands on days the strike rule curtails anyway."""
    zone = ZoneInfo(tz)
    best: dict[tuple[int, int], tuple[Decimal, datetime]] = {}
    sums: dict[datetime, list[Decimal]] = {}
    for ts, price in zip(series.starts, series.prices_per_kwh, strict=True):
        local = datetime.fromtimestamp(ts, zone)
        if hours[0] <= local.hour < hours[1]:
            sums.setdefault(local.replace(hour=0, minute=0, second=0), []).append(price)
    for day, prices in sums.items():
        mean = sum(prices, Decimal(0)) / len(prices)
        key = (day.year, day.month)
        if key not in best or mean > best[key][0]:
            best[key] = (mean, day)
    windows = []
    for _, (_, day) in sorted(best.items()):
        start = day.replace(hour=hours[0])
        end = start + timedelta(hours=hours[1] - hours[0])
        windows.append(
            Window(
                start=int(start.timestamp()),
                end=int(end.timestamp()),
                kind="4cp",
                charge_per_kw=charge_per_kw,
            )
        )
    return tuple(windows)


def _request(
    cfg: BacktestConfig,
    *,
    start: int,
    period_s: int,
    prices: tuple[Decimal, ...],
    forecast: tuple[bool, ...],
    initial_on: Mapping[str, int],
    recent_starts: Mapping[str, tuple[int, ...]] | None = None,
    recent_stops: Mapping[str, tuple[int, ...]] | None = None,
) -> PlanRequest:
    end = start + period_s * len(prices)
    return PlanRequest(
        classes=cfg.classes,
        start=start,
        period_s=period_s,
        prices_per_kwh=prices,
        forecast=forecast,
        hashprice=(cfg.hashprice,) * len(prices),
        economics=cfg.economics,
        site_cap_kw=cfg.site_cap_kw,
        windows=tuple(w for w in cfg.windows if w.start < end and w.end > start),
        ramp_kw_per_period=cfg.ramp_kw_per_period,
        min_on_periods=cfg.min_on_periods,
        min_off_periods=cfg.min_off_periods,
        initial_on=initial_on,
        recent_starts=recent_starts or {},
        recent_stops=recent_stops or {},
    )


def _money(value: Decimal) -> Decimal:
    return value.quantize(_CENT, rounding=ROUND_HALF_EVEN)


def _evaluate(req: PlanRequest, on: list[list[int]]) -> StrategyResult:
    margins = margins_usd(req)
    hours = Decimal(req.period_s) / 3600
    net = objective_usd(req, on)
    energy = Decimal(0)
    energy_kwh = Decimal(0)
    value = Decimal(0)
    curtailed = 0
    pue, adder = req.economics.pue, req.economics.adder_per_kwh
    for ci, c in enumerate(req.classes):
        kw = Decimal(str(c.kw_per_miner))
        for t in range(req.horizon):
            n = on[ci][t]
            curtailed += c.count - n
            if n:
                kwh = kw * n * hours
                cost = kwh * pue * (req.prices_per_kwh[t] + adder)
                energy_kwh += kwh
                energy += cost
                value += margins[ci][t] * n + cost
    peak = value - energy - net
    broken = check_plan(req, on)
    kinds: dict[str, int] = {}
    for v in broken:
        kinds[v.kind] = kinds.get(v.kind, 0) + 1
    return StrategyResult(
        net_margin_usd=_money(net),
        mining_value_usd=_money(value),
        energy_cost_usd=_money(energy),
        peak_charges_usd=_money(peak),
        energy_kwh=energy_kwh.quantize(Decimal("0.001"), rounding=ROUND_HALF_EVEN),
        violations=len(broken),
        violations_by_kind=kinds,
        curtailed_miner_hours=(curtailed * hours).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN),
    )


def _history(
    executed: list[list[int]], initial: Sequence[int], back: int
) -> tuple[list[tuple[int, ...]], ...]:
    """Per class, the starts and stops of the last `back` executed periods (oldest first)."""
    starts: list[tuple[int, ...]] = []
    stops: list[tuple[int, ...]] = []
    for ci, row in enumerate(executed):
        seq = [initial[ci], *row]
        deltas = [b - a for a, b in pairwise(seq)][-back:]
        starts.append(tuple(max(d, 0) for d in deltas))
        stops.append(tuple(max(-d, 0) for d in deltas))
    return starts, stops


def _replan(
    cfg: BacktestConfig,
    known: Mapping[int, Decimal],
    dam: Mapping[int, Decimal],
    ahead: Sequence[int],
    period_s: int,
    executed: list[list[int]],
    initial: Sequence[int],
    worker: SolverWorker,
) -> Plan:
    """A plan from `ahead[0]` knowing the actual prices up to and including that period, nothing later."""
    window = ahead[: cfg.horizon]
    now_price = known[window[0]]
    if cfg.forecast == "perfect":
        prices, flags = tuple(known[t] for t in window), (False,) * len(window)
    elif cfg.forecast == "dam":
        prices = (now_price, *(dam.get(t, now_price) for t in window[1:]))
        flags = (False, *(True,) * (len(window) - 1))
    else:
        prices, flags = fill_prices(known=known, starts=window, now=window[0])
    current = {
        c.key: (row[-1] if row else initial[ci])
        for ci, (c, row) in enumerate(zip(cfg.classes, executed, strict=True))
    }
    up, down = _history(executed, initial, max(cfg.min_on_periods, cfg.min_off_periods))
    req = _request(
        cfg,
        start=window[0],
        period_s=period_s,
        prices=prices,
        forecast=flags,
        initial_on=current,
        recent_starts={c.key: up[ci] for ci, c in enumerate(cfg.classes)},
        recent_stops={c.key: down[ci] for ci, c in enumerate(cfg.classes)},
    )
    return make_plan(req, now=window[0], solver=cfg.solver, time_limit_s=cfg.time_limit_s, worker=worker)


def run_backtest(
    series: PriceSeries, cfg: BacktestConfig, *, day_ahead: PriceSeries | None = None
) -> BacktestResult:
    """Roll the planner over `series` (contiguous, no gaps).

    It re-plans every `cfg.replan_every` periods, and also as soon as a period's actual price falls on
    the other side of any class's breakeven from the price the plan assumed (a real price replacing a
    forecast), so it reacts to a spike in the same period the strike rule does."""
    starts, period_s = series.starts, series.interval_s
    for a, b in pairwise(starts):
        if b - a != period_s:
            raise ValueError(
                f"price series has a gap between {a} and {b}: the backtest needs a contiguous series"
            )
    if cfg.forecast == "dam" and day_ahead is None:
        raise ValueError("forecast 'dam' needs a day-ahead series")
    known = dict(zip(starts, series.prices_per_kwh, strict=True))
    dam = dict(zip(day_ahead.starts, day_ahead.prices_per_kwh, strict=True)) if day_ahead else {}
    n = len(starts)
    initial = [c.count for c in cfg.classes]
    executed: list[list[int]] = [[] for _ in cfg.classes]
    solve_times: list[float] = []
    fallbacks: dict[str, int] = {}
    breakevens = [
        breakeven_per_kwh(
            hashprice=cfg.hashprice, ths=c.ths_per_miner, kw=c.kw_per_miner, economics=cfg.economics
        )
        for c in cfg.classes
    ]
    plan: Plan | None = None
    offset = 0
    with SolverWorker() as worker:
        for i in range(n):
            actual = known[starts[i]]
            if plan is not None and offset < min(cfg.replan_every, len(plan.periods)):
                assumed = plan.periods[offset].price_per_kwh
                surprise = any((actual <= be) != (assumed <= be) for be in breakevens)
            else:
                surprise = True  # no plan, or it is due for a re-plan
            if surprise:
                plan = _replan(cfg, known, dam, starts[i:], period_s, executed, initial, worker)
                offset = 0
                solve_times.append(plan.solve_s)
                if plan.status != "optimal":
                    key = plan.status.split("(")[0].strip()
                    fallbacks[key] = fallbacks.get(key, 0) + 1
            assert plan is not None
            for ci, c in enumerate(cfg.classes):
                executed[ci].append(plan.periods[offset].on_by_class[c.key])
            offset += 1
    full = _request(
        cfg,
        start=starts[0],
        period_s=period_s,
        prices=tuple(series.prices_per_kwh),
        forecast=(False,) * n,
        initial_on={c.key: c.count for c in cfg.classes},
    )
    return BacktestResult(
        periods=n,
        ours=_evaluate(full, executed),
        strike_rule=_evaluate(full, strike_rule_counts(full)),
        always_on=_evaluate(full, [[c.count] * n for c in cfg.classes]),
        solves=len(solve_times),
        fallbacks=sum(fallbacks.values()),
        fallback_reasons=fallbacks,
        solve_median_s=statistics.median(solve_times) if solve_times else 0.0,
        solve_max_s=max(solve_times, default=0.0),
    )
