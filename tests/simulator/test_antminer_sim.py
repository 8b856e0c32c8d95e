"""The simulated stock Antminer against our backend and against pyasic, over real sockets.

Addresses 127.30.x.x belong to this module (other simulator tests use their own ranges).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from statistics import mean

import aiohttp
import pytest

from gateway.devices.antminer import AntminerDriver
from gateway.devices.driver import BaseDriver, Credentials, DriverContext, Endpoint
from gateway.devices.errors import AuthFailed, ControlNotVerified, Unreachable, Unsupported
from gateway.devices.model import MinerStatus, Mode, Source
from gateway.devices.rpc import RpcLimits
from gateway.simulator.run import Simulator
from tests.devices.badminer import free_port
from tests.devices.capture import PROFILES
from tests.simulator.conftest import (
    EVIL_POOL,
    TRANSPORT_FAULTS,
    FaultApi,
    assert_transport_fault,
    inject_condition_faults,
    needs_port_80,
    simulator,
)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with simulator("s19=1", "127.30.0.1") as running:
        yield running


@pytest.fixture
async def faults(sim: Simulator, http: aiohttp.ClientSession) -> FaultApi:
    return FaultApi(sim.control_url, http)


async def test_our_backend_reads_what_the_simulator_reports(
    sim: Simulator, driver_for: Callable[..., BaseDriver]
) -> None:
    miner = sim.miners[0]
    sample = await driver_for(miner).read()
    truth = miner.snapshot()
    assert sample.status is MinerStatus.MINING
    assert sample.hashrate_ths == pytest.approx(truth.hashrate_ths, rel=1e-3)
    assert [b.hashrate_ths for b in sample.boards] == pytest.approx(
        [b.hashrate_ths for b in truth.boards], rel=1e-3
    )
    assert [b.chips_ok for b in sample.boards] == [b.chips for b in truth.boards]
    assert [b.temp_chip_c for b in sample.boards] == pytest.approx(
        [max(b.chip_sensors_c) for b in truth.boards], abs=1
    )
    assert len(sample.fans_rpm) == len(truth.fans_rpm) == 4
    assert sample.power_source is Source.ESTIMATED  # stock firmware reports no watts
    assert sample.power_w == pytest.approx(truth.power_w, rel=0.01)
    assert sample.pool_url == truth.pools[0].url


async def test_identify_and_scan(sim: Simulator, driver_for: Callable[..., BaseDriver]) -> None:
    identity = await driver_for(sim.miners[0]).identify()
    assert (identity.make, identity.model, identity.profile_key) == ("Antminer", "S19", "antminer_s19")
    assert identity.mac == sim.miners[0].identity.mac
    assert identity.serial == sim.miners[0].identity.serial


async def test_sleep_wake_and_low_power_are_verified_by_read_back(
    sim: Simulator, driver_for: Callable[..., BaseDriver]
) -> None:
    driver = driver_for(sim.miners[0])
    await driver.sleep()
    assert sim.miners[0].physics.mode is Mode.SLEEP
    sample = await driver.read_back(lambda s: s.status is MinerStatus.SLEEPING, "settled asleep")
    assert sample.mode is Mode.SLEEP and sample.hashrate_ths == 0
    assert sample.power_w == PROFILES.get("antminer_s19").sleep_w
    await driver.wake()
    assert sim.miners[0].physics.mode is Mode.NORMAL
    await driver.set_mode(Mode.LOW)
    assert sim.miners[0].physics.mode is Mode.LOW


async def test_an_ignored_write_is_not_reported_as_done(
    sim: Simulator, driver_for: Callable[..., BaseDriver]
) -> None:
    """Stock firmware answers M000 OK to a write it ignores; only the read-back tells."""
    miner = sim.miners[0]
    miner.quirks.ignores_mode_write = True
    with pytest.raises(ControlNotVerified, match="sleep"):
        await driver_for(miner, verify_timeout_s=1.0).sleep()
    assert miner.physics.mode is Mode.NORMAL


async def test_blink_and_reboot(sim: Simulator, driver_for: Callable[..., BaseDriver]) -> None:
    miner = sim.miners[1]
    driver = driver_for(miner)
    await driver.blink(True)
    assert miner.blinking
    await driver.blink(False)
    assert not miner.blinking
    before = miner.physics.uptime_s(miner.clock())
    await driver.reboot()
    assert miner.physics.uptime_s(miner.clock()) < before


async def test_unsupported_control_fails_before_any_io() -> None:
    """The S9's stock firmware cannot sleep: refused without a connection (nothing listens here)."""
    driver = AntminerDriver(
        DriverContext(
            miner_id="s9",
            endpoint=Endpoint(host="127.0.0.1", rpc_port=free_port(), web_port=free_port()),
            profiles=PROFILES,
            model_hint="S9",
        )
    )
    with pytest.raises(Unsupported):
        await driver.sleep()
    with pytest.raises(Unsupported):
        await driver.set_power(1000)
    with pytest.raises(Unreachable):  # and a read does try the network
        await driver.read()


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


