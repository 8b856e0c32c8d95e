"""The simulated Whatsminer M30S+ (btminer) against our backend over API v2 and API v3, and against
pyasic, over real sockets: reads equal the simulator's truth, every control is confirmed by read-back,
faults map to the right error or reading.

Addresses 127.34.x.x belong to this module (other simulator tests use their own ranges).

"v3" runs use a firmware dated 2025: its API v2 answers every command with "invalid command", so our
driver finds API v3 on 4433 by itself, as it must with real 2024-11+ firmware.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from statistics import mean
from typing import Any

import aiohttp
import pytest

from gateway.devices.driver import Credentials, DriverContext, Endpoint
from gateway.devices.errors import AuthFailed, Unreachable, Unsupported
from gateway.devices.model import MinerStatus, Mode, Source
from gateway.devices.parsers.whatsminer import PARSER
from gateway.devices.profiles import ModeSpec, ProfileCatalog
from gateway.devices.rpc import RpcClient, RpcLimits
from gateway.devices.whatsminer import WhatsminerDriver
from gateway.devices.whatsminer_auth import encrypt, v2_aes_key
from gateway.devices.whatsminer_v3 import V3Client
from gateway.simulator.families import whatsminer as frontend_module
from gateway.simulator.miner import SimMiner
from gateway.simulator.run import Simulator, SimulatorConfig
from tests.devices.badminer import free_port
from tests.devices.capture import PROFILES, capture, ctx
from tests.simulator.conftest import (
    EVIL_POOL,
    FAST,
    TRANSPORT_FAULTS,
    FaultApi,
    assert_transport_fault,
    inject_condition_faults,
    simulator,
)
from tests.simulator.parity import missing_fields

APIS = ("v2", "v3")
V3_ONLY_FIRMWARE = "20250301.16.Rel"
PASSWORD = "admin"  # the simulated fleet keeps the factory password
M30S_PLUS = PROFILES.get("whatsminer_m30s_plus")


def with_modes(key: str, **modes: tuple[float, float]) -> ProfileCatalog:
    """PROFILES with extra modes for one model. The real M30S+ profile lists only normal (MicroBT
    publishes no low/high figures); these test figures let the simulator run the modes btminer has."""
    base = PROFILES.get(key)
    extra = {Mode(name): ModeSpec(hashrate_ths=ths, power_w=watts) for name, (ths, watts) in modes.items()}
    changed = base.model_copy(update={"modes": {**base.modes, **extra}})
    return ProfileCatalog(changed if profile.key == key else profile for profile in PROFILES)


MODE_PROFILES = with_modes("whatsminer_m30s_plus", low=(80.0, 2800.0), high=(110.0, 3600.0))


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with simulator("m30s+=1", "127.34.0.1") as running:
        yield running


@pytest.fixture
async def mode_sim() -> AsyncIterator[Simulator]:
    config = SimulatorConfig(
        miners=1, mix="m30s+=1", first_address="127.34.1.1", control_port=0, web_port=8080, params=FAST
    )
    async with Simulator(config, MODE_PROFILES) as running:
        yield running


@pytest.fixture
async def faults(sim: Simulator, http: aiohttp.ClientSession) -> FaultApi:
    return FaultApi(sim.control_url, http)


def use_api(miner: SimMiner, api: str) -> None:
    if api == "v3":
        miner.identity = dataclasses.replace(miner.identity, firmware_version=V3_ONLY_FIRMWARE)


def mode_of(miner: SimMiner) -> Mode:
    """The simulated machine's running mode (a function: each call is a fresh look)."""
    return miner.physics.mode


def driver(
    miner: SimMiner,
    *,
    profiles: ProfileCatalog = PROFILES,
    password: str = PASSWORD,
    deadline_s: float = 2.0,
    verify_timeout_s: float = 10.0,
) -> WhatsminerDriver:
    return WhatsminerDriver(
        DriverContext(
            miner_id=miner.ip,
            endpoint=Endpoint(host=miner.ip),
            credentials=Credentials(username="admin", password=password),
            limits=RpcLimits(deadline_s=deadline_s),
            profiles=profiles,
            model_hint=miner.identity.model,
            verify_timeout_s=verify_timeout_s,
            verify_interval_s=0.2,
        )
    )


