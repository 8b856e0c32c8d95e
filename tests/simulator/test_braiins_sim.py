"""The simulated Braiins OS miner (S21 Pro, BOS 26.04) against our backend, over real sockets: its
cgminer-compatible RPC and its REST API, every control confirmed by read-back, every fault mapped.

Addresses 127.31.x.x belong to this module (other simulator tests use their own ranges).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest

from gateway.devices.braiins import BraiinsDriver
from gateway.devices.driver import BaseDriver, Credentials, DriverContext, Endpoint
from gateway.devices.errors import AuthFailed, Unreachable, Unsupported
from gateway.devices.model import FirmwareFamily, MinerStatus, Mode, Source
from gateway.devices.parsers.braiins import PARSER
from gateway.devices.rpc import RpcLimits
from gateway.simulator.fleet import DEFAULT_CREDENTIALS
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
STOCK_W = S21_PRO.modes[Mode.NORMAL].power_w


def mode_of(miner: SimMiner) -> Mode:
    """The simulated machine's true mode (a function, so each check reads it afresh)."""
    return miner.physics.mode


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with simulator("s21pro@braiins=1", "127.31.0.1") as running:
        yield running


@pytest.fixture
async def faults(sim: Simulator, http: aiohttp.ClientSession) -> FaultApi:
    return FaultApi(sim.control_url, http)


def rest_driver(miner: SimMiner, **limits: float) -> BraiinsDriver:
    """A driver that starts with REST (as it does by itself once the RPC port is refused)."""
    username, password = DEFAULT_CREDENTIALS[FirmwareFamily.BRAIINS]
    return BraiinsDriver(
        DriverContext(
            miner_id=miner.ip,
            endpoint=Endpoint(host=miner.ip, web_port=miner.web_port),
            credentials=Credentials(username=username, password=password),
            limits=RpcLimits(deadline_s=limits.get("deadline_s", 2.0)),
            profiles=PROFILES,
            model_hint=miner.identity.model,
            verify_timeout_s=10.0,
            verify_interval_s=0.2,
        ),
        prefer_rest=True,
    )


async def test_rpc_reading_matches_the_snapshot(
    sim: Simulator, driver_for: Callable[..., BaseDriver]
) -> None:
    miner = sim.miners[0]
    driver = driver_for(miner)
    sample = await driver.read()
    truth = miner.snapshot()
    assert isinstance(driver, BraiinsDriver) and driver.last_transport == "rpc"
    assert sample.status is MinerStatus.MINING and sample.mode is Mode.NORMAL
    assert sample.hashrate_ths == pytest.approx(truth.hashrate_ths, rel=1e-3)
    assert [b.slot for b in sample.boards] == [1, 2, 3]  # BOS numbers boards from 1 after the S9
    assert [b.hashrate_ths for b in sample.boards] == pytest.approx(
        [b.hashrate_ths for b in truth.boards], rel=1e-3
    )
    assert [b.temp_chip_c for b in sample.boards] == [max(b.chip_sensors_c) for b in truth.boards]
    assert [b.temp_board_c for b in sample.boards] == [max(b.pcb_sensors_c) for b in truth.boards]
    assert list(sample.fans_rpm) == pytest.approx(list(truth.fans_rpm), abs=130)
    assert sample.power_source is Source.MEASURED
    assert sample.power_w == pytest.approx(truth.power_w, abs=1)
    assert sample.power_limit_w == STOCK_W  # BOS tunes to the stock watts until told otherwise
    assert sample.pool_url == truth.pools[0].url
    assert sample.accepted is not None and 0 < sample.accepted <= truth.accepted
    identity = await driver.identify()  # the RPC names the model; REST adds MAC and serial
    assert (identity.model, identity.mac, identity.serial) == (
        "S21 Pro",
        miner.identity.mac,
        miner.identity.serial,
    )


async def test_rest_reading_matches_the_snapshot_and_identifies(sim: Simulator) -> None:
    miner = sim.miners[0]
    driver = rest_driver(miner)
    sample = await driver.read()
    identity = await driver.identify()
    truth = miner.snapshot()
    assert driver.last_transport == "rest"
    assert sample.hashrate_ths == pytest.approx(truth.hashrate_ths, rel=1e-3)
    assert sample.expected_ths == pytest.approx(truth.ideal_ths)
    assert [b.chips_ok for b in sample.boards] == [b.chips for b in truth.boards]
    assert sample.outlet_c == max(max(b.pcb_sensors_c) for b in truth.boards)
    assert sample.inlet_c == min(min(b.pcb_sensors_c) for b in truth.boards)
    assert len(sample.fans_rpm) == 4
    assert sample.power_w == pytest.approx(truth.power_w, abs=1)
    assert sample.uptime_s == pytest.approx(truth.uptime_s, abs=2)
    assert (identity.make, identity.model, identity.profile_key) == (
        "Antminer",
        "S21 Pro",
        "antminer_s21_pro",
    )
    assert (identity.mac, identity.serial) == (miner.identity.mac, miner.identity.serial)
    assert identity.firmware_version and identity.firmware_version.endswith("26.04-plus")


