"""End to end against the simulator (real sockets): a plan period that cuts 30 % makes the executor sleep
the chosen miners, their metered power falls, the rules see the intended sleep (no alert) and the next
period wakes them.

Addresses 127.71.x.x belong to this module. Three firmwares/models (stock Antminer S19j Pro and S21,
Braiins OS S21 Pro), 10 miners, mode changes in about two seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from gateway import audit
from gateway.alerts.lifecycle import AlertLifecycle
from gateway.clock import SystemClock
from gateway.curtail.executor import Executor
from gateway.curtail.executor_model import ExecutorSettings, FleetMember, class_keys, member_for
from gateway.curtail.executor_select import SelectionSettings
from gateway.curtail.executor_verify import observed_on
from gateway.curtail.plan_model import MinerClass, PeriodPlan, Plan
from gateway.devices.driver import BaseDriver, Credentials, DriverContext, Endpoint
from gateway.devices.model import MinerStatus, Mode, Sample
from gateway.devices.registry import make_driver
from gateway.devices.rpc import RpcLimits
from gateway.rules.baselines import Baselines
from gateway.rules.catalog import CATALOG, apply_overrides
from gateway.rules.engine import evaluate
from gateway.rules.findings import FindingState
from gateway.rules.inputs import FleetFrame, IntendedState, MinerInput, Nominal
from gateway.simulator.fleet import DEFAULT_CREDENTIALS
from gateway.simulator.run import Simulator
from tests.curtail.executor_support import state_db
from tests.devices.capture import PROFILES
from tests.simulator.conftest import simulator

POOLS = ["stratum+tcp://pool.hashinsight.test:3333", "stratum+tcp://backup.hashinsight.test:3333"]
TABLE = apply_overrides(CATALOG, {}, {}, allowed_pools=POOLS)
PERIOD_S = 900


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with simulator("s19jpro=0.4,s21=0.3,s21pro@braiins=0.3", "127.71.0.1", miners=10) as running:
        yield running


def drivers_for(sim: Simulator) -> dict[str, BaseDriver]:
    result = {}
    for miner in sim.miners:
        username, password = DEFAULT_CREDENTIALS[miner.identity.family]
        context = DriverContext(
            miner_id=miner.ip,
            endpoint=Endpoint(host=miner.ip, web_port=miner.web_port),
            credentials=Credentials(username=username, password=password),
            limits=RpcLimits(deadline_s=2.0),
            profiles=PROFILES,
            model_hint=miner.identity.model,
            verify_timeout_s=8.0,
            verify_interval_s=0.2,
        )
        result[miner.ip] = make_driver(miner.identity.family, context)
    return result


def spike_plan(sim: Simulator, start: int) -> Plan:
    """Normal, then a price spike that keeps 70 % of each class on, then normal again."""
    counts: dict[str, int] = {}
    for miner in sim.miners:
        counts[miner.profile.key] = counts.get(miner.profile.key, 0) + 1
    classes = tuple(
        MinerClass(
            key=f"{key}|normal",
            model=key,
            mode="normal",
            count=n,
            ths_per_miner=PROFILES.get(key).nominal_ths,
            kw_per_miner=PROFILES.get(key).modes[Mode.NORMAL].power_w / 1000,
        )
        for key, n in sorted(counts.items())
    )
    full = {c.key: c.count for c in classes}
    cut = {c.key: round(c.count * 0.7) for c in classes}

    def period(i: int, on: dict[str, int], reason: str, price: str) -> PeriodPlan:
        return PeriodPlan(
            start=start + i * PERIOD_S,
            on_by_class=on,
            reason=reason,
            price_per_kwh=Decimal(price),
            forecast=False,
        )

    return Plan(
        created_at=start,
        period_s=PERIOD_S,
        classes=classes,
        periods=(
            period(0, full, "price below breakeven", "0.03"),
            period(1, cut, "price spike above breakeven", "2.50"),
            period(2, full, "price below breakeven", "0.04"),
        ),
        status="optimal",
        solver="test",
        solve_s=0.0,
        objective_usd=None,
        lp_bound_usd=None,
        explanation="hand-made spike",
    )


async def read_fleet(
    drivers: dict[str, BaseDriver], classes: dict[str, str], sim: Simulator
) -> list[FleetMember]:
    samples: list[Sample] = await asyncio.gather(*(d.read() for d in drivers.values()))
    profiles = {m.ip: m.profile for m in sim.miners}
    return [member_for(s.miner_id, classes.get(s.miner_id), s, profiles[s.miner_id]) for s in samples]


def site_w(fleet: list[FleetMember]) -> float:
    return sum(m.sample.power_w or 0.0 for m in fleet if m.sample)


def rule_inputs(
    fleet: list[FleetMember], sim: Simulator, intended: dict[str, IntendedState]
) -> list[MinerInput]:
    profiles = {m.ip: m.profile for m in sim.miners}
    return [
        MinerInput(
            miner_id=m.miner_id,
            availability="ok",
            sample=m.sample,
            model_key=profiles[m.miner_id].key,
            nominal=Nominal.from_profile(profiles[m.miner_id]),
            intended_state=intended.get(m.miner_id),
        )
        for m in fleet
    ]


async def settle(
    drivers: dict[str, BaseDriver], classes: dict[str, str], sim: Simulator, asleep: set[str]
) -> list[FleetMember]:
    """Read until exactly `asleep` sleep and every other miner is back at full rate."""
    for _ in range(80):
        fleet = await read_fleet(drivers, classes, sim)
        sleeping = {
            m.miner_id
            for m in fleet
            if observed_on(m.sample, sleep_w=m.sleep_w, nominal_w=m.nominal_w) is False
        }
        ramped = all(
            m.sample and m.sample.hashrate_ths and m.sample.hashrate_ths > 0.9 * m.nominal_ths
            for m in fleet
            if m.miner_id not in asleep
        )
        if sleeping == asleep and ramped:
            return fleet
        await asyncio.sleep(0.25)
    raise AssertionError(f"fleet did not settle with {sorted(asleep)} asleep")


async def test_a_price_spike_sleeps_30_percent_without_alerts_and_wakes_them(
    sim: Simulator, tmp_path: Path
) -> None:
    conn = state_db(tmp_path)
    drivers = drivers_for(sim)
    clock = SystemClock()
    start = int(clock.now())
    plan = spike_plan(sim, start)
    classes = class_keys(plan.classes, {m.ip: m.profile.key for m in sim.miners})
    assert len(classes) == 10
    settings = ExecutorSettings(
        selection=SelectionSettings(min_on_s=0, min_off_s=0),
        batch_size=2,
        batch_gap_s=0.1,
        verify_window_s=60,
    )
    executor = Executor(conn, drivers, clock, settings)

    def target(i: int) -> dict[str, int]:
        period = plan.target_at(start + i * PERIOD_S)
        assert period is not None
        return dict(period.on_by_class)

    normal = await read_fleet(drivers, classes, sim)
    assert (await executor.tick(normal, target(0))).actions == ()  # already as planned
    full_w = site_w(normal)

    # --- the spike: 3 of 10 miners (one per class) go to sleep, staggered, each read back ----------
    spike = await executor.tick(normal, target(1), reason="price spike above breakeven")
    chosen = {a.miner_id for a in spike.actions}
    assert len(chosen) == 3 and set(spike.done) == chosen and not spike.failed
    assert {classes[m] for m in chosen} == set(target(1))  # one from each class
    assert {m.ip for m in sim.miners if m.physics.mode is Mode.SLEEP} == chosen  # the simulator agrees

    curtailed = await settle(drivers, classes, sim, chosen)
    verified = await executor.tick(curtailed, target(1))
    assert set(verified.verified) == chosen and verified.actions == ()
    cut_w = site_w(curtailed)
    asked_w, realised_w = conn.execute("SELECT asked_w, realised_w FROM curtail_events").fetchone()
    assert full_w - cut_w == pytest.approx(asked_w, rel=0.05)
    assert realised_w == pytest.approx(asked_w, rel=0.05)
    assert 0.2 < (full_w - cut_w) / full_w < 0.4  # about 30 % of the site's load

    # --- the rules see the intended sleep: nothing fires for the sleeping miners ---------------------
    lifecycle = AlertLifecycle(conn, lambda miner_id, rule_id: TABLE.rule(rule_id))
    baselines = Baselines("site-e2e")
    for n in range(3):
        frame = FleetFrame.from_inputs(rule_inputs(curtailed, sim, executor.intended_states()))
        evaluation = evaluate(frame, baselines.observe(frame), TABLE, int(clock.now()) + n)
        lifecycle.apply(evaluation.findings(pairs=lifecycle.pairs_needing_clear()), int(clock.now()) + n)
        for miner_id in chosen:
            assert evaluation.state_of(miner_id, "asleep_unplanned") is not FindingState.FIRING
            assert not [f for f in evaluation.findings() if f.miner_id == miner_id]
    placeholders = ",".join("?" * len(chosen))
    alerts = conn.execute(f"SELECT count(*) FROM alerts WHERE miner_id IN ({placeholders})", tuple(chosen))
    assert alerts.fetchone()[0] == 0
    # ... whereas the same sleep without the executor's word is an unplanned sleep
    frame = FleetFrame.from_inputs(rule_inputs(curtailed, sim, {}))
    unplanned = evaluate(frame, Baselines("other").observe(frame), TABLE, int(clock.now()))
    # (Braiins OS reports a paused miner as idle over its cgminer API, so only the stock ones say asleep)
    reported_asleep = {m.miner_id for m in curtailed if m.sample and m.sample.status is MinerStatus.SLEEPING}
    assert len(reported_asleep & chosen) == 2
    assert all(unplanned.state_of(m, "asleep_unplanned") is FindingState.FIRING for m in reported_asleep)

    # --- the spike ends: they wake, and the site is back at full load --------------------------------
    after = await executor.tick(curtailed, target(2), reason="price below breakeven")
    assert {(a.miner_id, a.action) for a in after.actions} == {(m, "wake") for m in chosen}
    assert all(m.physics.mode is Mode.NORMAL for m in sim.miners)
    restored = await settle(drivers, classes, sim, set())
    assert site_w(restored) == pytest.approx(full_w, rel=0.05)
    assert set((await executor.tick(restored, target(2))).verified) == chosen
    assert executor.intended_states() == dict.fromkeys(chosen, "normal")
    assert audit.verify(conn) == (True, None)
    conn.close()
