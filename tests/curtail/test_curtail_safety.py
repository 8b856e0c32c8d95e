"""Runtime safety fixes of issue 7's review: min on/off across re-plans (A), a failed re-plan keeps a valid
plan and the fail policy ramps ahead of a peak window (B), an interruptible tick (B), the dry-run CLI
(D), a locked state.db never ends planning and a dead task never blocks shutdown (F).

Addresses 127.96.x.x belong to this module.
"""

from __future__ import annotations

import asyncio
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from gateway.cli.curtail_ops import register
from gateway.clock import FakeClock, SystemClock
from gateway.config import CurtailSettings, load_settings
from gateway.curtail import executor_store
from gateway.curtail.executor import Executor
from gateway.curtail.executor_model import ExecutorSettings
from gateway.curtail.executor_select import SelectionSettings
from gateway.curtail.executor_store import MinerMemory
from gateway.curtail.fail_policy import FailPolicy, Input, Response, decide
from gateway.curtail.plan_model import MinerClass, PeriodPlan, Plan
from gateway.curtail.planner_solve import make_plan
from gateway.curtail_inputs import recent_changes
from gateway.curtail_request import PERIOD_S, Change, build_request
from gateway.curtail_service import CurtailService, PlanningError, choose_targets, executor_settings
from gateway.energy.tariffs import PriceSeries
from gateway.polling import PollCoordinator
from gateway.runtime import Gateway
from gateway.store.energy_state import import_prices
from gateway.store.state import InventoryRow, upsert_miners
from tests.curtail.executor_support import state_db
from tests.curtail.test_executor import KEY, drivers_for, members
from tests.devices.capture import PROFILES
from tests.simulator.conftest import simulator

T0 = 1_700_000_100 - 1_700_000_100 % PERIOD_S
S21 = MinerClass(key="S21|normal", model="S21", mode="normal", count=10, ths_per_miner=200, kw_per_miner=3.5)
DEAR, CHEAP = Decimal("1.0"), Decimal("0.01")


def record(conn: sqlite3.Connection, miner: str, action: str, ts: int, status: str) -> None:
    """An executor action row as the executor writes it (real store functions, real audit chain)."""
    memory = MinerMemory(miner_id=miner)
    action_id = executor_store.insert_action(
        conn, event_id=None, now=ts, miner_id=miner, action=action, reason="plan", attempt=1,
        baseline_w=3500.0, expected_w=10.0, memory=memory, actor="test",
    )  # fmt: skip
    if status != "issued":
        executor_store.finish_action(
            conn, action_id=action_id, miner_id=miner, status=status, now=ts + 60, detail="", memory=memory,
            actor="test",
        )  # fmt: skip


# --- A: minimum on/off across re-plans and restarts ------------------------------------------------------


def test_a_stop_in_the_previous_plans_first_period_holds_across_a_replan_and_a_restart(
    tmp_path: Path,
) -> None:
    cfg = CurtailSettings(price_series="x", horizon_periods=8, min_on_periods=4, min_off_periods=4)
    known = {T0 + k * PERIOD_S: (DEAR if k == 0 else CHEAP) for k in range(-8, 20)}
    first = make_plan(build_request(cfg=cfg, classes=(S21,), known=known, start=T0, initial_on={S21.key: 10}),
                      now=T0)  # fmt: skip
    assert first.periods[0].on_by_class[S21.key] == 0  # the dear period: all ten stopped at T0
    conn = state_db(tmp_path)
    for i in range(10):
        record(conn, f"m{i}", "sleep", T0 + 5 + i, "verified" if i % 2 else "issued")
    record(conn, "m10", "sleep", T0 + 30, "failed")  # never happened: not counted
    conn.close()
    # a restarted gateway: a fresh connection, no memory of the plan, only what state.db recorded
    reopened = sqlite3.connect(tmp_path / "state.db")
    class_of = {f"m{i}": S21.key for i in range(11)}
    changes = recent_changes(reopened, class_of, start=T0 + PERIOD_S, back_periods=4)
    reopened.close()
    request = build_request(cfg=cfg, classes=(S21,), known=known, start=T0 + PERIOD_S,
                            initial_on={S21.key: 0}, changes=changes)  # fmt: skip
    assert request.recent_stops == {S21.key: (0, 0, 10)}
    assert request.recent_starts == {S21.key: (0, 0, 0)}
    replanned = make_plan(request, now=T0 + PERIOD_S)
    # off from T0 for four periods (T0 .. T0+3P), then cheap power brings them back
    assert [p.on_by_class[S21.key] for p in replanned.periods] == [0, 0, 0, 10, 10, 10, 10, 10]


