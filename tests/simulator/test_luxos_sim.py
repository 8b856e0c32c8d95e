"""The simulated LuxOS miner (S19k Pro, LUXminer 2025.4.8) against our backend and against pyasic, over
real sockets: reads, session-guarded controls confirmed by read-back, faults.

Addresses 127.32.x.x belong to this module (other simulator tests use their own ranges).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from statistics import mean
from typing import Any

import aiohttp
import pytest

from gateway.devices.driver import BaseDriver, DriverContext, Endpoint
from gateway.devices.errors import ProtocolError, Unreachable, Unsupported
from gateway.devices.luxos import LuxosDriver
from gateway.devices.model import MinerStatus, Mode, Source
from gateway.devices.parsers.common import check_status
from gateway.devices.parsers.luxos import COMMANDS, PARSER
from gateway.devices.rpc import RpcClient
from gateway.simulator.families.luxos import FRONTEND
from gateway.simulator.families.luxos_session import SESSION_IDLE_S, profile_table
from gateway.simulator.miner import SimMiner
from gateway.simulator.run import Simulator
from tests.devices.badminer import free_port
from tests.devices.capture import PROFILES, capture, ctx
from tests.simulator.conftest import (
    EVIL_POOL,
    TRANSPORT_FAULTS,
    FaultApi,
    assert_transport_fault,
    inject_condition_faults,
    simulator,
)
from tests.simulator.parity import missing_fields

STOCK_W = PROFILES.get("antminer_s19k_pro").modes[Mode.NORMAL].power_w


def mode_of(miner: SimMiner) -> Mode:
    """The simulated machine's true mode (a function, so each check reads it afresh)."""
    return miner.physics.mode


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with simulator("s19kpro@luxos=1", "127.32.0.1") as running:
        yield running


@pytest.fixture
async def faults(sim: Simulator, http: aiohttp.ClientSession) -> FaultApi:
    return FaultApi(sim.control_url, http)


async def rpc(miner: SimMiner, command: str, parameter: str | None = None) -> dict[str, Any]:
    """A raw LUXminer request, as an operator's tool would send it."""
    reply: dict[str, Any] = await RpcClient(miner.ip).command(command, parameter)
    return reply


def session_of(miner: SimMiner) -> str | None:
    return FRONTEND.sessions.states.get(miner).session_id


async def test_reading_matches_the_snapshot(sim: Simulator, driver_for: Callable[..., BaseDriver]) -> None:
    miner = sim.miners[0]
    driver = driver_for(miner)
    sample = await driver.read()
    identity = await driver.identify()
    truth = miner.snapshot()
    assert sample.status is MinerStatus.MINING and sample.mode is Mode.NORMAL
    assert sample.hashrate_ths == pytest.approx(truth.hashrate_ths, rel=1e-3)
    assert sample.hashrate_avg_ths == pytest.approx(truth.average_ths, rel=1e-3)
    assert [b.slot for b in sample.boards] == [1, 2, 3]  # DEVS arrive out of order; slots are sorted
    assert [b.hashrate_ths for b in sample.boards] == pytest.approx(
        [b.hashrate_ths for b in truth.boards], rel=1e-3
    )
    assert [b.chips_ok for b in sample.boards] == [77, 77, 77]
    # LuxOS reports PCB sensors only (STATS repeats them under temp_chipN): the hottest is the outlet side.
    assert [b.temp_chip_c for b in sample.boards] == [max(b.pcb_sensors_c) for b in truth.boards]
    assert [b.temp_board_c for b in sample.boards] == [max(b.pcb_sensors_c) for b in truth.boards]
    assert sample.inlet_c == min(min(b.pcb_sensors_c) for b in truth.boards)
    assert list(sample.fans_rpm) == pytest.approx(list(truth.fans_rpm), abs=130)
    assert sample.power_source is Source.MEASURED
    assert sample.power_w == pytest.approx(truth.power_w, abs=1)
    assert sample.power_limit_w == STOCK_W  # the "default" profile
    assert sample.pool_url == truth.pools[0].url
    assert sample.uptime_s == pytest.approx(truth.uptime_s, abs=2)
    assert (identity.model, identity.profile_key, identity.mac) == (
        "S19k Pro",
        "antminer_s19k_pro",
        miner.identity.mac,
    )
    assert identity.firmware_version == "2025.4.8.220305-57b389c7"


