"""Braiins, LuxOS and Vnish drivers on real loopback sockets: FakeRpcMiner replays the captured RPC
replies, small aiohttp.web servers serve the captured REST bodies behind the firmwares' real login and
token flows. Nothing is mocked or patched: the drivers' own socket and HTTP code runs."""

from __future__ import annotations

import dataclasses
import json
import secrets
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.devices.braiins import LOGIN_PATH, REST_PATHS, BraiinsDriver
from gateway.devices.driver import Credentials, DriverContext, Endpoint
from gateway.devices.errors import AuthFailed, Unreachable
from gateway.devices.luxos import LuxosDriver
from gateway.devices.model import FirmwareFamily, MinerStatus, Mode, Source
from gateway.devices.rpc import RpcLimits
from gateway.devices.vnish import UNLOCK_PATH, WEB_PATHS, VnishDriver
from tests.devices.badminer import free_port
from tests.devices.capture import FIXTURES, PROFILES, TS
from tests.devices.fakeminer import FakeRpcMiner


def raw(relative: str) -> bytes:
    return (FIXTURES / relative).read_bytes()


def context(rpc_port: int, web_port: int, credentials: Credentials | None = None) -> DriverContext:
    return DriverContext(
        miner_id="m1",
        endpoint=Endpoint(host="127.0.0.1", rpc_port=rpc_port, web_port=web_port),
        credentials=credentials or Credentials(),
        limits=RpcLimits(deadline_s=2.0),
        profiles=PROFILES,
        wall_clock=lambda: TS,
    )


class FakeWebMiner:
    """A miner's token-protected web API: `login_path` checks the posted JSON with `accept` and hands out
    a fresh token; every other path needs that exact token in `Authorization`, else 401."""

    def __init__(self, login_path: str, accept: Callable[[Any], bool], bodies: Mapping[str, bytes]) -> None:
        self.login_path = login_path
        self.accept = accept
        self.bodies = dict(bodies)
        self.tokens: set[str] = set()
        self.logins = 0
        self.seen_auth: list[str | None] = []
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def _login(self, request: web.Request) -> web.Response:
        self.logins += 1
        body = await request.json()
        if not self.accept(body):
            return web.json_response({"error": "invalid credentials"}, status=401)
        token = secrets.token_hex(8)
        self.tokens.add(token)
        return web.json_response({"token": token, "timeout_s": 3600})

    async def _get(self, request: web.Request) -> web.Response:
        header = request.headers.get("Authorization")
        self.seen_auth.append(header)
        if header not in self.tokens:
            return web.json_response({"error": "unauthorized"}, status=401)
        return web.Response(body=self.bodies[request.path], content_type="application/json")

    async def __aenter__(self) -> FakeWebMiner:
        app = web.Application()
        app.router.add_post(self.login_path, self._login)
        for path in self.bodies:
            app.router.add_get(path, self._get)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


# --- Braiins ---------------------------------------------------------------------------------------

S9_RPC = {
    command: raw(f"braiins/s9_bosminer_plus_{command}.json")
    for command in ("summary", "devs", "pools", "fans", "temps", "version")
}
BOS_REST = {
    path: raw(f"braiins/bos_26_04_s21pro_rest_{key.removeprefix('rest:')}.json")
    for key, path in REST_PATHS.items()
}


def bos_web(password: str = "s3cret") -> FakeWebMiner:
    return FakeWebMiner(LOGIN_PATH, lambda b: b == {"username": "root", "password": password}, BOS_REST)


async def test_braiins_rpc_s9() -> None:
    async with FakeRpcMiner(S9_RPC) as miner:
        driver = BraiinsDriver(context(miner.port, free_port()))
        sample = await driver.read()
        identity = await driver.identify()
    assert miner.requests[0]["command"] == "summary+devs+pools+fans+temps+tunerstatus+version+devdetails"
    assert sample.ts == TS
    assert sample.hashrate_ths == pytest.approx(15.740915842676325)
    assert [b.temp_board_c for b in sample.boards] == [75.0, 63.0, 70.0]
    assert sample.fans_rpm == (2820, 3780)
    assert sample.power_source is Source.ESTIMATED  # tunerstatus answered "Invalid command"
    assert sample.pool_url == "stratum+tcp://stratum.antpool.com:3333"
    assert (identity.model, identity.firmware) == ("S9", FirmwareFamily.BRAIINS)