def test_a_mid_period_replan_cannot_undo_the_changes_already_made_in_its_first_period() -> None:
    cfg = CurtailSettings(price_series="x", horizon_periods=4, min_on_periods=3, min_off_periods=3)
    changes = [Change(ts=T0 + 100, class_key=S21.key, delta=-1)] * 6  # stopped in this very period
    request = build_request(cfg=cfg, classes=(S21,), known={T0: CHEAP}, start=T0, initial_on={S21.key: 4},
                            changes=changes)  # fmt: skip
    assert request.initial_on == {S21.key: 4} and request.recent_stops == {S21.key: (0, 6)}
    plan = make_plan(request, now=T0 + 200)
    # cheap power, yet the six stay off (the executor's per-miner times hold the third period)
    assert [p.on_by_class[S21.key] for p in plan.periods] == [4, 4, 10, 10]


# --- B: a failed re-plan keeps the plan; shedding ahead of a peak window ---------------------------------

FLEET = MinerClass(key="s21", model="S21", mode="normal", count=1000, ths_per_miner=200, kw_per_miner=3.5)


def ramp_plan() -> Plan:
    periods = tuple(
        PeriodPlan(start=T0 + k * PERIOD_S, reason="4cp", price_per_kwh=CHEAP, forecast=False,
                   on_by_class={"s21": max(0, 1000 - 250 * (k + 1)) if k < 8 else 1000})
        for k in range(96)
    )  # fmt: skip
    return Plan(created_at=T0, period_s=PERIOD_S, classes=(FLEET,), periods=periods, status="optimal",
                solver="highs", solve_s=0.1, objective_usd=None, lp_bound_usd=None,
                explanation="")  # fmt: skip


def test_a_failed_replan_follows_the_last_plan_while_it_covers_now() -> None:
    policy = FailPolicy(must_curtail_windows=((T0 + 3600, T0 + 7200),))
    got = [
        choose_targets(
            plan=ramp_plan(),
            now=now,
            price_known=True,
            planner_ok=False,
            believed_on={"s21": 1000},
            full_on={"s21": 1000},
            policy=policy,
        )
        for now in (T0, T0 + 900, T0 + 2700, T0 + 3600)
    ]
    assert [(t.source, t.on_by_class["s21"]) for t in got] == [("plan", 750), ("plan", 500), ("plan", 0),
                                                               ("plan", 0)]  # fmt: skip
    assert got[0].failed == () and "last re-plan failed" in got[0].reason
    # once the plan has run out, the planner input has failed and the fail policy decides
    late = choose_targets(plan=ramp_plan(), now=T0 + 96 * PERIOD_S, price_known=True, planner_ok=False,
                          believed_on={"s21": 3}, full_on={"s21": 4}, policy=FailPolicy())  # fmt: skip
    assert (late.source, late.failed, late.on_by_class) == ("fail_policy", (Input.PLANNER,), {"s21": 3})