async def test_simulated_replies_parse_into_the_fields_the_capture_gives(
    sim: Simulator, driver_for: Callable[..., BaseDriver]
) -> None:
    reference = PARSER.parse(capture("luxos", **{c: f"s19kpro_{c}.json" for c in COMMANDS}), ctx())
    assert missing_fields(reference, await driver_for(sim.miners[0]).read()) == []


async def test_every_control_is_confirmed_by_read_back(
    sim: Simulator, driver_for: Callable[..., BaseDriver]
) -> None:
    miner = sim.miners[0]
    driver = driver_for(miner)
    await driver.sleep()
    assert mode_of(miner) is Mode.SLEEP
    asleep = await driver.read()
    assert asleep.status is MinerStatus.SLEEPING and asleep.hashrate_ths == 0
    await driver.wake()
    assert mode_of(miner) is Mode.NORMAL

    await driver.set_power(2000)
    chosen = max(p.watts for p in profile_table(miner) if p.watts <= 2000)  # LuxOS steps, never above
    assert miner.physics.power_target_w == chosen
    assert (await driver.read()).power_limit_w == chosen
    await driver.set_mode(Mode.NORMAL)
    assert FRONTEND.sessions.states.get(miner).profile == "default"
    assert miner.physics.power_target_w == STOCK_W

    await driver.blink(True)
    assert miner.blinking and FRONTEND.sessions.states.get(miner).red_led == "blink"
    await driver.blink(False)
    assert not miner.blinking

    before = miner.physics.uptime_s(miner.clock())
    await driver.reboot()
    assert miner.physics.uptime_s(miner.clock()) < before
    assert session_of(miner) is None  # every session we opened was logged off


async def test_a_curtailed_miner_is_woken_by_a_power_target(
    sim: Simulator, driver_for: Callable[..., BaseDriver]
) -> None:
    miner = sim.miners[0]
    driver = driver_for(miner)
    await driver.sleep()
    await driver.set_power(2500)
    assert mode_of(miner) is Mode.NORMAL


async def test_sessions_behave_like_luxminer(sim: Simulator, driver_for: Callable[..., BaseDriver]) -> None:
    miner = sim.miners[0]
    first = await rpc(miner, "logon")
    sid = first["SESSION"][0]["SessionID"]
    second = await rpc(miner, "logon")  # one session at a time
    assert second["STATUS"][0]["Code"] == 402 and "SESSION" not in second
    assert (await rpc(miner, "session"))["SESSION"][0]["SessionID"] == sid
    refused = await rpc(miner, "curtail", "not-the-id,sleep")
    assert refused["STATUS"][0]["STATUS"] == "E"
    with pytest.raises(ProtocolError, match="session"):
        check_status(refused, "curtail")
    assert mode_of(miner) is Mode.NORMAL

    # The driver shares the operator's session (as pyasic and asic-rs do) and leaves it open.
    await driver_for(miner).sleep()
    assert session_of(miner) == sid

    # An idle session expires: its id is refused, and a fresh logon works.
    FRONTEND.sessions.states.get(miner).session_used -= SESSION_IDLE_S + 1
    expired = await rpc(miner, "curtail", f"{sid},wakeup")
    assert expired["STATUS"][0]["Msg"] == "Invalid session id"
    await driver_for(miner).wake()
    assert mode_of(miner) is Mode.NORMAL and session_of(miner) is None


async def test_unsupported_or_invalid_controls_fail_before_any_io() -> None:
    """Nothing listens at this port: any attempt to talk would raise Unreachable instead."""

    def driver(model: str | None) -> LuxosDriver:
        endpoint = Endpoint(host="127.0.0.1", rpc_port=free_port(), web_port=free_port())
        return LuxosDriver(
            DriverContext(miner_id="m", endpoint=endpoint, profiles=PROFILES, model_hint=model)
        )

    s19k = driver("S19k Pro")
    with pytest.raises(ValueError, match="outside"):
        await s19k.set_power(9000)
    with pytest.raises(Unsupported):
        await s19k.set_mode(Mode.LOW)  # the S19k Pro profile defines no low mode
    with pytest.raises(Unsupported):
        await driver(None).set_power(2000)  # no profile, no window to check the target against
    with pytest.raises(Unreachable):
        await s19k.blink(True)  # a supported control does try the network


