"""Adopted plans in state.db (migration 0008): exact round trips, the plan covering `now`, bounded history,
damaged rows refused by field, and the headline: a restarted gateway resumes its stored plan instead of
running without one, and `hashinsight curtail show` prints its next periods from state.db.

Real files throughout: state.db via `open_state`, a simulated fleet over real sockets for the restart.
Addresses 127.77.x.x belong to this module.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sqlite3
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from gateway.cli.curtail import curtail_app
from gateway.config import load_settings
from gateway.curtail.plan_model import MinerClass, PeriodPlan, Plan
from gateway.curtail_plan_store import PlanStoreError, current_plan, save_plan
from gateway.curtail_request import PERIOD_S
from gateway.demo import register
from gateway.runtime import Gateway
from gateway.store.state import open_state
from tests.curtail.test_gateway_curtail import CHEAP, store_prices, until
from tests.devices.capture import PROFILES
from tests.simulator.conftest import simulator

API_HOST = "127.77.255.1"
T0 = 1_790_000_100 // PERIOD_S * PERIOD_S
DAY_S = 86_400
S21 = MinerClass(key="antminer_s21|normal", model="antminer_s21", mode="normal", count=4,
                 ths_per_miner=200.0, kw_per_miner=3.5)  # fmt: skip
runner = CliRunner()


def make_plan(created_at: int, first: int, n: int = 4, *, reason: str = "price below breakeven") -> Plan:
    periods = tuple(
        PeriodPlan(
            start=first + t * PERIOD_S,
            on_by_class={S21.key: t % 5},
            reason=reason,
            price_per_kwh=Decimal("0.0312") + t,
            forecast=t % 2 == 1,
        )
        for t in range(n)
    )
    return Plan(
        created_at=created_at,
        period_s=PERIOD_S,
        classes=(S21,),
        periods=periods,
        status="optimal",
        solver="highs",
        solve_s=0.25,
        objective_usd=Decimal("12.3456789"),
        lp_bound_usd=Decimal("12.35"),
        explanation="Optimal within 0.02 % of the LP bound.",
    )


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    return open_state(tmp_path / "state.db")


def test_the_migration_adds_the_plans_table(conn: sqlite3.Connection) -> None:
    assert [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")] == list(
        range(1, 9)
    )
    assert conn.execute("SELECT count(*) FROM curtail_plans").fetchone()[0] == 0


def test_a_stored_plan_reads_back_exactly_and_only_while_it_covers_now(conn: sqlite3.Connection) -> None:
    plan = make_plan(T0, T0)
    plan_id = save_plan(conn, plan, now=T0, keep_s=30 * DAY_S)
    assert current_plan(conn, T0) == (plan_id, plan)
    assert current_plan(conn, T0 + 4 * PERIOD_S - 1) == (plan_id, plan)  # last second of the last period
    assert current_plan(conn, T0 + 4 * PERIOD_S) is None  # ran out
    assert current_plan(conn, T0 - 1) is None  # not started


def test_the_latest_plan_covering_now_wins(conn: sqlite3.Connection) -> None:
    older = make_plan(T0, T0, n=8)
    newer = make_plan(T0 + PERIOD_S, T0 + PERIOD_S, n=2, reason="re-planned")
    save_plan(conn, older, now=T0, keep_s=30 * DAY_S)
    newer_id = save_plan(conn, newer, now=T0 + PERIOD_S, keep_s=30 * DAY_S)
    assert current_plan(conn, T0 + PERIOD_S) == (newer_id, newer)
    # the newer plan ran out earlier: the older one still covers the later period
    assert current_plan(conn, T0 + 5 * PERIOD_S) is not None
    assert current_plan(conn, T0 + 5 * PERIOD_S)[1] == older  # type: ignore[index]


def test_history_is_pruned_on_write(conn: sqlite3.Connection) -> None:
    for day in range(40):
        save_plan(
            conn, make_plan(T0 + day * DAY_S, T0 + day * DAY_S), now=T0 + day * DAY_S, keep_s=30 * DAY_S
        )
    created = [r[0] for r in conn.execute("SELECT created_at FROM curtail_plans ORDER BY created_at")]
    assert created == [T0 + day * DAY_S for day in range(9, 40)]  # 30 days back from the last write


def test_a_plan_without_periods_is_refused(conn: sqlite3.Connection) -> None:
    with pytest.raises(PlanStoreError, match="without periods"):
        save_plan(conn, dataclasses.replace(make_plan(T0, T0), periods=()), now=T0, keep_s=DAY_S)
    assert conn.execute("SELECT count(*) FROM curtail_plans").fetchone()[0] == 0


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("periods", "[{", "classes/periods are not JSON"),
        ("periods", '{"start": 1}', "periods is not a list"),
        ("periods", "[]", "no periods"),
        ("classes", '[{"key": 5}]', "classes[0].key is not a str"),
        ("periods", '[{"start": "x", "on": {}, "reason": "", "price_per_kwh": "1", "forecast": false}]',
         "periods[0].start is not a int"),
        ("periods", '[{"start": 0, "on": {"a": 1.5}, "reason": "", "price_per_kwh": "1", "forecast": false}]',
         "periods[0].on['a'] is not a int"),
        ("periods", '[{"start": 0, "on": {}, "reason": "", "price_per_kwh": "=HYPERLINK(1)", "forecast": 0}]',
         "periods[0].price_per_kwh '=HYPERLINK(1)' is not a decimal"),
        ("periods", '[{"start": 0, "on": {}, "reason": "", "price_per_kwh": "NaN", "forecast": false}]',
         "periods[0].price_per_kwh is not finite"),
        ("periods", '[{"start": 0, "on": {}, "reason": "", "price_per_kwh": "1", "forecast": 1}]',
         "periods[0].forecast is not a bool"),
        ("objective_usd", "lots", "objective_usd 'lots' is not a decimal"),
    ],
)  # fmt: skip
def test_a_damaged_row_is_an_error_naming_the_plan_and_field(
    conn: sqlite3.Connection, column: str, value: str, message: str
) -> None:
    plan_id = save_plan(conn, make_plan(T0, T0), now=T0, keep_s=DAY_S)
    conn.execute(f"UPDATE curtail_plans SET {column} = ? WHERE id = ?", (value, plan_id))
    with pytest.raises(PlanStoreError) as err:
        current_plan(conn, T0)
    assert str(err.value).startswith(f"stored plan {plan_id}: {message}") and "\n" not in str(err.value)


def test_periods_out_of_step_are_refused(conn: sqlite3.Connection) -> None:
    plan_id = save_plan(conn, make_plan(T0, T0), now=T0, keep_s=DAY_S)
    periods = json.loads(conn.execute("SELECT periods FROM curtail_plans").fetchone()[0])
    periods[2]["start"] += 1
    conn.execute("UPDATE curtail_plans SET periods = ? WHERE id = ?", (json.dumps(periods), plan_id))
    with pytest.raises(PlanStoreError, match=r"periods\[2\].start is not 900 s after the last"):
        current_plan(conn, T0)


def test_a_full_week_plan_with_hostile_text_round_trips(conn: sqlite3.Connection) -> None:
    plan = make_plan(T0, T0, n=672, reason='=HYPERLINK("http://x") ' + "r" * 10_000)
    plan_id = save_plan(conn, plan, now=T0, keep_s=DAY_S)
    assert current_plan(conn, T0 + 671 * PERIOD_S) == (plan_id, plan)


@settings(max_examples=50, deadline=None)
@given(
    counts=st.lists(st.integers(0, 10_000), min_size=1, max_size=96),
    prices=st.decimals(min_value=-10, max_value=10_000, places=6, allow_nan=False),
    objective=st.none() | st.decimals(min_value=-(10**9), max_value=10**9, places=8, allow_nan=False),
    reason=st.text(max_size=200),
    offset=st.integers(0, 96 * PERIOD_S),
)
def test_any_plan_round_trips_exactly(
    tmp_path_factory: pytest.TempPathFactory,
    counts: list[int],
    prices: Decimal,
    objective: Decimal | None,
    reason: str,
    offset: int,
) -> None:
    db = open_state(tmp_path_factory.mktemp("plans") / "state.db")
    periods = tuple(
        PeriodPlan(
            start=T0 + t * PERIOD_S,
            on_by_class={S21.key: n, "x|normal|acme": t},
            reason=reason,
            price_per_kwh=prices,
            forecast=bool(n % 2),
        )
        for t, n in enumerate(counts)
    )
    plan = dataclasses.replace(make_plan(T0, T0), periods=periods, objective_usd=objective)
    plan_id = save_plan(db, plan, now=T0, keep_s=DAY_S)
    now = T0 + offset
    found = current_plan(db, now)
    assert found == ((plan_id, plan) if now < T0 + len(counts) * PERIOD_S else None)
    db.close()


# --- a restarted gateway resumes its plan; `curtail show` prints it ---------------------------------------


def gateway_settings(**curtail: Any) -> Any:
    return load_settings(
        None,
        environ={},
        demo=True,
        polling={"interval_s": 2.0, "deadline_s": 1.0, "spread": 0.25},
        api={"host": API_HOST, "port": 0},
        curtail={
            "enabled": True,
            "price_series": "rt",
            "replan_interval_s": 86_400,
            "batch_gap_s": 0.1,
            **curtail,
        },
    )


async def test_a_restarted_gateway_resumes_the_stored_plan_and_show_prints_it(tmp_path: Path) -> None:
    t0 = int(time.time()) // PERIOD_S * PERIOD_S
    async with simulator("s21=1", "127.77.0.1", miners=2) as sim:
        register(tmp_path, sim)
        store_prices(tmp_path, t0)
        first = Gateway(gateway_settings(), tmp_path, profiles=PROFILES)
        await first.start()
        try:
            service = first.curtail
            assert service is not None
            await until(lambda: service.plan is not None and service.plan_id is not None, "the first plan")
            made, made_id = service.plan, service.plan_id
        finally:
            await first.stop()

        second = Gateway(gateway_settings(), tmp_path, profiles=PROFILES)
        await second.start()
        try:
            resumed = second.curtail
            assert resumed is not None
            # straight after start, before any cycle could re-plan: the stored plan, followed at once
            assert resumed.plan == made and resumed.plan_id == made_id and resumed.planner_ok
            await until(lambda: resumed.last_targets is not None, "the first tick")
            assert resumed.last_targets is not None and resumed.last_targets.source == "plan"
            assert resumed.plan_id == made_id  # no re-plan was needed: the fleet matches the plan
        finally:
            await second.stop()

    assert made is not None
    result = runner.invoke(curtail_app, ["show", "--periods", "3", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"plan #{made_id} {made.status} by highs, made ")
    shown = [line for line in lines if "antminer_s21|normal=2" in line]
    assert len(shown) == 3 and all(f"{CHEAP} $/kWh" in line for line in shown)
    assert "7.000 kW" in shown[0]
    as_json = json.loads(runner.invoke(curtail_app, ["show", "--json", "--data-dir", str(tmp_path)]).output)
    assert as_json["plan"]["id"] == made_id and len(as_json["plan"]["periods"]) == 8
    assert as_json["plan"]["periods"][0]["start"] <= int(time.time()) < as_json["plan"]["periods"][1]["start"]


def test_show_says_so_when_no_plan_covers_now(tmp_path: Path) -> None:
    db = open_state(tmp_path / "state.db")
    save_plan(db, make_plan(T0, T0), now=T0, keep_s=DAY_S)  # long over
    db.close()
    result = runner.invoke(curtail_app, ["show", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0 and result.output.startswith("no plan covers now")


async def test_a_damaged_stored_plan_means_planning_afresh_not_a_crash(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = open_state(tmp_path / "state.db")
    now = int(time.time())
    plan_id = save_plan(db, make_plan(now, now // PERIOD_S * PERIOD_S), now=now, keep_s=DAY_S)
    db.execute("UPDATE curtail_plans SET periods = '[{' WHERE id = ?", (plan_id,))
    db.close()
    gateway = Gateway(gateway_settings(), tmp_path, profiles=PROFILES)
    with caplog.at_level(logging.WARNING, logger="gateway.curtail_service"):
        await gateway.start()
    try:
        assert gateway.curtail is not None and gateway.curtail.plan is None
        assert f"stored plan {plan_id}: classes/periods are not JSON" in caplog.text
    finally:
        await gateway.stop()
    result = runner.invoke(curtail_app, ["show", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0
    assert result.output.startswith(f"the stored plan cannot be read: stored plan {plan_id}")