def test_without_a_plan_the_fail_policy_sheds_at_the_ramp_rate_ahead_of_the_window() -> None:
    window = (T0 + 3600, T0 + 7200)
    policy = FailPolicy(must_curtail_windows=(window,), ramp_kw_per_period=875.0)  # 250 miners a period
    on, seen = 1000, []
    for now in range(T0 - 2 * PERIOD_S, T0 + 3600 + 1, PERIOD_S):
        d = decide([Input.PLANNER], policy, now, current_on={"s21": on}, full_on={"s21": 1000},
                   kw_by_class={"s21": 3.5})  # fmt: skip
        assert d.on_by_class is not None
        on = d.on_by_class["s21"]
        seen.append(on)
    # hold until the ramp must start; at zero one period (the lead) before the window
    assert seen == [1000, 1000, 750, 500, 250, 0, 0]
    # no ramp limit: everything is shed one lead before the window, not at its first second
    step = FailPolicy(must_curtail_windows=(window,))
    before = decide(
        [Input.PLANNER], step, window[0] - PERIOD_S - 1, current_on={"s21": 9}, full_on={"s21": 9}
    )
    at_lead = decide([Input.PLANNER], step, window[0] - PERIOD_S, current_on={"s21": 9}, full_on={"s21": 9})
    assert before.on_by_class == {"s21": 9} and at_lead.on_by_class == {"s21": 0}
    assert at_lead.response is Response.CURTAIL and "before a known peak window" in at_lead.reason


@settings(max_examples=100, deadline=None)
@given(
    full=st.integers(0, 400),
    kw=st.sampled_from([0.5, 3.25, 3.5, 5.0]),
    ramp=st.one_of(st.none(), st.floats(10, 2000)),
    lead_periods=st.integers(0, 3),
    first=st.integers(1, 12),
    response=st.sampled_from([Response.HOLD, Response.RESUME]),
)
def test_shedding_ahead_never_raises_load_and_reaches_zero_before_the_window(
    full: int, kw: float, ramp: float | None, lead_periods: int, first: int, response: Response
) -> None:
    window = (T0 + first * PERIOD_S, T0 + (first + 4) * PERIOD_S)
    policy = FailPolicy(planner=response, must_curtail_windows=(window,), ramp_kw_per_period=ramp,
                        lead_s=lead_periods * PERIOD_S)  # fmt: skip
    on = full
    for now in range(T0, window[1], PERIOD_S):
        d = decide(
            [Input.PLANNER], policy, now, current_on={"c": on}, full_on={"c": full}, kw_by_class={"c": kw}
        )
        assert d.on_by_class is not None
        new = d.on_by_class["c"]
        assert 0 <= new <= full
        if now >= window[0] - lead_periods * PERIOD_S:
            assert new == 0
        if now < window[0] - lead_periods * PERIOD_S and response is Response.HOLD:
            assert new <= on
        reachable = ramp is not None and full * kw <= ramp * (first - lead_periods)
        if ramp is not None and reachable and now < window[0] - lead_periods * PERIOD_S:
            # when the window is far enough for the ramp, the shed each period never exceeds the ramp by
            # more than one miner's rounding (nearer, it sheds as fast as it must)
            assert (on - new) * kw <= ramp + kw + 1e-9
        on = new


# --- B: an interruptible tick ------------------------------------------------------------------------------


async def test_interrupt_ends_a_long_tick_after_its_batch_in_flight(tmp_path: Path) -> None:
    async with simulator("s19jpro=1", "127.96.0.1", miners=3) as sim:
        conn = state_db(tmp_path)
        drivers = drivers_for(sim)
        slow = ExecutorSettings(selection=SelectionSettings(min_on_s=0, min_off_s=0), batch_size=1,
                                batch_gap_s=600, verify_window_s=30)  # fmt: skip
        executor = Executor(conn, drivers, SystemClock(), slow)
        fleet = await members(drivers)
        tick = asyncio.create_task(executor.tick(fleet, {KEY: 0}))
        for _ in range(1200):  # until the first batch is sent and the tick waits out its gap
            if conn.execute("SELECT count(*) FROM curtail_actions").fetchone()[0] and executor.busy:
                break
            await asyncio.sleep(0.05)
        executor.interrupt()
        report = await asyncio.wait_for(tick, timeout=60)  # a hang guard: the gap alone is 600 s
        assert len(report.done) == 1 and len(report.interrupted) == 2
        assert not set(report.done) & set(report.interrupted)
        assert "interrupted before 2 actions" in "\n".join(report.lines())
        assert conn.execute("SELECT count(*) FROM curtail_actions").fetchone()[0] == 1
        executor.interrupt()  # no tick running: nothing is left set for the next one
        conn.close()