async def test_wrong_credentials_block_the_web_api_only(
    sim: Simulator, faults: FaultApi, driver_for: Callable[..., BaseDriver]
) -> None:
    miner = sim.miners[0]
    await faults.inject(miner.ip, "wrong_credentials")
    driver = driver_for(miner)
    assert (await driver.read()).status is MinerStatus.MINING  # the RPC needs no password
    with pytest.raises(AuthFailed):
        await driver.blink(True)
    bad = driver_for(miner, credentials=Credentials(username="root", password="nope"))
    await faults.clear(miner.ip)
    with pytest.raises(AuthFailed):
        await bad.sleep()


async def test_condition_faults_show_in_readings(
    sim: Simulator, faults: FaultApi, driver_for: Callable[..., BaseDriver]
) -> None:
    miner = sim.miners[0]
    driver = driver_for(miner)
    healthy = await driver.read()
    await inject_condition_faults(faults, miner, dead_slot=2)
    faulty = await driver.read()
    assert faulty.boards[2].hashrate_ths == 0 and faulty.boards[2].chips_ok == 0
    assert faulty.hashrate_ths == pytest.approx(healthy.hashrate_ths * 2 / 3, rel=0.05)
    assert set(faulty.fans_rpm) == {0}
    assert (faulty.temp_max_c or 0) > (healthy.temp_max_c or 0) + 30
    assert faulty.pool_url == EVIL_POOL
    await asyncio.sleep(0.2)
    assert (await driver.read()).accepted == faulty.accepted


@needs_port_80
async def test_pyasic_reads_our_simulated_s19_as_the_real_thing(sim: Simulator) -> None:
    """A client we did not write: pyasic identifies the simulated S19 and reads the same values."""
    import pyasic

    miner = sim.miners[0]
    found = await pyasic.get_miner(miner.ip)
    assert found is not None
    assert "S19" in str(found.model) and "Stock" in repr(found)
    data = await found.get_data()
    truth = miner.snapshot()
    assert str(data.make).lower() == "antminer"
    assert float(data.hashrate) == pytest.approx(truth.hashrate_ths, rel=1e-3)
    assert len(data.hashboards) == 3
    assert [f.speed for f in data.fans] == pytest.approx(list(truth.fans_rpm), abs=130)
    assert [h.temp for h in data.hashboards] == pytest.approx(
        [mean(b.pcb_sensors_c) for b in truth.boards], abs=1.0
    )
    assert [h.chip_temp for h in data.hashboards] == pytest.approx(
        [mean(b.chip_sensors_c) for b in truth.boards], abs=1.0
    )


async def test_simulator_limits_reads_to_its_own_deadline(sim: Simulator) -> None:
    """A slow miner costs the reader its deadline, not the miner's delay."""
    miner = sim.miners[0]
    driver = AntminerDriver(
        DriverContext(
            miner_id="x",
            endpoint=Endpoint(host=miner.ip),
            limits=RpcLimits(deadline_s=0.5),
            profiles=PROFILES,
        )
    )
    from gateway.simulator.faults import Fault

    miner.inject(Fault.make("hung"))
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(Unreachable):
        await driver.read()
    assert loop.time() - started < 5  # RPC then web, each with its 0.5 s deadline


async def test_quirks_switch_at_run_time_and_the_backend_copes(
    sim: Simulator, http: aiohttp.ClientSession, driver_for: Callable[..., BaseDriver]
) -> None:
    """S9-style `}{` and numbers-as-strings, switched on over the control API: the raw reply is
    invalid JSON exactly as the real firmware's, and our backend still reads the same values."""
    from gateway.devices.rpc import exchange

    miner = sim.miners[1]
    async with http.post(
        f"{sim.control_url}/miners/{miner.ip}/quirks",
        json={"concatenated_objects": True, "numbers_as_strings": True},
    ) as response:
        assert response.status == 200
        assert (await response.json())["quirks"]["concatenated_objects"] is True
    raw = await exchange(miner.ip, 4028, b'{"command":"stats"}', limits=RpcLimits())
    assert b'"}{"STATS"' in raw and b'"GHS 5s": "' in raw
    sample = await driver_for(miner).read()
    assert sample.hashrate_ths == pytest.approx(miner.snapshot().hashrate_ths, rel=1e-3)
    async with http.post(f"{sim.control_url}/miners/{miner.ip}/quirks", json={"gremlins": True}) as response:
        assert response.status == 400
