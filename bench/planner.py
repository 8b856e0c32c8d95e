"""Planner benchmark: 96 periods x 50 classes with every constraint, solved as the gateway solves it.

Prints the median wall time per plan (model build + subprocess round trip + LP + bounded MILP + checks) and
the gap of the integer plan to the LP bound, against the targets (<= 2 s, <= 0.05 %), for HiGHS and CBC,
and the strike-price rule on the same problem for comparison. Prices: the real ERCOT HB_SOUTH real-time
prices of 2024-08-20 (tests/fixtures/curtail, with the 19:30 scarcity spike). Run by hand:

    .venv/bin/python bench/planner.py [--runs 5] [--solver highs|cbc|both]
"""

from __future__ import annotations

import argparse
import random
import statistics
from decimal import Decimal
from pathlib import Path

from gateway.curtail.plan_model import MinerClass
from gateway.curtail.planner import objective_usd
from gateway.curtail.planner_check import check_plan
from gateway.curtail.planner_model import Customer, PlanRequest, Window
from gateway.curtail.planner_solve import make_plan
from gateway.curtail.solver_proc import SolverWorker
from gateway.curtail.strike_rule import strike_rule_counts
from gateway.energy.prices import read_local_grid

SLICE = Path(__file__).parents[1] / "tests/fixtures/curtail/ercot_hb_south_15min_2024-08-19_21.csv"
TARGET_S, TARGET_GAP_PCT = 2.0, 0.05


def problem(seed: int) -> PlanRequest:
    rng = random.Random(seed)
    series = read_local_grid(SLICE.read_bytes(), column="HB_SOUTH_RTM")
    start = series.starts[96]  # 2024-08-20 00:00 US/Central
    prices = tuple(series.prices_per_kwh[96:192])
    classes = tuple(
        MinerClass(
            key=f"k{i}",
            model=f"model{i % 17}",
            mode=("normal", "low", "high")[i % 3],
            count=rng.randint(10, 60),
            ths_per_miner=float(rng.randint(80, 250)),
            kw_per_miner=round(rng.uniform(2.6, 3.8), 2),
        )
        for i in range(50)
    )
    fleet_kw = sum(c.kw_per_miner * c.count for c in classes)
    customers = tuple(
        Customer(
            key=f"cust{j}",
            class_keys=tuple(c.key for c in classes[j * 10 : j * 10 + 10]),
            max_kw=0.8 * sum(c.kw_per_miner * c.count for c in classes[j * 10 : j * 10 + 10]),
            min_uptime=Decimal("0.3"),
        )
        for j in range(5)
    )
    windows = (
        Window(start=start + 64 * 900, end=start + 72 * 900, kind="4cp", charge_per_kw=Decimal(15)),
        Window(start=start + 76 * 900, end=start + 80 * 900, kind="dr", max_kw=0.3 * fleet_kw),
    )
    return PlanRequest(
        classes=classes,
        start=start,
        period_s=900,
        prices_per_kwh=prices,
        forecast=(False,) * 96,
        hashprice=(Decimal("0.045"),) * 96,
        site_cap_kw=0.9 * fleet_kw,
        windows=windows,
        customers=customers,
        ramp_kw_per_period=0.15 * fleet_kw,
        min_on_periods=4,
        min_off_periods=4,
        demand_charge_per_kw=Decimal(2),
        demand_peak_kw_so_far=0.7 * fleet_kw,
        initial_on={c.key: int(c.count * 0.85) for c in classes},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--solver", choices=("highs", "cbc", "both"), default="both")
    args = parser.parse_args()
    solvers = ("highs", "cbc") if args.solver == "both" else (args.solver,)
    req0 = problem(0)
    miners = sum(c.count for c in req0.classes)
    print(f"problem: {len(req0.classes)} classes x {req0.horizon} periods, {miners} miners; site cap,")
    print("  contract caps, 4CP charge window, DR cap window, ramp, min on/off 1 h, uptime, demand charge")
    for solver in solvers:
        times: list[float] = []
        gaps: list[float] = []
        statuses: list[str] = []
        with SolverWorker() as worker:
            make_plan(problem(99), now=req0.start, solver=solver, worker=worker)  # warm the child process
            for run in range(args.runs):
                req = problem(run)
                plan = make_plan(req, now=req.start, solver=solver, worker=worker, time_limit_s=20)
                statuses.append(plan.status)
                times.append(plan.solve_s)
                if plan.objective_usd is not None and plan.lp_bound_usd:
                    gaps.append(
                        float((plan.lp_bound_usd - plan.objective_usd) / abs(plan.lp_bound_usd) * 100)
                    )
        median_s = statistics.median(times)
        worst_gap = max(gaps) if gaps else float("nan")
        print(
            f"{solver:5}: median {median_s:.3f} s (max {max(times):.3f}) target <= {TARGET_S} s "
            f"[{'OK' if median_s <= TARGET_S else 'MISS'}]; gap to LP bound median "
            f"{statistics.median(gaps) if gaps else float('nan'):.4f} %, worst {worst_gap:.4f} % "
            f"target <= {TARGET_GAP_PCT} % [{'OK' if worst_gap <= TARGET_GAP_PCT else 'MISS'}]; "
            f"statuses {sorted(set(statuses))}"
        )
    req = problem(0)
    with SolverWorker() as worker:
        plan = make_plan(req, now=req.start, worker=worker, time_limit_s=20)
    ours = [[p.on_by_class[c.key] for p in plan.periods] for c in req.classes]
    rule = strike_rule_counts(req)
    print(
        f"same problem, net USD over the day: ours {objective_usd(req, ours):.2f} "
        f"({len(check_plan(req, ours))} violations) vs strike rule {objective_usd(req, rule):.2f} "
        f"({len(check_plan(req, rule))} violations)"
    )


if __name__ == "__main__":
    main()
