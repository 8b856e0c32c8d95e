"""The simulated Avalons (A1246 with its "MM ID0" string, Avalon Q with "MM ID0:Summary" + HBinfo)
against our backend and against pyasic, over real sockets: reads equal the simulator's truth, every
control is confirmed by read-back, `ascset` replies are shaped like the captures, faults map to the
right error or reading.

Addresses 127.35.x.x belong to this module (other simulator tests use their own ranges).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from statistics import mean
from typing import Any

import aiohttp
import pytest

from gateway.devices.avalon import AvalonDriver
from gateway.devices.driver import DriverContext, Endpoint
from gateway.devices.errors import AuthFailed, ProtocolError, Unsupported
from gateway.devices.model import MinerStatus, Mode, Source
from gateway.devices.parsers.avalon import PARSER
from gateway.devices.profiles import ModeSpec, ProfileCatalog
from gateway.devices.rpc import RpcClient, RpcLimits
from gateway.simulator.families import avalon as frontend_module
from gateway.simulator.miner import SimMiner
from gateway.simulator.run import Simulator, SimulatorConfig
from tests.devices.capture import PROFILES, capture, ctx, reply
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

MODELS = ("A1246", "Q")
PROFILE_KEYS = {"A1246": "avalon_a1246", "Q": "avalon_q"}


def with_modes(key: str, **modes: tuple[float, float]) -> ProfileCatalog:
    """PROFILES with extra modes for one model. The real Avalon Q profile lists only its headline mode
    (no verified per-level figures); these test figures let the simulator run its Eco and Super modes."""
    base = PROFILES.get(key)
    extra = {Mode(name): ModeSpec(hashrate_ths=ths, power_w=watts) for name, (ths, watts) in modes.items()}
    changed = base.model_copy(update={"modes": {**base.modes, **extra}})
    return ProfileCatalog(changed if profile.key == key else profile for profile in PROFILES)


MODE_PROFILES = with_modes("avalon_q", low=(60.0, 1100.0), high=(100.0, 1900.0))


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with simulator("a1246=1,avalonq=1", "127.35.0.1") as running:
        yield running


@pytest.fixture
async def mode_sim() -> AsyncIterator[Simulator]:
    config = SimulatorConfig(
        miners=1, mix="avalonq=1", first_address="127.35.1.1", control_port=0, web_port=8080, params=FAST
    )
    async with Simulator(config, MODE_PROFILES) as running:
        yield running


@pytest.fixture
async def faults(sim: Simulator, http: aiohttp.ClientSession) -> FaultApi:
    return FaultApi(sim.control_url, http)


def miner_of(sim: Simulator, model: str) -> SimMiner:
    return next(m for m in sim.miners if m.identity.model == model)


def mode_of(miner: SimMiner) -> Mode:
    """The simulated machine's running mode (a function: each call is a fresh look)."""
    return miner.physics.mode


def driver(miner: SimMiner, *, profiles: ProfileCatalog = PROFILES, deadline_s: float = 2.0) -> AvalonDriver:
    control = AvalonDriver(
        DriverContext(
            miner_id=miner.ip,
            endpoint=Endpoint(host=miner.ip),
            limits=RpcLimits(deadline_s=deadline_s),
            profiles=profiles,
            model_hint=miner.identity.model,
            verify_timeout_s=10.0,
            verify_interval_s=0.2,
        )
    )
    control.soft_switch_delay_s = 1.0  # Canaan's clients ask for 5 s ahead; 1 s keeps the tests short
    return control


def rpc(miner: SimMiner) -> RpcClient:
    return RpcClient(miner.ip, 4028, RpcLimits(deadline_s=2.0))


