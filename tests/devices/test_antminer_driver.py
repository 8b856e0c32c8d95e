"""AntminerDriver over real sockets: recorded replies served by FakeRpcMiner (CGMiner RPC) and by a small
aiohttp.web server that enforces HTTP Digest auth the way the stock web CGI does. Nothing is mocked."""

from __future__ import annotations

import hashlib
import re
import secrets
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from gateway.devices.antminer import AntminerDriver
from gateway.devices.driver import Credentials, DriverContext, Endpoint, MinerDriver
from gateway.devices.errors import AuthFailed, Unreachable, Unsupported
from gateway.devices.model import FirmwareFamily, MinerStatus, Mode, Source
from gateway.devices.parsers.antminer import PARSER
from gateway.devices.profiles import load_profiles
from gateway.devices.rpc import RpcLimits
from tests.devices.capture import FIXTURES, TS, capture, ctx
from tests.devices.fakeminer import FakeRpcMiner

REALM = "antMiner Configuration"
LIMITS = RpcLimits(deadline_s=3.0)
PROFILES = load_profiles(Path(__file__).resolve().parents[2] / "firmware_profiles")

S19PRO_RPC = {
    "summary": "s19pro_fw2022_summary.json",
    "stats": "s19pro_fw2022_stats.json",
    "pools": "s19pro_fw2022_pools.json",
    "version": "s19pro_fw2022_version.json",
}
S21_WEB = {
    "stats.cgi": "s21_stats.cgi.json",
    "summary.cgi": "s21_summary.cgi.json",
    "get_system_info.cgi": "s21_get_system_info.cgi.json",
}


def _raw(name: str) -> bytes:
    return (FIXTURES / "antminer" / name).read_bytes()


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()  # RFC 2617 Digest is MD5 by definition


class DigestCgiServer:
    """`/cgi-bin/<name>` on 127.0.0.1 behind RFC 2617 Digest auth (qop=auth), answering recorded bodies.

    Like the firmware's lighttpd, a request without valid credentials gets 401 and a fresh challenge.
    `requests` records (path, authorised) for every request, so tests can see what the driver asked for.
    """

    def __init__(self, files: Mapping[str, str], *, user: str = "root", password: str = "root") -> None:
        self.bodies = {f"/cgi-bin/{name}": _raw(file) for name, file in files.items()}
        self.user = user
        self.password = password
        self.nonces: set[str] = set()
        self.requests: list[tuple[str, bool]] = []
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> DigestCgiServer:
        app = web.Application()
        app.router.add_route("*", "/cgi-bin/{name}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    def _authorised(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Digest "):
            return False
        fields = {k: a or b for k, a, b in re.findall(r'(\w+)=(?:"([^"]*)"|([^,\s]*))', header[7:])}
        if fields.get("username") != self.user or fields.get("nonce") not in self.nonces:
            return False
        ha1 = _md5(f"{self.user}:{REALM}:{self.password}")
        ha2 = _md5(f"{request.method}:{fields.get('uri')}")
        parts = (ha1, fields["nonce"], fields.get("nc"), fields.get("cnonce"), fields.get("qop"), ha2)
        return fields.get("uri") == request.path_qs and fields.get("response") == _md5(
            ":".join(map(str, parts))
        )

    async def _handle(self, request: web.Request) -> web.Response:
        authorised = self._authorised(request)
        self.requests.append((request.path, authorised))
        if not authorised:
            nonce = secrets.token_hex(16)
            self.nonces.add(nonce)
            challenge = f'Digest realm="{REALM}", nonce="{nonce}", qop="auth", algorithm=MD5'
            return web.Response(status=401, headers={"WWW-Authenticate": challenge})
        body = self.bodies.get(request.path)
        if body is None:
            return web.Response(status=404, text="Not Found")
        return web.Response(body=body, content_type="text/plain")

    def served(self) -> list[str]:
        return [path.removeprefix("/cgi-bin/") for path, ok in self.requests if ok]


