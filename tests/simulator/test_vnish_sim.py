"""The simulated Vnish miner (S21 Pro, Vnish 1.2.7) against our backend, over real sockets: its cgminer
RPC and its web API read together, controls confirmed by read-back, faults.

Addresses 127.33.x.x belong to this module (other simulator tests use their own ranges).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest

from gateway.devices.driver import BaseDriver, Credentials, DriverContext, Endpoint
from gateway.devices.errors import AuthFailed, Unreachable, Unsupported
from gateway.devices.model import MinerStatus, Mode, Source
from gateway.devices.parsers.vnish import PARSER
from gateway.devices.rpc import RpcClient
from gateway.devices.vnish import VnishDriver
from gateway.simulator.families import vnish_state
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

S21_PRO = PROFILES.get("antminer_s21_pro")


def mode_of(miner: SimMiner) -> Mode:
    """The simulated machine's true mode (a function, so each check reads it afresh)."""
    return miner.physics.mode


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with simulator("s21pro@vnish=1", "127.33.0.1") as running:
        yield running


@pytest.fixture
async def faults(sim: Simulator, http: aiohttp.ClientSession) -> FaultApi:
    return FaultApi(sim.control_url, http)


async def test_reading_matches_the_snapshot(sim: Simulator, driver_for: Callable[..., BaseDriver]) -> None:
    miner = sim.miners[0]
    driver = driver_for(miner)
    sample = await driver.read()
    identity = await driver.identify()
    truth = miner.snapshot()
    assert sample.status is MinerStatus.MINING and sample.mode is Mode.NORMAL
    assert sample.hashrate_ths == pytest.approx(truth.hashrate_ths, rel=1e-3)
    assert [b.slot for b in sample.boards] == [1, 2, 3]
    assert [b.hashrate_ths for b in sample.boards] == pytest.approx(
        [b.hashrate_ths for b in truth.boards], rel=1e-3
    )
    assert [b.chips_ok for b in sample.boards] == [65, 65, 65]
    assert [b.temp_chip_c for b in sample.boards] == [max(b.chip_sensors_c) for b in truth.boards]
    assert [b.temp_board_c for b in sample.boards] == [max(b.pcb_sensors_c) for b in truth.boards]
    assert list(sample.fans_rpm) == pytest.approx(list(truth.fans_rpm), abs=130)
    assert sample.power_source is Source.MEASURED
    assert sample.power_w == pytest.approx(truth.power_w, abs=1)
    assert sample.power_limit_w is None  # the stock preset ("disabled") is no power target
    assert sample.pool_url == truth.pools[0].url  # never the DevFee pool
    assert sample.accepted is not None and 0 < sample.accepted <= truth.accepted
    assert sample.uptime_s == pytest.approx(truth.uptime_s, abs=2)
    assert (identity.model, identity.profile_key, identity.firmware_version) == (
        "S21 Pro",
        "antminer_s21_pro",
        "1.2.7",
    )
    assert (identity.mac, identity.serial) == (miner.identity.mac, miner.identity.serial)


async def test_version_answers_invalid_command_like_vnish_1_2_7(sim: Simulator) -> None:
    reply = await RpcClient(sim.miners[0].ip).command("version")
    assert reply["STATUS"][0] | {"When": 0} == {
        "STATUS": "E",
        "When": 0,
        "Code": 0,
        "Msg": "Invalid command",
        "Description": "cgminer 4.11.1",
    }
    summary = await RpcClient(sim.miners[0].ip).command("summary")
    assert "id" not in summary


async def test_simulated_replies_parse_into_the_fields_the_captures_give(
    sim: Simulator, driver_for: Callable[..., BaseDriver]
) -> None:
    files = {k: f"s21pro_{v}.json" for k, v in PARSER.command_keys.items() if k != "version"}
    files["version"] = "s21pro_rpc_version_invalid_command.json"
    reference = PARSER.parse(capture("vnish", **files), ctx())
    driver = driver_for(sim.miners[0])
    assert isinstance(driver, VnishDriver)
    await driver.set_power(2800)  # the captured miner runs a preset, which is its power limit
    simulated = PARSER.parse(
        {**await driver.fetch(), **await driver.fetch_identity()}, driver.parse_context()
    )
    assert missing_fields(reference, simulated) == []


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

    await driver.set_power(3000)
    chosen = max(w for w in vnish_state.preset_watts(miner) if w <= 3000)  # a preset, never above
    assert miner.physics.power_target_w == chosen
    tuned = await driver.read()
    assert tuned.power_limit_w == chosen and tuned.mode is Mode.LOW
    await driver.set_mode(Mode.NORMAL)
    assert vnish_state.STATES.get(miner).preset == "disabled"
    assert miner.physics.power_target_w == S21_PRO.modes[Mode.NORMAL].power_w

    await driver.blink(True)
    assert miner.blinking
    await driver.blink(False)
    assert not miner.blinking

    before = miner.physics.uptime_s(miner.clock())
    await driver.reboot()
    assert miner.physics.uptime_s(miner.clock()) < before