# --- reads ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
async def test_our_backend_reads_what_the_simulator_reports(sim: Simulator, model: str) -> None:
    miner = miner_of(sim, model)
    sample = await driver(miner).read()
    truth = miner.snapshot()
    assert sample.status is MinerStatus.MINING
    assert sample.hashrate_ths == pytest.approx(truth.hashrate_ths, rel=1e-3)
    assert [b.hashrate_ths for b in sample.boards] == pytest.approx(
        [b.hashrate_ths for b in truth.boards], rel=1e-3
    )
    assert [b.chips_ok for b in sample.boards] == [b.chips_ok for b in truth.boards]
    assert [b.temp_chip_c for b in sample.boards] == [max(b.chip_sensors_c) for b in truth.boards]
    assert sample.fans_rpm == pytest.approx(truth.fans_rpm, abs=130)  # fans jitter between reads
    assert sample.power_source is Source.MEASURED  # PS[4], the hash-board rail
    assert sample.power_w == pytest.approx(truth.power_w, rel=0.01)
    assert sample.inlet_c == pytest.approx(truth.inlet_c, abs=0.6)
    assert sample.pool_url == truth.pools[0].url
    assert sample.uptime_s == pytest.approx(truth.uptime_s, abs=2)
    assert sample.mode is (Mode.NORMAL if model == "Q" else None)  # only the Q's WORKMODE is known
    assert sample.errors == ()
    if model == "Q":
        assert sample.outlet_c == max(truth.boards[0].pcb_sensors_c)


@pytest.mark.parametrize("model", MODELS)
async def test_identify(sim: Simulator, model: str) -> None:
    miner = miner_of(sim, model)
    identity = await driver(miner).identify()
    assert (identity.make, identity.profile_key) == ("Avalon", PROFILE_KEYS[model])
    assert identity.model == ("Avalon Q" if model == "Q" else "A1246")
    assert identity.mac == miner.identity.mac  # Canaan prints bare hex; the parser restores the colons
    assert identity.firmware_version == miner.identity.firmware_version


async def test_simulated_replies_fill_every_field_the_real_captures_fill(sim: Simulator) -> None:
    a1246 = PARSER.parse(capture("avalon", stats="a1246_stats.json"), ctx("A1246"))
    q = PARSER.parse(
        capture(
            "avalon",
            stats="avalon_q_stats.json",
            summary="avalon_q_summary.json",
            pools="avalon_q_pools.json",
            version="avalon_q_version.json",
        ),
        ctx(),
    )
    assert missing_fields(a1246, await driver(miner_of(sim, "A1246")).read()) == []
    assert missing_fields(q, await driver(miner_of(sim, "Q")).read()) == []


# --- controls ------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
async def test_soft_off_and_on_are_verified_by_read_back(sim: Simulator, model: str) -> None:
    miner = miner_of(sim, model)
    control = driver(miner)
    await control.sleep()
    assert mode_of(miner) is Mode.SLEEP
    asleep = await control.read()
    assert (asleep.status, asleep.mode, asleep.hashrate_ths) == (MinerStatus.SLEEPING, Mode.SLEEP, 0)
    # The rail reads 0 W while soft-off; the controller's draw comes from the profile.
    assert (asleep.power_w, asleep.power_source) == (miner.profile.sleep_w, Source.ESTIMATED)
    await control.wake()
    assert mode_of(miner) is Mode.NORMAL
    assert (await control.read()).status is not MinerStatus.SLEEPING


async def test_avalon_q_work_modes_are_verified_by_read_back(mode_sim: Simulator) -> None:
    miner = mode_sim.miners[0]
    control = driver(miner, profiles=MODE_PROFILES)
    assert control.capabilities.modes == {Mode.SLEEP, Mode.LOW, Mode.NORMAL, Mode.HIGH}
    for mode in (Mode.LOW, Mode.HIGH):
        await control.set_mode(mode)
        assert mode_of(miner) is mode
        assert (await control.read()).mode is mode
    # A mode means "mine like this": a soft-off miner is switched back on in that mode.
    await control.sleep()
    await control.set_mode(Mode.NORMAL)
    assert mode_of(miner) is Mode.NORMAL