async def test_braiins_rpc_tunerstatus_watts() -> None:
    tuner = json.dumps(
        {
            "STATUS": [{"STATUS": "S", "When": 1, "Code": 203, "Msg": "Tuner", "Description": "BOSminer+"}],
            "TUNERSTATUS": [{"PowerLimit": 1200, "ApproximateMinerPowerConsumption": 1187}],
            "id": 1,
        }
    ).encode()
    async with FakeRpcMiner(S9_RPC | {"tunerstatus": tuner}, multi=False) as miner:
        sample = await BraiinsDriver(context(miner.port, free_port())).read()
    assert len(miner.requests) == 1 + 8  # multi refused, then one connection per command
    assert (sample.power_w, sample.power_source, sample.power_limit_w) == (1187.0, Source.MEASURED, 1200.0)


async def test_braiins_rest_when_rpc_is_refused() -> None:
    async with bos_web() as site:
        driver = BraiinsDriver(
            context(free_port(), site.port, Credentials(username="root", password="s3cret"))
        )
        sample = await driver.read()
        identity = await driver.identify()
    assert site.logins == 1  # the token is kept between calls
    assert site.seen_auth and all(h in site.tokens for h in site.seen_auth)  # bare token, no "Bearer"
    assert sample.status is MinerStatus.MINING
    assert sample.hashrate_ths == pytest.approx(248.18667720002498)
    assert (sample.power_w, sample.power_source, sample.power_limit_w) == (3480.0, Source.MEASURED, 3500.0)
    assert [b.hashrate_ths for b in sample.boards] == pytest.approx(
        [83.16843130521843, 86.69932552387427, 84.13826274583308]
    )
    assert sample.fans_rpm == (5943, 5943, 5943, 5973)
    assert sample.pool_url == "stratum+tcp://example.pool.com:3333"
    assert (identity.model, identity.serial, identity.mac) == (
        "S21 Pro",
        "THQGFKUBDJIAH0E9G",
        "02:8F:77:EC:E7:E0",
    )


async def test_braiins_default_credentials_are_root_and_empty() -> None:
    async with bos_web(password="") as site:
        sample = await BraiinsDriver(context(free_port(), site.port)).read()
    assert sample.hashrate_ths == pytest.approx(248.18667720002498)


async def test_braiins_wrong_password_is_auth_failed() -> None:
    async with bos_web() as site:
        driver = BraiinsDriver(context(free_port(), site.port, Credentials(username="root", password="nope")))
        with pytest.raises(AuthFailed, match=r"login refused|HTTP 401"):
            await driver.read()
    assert site.logins == 1  # a refused login is not retried


async def test_braiins_expired_token_logs_in_again_once() -> None:
    async with bos_web() as site:
        driver = BraiinsDriver(context(free_port(), site.port, Credentials(password="s3cret")))
        await driver.read()
        site.tokens.clear()  # the miner rebooted: every token it issued is gone
        sample = await driver.read()
    assert site.logins == 2
    assert sample.hashrate_ths == pytest.approx(248.18667720002498)


async def test_braiins_only_the_required_rest_reply_is_needed() -> None:
    async with bos_web() as site:
        del site.bodies[REST_PATHS["rest:cooling_state"]]  # this BOS build lacks the endpoint: 404
        sample = await BraiinsDriver(context(free_port(), site.port, Credentials(password="s3cret"))).read()
    assert sample.fans_rpm == ()
    assert sample.hashrate_ths == pytest.approx(248.18667720002498)


async def test_braiins_nothing_listening_is_unreachable() -> None:
    with pytest.raises(Unreachable, match="refused"):
        await BraiinsDriver(context(free_port(), free_port())).read()


async def test_braiins_shared_session() -> None:
    async with bos_web() as site, aiohttp.ClientSession() as session:
        ctx = context(free_port(), site.port, Credentials(password="s3cret"))
        driver = BraiinsDriver(dataclasses.replace(ctx, session=session))
        sample = await driver.read()
    assert sample.power_w == 3480.0


# --- LuxOS -----------------------------------------------------------------------------------------

LUXOS_RPC = {
    command: raw(f"luxos/s19kpro_{command}.json")
    for command in (
        "summary",
        "stats",
        "devs",
        "pools",
        "fans",
        "temps",
        "power",
        "profiles",
        "config",
        "version",
    )
}


@pytest.mark.parametrize("multi", [True, False])
async def test_luxos_read_and_identify(multi: bool) -> None:
    async with FakeRpcMiner(LUXOS_RPC, multi=multi) as miner:
        driver = LuxosDriver(context(miner.port, free_port()))
        sample = await driver.read()
        identity = await driver.identify()
    assert sample.hashrate_ths == pytest.approx(59.75606)
    assert (sample.power_w, sample.power_source) == (1051.0, Source.MEASURED)
    assert [b.hashrate_ths for b in sample.boards] == pytest.approx(
        [19.77382571692016, 19.2305887466751, 20.751652263361264]
    )
    assert sample.fans_rpm == (1920, 1920, 2340, 2340)
    assert (sample.status, sample.mode) == (MinerStatus.MINING, Mode.LOW)
    assert sample.pool_url == "stratum+tcp://ca.stratum.braiins.com:3333"
    assert (identity.model, identity.serial, identity.firmware) == (
        "S19k Pro",
        "JYZZB0UBDJABF06RB",
        FirmwareFamily.LUXOS,
    )


