"""Turn a `PlanRequest` into a `Plan`: diagnose, solve in the worker, verify, or fall back.

This is the one place that decides what to trust. A solver answer becomes an "optimal" plan only if the
LP stage was optimal, the integer stage reports an optimal solution, every count is integral and within
its range, and the independent checker finds no broken limit. Anything else yields a feasible fallback
(a verified but unproven incumbent, else hold-and-shed) with the reason in `status` and `explanation`;
this function does not raise for solver trouble or an infeasible configuration.
"""

from __future__ import annotations

import time
from decimal import ROUND_HALF_EVEN, Decimal

from gateway.curtail.plan_model import PeriodPlan, Plan
from gateway.curtail.planner import build_model, counts_from_values, objective_usd
from gateway.curtail.planner_check import check_plan, fallback_counts, reasons
from gateway.curtail.planner_model import PlanRequest, diagnose
from gateway.curtail.solver_proc import SOLVERS, SolverWorker

__all__ = ["make_plan"]

_FIGURE = Decimal("0.0001")


def _figure(value: Decimal | float) -> Decimal:
    """A plan-level USD figure (not an invoice line), kept to 1/100 cent so small gaps stay visible."""
    return Decimal(str(value)).quantize(_FIGURE, rounding=ROUND_HALF_EVEN)


def _assemble(
    req: PlanRequest,
    on: list[list[int]],
    *,
    now: int,
    status: str,
    solver: str,
    solve_s: float,
    lp_bound: Decimal | None,
    explanation: str,
) -> Plan:
    why = reasons(req, on)
    periods = tuple(
        PeriodPlan(
            start=req.period_start(t),
            on_by_class={c.key: on[ci][t] for ci, c in enumerate(req.classes)},
            reason=why[t],
            price_per_kwh=req.prices_per_kwh[t],
            forecast=req.forecast[t],
        )
        for t in range(req.horizon)
    )
    return Plan(
        created_at=now,
        period_s=req.period_s,
        classes=req.classes,
        periods=periods,
        status=status,
        solver=solver,
        solve_s=solve_s,
        objective_usd=_figure(objective_usd(req, on)),
        lp_bound_usd=lp_bound,
        explanation=explanation,
    )


def _fallback(req: PlanRequest, *, now: int, why: str, detail: str, solver: str, solve_s: float) -> Plan:
    on = fallback_counts(req)
    left = check_plan(req, on)
    explanation = (
        f"{detail}. Fallback: hold the current state, shedding at the ramp rate where a cap requires."
    )
    if left:
        kinds = sorted({v.kind for v in left})
        explanation += (
            f" Still unmet (configuration cannot be met): {', '.join(kinds)}; first: {left[0].detail}."
        )
    return _assemble(
        req,
        on,
        now=now,
        status=f"fallback:{why}",
        solver=solver,
        solve_s=solve_s,
        lp_bound=None,
        explanation=explanation,
    )


def make_plan(
    req: PlanRequest,
    *,
    now: int,
    solver: str = "highs",
    time_limit_s: float = 10.0,
    gap_rel: float = 4e-4,
    accept_gap: float = 5e-4,
    worker: SolverWorker | None = None,
) -> Plan:
    """Plan `req` with `solver` ("highs" or "cbc"), killing it after `time_limit_s` + 5 s at the latest.

    "optimal" means the solver proved optimality within `gap_rel`, or the integer plan is within
    `accept_gap` of the LP relaxation's value (an upper bound on any plan, so equally a proof).
    Pass a long-lived `worker` when planning repeatedly; otherwise one is started and closed here."""
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; choose one of {', '.join(SOLVERS)}")
    problems = diagnose(req)
    if problems:
        detail = "Infeasible configuration: " + "; ".join(problems[:3])
        if len(problems) > 3:
            detail += f" (and {len(problems) - 3} more)"
        return _fallback(
            req, now=now, why="infeasible configuration", detail=detail, solver=solver, solve_s=0.0
        )
    request = {
        "model": build_model(req).to_json(),
        "solver": solver,
        "time_limit_s": time_limit_s,
        "gap_rel": gap_rel,
        "accept_gap": accept_gap,
    }
    started = time.monotonic()
    if worker is None:
        with SolverWorker() as own:
            reply = own.solve(request, hard_timeout_s=time_limit_s + 5)
    else:
        reply = worker.solve(request, hard_timeout_s=time_limit_s + 5)
    solve_s = time.monotonic() - started
    if isinstance(reply, str):
        return _fallback(req, now=now, why=reply, detail=reply, solver=solver, solve_s=solve_s)
    if reply.get("lp_status") != "Optimal":
        why = f"LP relaxation {reply.get('lp_status')}"
        detail = f"{why}: no plan satisfies all limits together"
        return _fallback(req, now=now, why=why, detail=detail, solver=solver, solve_s=solve_s)
    lp_bound = _figure(reply["lp_objective"])
    on = counts_from_values(req, list(reply.get("x") or []))
    proven = reply.get("status") == "Optimal" and reply.get("solution") == "optimal"
    if isinstance(on, str):
        why = f"integer stage {reply.get('status')}/{reply.get('solution')}: {on}"
        return _fallback(req, now=now, why=why, detail=why, solver=solver, solve_s=solve_s)
    broken = check_plan(req, on)
    if broken:
        why = f"solver plan breaks {broken[0].kind} ({broken[0].detail})"
        return _fallback(req, now=now, why=why, detail=why, solver=solver, solve_s=solve_s)
    value = objective_usd(req, on)
    gap = (lp_bound - value) / abs(lp_bound) * 100 if lp_bound else Decimal(0)
    summary = (
        f"net {_figure(value)} USD over {req.horizon} periods; LP bound {lp_bound} USD (gap {gap:.4f} %)"
        f"{'; integer box widened' if reply.get('widened') else ''}"
        f"{'; optimality proven by the LP bound' if reply.get('proof') == 'lp_bound' else ''}"
    )
    if not proven:
        why = f"unproven incumbent ({reply.get('status')}/{reply.get('solution')}), verified feasible"
        return _assemble(
            req, on, now=now, status=f"fallback:{why}", solver=solver, solve_s=solve_s, lp_bound=lp_bound,
            explanation=f"{why}: {summary}",
        )  # fmt: skip
    return _assemble(
        req,
        on,
        now=now,
        status="optimal",
        solver=solver,
        solve_s=solve_s,
        lp_bound=lp_bound,
        explanation=f"optimal ({solver}): {summary}",
    )