async def test_blink_on_the_a_series(sim: Simulator) -> None:
    miner = miner_of(sim, "A1246")
    control = driver(miner)
    await control.blink(True)
    assert miner.blinking and await control.led_state() is True
    await control.blink(False)
    assert not miner.blinking


@pytest.mark.parametrize("model", MODELS)
async def test_reboot_is_verified_by_the_uptime(sim: Simulator, model: str) -> None:
    miner = miner_of(sim, model)
    before = miner.physics.uptime_s(miner.clock())
    await driver(miner).reboot()
    assert miner.physics.uptime_s(miner.clock()) < before


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

    monkeypatch.setitem(sim.servers.frontends, real.family, Counting())
    a1246, q = driver(miner_of(sim, "A1246")), driver(miner_of(sim, "Q"))
    refused: list[Callable[[], Any]] = [
        lambda: a1246.set_mode(Mode.LOW),  # A-series WORKMODE numbers have no known meaning
        lambda: a1246.set_power(3000),  # stock firmware: work levels, no watt target
        lambda: q.set_power(1500),
        lambda: q.set_mode(Mode.LOW),  # the Q profile has figures for its headline mode only
        lambda: q.blink(True),  # the Q has no `led` option and no Led token
    ]
    for call in refused:
        with pytest.raises(Unsupported):
            await call()
    assert requests == []
    await a1246.blink(True)  # a supported control does reach the miner
    assert requests


# --- the wire: ascset and restart as the captures show them ---------------------------------------


async def test_ascset_replies_are_shaped_like_the_captures(sim: Simulator) -> None:
    miner = miner_of(sim, "Q")
    client = rpc(miner)
    at = int(miner.clock()) + 1
    softoff = await client.command("ascset", f"0,softoff,1:{at}")
    expected = reply("avalon/avalon_q_ascset_softoff.json")
    assert softoff["STATUS"][0].keys() == expected["STATUS"][0].keys()
    assert {k: softoff["STATUS"][0][k] for k in ("STATUS", "Code", "Description")} == {
        k: expected["STATUS"][0][k] for k in ("STATUS", "Code", "Description")
    }
    assert softoff["STATUS"][0]["Msg"] == f"ASC 0 set info: success softoff:{at}"
    assert mode_of(miner) is Mode.NORMAL  # it acts at the moment asked for, not on receipt
    await asyncio.sleep(1.3)
    assert mode_of(miner) is Mode.SLEEP

    softon = await client.command("ascset", f"0,softon,1:{int(miner.clock())}")
    assert softon["STATUS"][0]["Msg"].startswith("ASC 0 set info: success softon:")
    help_reply = await client.command("ascset", "0,help")
    assert help_reply["STATUS"][0]["Msg"] == reply("avalon/avalon_q_ascset_help.json")["STATUS"][0]["Msg"]
    workmode = await client.command("ascset", "0,workmode,set,1")
    captured = reply("avalon/avalon_q_ascset_workmode.json")
    assert {**workmode["STATUS"][0], "When": 0} == {**captured["STATUS"][0], "When": 0}
    led = await client.command("ascset", "0,led,1-1")
    assert (led["STATUS"][0]["STATUS"], led["STATUS"][0]["Code"]) == ("E", 120)
    assert await client.command("restart") == {"STATUS": "RESTART", "id": 1}


async def test_ascset_refusal_is_a_protocol_error(sim: Simulator) -> None:
    with pytest.raises(ProtocolError, match="set failed"):
        await driver(miner_of(sim, "Q")).ascset("0,led,1-1")


# --- faults --------------------------------------------------------------------------------------


@TRANSPORT_FAULTS
async def test_transport_faults_map_to_errors(
    sim: Simulator, faults: FaultApi, kind: str, params: dict[str, float], error: type[Exception]
) -> None:
    await assert_transport_fault(faults, sim.miners[0], driver, kind, params, error)