async def test_a_stopped_miner_is_started_by_a_power_target(
    sim: Simulator, driver_for: Callable[..., BaseDriver]
) -> None:
    miner = sim.miners[0]
    driver = driver_for(miner)
    await driver.sleep()
    await driver.set_power(2800)
    assert mode_of(miner) is Mode.NORMAL


async def test_an_ignored_preset_is_not_reported_as_done(
    sim: Simulator, driver_for: Callable[..., BaseDriver]
) -> None:
    """Vnish answers a /settings POST the same whether or not it took the preset: only the read-back
    of the running preset tells. A preset the ladder lacks is ignored by the miner."""
    miner = sim.miners[0]
    driver = driver_for(miner)
    assert isinstance(driver, VnishDriver)
    reply = await driver.post("/api/v1/settings", {"miner": {"overclock": {"preset": "1234"}}})
    assert reply == {"restart_required": False, "reboot_required": False}
    assert vnish_state.STATES.get(miner).preset == "disabled"


async def test_unsupported_or_invalid_controls_fail_before_any_io() -> None:
    """Nothing listens at these ports: any attempt to talk would raise Unreachable instead."""

    def driver(model: str | None) -> VnishDriver:
        endpoint = Endpoint(host="127.0.0.1", rpc_port=free_port(), web_port=free_port())
        return VnishDriver(
            DriverContext(miner_id="m", endpoint=endpoint, profiles=PROFILES, model_hint=model)
        )

    s21 = driver("S21 Pro")
    with pytest.raises(ValueError, match="outside"):
        await s21.set_power(1000)
    with pytest.raises(Unsupported):
        await s21.set_mode(Mode.HIGH)  # the S21 Pro profile defines no high mode
    with pytest.raises(Unsupported):
        await driver(None).set_power(3000)
    with pytest.raises(Unreachable):
        await s21.sleep()  # a supported control does try the network


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


async def test_wrong_credentials_are_auth_failed(
    sim: Simulator, faults: FaultApi, driver_for: Callable[..., BaseDriver]
) -> None:
    miner = sim.miners[0]
    driver = driver_for(miner)
    await driver.read()  # unlocked: the driver keeps its token
    await faults.inject(miner.ip, "wrong_credentials")
    with pytest.raises(AuthFailed):
        await driver.read()  # the token died with the password change, and unlocking fails
    with pytest.raises(AuthFailed):
        await driver.sleep()
    await faults.clear(miner.ip)
    with pytest.raises(AuthFailed):
        await driver_for(miner, credentials=Credentials(password="nope")).read()
    assert mode_of(miner) is Mode.NORMAL


async def test_condition_faults_show_in_readings(
    sim: Simulator, faults: FaultApi, driver_for: Callable[..., BaseDriver]
) -> None:
    miner = sim.miners[0]
    driver = driver_for(miner)
    healthy = await driver.read()
    await faults.inject(miner.ip, "power_spike", factor=1.3)
    assert (await driver.read()).power_w == pytest.approx((healthy.power_w or 0) * 1.3, abs=2)
    await faults.clear(miner.ip, "power_spike")
    await inject_condition_faults(faults, miner, dead_slot=0)
    faulty = await driver.read()
    assert faulty.boards[0].hashrate_ths == 0 and faulty.boards[0].chips_ok == 0
    assert faulty.hashrate_ths == pytest.approx((healthy.hashrate_ths or 0) * 2 / 3, rel=0.05)
    assert set(faulty.fans_rpm) == {0}
    assert (faulty.temp_max_c or 0) > (healthy.temp_max_c or 0) + 30
    assert faulty.pool_url == EVIL_POOL
    await asyncio.sleep(0.3)
    assert (await driver.read()).accepted == faulty.accepted
