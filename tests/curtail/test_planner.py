"""The planner end to end through the real solver subprocess (HiGHS and CBC), with exact expectations."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from gateway.curtail.plan_model import MinerClass, PeriodPlan, Plan
from gateway.curtail.planner import build_model, counts_from_values
from gateway.curtail.planner_check import check_plan, fallback_counts
from gateway.curtail.planner_model import Customer, PlanRequest, Window, diagnose
from gateway.curtail.planner_solve import make_plan
from gateway.curtail.solver_proc import SolverWorker

T0 = 1_724_126_400  # 2024-08-20 04:00 UTC, on a 15-minute boundary
CHEAP, DEAR = Decimal("0.02"), Decimal("0.50")
S21 = MinerClass(key="S21:normal", model="S21", mode="normal", count=10, ths_per_miner=200, kw_per_miner=3.5)
M30 = MinerClass(
    key="M30S+:normal", model="M30S+", mode="normal", count=10, ths_per_miner=100, kw_per_miner=3.4
)


@pytest.fixture(scope="module")
def worker() -> Iterator[SolverWorker]:
    with SolverWorker() as w:
        yield w


def request(prices: list[Decimal], **kw: object) -> PlanRequest:
    fields: dict[str, object] = {
        "classes": (S21, M30),
        "start": T0,
        "period_s": 900,
        "prices_per_kwh": tuple(prices),
        "forecast": (False,) * len(prices),
        "hashprice": (Decimal("0.045"),) * len(prices),
        "initial_on": {"S21:normal": 10, "M30S+:normal": 10},
    } | kw
    return PlanRequest(**fields)  # type: ignore[arg-type]


def counts(plan: Plan) -> list[tuple[int, int]]:
    return [(p.on_by_class["S21:normal"], p.on_by_class["M30S+:normal"]) for p in plan.periods]


@pytest.mark.parametrize("solver", ["highs", "cbc"])
def test_cheap_runs_all_dear_stops_all(solver: str, worker: SolverWorker) -> None:
    plan = make_plan(request([CHEAP, CHEAP, DEAR, DEAR]), now=T0, solver=solver, worker=worker)
    assert plan.status == "optimal", plan.explanation
    assert counts(plan) == [(10, 10), (10, 10), (0, 0), (0, 0)]
    assert plan.solver == solver
    assert "above breakeven of 2 class(es)" in plan.periods[2].reason
    assert plan.periods[0].reason.endswith("all on")
    assert plan.objective_usd is not None and plan.lp_bound_usd is not None
    assert plan.objective_usd <= plan.lp_bound_usd


def test_price_between_breakevens_curtails_only_the_less_efficient(worker: SolverWorker) -> None:
    # breakeven: S21 0.1071, M30S+ 0.0551 (no pool fee) -> at 0.08 only the M30S+ stop
    plan = make_plan(request([Decimal("0.08")] * 2), now=T0, worker=worker)
    assert counts(plan) == [(10, 0), (10, 0)]


def test_ramp_limit_spreads_the_shutdown(worker: SolverWorker) -> None:
    # 69 kW of load, 20 kW/period ramp: cannot stop everything at once
    plan = make_plan(request([DEAR] * 5, ramp_kw_per_period=20.0), now=T0, worker=worker)
    assert plan.status == "optimal"
    loads = [3.5 * a + 3.4 * b for a, b in counts(plan)]
    previous = 69.0
    for load in loads:
        assert abs(load - previous) <= 20.0 + 1e-9
        previous = load
    assert loads[-1] == 0
    assert "ramp-limited" in plan.periods[0].reason


def test_min_on_time_keeps_fresh_starts_running(worker: SolverWorker) -> None:
    # all off; cheap for one period then dear: starting for one period would break a 3-period min on-time
    req = request([CHEAP, DEAR, DEAR, DEAR], initial_on={}, min_on_periods=3)
    plan = make_plan(req, now=T0, worker=worker)
    assert plan.status == "optimal"
    assert counts(plan) == [(0, 0)] * 4
    # a recent start (2 periods before the horizon) must keep running one more period at a dear price
    req = request([DEAR] * 3, min_on_periods=3, recent_starts={"S21:normal": (10, 0)})
    plan = make_plan(req, now=T0, worker=worker)
    assert counts(plan) == [(10, 0), (0, 0), (0, 0)]


def test_min_off_time_delays_restart(worker: SolverWorker) -> None:
    req = request([CHEAP] * 3, initial_on={}, min_off_periods=3, recent_stops={"S21:normal": (0, 10)})
    plan = make_plan(req, now=T0, worker=worker)
    # stopped one period before the horizon, 3-period minimum off: off in periods 0 and 1
    assert [a for a, _ in counts(plan)] == [0, 0, 10]


def test_4cp_window_curtails_when_charge_beats_margin(worker: SolverWorker) -> None:
    window = Window(start=T0 + 900, end=T0 + 1800, kind="4cp", charge_per_kw=Decimal(15))
    plan = make_plan(request([CHEAP] * 3, windows=(window,)), now=T0, worker=worker)
    assert counts(plan) == [(10, 10), (0, 0), (10, 10)]
    assert "in 4cp window" in plan.periods[1].reason


def test_site_cap_and_contract_cap(worker: SolverWorker) -> None:
    cust = Customer(key="acme", class_keys=("M30S+:normal",), max_kw=10.0)
    plan = make_plan(request([CHEAP] * 2, site_cap_kw=40.0, customers=(cust,)), now=T0, worker=worker)
    assert plan.status == "optimal"
    for a, b in counts(plan):
        assert 3.5 * a + 3.4 * b <= 40.0 and 3.4 * b <= 10.0
    # the S21s earn more per kW: they get the capacity first
    assert counts(plan)[1] == (10, 1)
    assert "at cap 40 kW" in plan.periods[1].reason


def test_customer_uptime_holds_miners_on_at_a_loss(worker: SolverWorker) -> None:
    cust = Customer(key="acme", class_keys=("M30S+:normal",), min_uptime=Decimal("0.5"))
    plan = make_plan(request([DEAR] * 4, customers=(cust,)), now=T0, worker=worker)
    assert plan.status == "optimal"
    assert sum(b for _, b in counts(plan)) == 20  # half of 10 miners x 4 periods
    assert sum(a for a, _ in counts(plan)) == 0


def test_cap_below_minimum_load_falls_back_with_explanation(worker: SolverWorker) -> None:
    # 69 kW now, 10 kW/period ramp, a 0 kW DR window in the very first period: unreachable
    window = Window(start=T0, end=T0 + 1800, kind="dr", max_kw=0.0)
    req = request([CHEAP] * 4, windows=(window,), ramp_kw_per_period=10.0)
    plan = make_plan(req, now=T0, worker=worker)
    assert plan.status == "fallback:infeasible configuration"
    assert "cap 0 kW is below the minimum load 59 kW reachable" in plan.explanation
    assert "Fallback: hold" in plan.explanation
    # the fallback sheds whole miners within the ramp (2 x 3.4 kW M30S+, the least profitable, per
    # period) while the window lasts, then holds; and it says what stays unmet
    assert counts(plan) == [(10, 8), (10, 6), (10, 6), (10, 6)]
    assert "Still unmet" in plan.explanation and "cap" in plan.explanation


def test_contradictory_windows_fall_back(worker: SolverWorker) -> None:
    must_run = Window(start=T0, end=T0 + 3600, kind="dr", min_kw=30.0)
    shed = Window(start=T0 + 900, end=T0 + 1800, kind="4cp", max_kw=10.0)
    plan = make_plan(request([CHEAP] * 4, windows=(must_run, shed)), now=T0, worker=worker)
    assert plan.status.startswith("fallback:infeasible")
    assert "windows demand at least 30 kW but cap it at 10 kW" in plan.explanation
    assert len(plan.periods) == 4


def test_infeasibility_found_only_by_the_solver_still_falls_back(worker: SolverWorker) -> None:
    # uptime needs 75 % of the M30S+ running, a 4CP cap allows 20 kW: diagnose cannot see it, the LP can
    cust = Customer(key="acme", class_keys=("M30S+:normal",), min_uptime=Decimal("0.75"))
    window = Window(start=T0, end=T0 + 3600, kind="dr", max_kw=20.0)
    plan = make_plan(
        request([CHEAP] * 4, customers=(cust,), windows=(window,), ramp_kw_per_period=100.0),
        now=T0,
        worker=worker,
    )
    assert plan.status.startswith("fallback:LP relaxation Infeasible")
    assert "no plan satisfies all limits together" in plan.explanation
    assert "uptime" in plan.explanation


def test_solver_killed_at_the_hard_limit_gives_a_reason() -> None:
    req = request([CHEAP] * 96)
    with SolverWorker() as w:
        reply = w.solve(
            {"model": build_model(req).to_json(), "solver": "highs", "time_limit_s": 5}, hard_timeout_s=0.001
        )
        assert isinstance(reply, str) and "hard limit" in reply
        assert w.kills == 1
        # the next request gets a fresh child
        again = w.solve(
            {"model": build_model(req).to_json(), "solver": "highs", "time_limit_s": 5}, hard_timeout_s=30
        )
        assert isinstance(again, dict) and again["status"] == "Optimal"


def test_solver_error_comes_back_as_a_reason(worker: SolverWorker) -> None:
    reply = worker.solve({"model": {}, "solver": "highs", "time_limit_s": 1}, hard_timeout_s=30)
    assert isinstance(reply, str) and reply.startswith("solver error: KeyError")


def test_integrality_and_range_are_checked() -> None:
    req = request([CHEAP])
    assert counts_from_values(req, [10.0, 10.0]) == [[10], [10]]
    assert counts_from_values(req, [10.0, 9.999_999_9]) == [[10], [10]]
    assert "non-integral" in str(counts_from_values(req, [10.0, 9.5]))
    assert "outside" in str(counts_from_values(req, [11.0, 0.0]))
    assert "no value" in str(counts_from_values(req, [float("nan"), 0.0]))
    assert "values for" in str(counts_from_values(req, [1.0]))


def test_checker_names_each_broken_limit() -> None:
    req = request([CHEAP] * 3, site_cap_kw=60.0, ramp_kw_per_period=30.0, min_on_periods=2, min_off_periods=2)
    broken = check_plan(req, [[10, 0, 10], [10, 0, 10]])
    kinds = sorted({v.kind for v in broken})
    assert kinds == ["cap", "min_off", "ramp"]


def test_diagnose_is_quiet_on_a_sane_request() -> None:
    assert diagnose(request([CHEAP] * 8, ramp_kw_per_period=20.0, site_cap_kw=100.0)) == []


def test_fallback_never_starts_miners_and_respects_caps_when_possible() -> None:
    window = Window(start=T0 + 3 * 900, end=T0 + 4 * 900, kind="dr", max_kw=0.0)
    req = request(
        [CHEAP] * 5,
        windows=(window,),
        ramp_kw_per_period=25.0,
        initial_on={"S21:normal": 10, "M30S+:normal": 5},
    )
    on = fallback_counts(req)
    assert check_plan(req, on) == []
    assert all(on[0][t] <= 10 and on[1][t] <= 5 for t in range(5))
    assert on[0][3] == on[1][3] == 0


def test_target_at_finds_the_covering_period() -> None:
    periods = tuple(
        PeriodPlan(start=T0 + 900 * i, on_by_class={}, reason="", price_per_kwh=CHEAP, forecast=False)
        for i in range(3)
    )
    plan = Plan(
        created_at=T0,
        period_s=900,
        classes=(),
        periods=periods,
        status="optimal",
        solver="highs",
        solve_s=0.1,
        objective_usd=None,
        lp_bound_usd=None,
        explanation="",
    )
    assert plan.target_at(T0 - 1) is None
    assert plan.target_at(T0) is periods[0]
    assert plan.target_at(T0 + 899) is periods[0]
    assert plan.target_at(T0 + 1800) is periods[2]
    assert plan.target_at(T0 + 2700) is None


def test_the_fallback_also_sheds_for_a_customers_contract_cap() -> None:
    """When the solver cannot be trusted, the hold-and-shed fallback still brings a customer under its
    contract cap (at the ramp rate, cheapest classes first), not only the site under its caps."""
    cust = Customer(key="acme", class_keys=("M30S+:normal",), max_kw=10.0)
    req = request([CHEAP] * 4, customers=(cust,), ramp_kw_per_period=14.0)
    rows = fallback_counts(req)
    m30 = rows[1]
    assert m30[:2] == [10 - 4, 10 - 8]  # 4 x 3.4 kW = 13.6 kW per period within the 14 kW ramp
    violations = check_plan(req, rows)
    assert not [v for v in violations if v.kind == "ramp"]
    # only the first period is over the cap: the ramp does not allow shedding 34 kW at once
    assert [(v.kind, v.period) for v in violations if v.kind == "contract"] == [("contract", 0)]


def test_diagnose_names_a_ramp_below_one_miner() -> None:
    problems = diagnose(request([DEAR] * 2, ramp_kw_per_period=3.0, site_cap_kw=30.0))
    assert any("ramp 3 kW/period is below one miner (3.4 kW)" in p for p in problems)