async def test_lost_write_access_blocks_privileged_commands_only(sim: Simulator, faults: FaultApi) -> None:
    """cgminer's API has no password: `wrong_credentials` stands for a miner whose --api-allow no
    longer grants us W: access (Code 45 "Access denied"), which needs a person like a bad password."""
    miner = miner_of(sim, "A1246")
    await faults.inject(miner.ip, "wrong_credentials")
    control = driver(miner)
    assert (await control.read()).status is MinerStatus.MINING
    with pytest.raises(AuthFailed):
        await control.sleep()
    with pytest.raises(AuthFailed):
        await control.blink(True)
    assert mode_of(miner) is Mode.NORMAL and not miner.blinking


@pytest.mark.parametrize("model", MODELS)
async def test_condition_faults_show_in_readings(sim: Simulator, faults: FaultApi, model: str) -> None:
    miner = miner_of(sim, model)
    reader = driver(miner)
    healthy = await reader.read()
    await faults.inject(miner.ip, "power_spike", factor=1.3)
    assert (await reader.read()).power_w == pytest.approx((healthy.power_w or 0.0) * 1.3, rel=0.02)
    await faults.clear(miner.ip, "power_spike")

    last = len(healthy.boards) - 1
    await inject_condition_faults(faults, miner, dead_slot=last)
    faulty = await reader.read()
    assert faulty.boards[last].hashrate_ths == 0 and faulty.boards[last].chips_ok == 0
    lost = healthy.boards[last].hashrate_ths or 0.0
    assert faulty.hashrate_ths == pytest.approx((healthy.hashrate_ths or 0.0) - lost, abs=0.01)
    assert set(faulty.fans_rpm) == {0}
    assert faulty.pool_url == EVIL_POOL
    if len(healthy.boards) > 1:  # a dead single-board machine runs cool whatever else happens
        assert (faulty.temp_max_c or 0) > (healthy.temp_max_c or 0) + 30
    await asyncio.sleep(0.2)
    assert (await reader.read()).accepted == faulty.accepted


# --- pyasic, a client we did not write -----------------------------------------------------------


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pyasic's passlib import (crypt module)
@pytest.mark.parametrize(("model", "pyasic_class", "fans"), [("A1246", "1246", 4), ("Q", "AvalonQ", 2)])
async def test_pyasic_reads_our_simulated_avalons_as_the_real_thing(
    sim: Simulator, model: str, pyasic_class: str, fans: int
) -> None:
    """pyasic picks its model class from version PROD and reads `estats`: board rates from MGHS, chips
    from the PVT_T lists, fans Fan1..FanN (N = what it knows of the model), temperatures from MTmax
    (A-series: the same value for board and chip) or TAvg/TMax (Avalon Q). No web port is involved."""
    import pyasic

    miner = miner_of(sim, model)
    found = await pyasic.get_miner(miner.ip)
    assert found is not None and pyasic_class in type(found).__name__
    data = await found.get_data()
    truth = miner.snapshot()
    assert str(data.make).lower() == "avalonminer"
    assert data.hashrate is not None and float(data.hashrate) == pytest.approx(truth.hashrate_ths, rel=1e-3)
    assert len(data.hashboards) == len(truth.boards) and not any(h.missing for h in data.hashboards)
    assert [h.chips for h in data.hashboards] == [b.chips for b in truth.boards]
    assert [f.speed for f in data.fans] == pytest.approx(list(truth.fans_rpm[:fans]), abs=130)
    hottest = [max(b.chip_sensors_c) for b in truth.boards]
    assert [h.chip_temp for h in data.hashboards] == hottest
    if model == "Q":
        assert [h.temp for h in data.hashboards] == [round(mean(truth.boards[0].chip_sensors_c))]
    else:
        assert [h.temp for h in data.hashboards] == hottest
    assert data.mac == miner.identity.mac
    assert data.wattage is None  # neither firmware reports WALLPOWER (as in the captures)