# --- D: the dry-run CLI changes nothing ---------------------------------------------------------------


def test_a_dry_run_apply_without_a_state_db_refuses_and_creates_nothing(tmp_path: Path) -> None:
    app = typer.Typer()
    register(app)
    spec = tmp_path / "t.json"
    spec.write_text('{"S21:normal": 1}')
    site = tmp_path / "site.toml"
    site.write_text("demo = true\n")
    data = tmp_path / "data"
    data.mkdir()
    args = ["apply", "--targets", str(spec), "--config", str(site), "--data-dir", str(data)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "no state database" in result.output
    assert "Traceback" not in result.output and list(data.iterdir()) == []


# --- F: a locked state.db never ends planning; a dead task never blocks shutdown --------------------------


async def test_a_state_db_error_is_a_planning_error_and_the_next_attempt_plans(tmp_path: Path) -> None:
    conn = state_db(tmp_path)
    series = PriceSeries(interval_s=PERIOD_S, starts=(T0,), prices_per_kwh=(CHEAP,))
    import_prices(conn, "rt", series, fmt="test", source_name="t", data=b"t", now=T0)
    rows = {f"m{i}": InventoryRow(id=f"m{i}", ip=f"10.0.0.{i}", family="antminer", profile_key="antminer_s21")
            for i in range(2)}  # fmt: skip
    upsert_miners(conn, rows.values(), now=T0)
    clock = FakeClock(T0 + 10)
    cfg = CurtailSettings(price_series="rt", horizon_periods=4)
    polling = load_settings(None, environ={}, demo=True).polling
    service = CurtailService(cfg, conn=conn, executor=Executor(conn, {}, clock, executor_settings(cfg)),
                             clock=clock, profiles=PROFILES, inventory=lambda: rows,
                             poller=PollCoordinator(polling, {}, clock, lambda *_: None))  # fmt: skip
    # a real sqlite3 error while reading the inputs (as "database is locked" under a CLI write would be):
    # another connection renames the executor's action table away
    other = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
    other.execute("ALTER TABLE curtail_actions RENAME TO curtail_actions_away")
    with pytest.raises(PlanningError, match="reading the inputs: OperationalError"):
        await service.replan()
    assert service.planner_ok is False and "curtail_actions" in (service.last_error or "")
    other.execute("ALTER TABLE curtail_actions_away RENAME TO curtail_actions")
    other.close()
    plan = await service.replan()  # the fault gone, the next attempt plans
    assert service.planner_ok and plan.periods[0].on_by_class["antminer_s21|normal"] == 2
    conn.close()


async def test_gateway_stop_survives_a_task_that_died(tmp_path: Path) -> None:
    settings_: Any = load_settings(None, environ={}, demo=True, api={"host": "127.96.255.1", "port": 0})
    gateway = Gateway(settings_, tmp_path, profiles=PROFILES)
    await gateway.start()

    async def dies() -> None:
        raise sqlite3.OperationalError("database is locked")

    dead = asyncio.create_task(dies(), name="dead")
    await asyncio.sleep(0)
    gateway._tasks.append(dead)  # as the planning task was before the fix: ended by an exception
    await gateway.stop()  # logs it and shuts down: the store is closed, nothing re-raised
    assert dead.done()
