"""What the planner is asked: fleet classes, prices, limits, windows, the state it starts from.

Pure values and a pure pre-flight check (`diagnose`). The check exists because a solver answering
"infeasible" tells an operator nothing; here each contradiction is named in words (which cap, which
window, which time) before any solver runs, and the planner falls back with that explanation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from gateway.curtail.economics import Economics, margin_usd_per_period
from gateway.curtail.plan_model import MinerClass

__all__ = ["Customer", "PlanRequest", "Window", "diagnose", "margins_usd"]

KW_TOL = 1e-6


@dataclass(frozen=True, slots=True, kw_only=True)
class Window:
    """A demand-response or coincident-peak (4CP) window over `[start, end)`.

    `max_kw` caps the site's load inside it (None: no cap); `min_kw` is a committed minimum load (a
    contract's must-run); `charge_per_kw` prices the highest load inside it (ERCOT 4CP: the transmission
    charge follows the load in the peak interval)."""

    start: int
    end: int
    kind: str = "4cp"
    max_kw: float | None = None
    min_kw: float = 0.0
    charge_per_kw: Decimal = Decimal(0)

    def covers(self, period_start: int, period_s: int) -> bool:
        return period_start < self.end and period_start + period_s > self.start


@dataclass(frozen=True, slots=True, kw_only=True)
class Customer:
    """A customer's miners (whole classes), its contract kW cap and minimum uptime over the horizon."""

    key: str
    class_keys: tuple[str, ...]
    max_kw: float | None = None
    min_uptime: Decimal = Decimal(0)  # fraction of its miner-periods that must run


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanRequest:
    """One planning problem: `len(prices_per_kwh)` periods of `period_s` from `start`.

    `recent_starts`/`recent_stops` hold the counts started/stopped in the periods just before `start`
    (oldest first, last element = the period before `start`), so minimum on/off times carry across
    re-plans. `hashprice` is $/TH/day per period."""

    classes: tuple[MinerClass, ...]
    start: int
    period_s: int
    prices_per_kwh: tuple[Decimal, ...]
    forecast: tuple[bool, ...]
    hashprice: tuple[Decimal, ...]
    economics: Economics = field(default_factory=Economics)
    site_cap_kw: float | None = None
    windows: tuple[Window, ...] = ()
    customers: tuple[Customer, ...] = ()
    ramp_kw_per_period: float | None = None
    min_on_periods: int = 1
    min_off_periods: int = 1
    demand_charge_per_kw: Decimal = Decimal(0)
    demand_peak_kw_so_far: float = 0.0
    initial_on: Mapping[str, int] = field(default_factory=dict)
    recent_starts: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    recent_stops: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        h = len(self.prices_per_kwh)
        if h == 0:
            raise ValueError("a plan needs at least one period")
        if len(self.forecast) != h or len(self.hashprice) != h:
            raise ValueError("prices, forecast flags and hashprice must have one entry per period")
        if self.period_s <= 0 or self.start % self.period_s:
            raise ValueError(f"start {self.start} is not on a {self.period_s} s boundary")
        keys = [c.key for c in self.classes]
        if len(set(keys)) != len(keys):
            raise ValueError("class keys must be unique")
        for c in self.classes:
            if c.count < 0 or c.kw_per_miner <= 0 or c.ths_per_miner < 0:
                raise ValueError(f"class {c.key}: count >= 0, kw_per_miner > 0, ths_per_miner >= 0")
            if not 0 <= self.initial_on.get(c.key, 0) <= c.count:
                raise ValueError(f"class {c.key}: initial_on outside 0..{c.count}")
        if self.min_on_periods < 1 or self.min_off_periods < 1:
            raise ValueError("min_on_periods and min_off_periods must be >= 1")
        if self.ramp_kw_per_period is not None and self.ramp_kw_per_period <= 0:
            raise ValueError("ramp_kw_per_period must be > 0")
        known = set(keys)
        for cust in self.customers:
            missing = set(cust.class_keys) - known
            if missing:
                raise ValueError(f"customer {cust.key}: unknown classes {sorted(missing)}")
            if not Decimal(0) <= cust.min_uptime <= Decimal(1):
                raise ValueError(f"customer {cust.key}: min_uptime must be in [0, 1]")

    @property
    def horizon(self) -> int:
        return len(self.prices_per_kwh)

    def period_start(self, t: int) -> int:
        return self.start + t * self.period_s

    def initial_kw(self) -> float:
        return sum(c.kw_per_miner * self.initial_on.get(c.key, 0) for c in self.classes)

    def cap_kw(self, t: int) -> float | None:
        """The tightest site-level cap in period t (site cap and any window's max_kw)."""
        caps = [w.max_kw for w in self.windows_at(t) if w.max_kw is not None]
        if self.site_cap_kw is not None:
            caps.append(self.site_cap_kw)
        return min(caps) if caps else None

    def floor_kw(self, t: int) -> float:
        return max((w.min_kw for w in self.windows_at(t)), default=0.0)

    def windows_at(self, t: int) -> list[Window]:
        ps = self.period_start(t)
        return [w for w in self.windows if w.covers(ps, self.period_s)]

    def recent(self, kind: str, key: str, back: int) -> int:
        """Miners of `key` started/stopped (`kind`) `back` periods before `start` (1 = the last one)."""
        seq = (self.recent_starts if kind == "starts" else self.recent_stops).get(key, ())
        return seq[-back] if 0 < back <= len(seq) else 0


