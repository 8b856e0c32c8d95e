"""Independent checks of a plan against its request, the safe fallback plan, and per-period reasons (pure).

Why a second implementation of the limits: the solver's own feasibility is exactly what we do not trust
(time-outs reported as solutions, tolerances, a wrong model). Every plan, solver-made or fallback, and the
strike-price rule in the backtest, is judged here, in plain Python over integer counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

from gateway.curtail.economics import breakeven_per_kwh
from gateway.curtail.planner_model import KW_TOL, PlanRequest, margins_usd

__all__ = ["Violation", "check_plan", "fallback_counts", "reasons"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Violation:
    kind: str  # cap | floor | contract | ramp | min_on | min_off | uptime | bounds
    period: int | None
    detail: str


def _loads(req: PlanRequest, on: list[list[int]]) -> list[float]:
    return [sum(c.kw_per_miner * on[ci][t] for ci, c in enumerate(req.classes)) for t in range(req.horizon)]


def check_plan(req: PlanRequest, on: list[list[int]]) -> list[Violation]:
    """Every limit the plan breaks; [] for a valid plan."""
    out: list[Violation] = []
    h = req.horizon
    for ci, c in enumerate(req.classes):
        for t in range(h):
            if not 0 <= on[ci][t] <= c.count:
                out.append(Violation(kind="bounds", period=t, detail=f"{c.key}: {on[ci][t]} of {c.count}"))
    loads = _loads(req, on)
    previous = req.initial_kw()
    for t, load in enumerate(loads):
        cap = req.cap_kw(t)
        if cap is not None and load > cap + KW_TOL:
            out.append(Violation(kind="cap", period=t, detail=f"load {load:g} kW > cap {cap:g} kW"))
        floor = req.floor_kw(t)
        if load < floor - KW_TOL:
            out.append(Violation(kind="floor", period=t, detail=f"load {load:g} kW < floor {floor:g} kW"))
        ramp = req.ramp_kw_per_period
        if ramp is not None and abs(load - previous) > ramp + KW_TOL:
            out.append(
                Violation(kind="ramp", period=t, detail=f"load {previous:g} -> {load:g} kW, limit {ramp:g}")
            )
        previous = load
    index = {c.key: ci for ci, c in enumerate(req.classes)}
    for cust in req.customers:
        members = [index[k] for k in cust.class_keys]
        if cust.max_kw is not None:
            for t in range(h):
                kw = sum(req.classes[ci].kw_per_miner * on[ci][t] for ci in members)
                if kw > cust.max_kw + KW_TOL:
                    out.append(
                        Violation(
                            kind="contract", period=t, detail=f"{cust.key}: {kw:g} > {cust.max_kw:g} kW"
                        )
                    )
        ran = sum(on[ci][t] for ci in members for t in range(h))
        need = cust.min_uptime * sum(req.classes[ci].count for ci in members) * h
        if ran < need:
            out.append(
                Violation(kind="uptime", period=None, detail=f"{cust.key}: {ran} < {need} miner-periods")
            )
    up_n, down_n = req.min_on_periods, req.min_off_periods
    for ci, c in enumerate(req.classes):
        starts = [req.recent("starts", c.key, b) for b in range(max(up_n, down_n), 0, -1)]
        stops = [req.recent("stops", c.key, b) for b in range(max(up_n, down_n), 0, -1)]
        pad = len(starts)
        before = req.initial_on.get(c.key, 0)
        for t in range(h):
            delta = on[ci][t] - before
            starts.append(max(delta, 0))
            stops.append(max(-delta, 0))
            before = on[ci][t]
            i = pad + t
            if up_n > 1 and on[ci][t] < sum(starts[i - up_n + 1 : i + 1]):
                out.append(
                    Violation(kind="min_on", period=t, detail=f"{c.key}: stopped before {up_n} periods")
                )
            if down_n > 1 and c.count - on[ci][t] < sum(stops[i - down_n + 1 : i + 1]):
                out.append(
                    Violation(kind="min_off", period=t, detail=f"{c.key}: restarted before {down_n} periods")
                )
    return out


def _envelope(req: PlanRequest) -> list[float]:
    """Highest load allowed in each period such that every later cap is still reachable at the ramp rate."""
    ramp = req.ramp_kw_per_period
    env = [float("inf")] * req.horizon
    later = float("inf")
    for t in range(req.horizon - 1, -1, -1):
        cap = req.cap_kw(t)
        limit = cap if cap is not None else float("inf")
        env[t] = min(limit, later + ramp) if ramp is not None else limit
        later = env[t]
    return env


def fallback_counts(req: PlanRequest) -> list[list[int]]:
    """Hold the current state; where a cap (or a cap coming up) or a customer's contract cap requires it,
    shed load at the ramp rate.

    Never starts a miner, so minimum off-times and ramp-up hold trivially; sheds the least profitable
    classes first and never stops a miner inside its minimum on-time. Caps win over uptime commitments:
    when a limit must give, it is the one that keeps the site safe (the checker reports the rest)."""
    margins = margins_usd(req)
    env = _envelope(req)
    ramp = req.ramp_kw_per_period
    current = [req.initial_on.get(c.key, 0) for c in req.classes]
    rows: list[list[int]] = [[] for _ in req.classes]
    for t in range(req.horizon):
        load = sum(c.kw_per_miner * n for c, n in zip(req.classes, current, strict=True))
        need = load - env[t]
        shed_kw = 0.0
        for ci in sorted(range(len(req.classes)), key=lambda i: margins[i][t]):
            if shed_kw >= need - KW_TOL:
                break
            c = req.classes[ci]
            held = sum(req.recent("starts", c.key, b) for b in range(1, req.min_on_periods - t))
            n = min(
                current[ci] - min(held, current[ci]), math.ceil((need - shed_kw) / c.kw_per_miner - KW_TOL)
            )
            if ramp is not None:
                n = min(n, math.floor((ramp - shed_kw) / c.kw_per_miner + KW_TOL))
            n = max(n, 0)
            current[ci] -= n
            shed_kw += n * c.kw_per_miner
        shed_kw += _shed_for_contracts(req, t, current, margins, ramp, shed_kw)
        for ci in range(len(req.classes)):
            rows[ci].append(current[ci])
    return rows


def _shed_for_contracts(
    req: PlanRequest,
    t: int,
    current: list[int],
    margins: list[list[Decimal]],
    ramp: float | None,
    already_kw: float,
) -> float:
    """Shed (in place) what each customer's contract cap requires, within what is left of this period's
    ramp; never a miner inside its minimum on-time. Returns the kW shed."""
    index = {c.key: i for i, c in enumerate(req.classes)}
    shed_total = 0.0
    for cust in req.customers:
        if cust.max_kw is None:
            continue
        members = [index[k] for k in cust.class_keys if k in index]
        load = sum(req.classes[i].kw_per_miner * current[i] for i in members)
        need = load - cust.max_kw
        for ci in sorted(members, key=lambda i: margins[i][t]):
            if need <= KW_TOL:
                break
            c = req.classes[ci]
            held = sum(req.recent("starts", c.key, b) for b in range(1, req.min_on_periods - t))
            n = min(current[ci] - min(held, current[ci]), math.ceil(need / c.kw_per_miner - KW_TOL))
            if ramp is not None:
                n = min(n, math.floor((ramp - already_kw - shed_total) / c.kw_per_miner + KW_TOL))
            n = max(n, 0)
            current[ci] -= n
            shed_total += n * c.kw_per_miner
            need -= n * c.kw_per_miner
    return shed_total


def reasons(req: PlanRequest, on: list[list[int]]) -> list[str]:
    """One line per period: the price against breakeven, and what limited the plan (cap, 4CP, ramp)."""
    margins = margins_usd(req)
    loads = _loads(req, on)
    out: list[str] = []
    previous = req.initial_kw()
    for t in range(req.horizon):
        price = req.prices_per_kwh[t]
        parts = [f"price {price:.4f} $/kWh{' (forecast)' if req.forecast[t] else ''}"]
        kinds = sorted({w.kind for w in req.windows_at(t)})
        if kinds:
            parts.append(f"in {'/'.join(kinds)} window")
        cap = req.cap_kw(t)
        if cap is not None and loads[t] > cap - min(c.kw_per_miner for c in req.classes) - KW_TOL:
            parts.append(f"at cap {cap:g} kW")
        ramp = req.ramp_kw_per_period
        if ramp is not None and abs(loads[t] - previous) > ramp - min(c.kw_per_miner for c in req.classes):
            parts.append("ramp-limited")
        previous = loads[t]
        below = [c.key for ci, c in enumerate(req.classes) if margins[ci][t] < 0]
        off = [f"{c.key} {on[ci][t]}/{c.count}" for ci, c in enumerate(req.classes) if on[ci][t] < c.count]
        if below:
            be = min(
                (
                    breakeven_per_kwh(
                        hashprice=req.hashprice[t],
                        ths=c.ths_per_miner,
                        kw=c.kw_per_miner,
                        economics=req.economics,
                    )
                    for ci, c in enumerate(req.classes)
                    if margins[ci][t] < 0
                ),
                default=Decimal(0),
            )
            parts.append(f"above breakeven of {len(below)} class(es) (lowest {be:.4f})")
        parts.append("curtailed: " + ", ".join(off) if off else "all on")
        out.append("; ".join(parts))
    return out