async def test_luxos_unreachable() -> None:
    with pytest.raises(Unreachable):
        await LuxosDriver(context(free_port(), free_port())).read()


# --- Vnish -----------------------------------------------------------------------------------------

VNISH_RPC = {
    "summary": raw("vnish/s21pro_rpc_summary.json"),
    "stats": raw("vnish/s21pro_rpc_stats.json"),
    "pools": raw("vnish/s21pro_rpc_pools.json"),
    "devdetails": raw("vnish/s21pro_rpc_devdetails.json"),
    "version": raw("vnish/s21pro_rpc_version_invalid_command.json"),
}
VNISH_WEB = {
    path: raw(f"vnish/s21pro_web_api_v1_{key.removeprefix('web:')}.json") for key, path in WEB_PATHS.items()
}


def vnish_web(password: str = "admin") -> FakeWebMiner:
    return FakeWebMiner(UNLOCK_PATH, lambda b: b == {"pw": password}, VNISH_WEB)


async def test_vnish_rpc_telemetry_and_web_watts() -> None:
    async with FakeRpcMiner(VNISH_RPC) as miner, vnish_web() as site:
        driver = VnishDriver(context(miner.port, site.port))
        sample = await driver.read()
        identity = await driver.identify()  # `version` answers "Invalid command": must not matter
    assert site.logins == 1
    assert sample.hashrate_ths == pytest.approx(173.87094)
    assert (sample.power_w, sample.power_source, sample.power_limit_w) == (2583.0, Source.MEASURED, 2800.0)
    assert [b.hashrate_ths for b in sample.boards] == pytest.approx([60.79719, 57.766645, 55.3071])
    assert sample.fans_rpm == (5850, 5850, 5940, 5940)  # from RPC stats
    assert sample.pool_url == "stratum.braiins.com:3333"
    assert (identity.model, identity.firmware_version, identity.mac) == (
        "S21 Pro",
        "1.2.7",
        "02:95:23:B3:E0:79",
    )


async def test_vnish_custom_password() -> None:
    async with FakeRpcMiner(VNISH_RPC) as miner, vnish_web(password="hunter2") as site:
        sample = await VnishDriver(context(miner.port, site.port, Credentials(password="hunter2"))).read()
    assert sample.power_limit_w == 2800.0


async def test_vnish_wrong_password_is_auth_failed() -> None:
    async with FakeRpcMiner(VNISH_RPC) as miner, vnish_web() as site:
        with pytest.raises(AuthFailed):
            await VnishDriver(context(miner.port, site.port, Credentials(password="wrong"))).read()


async def test_vnish_web_only_when_rpc_is_off() -> None:
    async with vnish_web() as site:
        sample = await VnishDriver(context(free_port(), site.port)).read()
    assert sample.hashrate_ths == pytest.approx(173.87094)
    assert (sample.power_w, sample.power_source) == (2583.0, Source.MEASURED)
    assert len(sample.boards) == 3


async def test_vnish_rpc_only_when_web_is_down() -> None:
    async with FakeRpcMiner(VNISH_RPC) as miner:
        sample = await VnishDriver(context(miner.port, free_port())).read()
    assert (sample.power_w, sample.power_source) == (2583.0, Source.MEASURED)  # sum of chain_consumptionN
    assert sample.power_limit_w is None


async def test_vnish_web_without_unlock_endpoint_is_not_an_auth_failure() -> None:
    not_vnish = FakeWebMiner("/elsewhere", lambda b: True, VNISH_WEB)  # POST /api/v1/unlock -> 404
    async with FakeRpcMiner(VNISH_RPC) as miner, not_vnish as site:
        sample = await VnishDriver(context(miner.port, site.port)).read()
    assert sample.hashrate_ths == pytest.approx(173.87094)
    assert sample.power_limit_w is None  # only the web API knows the preset


async def test_vnish_expired_token_unlocks_again() -> None:
    async with FakeRpcMiner(VNISH_RPC) as miner, vnish_web() as site:
        driver = VnishDriver(context(miner.port, site.port))
        await driver.read()
        site.tokens.clear()
        sample = await driver.read()
    assert site.logins == 2
    assert sample.power_limit_w == 2800.0


async def test_vnish_nothing_listening_is_unreachable() -> None:
    with pytest.raises(Unreachable):
        await VnishDriver(context(free_port(), free_port())).read()
