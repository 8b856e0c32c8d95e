"""Backtest: run the rolling planner over a historical price series and compare it with the strike-price
rule (as competitors ship it, and held to our limits), and always-on, on the same limits and the same
money arithmetic.

Information is kept honest - nothing decides on data it could not have had at that moment:
- prices: at each re-plan the planner knows the actual (real-time) price of the current period, which
  is what the strike rule reacts to, and forecasts the rest of its horizon (`forecast.fill_prices`):
  day-ahead prices once published (day D's at D-1 13:30 local), the same-local-time median of recent
  actual prices before that, plus (`persist_decay`) a fading share of the current period's real-time
  surprise. Money is settled on actual prices for every strategy.
- 4CP: the charge is assessed ex post on `cfg.windows` (the month's true peak, `backtest_cp`), which no
  strategy sees. Decisions use only `cfg.alerts`, each from its `known_at`; the planner and the strike
  rule get the same alerts (the rule curtails fully inside them), always-on ignores them.
`strike_rule_safe` is the same rule held greedily to the same ramp and minimum on/off times: the plain
rule's margin includes what breaking those limits is worth, the safe one's does not.
Every strategy's counts go through the same independent checker (`planner_check.check_plan`), so
"violations" means the same thing for each. Sleep draw of curtailed miners is left out for all alike.

The planner re-plans every `replan_every` periods, when an actual price lands on the other side of a
class's breakeven from the price the plan assumed, and when news arrives (day-ahead prices published,
a 4CP alert issued) - the moments a human dispatcher would look again.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from itertools import pairwise

from gateway.curtail.backtest_cp import CpAlert, known_alerts, true_cp_windows
from gateway.curtail.economics import Economics, breakeven_per_kwh
from gateway.curtail.forecast import DAM_PUBLISHED, fill_prices, persist_deviation
from gateway.curtail.plan_model import MinerClass, Plan
from gateway.curtail.planner import objective_usd
from gateway.curtail.planner_check import check_plan
from gateway.curtail.planner_model import PlanRequest, Window, margins_usd
from gateway.curtail.planner_solve import make_plan
from gateway.curtail.solver_proc import SolverWorker
from gateway.curtail.strike_rule import safe_strike_rule_counts, strike_rule_counts
from gateway.devices.profiles import ProfileCatalog
from gateway.energy.tariffs import PriceSeries
from gateway.energy.units import site_zone

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
    windows: tuple[Window, ...] = ()  # charged ex post (the truth); never shown to a strategy
    alerts: tuple[CpAlert, ...] = ()  # what the planner and the strike rule may act on, from known_at
    tz: str = "UTC"  # the site zone: local days for the forecast and the day-ahead publication time
    horizon: int = 96
    replan_every: int = 8
    replan_on_news: bool = True
    solver: str = "highs"
    time_limit_s: float = 10.0
    forecast: str = "profile"  # profile | dam | perfect (hindsight, an upper bound only)
    dam_debias_days: int = 0  # correct day-ahead prices by their median error over the last N local days
    persist_decay: Decimal = Decimal(0)  # per period: how much of the current real-time surprise carries on


@dataclass(frozen=True, slots=True, kw_only=True)
class StrategyResult:
    net_margin_usd: Decimal
    mining_value_usd: Decimal
    energy_cost_usd: Decimal
    peak_charges_usd: Decimal
    margin_before_cp_usd: Decimal  # mining value - energy cost: the margin if no 4CP were charged
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
            "margin_before_cp_usd": str(self.margin_before_cp_usd),
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
    strike_rule_safe: StrategyResult  # the same rule held to the same ramp and minimum on/off times
    solves: int
    fallbacks: int
    fallback_reasons: Mapping[str, int]
    solve_median_s: float
    solve_max_s: float
    charged_windows: tuple[Window, ...] = ()
    alert_windows: tuple[Window, ...] = ()


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
    """The month's true 4CP windows (hindsight: charge with them, never decide on them); see
    `backtest_cp.true_cp_windows`."""
    return true_cp_windows(series, tz=tz, hours=hours, charge_per_kw=charge_per_kw)


def _request(
    cfg: BacktestConfig,
    *,
    start: int,
    period_s: int,
    prices: tuple[Decimal, ...],
    forecast: tuple[bool, ...],
    initial_on: Mapping[str, int],
    windows: tuple[Window, ...] = (),
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
        windows=tuple(w for w in windows if w.start < end and w.end > start),
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
        margin_before_cp_usd=_money(value - energy),
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
    now = window[0]
    if cfg.forecast == "perfect":
        prices, flags = tuple(known[t] for t in window), (False,) * len(window)
    else:
        day_ahead = dam if cfg.forecast == "dam" else None
        prices, flags = fill_prices(
            known=known,
            starts=window,
            now=now,
            tz=cfg.tz,
            day_ahead=day_ahead,
            debias_days=cfg.dam_debias_days,
        )
        if cfg.persist_decay > 0:
            # what the current period was forecast to cost one second before its actual price was known
            (expected,), _ = fill_prices(
                known=known,
                starts=window[:1],
                now=now - 1,
                tz=cfg.tz,
                day_ahead=day_ahead,
                debias_days=cfg.dam_debias_days,
                last_known=prices[0],  # nothing earlier to forecast it from: no surprise to carry
            )
            deviation = prices[0] - expected
            prices = persist_deviation(prices, flags, deviation=deviation, decay=cfg.persist_decay)
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
        windows=known_alerts(cfg.alerts, now=now, start=now, end=now + period_s * len(window)),
        recent_starts={c.key: up[ci] for ci, c in enumerate(cfg.classes)},
        recent_stops={c.key: down[ci] for ci, c in enumerate(cfg.classes)},
    )
    return make_plan(req, now=now, solver=cfg.solver, time_limit_s=cfg.time_limit_s, worker=worker)


def _news_times(cfg: BacktestConfig, starts: Sequence[int], dam: Mapping[int, Decimal]) -> list[int]:
    """When new information arrives, sorted: each alert's `known_at`, and each day-ahead publication
    (D-1 13:30 local for every local day D of the series) when the planner uses day-ahead prices."""
    news = {a.known_at for a in cfg.alerts}
    if cfg.forecast == "dam" and dam:
        zone = site_zone(cfg.tz)
        days = {datetime.fromtimestamp(ts, zone).date() for ts in starts}
        news |= {
            int(datetime.combine(d - timedelta(days=1), DAM_PUBLISHED, tzinfo=zone).timestamp()) for d in days
        }
    return sorted(news)


def run_backtest(
    series: PriceSeries, cfg: BacktestConfig, *, day_ahead: PriceSeries | None = None
) -> BacktestResult:
    """Roll the planner over `series` (contiguous, no gaps); see the module docstring for what it knows."""
    starts, period_s = series.starts, series.interval_s
    for a, b in pairwise(starts):
        if b - a != period_s:
            raise ValueError(
                f"price series has a gap between {a} and {b}: the backtest needs a contiguous series"
            )
    if cfg.forecast not in ("profile", "dam", "perfect"):
        raise ValueError(f"forecast must be profile, dam or perfect, not {cfg.forecast!r}")
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
    news = _news_times(cfg, starts, dam) if cfg.replan_on_news else []
    next_news = 0
    plan: Plan | None = None
    offset = 0
    with SolverWorker() as worker:
        for i in range(n):
            actual = known[starts[i]]
            fresh = False
            while next_news < len(news) and news[next_news] <= starts[i]:
                fresh = fresh or i > 0  # news before the first period is in the first plan anyway
                next_news += 1
            if plan is not None and offset < min(cfg.replan_every, len(plan.periods)) and not fresh:
                assumed = plan.periods[offset].price_per_kwh
                surprise = any((actual <= be) != (assumed <= be) for be in breakevens)
            else:
                surprise = True  # no plan, due for a re-plan, or news arrived
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
        windows=cfg.windows,
    )
    # the rule acts on an alert only if it was issued before its window opened (as every alert here is)
    rule_alerts = tuple(a.window for a in cfg.alerts if a.known_at <= a.window.start)
    return BacktestResult(
        periods=n,
        ours=_evaluate(full, executed),
        strike_rule=_evaluate(full, strike_rule_counts(full, alerts=rule_alerts)),
        always_on=_evaluate(full, [[c.count] * n for c in cfg.classes]),
        strike_rule_safe=_evaluate(full, safe_strike_rule_counts(full, alerts=rule_alerts)),
        solves=len(solve_times),
        fallbacks=sum(fallbacks.values()),
        fallback_reasons=fallbacks,
        solve_median_s=statistics.median(solve_times) if solve_times else 0.0,
        solve_max_s=max(solve_times, default=0.0),
        charged_windows=tuple(
            w for w in cfg.windows if w.start < starts[-1] + period_s and w.end > starts[0]
        ),
        alert_windows=tuple(
            a.window
            for a in cfg.alerts
            if a.window.start < starts[-1] + period_s and a.window.end > starts[0]
        ),
    )
