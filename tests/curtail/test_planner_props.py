"""Properties on random small problems: a plan never breaks a limit, and the solver beats holding."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.curtail.plan_model import MinerClass
from gateway.curtail.planner import objective_usd
from gateway.curtail.planner_check import check_plan, fallback_counts
from gateway.curtail.planner_model import PlanRequest, Window
from gateway.curtail.planner_solve import make_plan
from gateway.curtail.solver_proc import SolverWorker

T0 = 1_724_126_400


@pytest.fixture(scope="module")
def worker() -> Iterator[SolverWorker]:
    with SolverWorker() as w:
        yield w


@st.composite
def problems(draw: st.DrawFn) -> PlanRequest:
    """Feasible by construction: the ramp allows dropping to zero in one period, no committed minimums,
    no recent starts; so "all off from period 0" always satisfies every limit."""
    n_classes = draw(st.integers(1, 3))
    classes = tuple(
        MinerClass(
            key=f"c{i}",
            model=f"m{i}",
            mode="normal",
            count=draw(st.integers(0, 6)),
            ths_per_miner=float(draw(st.integers(50, 250))),
            kw_per_miner=draw(st.sampled_from([2.5, 3.05, 3.4, 3.5])),
        )
        for i in range(n_classes)
    )
    horizon = draw(st.integers(1, 10))
    prices = tuple(Decimal(draw(st.integers(-50, 400))) / 1000 for _ in range(horizon))
    initial = {c.key: draw(st.integers(0, c.count)) for c in classes}
    fleet_kw = sum(c.kw_per_miner * c.count for c in classes)
    ramp = draw(st.one_of(st.none(), st.floats(max(fleet_kw, 1.0), max(fleet_kw, 1.0) * 2)))
    small_ramp = draw(st.booleans())
    windows: list[Window] = []
    for _ in range(draw(st.integers(0, 2))):
        a = draw(st.integers(0, horizon - 1))
        b = draw(st.integers(a + 1, horizon))
        windows.append(
            Window(
                start=T0 + 900 * a,
                end=T0 + 900 * b,
                max_kw=draw(st.one_of(st.none(), st.floats(0, fleet_kw + 1))),
                charge_per_kw=Decimal(draw(st.integers(0, 20))),
            )
        )
    return PlanRequest(
        classes=classes,
        start=T0,
        period_s=900,
        prices_per_kwh=prices,
        forecast=(False,) * horizon,
        hashprice=(Decimal("0.045"),) * horizon,
        site_cap_kw=draw(st.one_of(st.none(), st.floats(0, fleet_kw + 1))),
        windows=tuple(windows),
        # a small ramp can make early caps unreachable: then the plan must be a fallback that says so
        ramp_kw_per_period=(3.6 if small_ramp else ramp),
        min_on_periods=draw(st.integers(1, 4)),
        min_off_periods=draw(st.integers(1, 4)),
        initial_on=initial,
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(req=problems(), solver=st.sampled_from(["highs", "cbc"]))
def test_plan_never_breaks_a_limit(req: PlanRequest, solver: str, worker: SolverWorker) -> None:
    plan = make_plan(req, now=T0, solver=solver, worker=worker)
    on = [[p.on_by_class[c.key] for p in plan.periods] for c in req.classes]
    broken = check_plan(req, on)
    if plan.status == "optimal":
        assert broken == []
        assert plan.objective_usd is not None and plan.lp_bound_usd is not None
        # never worse than holding (when holding is itself valid), never above the LP bound
        hold = fallback_counts(req)
        if not check_plan(req, hold):
            assert objective_usd(req, on) >= objective_usd(req, hold) - Decimal("0.001")
        assert plan.objective_usd <= plan.lp_bound_usd + Decimal("0.001")
    elif req.ramp_kw_per_period != 3.6:
        # with a ramp able to drop to zero at once the problem is feasible: only the solver could fail
        pytest.fail(f"feasible problem fell back: {plan.status}: {plan.explanation}")
    else:
        # an unreachable cap: the fallback is safe where it can be and names what it cannot meet
        assert plan.status.startswith("fallback:")
        assert not broken or "Still unmet" in plan.explanation
        assert all(v.kind in {"cap"} for v in broken), broken


@settings(max_examples=100, deadline=None)
@given(req=problems())
def test_fallback_never_starts_a_miner_nor_breaks_min_times_or_ramp(req: PlanRequest) -> None:
    on = fallback_counts(req)
    for ci, c in enumerate(req.classes):
        before = req.initial_on.get(c.key, 0)
        for n in on[ci]:
            assert 0 <= n <= before
            before = n
    assert {v.kind for v in check_plan(req, on)} <= {"cap"}