async def test_simulated_replies_parse_into_the_fields_the_captures_give(
    sim: Simulator, driver_for: Callable[..., BaseDriver]
) -> None:
    miner = sim.miners[0]
    rpc_capture = capture(
        "braiins",
        **{k: f"s9_bosminer_plus_{k}.json" for k in ("summary", "devs", "pools", "fans", "temps", "version")},
    )
    rest_capture = capture(
        "braiins",
        **{k: f"bos_26_04_s21pro_{v}.json" for k, v in PARSER.command_keys.items() if k.startswith("rest:")},
    )
    from_rpc_capture = PARSER.parse(rpc_capture, ctx("S9"))
    from_rest_capture = PARSER.parse(rest_capture, ctx())
    assert missing_fields(from_rpc_capture, await driver_for(miner).read()) == []
    assert missing_fields(from_rest_capture, await rest_driver(miner).read()) == []


async def test_every_control_is_confirmed_by_read_back(
    sim: Simulator, driver_for: Callable[..., BaseDriver]
) -> None:
    miner = sim.miners[0]
    driver = driver_for(miner)
    await driver.sleep()
    assert mode_of(miner) is Mode.SLEEP
    asleep = await rest_driver(miner).read()
    assert asleep.status is MinerStatus.SLEEPING and asleep.hashrate_ths == 0
    await driver.wake()
    assert mode_of(miner) is Mode.NORMAL

    await driver.set_power(3000)
    assert miner.physics.power_target_w == 3000
    tuned = await driver.read()
    assert tuned.power_limit_w == 3000 and tuned.mode is Mode.LOW  # 3000 W runs ~85 % of stock rate
    await driver.set_mode(Mode.NORMAL)
    assert miner.physics.power_target_w == STOCK_W

    await driver.blink(True)
    assert miner.blinking
    await driver.blink(False)
    assert not miner.blinking

    before = miner.physics.uptime_s(miner.clock())
    await driver.reboot()
    assert miner.physics.uptime_s(miner.clock()) < before


async def test_set_mode_from_sleep_resumes_mining(
    sim: Simulator, driver_for: Callable[..., BaseDriver]
) -> None:
    miner = sim.miners[0]
    driver = driver_for(miner)
    await driver.sleep()
    await driver.set_mode(Mode.NORMAL)
    assert mode_of(miner) is Mode.NORMAL


async def test_unsupported_or_invalid_controls_fail_before_any_io() -> None:
    """Nothing listens at these ports: any attempt to talk would raise Unreachable instead."""

    def driver(model: str | None) -> BraiinsDriver:
        return BraiinsDriver(
            DriverContext(
                miner_id="m",
                endpoint=Endpoint(host="127.0.0.1", rpc_port=free_port(), web_port=free_port()),
                profiles=PROFILES,
                model_hint=model,
            )
        )

    s21 = driver("S21 Pro")
    with pytest.raises(ValueError, match="outside"):
        await s21.set_power(9000)
    with pytest.raises(Unsupported):
        await s21.set_mode(Mode.LOW)  # the S21 Pro profile defines no low mode
    unknown = driver(None)  # no profile: no window to check a power target against
    with pytest.raises(Unsupported):
        await unknown.set_power(3000)
    assert Mode.NORMAL not in unknown.capabilities.modes
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


async def test_wrong_credentials_refuse_the_rest_api_only(
    sim: Simulator, faults: FaultApi, driver_for: Callable[..., BaseDriver]
) -> None:
    miner = sim.miners[0]
    driver = driver_for(miner)
    await driver.blink(True)  # logs in: the driver keeps its token
    await faults.inject(miner.ip, "wrong_credentials")
    assert (await driver.read()).status is MinerStatus.MINING  # the RPC needs no password
    with pytest.raises(AuthFailed):
        await driver.set_power(3000)  # the old session ended with the password change
    with pytest.raises(AuthFailed):
        await rest_driver(miner).read()
    assert miner.physics.power_target_w is None


async def test_condition_faults_show_in_readings(
    sim: Simulator, faults: FaultApi, driver_for: Callable[..., BaseDriver]
) -> None:
    miner = sim.miners[0]
    driver = driver_for(miner)
    healthy = await driver.read()
    await faults.inject(miner.ip, "power_spike", factor=1.3)
    assert (await driver.read()).power_w == pytest.approx((healthy.power_w or 0) * 1.3, rel=0.01)
    await faults.clear(miner.ip, "power_spike")
    await inject_condition_faults(faults, miner, dead_slot=1)
    faulty = await driver.read()
    assert faulty.boards[1].hashrate_ths == 0
    assert faulty.hashrate_ths == pytest.approx((healthy.hashrate_ths or 0) * 2 / 3, rel=0.05)
    assert set(faulty.fans_rpm) == {0}
    assert (faulty.temp_max_c or 0) > (healthy.temp_max_c or 0) + 30
    assert faulty.pool_url == EVIL_POOL
    await asyncio.sleep(0.3)
    assert (await driver.read()).accepted == faulty.accepted