async def settled(miner: SimMiner, mode: Mode, within_s: float = 2.0) -> None:
    """btminer answers a write, then applies it and restarts its mining process (API down meanwhile).
    The driver confirms the firmware's own report (over v3 the configured mode, which reads back before
    the restart); the test waits for the simulated machine to have switched and to answer again."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while mode_of(miner) is not mode or miner.rpc_down():
        assert loop.time() < deadline, f"{miner.ip}: not settled within {within_s}s"
        await asyncio.sleep(0.05)


# --- reads ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
async def test_our_backend_reads_what_the_simulator_reports(sim: Simulator, api: str) -> None:
    miner = sim.miners[0]
    use_api(miner, api)
    reader = driver(miner)
    sample = await reader.read()
    truth = miner.snapshot()
    assert reader.api == api
    assert sample.status is MinerStatus.MINING
    assert sample.hashrate_ths == pytest.approx(truth.hashrate_ths, rel=1e-3)
    assert [b.hashrate_ths for b in sample.boards] == pytest.approx(
        [b.hashrate_ths for b in truth.boards], rel=1e-3
    )
    assert [b.chips_ok for b in sample.boards] == [b.chips_ok for b in truth.boards]
    assert [b.temp_chip_c for b in sample.boards] == [max(b.chip_sensors_c) for b in truth.boards]
    assert [b.temp_board_c for b in sample.boards] == [max(b.pcb_sensors_c) for b in truth.boards]
    assert sample.fans_rpm == pytest.approx(truth.fans_rpm, abs=130)  # fans jitter between reads
    assert sample.power_source is Source.MEASURED
    assert sample.power_w == pytest.approx(truth.power_w, rel=0.01)
    assert sample.power_limit_w == M30S_PLUS.power_target.max_w  # type: ignore[union-attr]
    assert sample.inlet_c == pytest.approx(truth.inlet_c, abs=0.1)
    assert sample.pool_url == truth.pools[0].url
    assert sample.uptime_s == pytest.approx(truth.uptime_s, abs=2)
    assert sample.errors == ()


@pytest.mark.parametrize("api", APIS)
async def test_identify(sim: Simulator, api: str) -> None:
    miner = sim.miners[0]
    use_api(miner, api)
    identity = await driver(miner).identify()
    assert (identity.make, identity.model, identity.profile_key) == ("Whatsminer", "M30S+", M30S_PLUS.key)
    assert identity.firmware_version == miner.identity.firmware_version
    assert (identity.mac, identity.serial, identity.hostname) == (
        miner.identity.mac,
        miner.identity.serial,
        miner.identity.hostname,
    )


async def test_simulated_replies_fill_every_field_the_real_captures_fill(sim: Simulator) -> None:
    sample = await driver(sim.miners[0]).read()
    m31s = capture(
        "whatsminer", summary="m31s_summary.json", edevs="m31s_edevs.json", pools="m31s_pools.json"
    )
    m20s = capture(
        "whatsminer",
        summary="m20s_fw20210322_summary.json",
        devs="m20s_fw20210322_devs.json",
        pools="m20s_fw20210322_pools.json",
        get_version="m20s_fw20210322_get_version.json",
    )
    assert missing_fields(PARSER.parse(m31s, ctx("M31S")), sample) == []
    assert missing_fields(PARSER.parse(m20s, ctx("M20S")), sample) == []


# --- controls ------------------------------------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
async def test_sleep_wake_power_blink_reboot_are_verified_by_read_back(sim: Simulator, api: str) -> None:
    miner = sim.miners[0]
    use_api(miner, api)
    control = driver(miner)
    await control.sleep()
    assert mode_of(miner) is Mode.SLEEP
    asleep = await control.read()
    assert (asleep.status, asleep.mode, asleep.hashrate_ths) == (MinerStatus.SLEEPING, Mode.SLEEP, 0)
    assert (asleep.power_w, asleep.power_source) == (M30S_PLUS.sleep_w, Source.ESTIMATED)
    assert not any(board.active for board in asleep.boards)

    await control.wake()
    assert mode_of(miner) is Mode.NORMAL

    await control.set_power(3000)
    assert miner.physics.power_target_w == 3000
    assert (await control.read()).power_limit_w == 3000

    await control.blink(True)
    assert miner.blinking
    await control.blink(False)
    assert not miner.blinking

    before = miner.physics.uptime_s(miner.clock())
    await control.reboot()
    assert miner.physics.uptime_s(miner.clock()) < before
    assert control.api == api


@pytest.mark.parametrize("api", APIS)
async def test_power_modes_are_verified_by_the_configured_mode(mode_sim: Simulator, api: str) -> None:
    miner = mode_sim.miners[0]
    use_api(miner, api)
    control = driver(miner, profiles=MODE_PROFILES)
    assert control.capabilities.modes == {Mode.SLEEP, Mode.LOW, Mode.NORMAL, Mode.HIGH}
    for mode in (Mode.LOW, Mode.HIGH):
        await control.set_mode(mode)
        await settled(miner, mode)
        if api == "v2":  # the v2 summary says it ("Power Mode"); v3 keeps it in get.miner.setting
            assert (await control.read()).mode is mode
    # A mode means "mine like this": a powered-off miner is switched back on in that mode.
    await control.set_mode(Mode.SLEEP)
    assert mode_of(miner) is Mode.SLEEP
    await control.set_mode(Mode.NORMAL)
    await settled(miner, Mode.NORMAL)
    assert (await control.read()).status is not MinerStatus.SLEEPING


async def test_unsupported_controls_fail_before_any_io(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused by capability before a byte is sent: the front-end sees no request at all."""
    requests: list[Any] = []
    real = frontend_module.FRONTEND

    class Counting(type(real)):  # type: ignore[misc]
        def rpc(self, miner: SimMiner, request: Any) -> bytes:
            requests.append(request)
            return real.rpc(miner, request)

        def v3(self, miner: SimMiner, request: Any) -> bytes:
            requests.append(request)
            return real.v3(miner, request)

    monkeypatch.setitem(sim.servers.frontends, real.family, Counting())
    live = driver(sim.miners[0])
    for mode in (Mode.LOW, Mode.HIGH):  # the M30S+ profile has figures for normal only
        with pytest.raises(Unsupported):
            await live.set_mode(mode)
    with pytest.raises(ValueError, match="outside"):
        await live.set_power(9000)
    with pytest.raises(ValueError, match="outside"):
        await live.set_power(100)
    assert requests == []
    await live.blink(True)  # a supported control does reach the miner
    assert requests