def _closed_port() -> int:
    """A loopback port nothing listens on: connecting to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _driver(
    *, rpc_port: int, web_port: int, user: str | None = None, password: str | None = None
) -> AntminerDriver:
    return AntminerDriver(
        DriverContext(
            miner_id="m1",
            endpoint=Endpoint(host="127.0.0.1", rpc_port=rpc_port, web_port=web_port),
            credentials=Credentials(username=user, password=password),
            limits=LIMITS,
            profiles=PROFILES,
            wall_clock=lambda: float(TS),
        )
    )


def _rpc(files: Mapping[str, str]) -> dict[str, Any]:
    return {command: _raw(name) for command, name in files.items()}


def test_the_driver_satisfies_the_protocol() -> None:
    driver = _driver(rpc_port=_closed_port(), web_port=_closed_port())
    assert isinstance(driver, MinerDriver)
    assert driver.family is FirmwareFamily.ANTMINER


# --- RPC ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("multi", "nul"), [(True, True), (False, True), (True, False), (False, False)])
async def test_s19pro_over_rpc(multi: bool, nul: bool) -> None:
    async with FakeRpcMiner(_rpc(S19PRO_RPC), multi=multi, nul=nul) as miner:
        sample = await _driver(rpc_port=miner.port, web_port=_closed_port()).read()
    expected = PARSER.parse(capture("antminer", **S19PRO_RPC), ctx())
    assert sample == expected  # the same Sample as parsing the files: the transport adds nothing
    assert sample.status is MinerStatus.MINING
    assert sample.hashrate_ths == pytest.approx(110.56689)
    assert [b.hashrate_ths for b in sample.boards] == pytest.approx([37.6033, 35.53622, 37.42738])
    assert sample.power_source is Source.ESTIMATED
    commands = [r["command"] for r in miner.requests]
    if multi:
        assert commands == ["summary+stats+pools+version"]
    else:  # the multi-command is refused (Code 14), then one connection per command
        assert commands == ["summary+stats+pools+version", "summary", "stats", "pools", "version"]


async def test_s9_invalid_json_over_rpc_is_repaired() -> None:
    files = {
        "stats": "s9_bmminer_stats.json",
        "pools": "s9_bmminer_pools.json",
        "version": "s9_bmminer_version.json",
    }
    async with FakeRpcMiner(_rpc(files), multi=False) as miner:
        sample = await _driver(rpc_port=miner.port, web_port=_closed_port()).read()
    assert sample.hashrate_ths == pytest.approx(13.88381)
    assert [b.slot for b in sample.boards] == [6, 7, 8]
    assert "summary: firmware error 14: Invalid command" in sample.errors  # the replayer has no summary


async def test_s19_sleeping_over_rpc_asks_the_web_conf_whether_it_sleeps() -> None:
    files = {
        "stats": "s19_sleeping_stats.json",
        "pools": "s19_sleeping_pools.json",
        "version": "s19_sleeping_version.json",
    }
    async with (
        FakeRpcMiner(_rpc(files)) as miner,
        DigestCgiServer({"get_miner_conf.cgi": "s19_sleeping_get_miner_conf.cgi.json"}) as cgi,
    ):
        sample = await _driver(rpc_port=miner.port, web_port=cgi.port).read()
    assert (sample.status, sample.mode) == (MinerStatus.SLEEPING, Mode.SLEEP)
    assert [b.active for b in sample.boards] == [False, False, False]
    assert sample.power_w == pytest.approx(PROFILES.get("antminer_s19").sleep_w)
    assert cgi.served() == ["get_miner_conf.cgi"]


async def test_a_hashing_miner_costs_no_web_request() -> None:
    async with FakeRpcMiner(_rpc(S19PRO_RPC)) as miner, DigestCgiServer({}) as cgi:
        await _driver(rpc_port=miner.port, web_port=cgi.port).read()
    assert cgi.requests == []


async def test_sleep_check_failing_on_the_web_is_noted_not_fatal() -> None:
    files = {"stats": "s19_sleeping_stats.json", "version": "s19_sleeping_version.json"}
    async with FakeRpcMiner(_rpc(files)) as miner, DigestCgiServer({}, password="changed") as cgi:
        sample = await _driver(rpc_port=miner.port, web_port=cgi.port).read()
    assert sample.status is MinerStatus.ERROR  # cannot tell sleep from fault without the conf
    assert any(
        e.startswith("get_miner_conf.cgi: 127.0.0.1: /cgi-bin/get_miner_conf.cgi: HTTP 401")
        for e in sample.errors
    )


# --- web CGI ------------------------------------------------------------------------------------------


async def test_s21_from_the_web_when_rpc_is_refused() -> None:
    async with DigestCgiServer(S21_WEB) as cgi:
        sample = await _driver(rpc_port=_closed_port(), web_port=cgi.port).read()
    assert sample.status is MinerStatus.MINING
    assert sample.hashrate_ths == pytest.approx(206.9018)
    assert [b.slot for b in sample.boards] == [1, 2, 3]
    assert sample.fans_rpm == (7000, 7000, 7000, 7000)
    assert sample.hw_errors == 2
    assert sample.identity is not None and sample.identity.model == "S21"
    assert sorted(cgi.served()) == ["pools.cgi", "stats.cgi", "summary.cgi"]  # no get_miner_conf: hashing
    assert any("connection refused; read from the web CGI instead" in e for e in sample.errors)
    assert any(e.startswith("pools.cgi: ") and "HTTP 404" in e for e in sample.errors)


async def test_web_credentials_come_from_the_context() -> None:
    async with DigestCgiServer(S21_WEB, user="admin", password="s3cret") as cgi:
        driver = _driver(rpc_port=_closed_port(), web_port=cgi.port, user="admin", password="s3cret")
        sample = await driver.read()
    assert sample.hashrate_ths == pytest.approx(206.9018)


async def test_wrong_web_credentials_raise_auth_failed() -> None:
    async with DigestCgiServer(S21_WEB, password="changed") as cgi:
        with pytest.raises(AuthFailed, match="HTTP 401"):
            await _driver(rpc_port=_closed_port(), web_port=cgi.port).read()


async def test_rpc_error_replies_fall_back_to_the_web() -> None:
    denied = b'{"STATUS":[{"STATUS":"E","When":0,"Code":45,"Msg":"Access denied","Description":"x"}],"id":1}'
    async with FakeRpcMiner(
        dict.fromkeys(("summary", "stats", "pools", "version"), denied), multi=False
    ) as miner:
        async with DigestCgiServer(S21_WEB) as cgi:
            sample = await _driver(rpc_port=miner.port, web_port=cgi.port).read()
        assert sample.hashrate_ths == pytest.approx(206.9018)
        assert "stats: firmware error 45: Access denied" in sample.errors
        # with the web down too, the firmware's own refusal is what the poller sees
        with pytest.raises(AuthFailed, match="stats: firmware error 45"):
            await _driver(rpc_port=miner.port, web_port=_closed_port()).read()


async def test_nothing_answering_is_unreachable() -> None:
    with pytest.raises(Unreachable, match=r"rpc: port \d+: connection refused; web: /cgi-bin/stats.cgi"):
        await _driver(rpc_port=_closed_port(), web_port=_closed_port()).read()


# --- identify -----------------------------------------------------------------------------------------


async def test_identify_from_rpc_and_web() -> None:
    async with (
        FakeRpcMiner(_rpc(S19PRO_RPC)) as miner,
        DigestCgiServer({"get_system_info.cgi": "s21_get_system_info.cgi_b.json"}) as cgi,
    ):
        identity = await _driver(rpc_port=miner.port, web_port=cgi.port).identify()
    assert (identity.model, identity.profile_key) == ("S19 Pro", "antminer_s19_pro")  # RPC's Type wins
    assert identity.firmware_version == "Tue Dec 6 16:12:30 CST 2022"
    assert (identity.mac, identity.serial, identity.hostname) == (
        "02:50:53:09:DA:D9",
        "SMTTATUBDJAAI00A5",
        "Antminer",
    )


async def test_identify_from_rpc_alone_when_the_web_refuses_us() -> None:
    async with (
        FakeRpcMiner(_rpc(S19PRO_RPC)) as miner,
        DigestCgiServer({"get_system_info.cgi": "s21_get_system_info.cgi.json"}, password="changed") as cgi,
    ):
        identity = await _driver(rpc_port=miner.port, web_port=cgi.port).identify()
    assert (identity.model, identity.api_version, identity.mac) == ("S19 Pro", "3.1", None)


async def test_identify_from_the_web_alone() -> None:
    async with DigestCgiServer({"get_system_info.cgi": "s21_get_system_info.cgi.json"}) as cgi:
        identity = await _driver(rpc_port=_closed_port(), web_port=cgi.port).identify()
    assert (identity.model, identity.serial, identity.firmware_version) == (
        "S21",
        "THQING0BDJAB024NF",
        "FR-1.12(251009-S21)",
    )


async def test_identify_web_only_and_refused_raises_auth_failed() -> None:
    async with DigestCgiServer({"get_system_info.cgi": "s21_get_system_info.cgi.json"}, password="x") as cgi:
        with pytest.raises(AuthFailed):
            await _driver(rpc_port=_closed_port(), web_port=cgi.port).identify()


async def test_unsupported_control_touches_nothing() -> None:
    """Stock firmware has no power target: refused before any request reaches the miner."""
    async with FakeRpcMiner(_rpc(S19PRO_RPC)) as miner:
        driver = _driver(rpc_port=miner.port, web_port=_closed_port())
        with pytest.raises(Unsupported, match="set_power is not supported by antminer"):
            await driver.set_power(3000)
    assert miner.requests == []
