"""Bad input at the transport edge: every failure becomes one class of the error tree, within the
deadline, with the raw bytes kept (bounded) for diagnostics. Real sockets throughout.

The elapsed-time checks below are not performance thresholds: each misbehaving server would hold the
client for minutes without a deadline (the drip server alone takes ~180 s), so a bound of a few times
the deadline only proves the deadline is enforced, on however loaded a machine.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from gateway.devices.errors import (
    RAW_KEEP_BYTES,
    AuthFailed,
    DeviceError,
    ProtocolError,
    Unreachable,
    Unsupported,
)
from gateway.devices.parsers.common import check_status
from gateway.devices.rpc import RpcClient, RpcLimits
from gateway.devices.web import WebClient
from tests.devices.badminer import VALID_REPLY, bad_miner, free_port, whatsminer_error

DEADLINE_S = 1.0
LIMITS = RpcLimits(deadline_s=DEADLINE_S, max_bytes=2 * 1024 * 1024)
PROOF_BOUND_S = DEADLINE_S * 10


async def _rpc(port: int) -> object:
    return await RpcClient("127.0.0.1", port, LIMITS).command("summary")


async def test_connection_refused_is_unreachable() -> None:
    with pytest.raises(Unreachable, match="refused"):
        await _rpc(free_port())


@pytest.mark.parametrize(
    ("behaviour", "error", "keeps_raw"),
    [
        ("hang", Unreachable, False),
        ("drip", Unreachable, True),
        ("reset", Unreachable, True),
        ("close_silently", Unreachable, False),
        ("garbage", ProtocolError, True),
        ("truncated", ProtocolError, True),
        ("html", ProtocolError, True),
    ],
)
async def test_misbehaving_rpc_peer(behaviour: str, error: type[DeviceError], keeps_raw: bool) -> None:
    async with bad_miner(behaviour) as port:
        started = time.monotonic()
        with pytest.raises(error) as caught:
            await _rpc(port)
        elapsed = time.monotonic() - started
    assert type(caught.value) is error
    assert elapsed < PROOF_BOUND_S
    assert caught.value.host == "127.0.0.1"
    assert len(caught.value.raw) <= RAW_KEEP_BYTES
    assert bool(caught.value.raw) is keeps_raw
    if behaviour == "drip":
        assert VALID_REPLY.startswith(caught.value.raw)  # what arrived before the deadline
    if behaviour == "garbage":
        assert caught.value.raw_truncated
        assert "exceeds" in str(caught.value)


async def test_wrong_shape_json_decodes_but_is_not_a_reply() -> None:
    """Valid JSON of the wrong shape passes the transport; the parser layer rejects it (see
    test_drivers_bad_input for the full path). check_status must not crash on it either."""
    async with bad_miner("wrong_shape") as port:
        reply = await _rpc(port)
    assert reply == [1, 2, {"STATUS": "nonsense"}]
    check_status(reply, "summary")


@pytest.mark.parametrize(
    ("code", "message", "error"),
    [
        (45, "permission denied", AuthFailed),
        (132, "command error", ProtocolError),
        (135, "check token error", ProtocolError),
        (14, "invalid cmd", Unsupported),
    ],
)
async def test_firmware_error_codes_map_to_the_tree(
    code: int, message: str, error: type[DeviceError]
) -> None:
    """Generic CGMiner-family mapping. (Whatsminer's own codes such as 135 are refined to AuthFailed
    by its backend, which knows they are token errors: see test_whatsminer_driver.)"""
    async with bad_miner("raw:" + whatsminer_error(code, message).decode() + "\x00") as port:
        reply = await _rpc(port)
    with pytest.raises(error, match=str(code)):
        check_status(reply, "summary")


async def test_rpc_never_reads_past_the_cap() -> None:
    small = RpcLimits(deadline_s=DEADLINE_S, max_bytes=10_000)
    async with bad_miner("garbage") as port:
        with pytest.raises(ProtocolError) as caught:
            await RpcClient("127.0.0.1", port, small).command("stats")
    assert "exceeds 10000 bytes" in str(caught.value)


# --- the web APIs ---------------------------------------------------------------------------------


@pytest.fixture
async def web_peer() -> AsyncIterator[int]:
    async def html(_: web.Request) -> web.Response:
        return web.Response(text="<html><body>Please log in</body></html>", content_type="text/html")

    async def unauthorized(_: web.Request) -> web.Response:
        return web.Response(status=401, text="Unauthorized")

    async def hang(_: web.Request) -> web.Response:
        await asyncio.sleep(3600)
        return web.Response()

    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(12):
            await response.write(b"x" * (1 << 20))
        return response

    async def truncated(_: web.Request) -> web.Response:
        return web.Response(
            text='{"STATUS": {"STATUS": "S"}, "STATS": [{"rate_5s": 1', content_type="application/json"
        )

    async def server_error(_: web.Request) -> web.Response:
        return web.Response(status=500, text="oops")

    app = web.Application()
    app.router.add_get("/html", html)
    app.router.add_get("/401", unauthorized)
    app.router.add_get("/hang", hang)
    app.router.add_get("/huge", huge)
    app.router.add_get("/truncated", truncated)
    app.router.add_get("/500", server_error)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield port
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("path", "error", "match"),
    [
        ("/html", ProtocolError, "html|unexpected"),
        ("/401", AuthFailed, "401"),
        ("/hang", Unreachable, "deadline"),
        ("/huge", ProtocolError, "exceeds"),
        ("/truncated", ProtocolError, "truncated"),
        ("/500", ProtocolError, "500"),
    ],
)
async def test_misbehaving_web_api(web_peer: int, path: str, error: type[DeviceError], match: str) -> None:
    client = WebClient("127.0.0.1", port=web_peer, limits=LIMITS)
    started = time.monotonic()
    with pytest.raises(error, match=match) as caught:
        await client.get_json(path)
    assert time.monotonic() - started < PROOF_BOUND_S
    assert len(caught.value.raw) <= RAW_KEEP_BYTES


async def test_web_connection_refused_is_unreachable() -> None:
    with pytest.raises(Unreachable):
        await WebClient("127.0.0.1", port=free_port(), limits=LIMITS).get_json("/cgi-bin/stats.cgi")