async def test_without_a_profile_there_is_no_power_window_to_check_against() -> None:
    endpoint = Endpoint(host="127.0.0.1", rpc_port=free_port(), v3_port=free_port())
    unknown = WhatsminerDriver(
        DriverContext(miner_id="m", endpoint=endpoint, profiles=PROFILES, model_hint="M99")
    )
    with pytest.raises(Unsupported):
        await unknown.set_power(3000)
    assert unknown.capabilities.modes == {Mode.SLEEP, Mode.LOW, Mode.NORMAL, Mode.HIGH}
    with pytest.raises(Unreachable):  # and a supported control does try the network
        await unknown.sleep()


# --- faults --------------------------------------------------------------------------------------


@TRANSPORT_FAULTS
async def test_transport_faults_map_to_errors(
    sim: Simulator, faults: FaultApi, kind: str, params: dict[str, float], error: type[Exception]
) -> None:
    await assert_transport_fault(faults, sim.miners[0], driver, kind, params, error)


@pytest.mark.parametrize("api", APIS)
async def test_wrong_credentials_block_privileged_commands_only(
    sim: Simulator, faults: FaultApi, api: str
) -> None:
    miner = sim.miners[0]
    use_api(miner, api)
    await faults.inject(miner.ip, "wrong_credentials")
    control = driver(miner)
    assert (await control.read()).status is MinerStatus.MINING  # reads need no password
    with pytest.raises(AuthFailed):
        await control.sleep()
    assert mode_of(miner) is Mode.NORMAL
    await faults.clear(miner.ip)
    with pytest.raises(AuthFailed):
        await driver(miner, password="not-the-password").blink(True)
    assert not miner.blinking


@pytest.mark.parametrize("api", APIS)
async def test_condition_faults_show_in_readings(sim: Simulator, faults: FaultApi, api: str) -> None:
    miner = sim.miners[0]
    use_api(miner, api)
    reader = driver(miner)
    healthy = await reader.read()
    await faults.inject(miner.ip, "power_spike", factor=1.3)
    assert (await reader.read()).power_w == pytest.approx((healthy.power_w or 0.0) * 1.3, rel=0.02)
    await faults.clear(miner.ip, "power_spike")

    await inject_condition_faults(faults, miner, dead_slot=2)
    faulty = await reader.read()
    assert faulty.boards[2].hashrate_ths == 0 and faulty.boards[2].chips_ok == 0
    assert faulty.hashrate_ths == pytest.approx((healthy.hashrate_ths or 0.0) * 2 / 3, rel=0.05)
    assert set(faulty.fans_rpm) == {0}
    assert {"error code 110", "error code 111"} <= set(faulty.errors)  # btminer's fan-speed errors
    assert (faulty.temp_max_c or 0) > (healthy.temp_max_c or 0) + 30
    assert faulty.pool_url == EVIL_POOL
    if api == "v2":  # API v3's status sections carry no share counters
        await asyncio.sleep(0.2)
        assert (await reader.read()).accepted == faulty.accepted