def margins_usd(req: PlanRequest) -> list[list[Decimal]]:
    """margins[c][t]: net USD of one running miner of class c in period t."""
    return [
        [
            margin_usd_per_period(
                hashprice=req.hashprice[t],
                price_per_kwh=req.prices_per_kwh[t],
                ths=c.ths_per_miner,
                kw=c.kw_per_miner,
                period_s=req.period_s,
                economics=req.economics,
            )
            for t in range(req.horizon)
        ]
        for c in req.classes
    ]


def _forced_on_kw(req: PlanRequest, t: int) -> float:
    """Load that minimum-on times force in period t (miners started just before the horizon)."""
    total = 0.0
    for c in req.classes:
        forced = sum(req.recent("starts", c.key, back) for back in range(1, req.min_on_periods - t))
        total += c.kw_per_miner * min(forced, c.count)
    return total


def diagnose(req: PlanRequest) -> list[str]:
    """Contradictions in the request, each one line naming the limit and time; [] when none is found.

    Not a proof of feasibility (the solver decides that), but it catches the usual configuration errors:
    a cap below the load the site cannot shed in time, windows whose minimum exceeds another's maximum,
    and uptime commitments that caps make impossible."""
    problems: list[str] = []
    fleet_kw = sum(c.kw_per_miner * c.count for c in req.classes)
    ramp = req.ramp_kw_per_period
    start_kw = req.initial_kw()
    smallest_kw = min((c.kw_per_miner for c in req.classes if c.count), default=0.0)
    if ramp is not None and smallest_kw and ramp + KW_TOL < smallest_kw:
        problems.append(
            f"ramp {ramp:g} kW/period is below one miner ({smallest_kw:g} kW): no miner can ever be started "
            "or stopped, so no cap can be met by shedding"
        )
    for t in range(req.horizon):
        cap = req.cap_kw(t)
        floor = req.floor_kw(t)
        when = f"period {t} (start {req.period_start(t)})"
        if cap is not None and floor > cap + KW_TOL:
            problems.append(f"{when}: windows demand at least {floor:g} kW but cap it at {cap:g} kW")
        if floor > fleet_kw + KW_TOL:
            problems.append(
                f"{when}: a window demands {floor:g} kW but the whole fleet draws {fleet_kw:g} kW"
            )
        if cap is None:
            continue
        reachable = max(0.0, start_kw - ramp * (t + 1)) if ramp is not None else 0.0
        minimum = max(reachable, _forced_on_kw(req, t))
        if minimum > cap + KW_TOL:
            problems.append(
                f"{when}: cap {cap:g} kW is below the minimum load {minimum:g} kW reachable "
                f"(load now {start_kw:g} kW, ramp {ramp if ramp is not None else 'unlimited'} kW/period, "
                f"miners held on by their minimum on-time)"
            )
    by_key = {c.key: c for c in req.classes}
    for cust in req.customers:
        members = [by_key[k] for k in cust.class_keys]
        need = cust.min_uptime * sum(c.count for c in members)
        if need == 0:
            continue
        cheapest_kw = min(c.kw_per_miner for c in members)
        need_kw = float(need) * cheapest_kw
        if cust.max_kw is not None and need_kw > cust.max_kw + KW_TOL:
            problems.append(
                f"customer {cust.key}: minimum uptime {cust.min_uptime} needs at least {need_kw:g} kW on "
                f"average but its contract cap is {cust.max_kw:g} kW"
            )
    return problems
