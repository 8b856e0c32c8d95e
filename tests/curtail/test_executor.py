"""The executor against simulated miners over real sockets, with a real state.db and audit chain.

Addresses 127.70.x.x belong to this module. Physics are the simulator tests' fast ones (mode changes
in about two seconds), so every verification window here is seconds, not minutes.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import pytest

from gateway import audit
from gateway.clock import SystemClock
from gateway.curtail import override
from gateway.curtail.executor import Executor
from gateway.curtail.executor_model import ExecutorSettings, FleetMember, member_for
from gateway.curtail.executor_select import SelectionSettings, Skip
from gateway.devices.driver import BaseDriver, Credentials, DriverContext, Endpoint
from gateway.devices.model import Mode
from gateway.devices.registry import make_driver
from gateway.devices.rpc import RpcLimits
from gateway.simulator.fleet import DEFAULT_CREDENTIALS
from gateway.simulator.run import Simulator
from tests.curtail.executor_support import state_db
from tests.devices.capture import PROFILES
from tests.simulator.conftest import simulator

KEY = "antminer_s19j_pro|normal"
FAST_RULES = ExecutorSettings(
    selection=SelectionSettings(min_on_s=0, min_off_s=0),
    batch_size=2,
    batch_gap_s=0.05,
    verify_window_s=30,
    retry_backoff_s=600,
)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with simulator("s19jpro=1", "127.70.0.1", miners=4) as running:
        yield running


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    db = state_db(tmp_path)
    yield db
    db.close()


def drivers_for(sim: Simulator, *, verify_timeout_s: float = 6.0) -> dict[str, BaseDriver]:
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
            verify_timeout_s=verify_timeout_s,
            verify_interval_s=0.2,
        )
        result[miner.ip] = make_driver(miner.identity.family, context)
    return result


async def members(drivers: dict[str, BaseDriver]) -> list[FleetMember]:
    """What the poller would hand the executor: one fresh sample per miner."""
    samples = await asyncio.gather(*(d.read() for d in drivers.values()))
    profile = PROFILES.get("antminer_s19j_pro")
    return [member_for(s.miner_id, KEY, s, profile) for s in samples]


def modes(sim: Simulator) -> list[Mode]:
    return [m.physics.mode for m in sim.miners]


def rows(conn: sqlite3.Connection, sql: str) -> list[tuple[object, ...]]:
    return [tuple(r) for r in conn.execute(sql).fetchall()]


async def wait_asleep(fleet: Sequence[FleetMember], drivers: dict[str, BaseDriver]) -> list[FleetMember]:
    for _ in range(50):
        fresh = await members(drivers)
        asleep = {m.miner_id for m in fresh if m.sample and m.sample.mode is Mode.SLEEP}
        if asleep >= {m.miner_id for m in fleet}:
            return fresh
        await asyncio.sleep(0.2)
    raise AssertionError("miners did not settle asleep")


async def test_curtail_is_verified_audited_and_idempotent(sim: Simulator, conn: sqlite3.Connection) -> None:
    drivers = drivers_for(sim)
    executor = Executor(conn, drivers, SystemClock(), FAST_RULES)
    before = await members(drivers)
    report = await executor.tick(before, {KEY: 2}, reason="price spike")
    assert report.event_id is not None and not report.failed
    assert len(report.actions) == 2 and all(a.action == "sleep" for a in report.actions)
    slept = {a.miner_id for a in report.actions}
    assert set(report.done) == slept
    assert {m.ip for m in sim.miners if m.physics.mode is Mode.SLEEP} == slept  # the machines obey
    assert executor.intended_states() == dict.fromkeys(slept, "sleep")
    # asked: the fall from each miner's measured baseline to the profile's sleep draw
    baseline = {m.miner_id: m.sample.power_w or 0.0 for m in before if m.sample}
    assert report.asked_kw == pytest.approx(sum(baseline[i] - 15.0 for i in slept) / 1000)

    again = await executor.tick(before, {KEY: 2})  # same target, even on the same (stale) readings
    assert again.actions == () and again.event_id is None

    after = await wait_asleep([m for m in before if m.miner_id in slept], drivers)
    settled = await executor.tick(after, {KEY: 2})
    assert set(settled.verified) == slept and settled.actions == ()
    statuses = rows(conn, "SELECT miner_id, action, status FROM curtail_actions ORDER BY id")
    assert sorted(statuses) == sorted((i, "sleep", "verified") for i in slept)
    realised = conn.execute("SELECT asked_w, realised_w FROM curtail_events").fetchone()
    assert realised[1] == pytest.approx(realised[0], rel=0.02)  # metered power fell as asked
    assert audit.verify(conn) == (True, None)
    actions = [e.action for e in audit.entries(conn)]
    assert actions.count("curtail.sleep") == 2 and actions.count("curtail.verified") == 2
    assert actions[0] == "curtail.event"


async def test_resume_wakes_and_counts_wear(sim: Simulator, conn: sqlite3.Connection) -> None:
    drivers = drivers_for(sim)
    executor = Executor(conn, drivers, SystemClock(), FAST_RULES)
    await executor.tick(await members(drivers), {KEY: 3})
    (slept,) = [m.ip for m in sim.miners if m.physics.mode is Mode.SLEEP]
    await asyncio.sleep(1.1)
    report = await executor.tick(await members(drivers), {KEY: 4})
    assert [(a.miner_id, a.action) for a in report.actions] == [(slept, "wake")]
    assert modes(sim) == [Mode.NORMAL] * 4
    memory = executor.memory(slept)
    assert memory is not None and memory.cycles == 1 and memory.curtailed_s >= 1
    # the memory survives a restart of the executor
    assert Executor(conn, drivers, SystemClock(), FAST_RULES).memory(slept) == memory


async def test_dry_run_touches_nothing(sim: Simulator, conn: sqlite3.Connection) -> None:
    drivers = drivers_for(sim)
    executor = Executor(conn, drivers, SystemClock(), FAST_RULES)
    report = await executor.tick(await members(drivers), {KEY: 1}, dry_run=True)
    assert len(report.actions) == 3 and report.dry_run
    assert any(line.startswith("would sleep") for line in report.lines())
    assert modes(sim) == [Mode.NORMAL] * 4
    for table in ("curtail_events", "curtail_actions", "curtail_miner_state", "audit_log"):
        assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0
    assert executor.intended_states() == {}


async def test_a_miner_that_wakes_by_itself_is_re_dispatched(
    sim: Simulator, conn: sqlite3.Connection
) -> None:
    drivers = drivers_for(sim)
    executor = Executor(conn, drivers, SystemClock(), FAST_RULES)
    report = await executor.tick(await members(drivers), {KEY: 3})
    (target,) = [a.miner_id for a in report.actions]
    asleep = await wait_asleep([m for m in await members(drivers) if m.miner_id == target], drivers)
    assert (await executor.tick(asleep, {KEY: 3})).verified == (target,)
    await drivers[target].wake()  # a person at the rack, or a firmware watchdog
    for _ in range(50):  # a stock Antminer hashes again after its mining process restarts
        fleet = await members(drivers)
        if all(m.sample and m.sample.hashrate_ths for m in fleet):
            break
        await asyncio.sleep(0.2)
    drifted = await executor.tick(fleet, {KEY: 3})
    assert [(a.miner_id, a.action, a.reason) for a in drifted.actions] == [(target, "sleep", "drift")]
    assert drifted.drift == (target,)
    assert sim.miners[[m.ip for m in sim.miners].index(target)].physics.mode is Mode.SLEEP


async def test_an_ignored_write_fails_and_spends_the_retry_budget(
    sim: Simulator, conn: sqlite3.Connection
) -> None:
    for miner in sim.miners:
        miner.quirks.ignores_mode_write = True  # stock Antminer: M000 OK, nothing changes
    drivers = drivers_for(sim, verify_timeout_s=1.0)
    executor = Executor(conn, drivers, SystemClock(), FAST_RULES)
    report = await executor.tick(await members(drivers), {KEY: 3})
    (target,) = [a.miner_id for a in report.actions]
    assert "ControlNotVerified" in report.failed[target]
    assert rows(conn, "SELECT status FROM curtail_actions") == [("failed",)]
    memory = executor.memory(target)
    assert memory is not None and memory.failures == 1 and memory.retry_after_ts is not None
    # the failed sleep left it hashing: it counts as on (telemetry), the rules engine is not told it
    # sleeps, and the next tick picks a substitute; the failed miner itself waits out its back-off
    assert memory.intended is None and target not in executor.intended_states()
    assert executor.believed_on(await members(drivers)) == {KEY: 4}
    again = await executor.tick(await members(drivers), {KEY: 3})
    assert [a.action for a in again.actions] == ["sleep"]
    assert again.actions[0].miner_id != target
    # no action storm: each miner is tried once, then every one is in its back-off
    for _ in range(4):
        await executor.tick(await members(drivers), {KEY: 3})
    assert len(rows(conn, "SELECT id FROM curtail_actions")) == 4
    assert audit.verify(conn) == (True, None)


async def test_telemetry_that_never_shows_the_fall_fails_the_attempt(
    sim: Simulator, conn: sqlite3.Connection
) -> None:
    drivers = drivers_for(sim)
    settings = ExecutorSettings(
        selection=SelectionSettings(min_on_s=0, min_off_s=0), verify_window_s=1, retry_backoff_s=600
    )
    executor = Executor(conn, drivers, SystemClock(), settings)
    stale = await members(drivers)
    report = await executor.tick(stale, {KEY: 3})
    (target,) = report.done
    await asyncio.sleep(1.1)
    later = await executor.tick(stale, {KEY: 3})  # readings from before the action: no fall seen
    assert later.expired == (target,)
    # unverified: the miner counts as what telemetry shows (hashing), so a substitute is chosen at once
    assert target not in executor.intended_states()
    assert [a.miner_id != target for a in later.actions] == [True]
    assert rows(conn, "SELECT status FROM curtail_actions ORDER BY id")[0] == ("not_verified",)


async def test_overrides_win_over_the_plan(sim: Simulator, conn: sqlite3.Connection) -> None:
    drivers = drivers_for(sim)
    clock = SystemClock()
    executor = Executor(conn, drivers, clock, FAST_RULES)
    held, forced = sim.miners[0].ip, sim.miners[1].ip
    now = int(clock.now())
    override.add(conn, miner_id=held, action="hold", duration_s=600, actor="ops", now=now)
    override.add(conn, miner_id=forced, action="force_off", duration_s=600, actor="ops", now=now)
    report = await executor.tick(await members(drivers), {KEY: 4})  # the plan wants everything on
    assert [(a.miner_id, a.action, a.reason) for a in report.actions] == [(forced, "sleep", "override")]
    curtail_all = await executor.tick(await members(drivers), {KEY: 0})
    assert held not in {a.miner_id for a in curtail_all.actions}
    assert curtail_all.selection.skipped[held] is Skip.OVERRIDE
    assert sim.miners[0].physics.mode is Mode.NORMAL
    events = json.loads(conn.execute("SELECT skips FROM curtail_events ORDER BY id DESC").fetchone()[0])
    assert events["override"] >= 1