# --- the wire, as other clients see it -----------------------------------------------------------


async def test_btminer_protocol_details(sim: Simulator) -> None:
    miner = sim.miners[0]
    rpc = RpcClient(miner.ip, 4028, RpcLimits(deadline_s=2.0))
    # cgminer-style reports must come under "command" (m31s_multicommand_with_cmd_key_error.json)
    wrong_key = await rpc.request({"cmd": "pools+summary+edevs"})
    assert (wrong_key["STATUS"][0]["STATUS"], wrong_key["STATUS"][0]["Code"]) == ("E", 24)
    multi = await rpc.command("summary+devs+pools")
    assert set(multi) == {"summary", "devs", "pools", "id"}
    assert all(multi[k][0]["STATUS"][0]["STATUS"] == "S" for k in ("summary", "devs", "pools"))
    # writes only encrypted; a token the miner never issued is refused in clear text
    clear = await rpc.request({"cmd": "power_off", "respbefore": "true"})
    assert (clear["STATUS"], clear["Code"]) == ("E", 45)
    token = await rpc.request({"cmd": "get_token"})
    assert token["Code"] == 134 and set(token["Msg"]) == {"time", "salt", "newsalt"}
    forged = encrypt(v2_aes_key(PASSWORD, token["Msg"]["salt"]), {"cmd": "power_off", "token": "forged"})
    refused = await rpc.request({"enc": 1, "data": forged})
    assert (refused["STATUS"], refused["Code"]) == ("E", 135)
    assert mode_of(miner) is Mode.NORMAL
    # API v3: a set.* command signed with another password is "no permission"
    v3 = V3Client(miner.ip)
    reply = await v3.write("set.miner.service", "stop", password="wrong", ts=int(miner.clock()))
    assert reply["code"] == -4


# --- pyasic, a client we did not write -----------------------------------------------------------


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pyasic's passlib import (crypt module)
async def test_pyasic_reads_our_simulated_m30s_plus_as_the_real_thing(sim: Simulator) -> None:
    """pyasic identifies the M30S+ on API v2 (BTMinerV2, by the pre-2024-11 firmware date) and reads
    the same values; it combines them its own way: the sum of the boards' `MHS 1m`, the rounded board
    `Temperature` and `Chip Temp Avg`. No web port is involved."""
    import pyasic
    from pyasic.miners.backends.btminer import BTMinerV2

    miner = sim.miners[0]
    found = await pyasic.get_miner(miner.ip)
    assert found is not None and isinstance(found, BTMinerV2)
    assert "M30S+" in str(found.model)
    data = await found.get_data()
    truth = miner.snapshot()
    assert str(data.make).lower() == "whatsminer"
    assert data.hashrate is not None and float(data.hashrate) == pytest.approx(truth.hashrate_ths, rel=1e-3)
    assert len(data.hashboards) == 3 and not any(h.missing for h in data.hashboards)
    assert [h.chips for h in data.hashboards] == [b.chips_ok for b in truth.boards]
    assert [f.speed for f in data.fans] == pytest.approx(list(truth.fans_rpm), abs=130)
    assert [h.temp for h in data.hashboards] == [round(max(b.pcb_sensors_c)) for b in truth.boards]
    assert [h.chip_temp for h in data.hashboards] == pytest.approx(
        [mean(b.chip_sensors_c) for b in truth.boards], abs=1.0
    )
    assert data.wattage == pytest.approx(truth.power_w, rel=0.01)
    assert data.mac == miner.identity.mac.upper()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # passlib: crypt module, hash(salt=...)
async def test_pyasic_privileged_commands_work_on_the_simulator(sim: Simulator) -> None:
    """pyasic's own token and AES code (passlib's md5crypt) against the simulator, API v2 and v3: the
    simulator's write API is the real scheme, not one that merely agrees with our driver."""
    from pyasic.rpc.btminer import BTMinerRPCAPI, BTMinerV3RPCAPI

    miner = sim.miners[0]
    v2 = BTMinerRPCAPI(miner.ip)
    v2.pwd = PASSWORD
    await v2.set_led(auto=False)
    assert miner.blinking
    await v2.power_off()
    await settled(miner, Mode.SLEEP)
    v3 = BTMinerV3RPCAPI(miner.ip)
    v3.pwd = PASSWORD
    reply = await v3.set_miner_service("start")
    assert reply is not None and reply["code"] == 0
    await settled(miner, Mode.NORMAL)