@TRANSPORT_FAULTS
async def test_transport_faults_map_to_errors(
    sim: Simulator,
    faults: FaultApi,
    driver_for: Callable[..., BaseDriver],
    kind: str,
    params: dict[str, float],
    error: type[Exception],
) -> None:
    await assert_transport_fault(faults, sim.miners[0], driver_for, kind, params, error)


async def test_wrong_credentials_do_not_touch_the_passwordless_session_api(
    sim: Simulator, faults: FaultApi, driver_for: Callable[..., BaseDriver]
) -> None:
    """LUXminer's `logon` takes no password, so a changed web password changes nothing here."""
    miner = sim.miners[0]
    await faults.inject(miner.ip, "wrong_credentials")
    driver = driver_for(miner)
    assert (await driver.read()).status is MinerStatus.MINING
    await driver.sleep()
    assert mode_of(miner) is Mode.SLEEP


async def test_condition_faults_show_in_readings(
    sim: Simulator, faults: FaultApi, driver_for: Callable[..., BaseDriver]
) -> None:
    miner = sim.miners[0]
    driver = driver_for(miner)
    healthy = await driver.read()
    await faults.inject(miner.ip, "power_spike", factor=1.3)
    assert (await driver.read()).power_w == pytest.approx((healthy.power_w or 0) * 1.3, abs=2)
    await faults.clear(miner.ip, "power_spike")
    await inject_condition_faults(faults, miner, dead_slot=2)
    faulty = await driver.read()
    assert faulty.boards[2].hashrate_ths == 0
    assert faulty.hashrate_ths == pytest.approx((healthy.hashrate_ths or 0) * 2 / 3, rel=0.05)
    assert set(faulty.fans_rpm) == {0}
    assert (faulty.temp_max_c or 0) > (healthy.temp_max_c or 0) + 30
    assert faulty.pool_url == EVIL_POOL
    await asyncio.sleep(0.3)
    assert (await driver.read()).accepted == faulty.accepted


async def test_pyasic_reads_our_simulated_luxos_miner_as_the_real_thing(sim: Simulator) -> None:
    """A client we did not write: pyasic identifies the simulated miner (over the RPC's `version`, and
    on port 80 by the web UI's "Luxor Firmware" when the simulator could bind it) and reads it.

    pyasic takes LuxOS's hashrate as the sum of STATS `chain_rateN`, which LUXminer fills with each
    board's since-boot average; its board temperature is the mean of the intake-side PCB sensors and its
    "chip" temperature the mean of the exhaust-side ones (LuxOS reports no chip sensors)."""
    import pyasic

    miner = sim.miners[0]
    found = await pyasic.get_miner(miner.ip)
    assert found is not None
    assert "S19k Pro" in str(found.model) and "LuxOS" in repr(found)
    data = await found.get_data()
    truth = miner.snapshot()
    assert str(data.make).lower() == "antminer"
    assert data.hashrate is not None
    assert float(data.hashrate) == pytest.approx(truth.average_ths, rel=1e-3)
    assert float(data.hashrate) == pytest.approx(truth.hashrate_ths, rel=1e-2)
    assert len(data.hashboards) == 3 and [h.chips for h in data.hashboards] == [77, 77, 77]
    assert [f.speed for f in data.fans] == pytest.approx(list(truth.fans_rpm), abs=130)
    assert [h.temp for h in data.hashboards] == pytest.approx(
        [mean(b.pcb_sensors_c[:2]) for b in truth.boards], abs=1
    )
    assert [h.chip_temp for h in data.hashboards] == pytest.approx(
        [mean(b.pcb_sensors_c[2:]) for b in truth.boards], abs=1
    )
    assert data.wattage == pytest.approx(truth.power_w, abs=1)
    assert data.wattage_limit == STOCK_W
    assert json.dumps(data.as_dict(), default=str)  # the whole record serialises (no field raised)
