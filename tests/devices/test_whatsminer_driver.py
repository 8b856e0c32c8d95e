"""WhatsminerDriver over real loopback sockets: FakeRpcMiner for API v2 (port 4028 rules), and a small
length-prefixed server for API v3 (4-byte little-endian length + JSON, both ways). Captured bytes from
tests/fixtures/devices/whatsminer are served as recorded."""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import pytest

from gateway.devices.driver import DriverContext, Endpoint
from gateway.devices.errors import AuthFailed, ProtocolError, Unreachable, Unsupported
from gateway.devices.model import MinerStatus, Mode
from gateway.devices.parsers.whatsminer import PARSER
from gateway.devices.rpc import RpcLimits
from gateway.devices.whatsminer import WhatsminerDriver
from gateway.devices.whatsminer_v3 import V3Client, exchange_v3
from tests.devices.badminer import bad_miner, free_port, whatsminer_error
from tests.devices.capture import FIXTURES, PROFILES, TS, capture, ctx
from tests.devices.fakeminer import FakeRpcMiner
from tests.devices.test_whatsminer import V3_DOC_SUMMARY

LIMITS = RpcLimits(deadline_s=1.0, max_bytes=1 << 20)
PROOF_BOUND_S = 10.0  # proves the deadline is enforced (a hung peer would hold us for an hour)
V3Reply = bytes | Callable[[Mapping[str, Any]], bytes]


def raw(name: str) -> bytes:
    return (FIXTURES / "whatsminer" / name).read_bytes()


def driver(rpc_port: int, v3_port: int | None = None, model_hint: str | None = "M31S") -> WhatsminerDriver:
    endpoint = Endpoint(host="127.0.0.1", rpc_port=rpc_port, v3_port=v3_port or free_port())
    return WhatsminerDriver(
        DriverContext(
            miner_id="m1",
            endpoint=endpoint,
            limits=LIMITS,
            profiles=PROFILES,
            model_hint=model_hint,
            wall_clock=lambda: TS,
        )
    )


def frame(body: bytes) -> bytes:
    return struct.pack("<I", len(body)) + body


class FakeV3Miner:
    """API v3 on 127.0.0.1: answers `{"cmd": c, "param": p}` from `replies[(c, p)]` (or `replies[c]`).
    `prefix` bytes are written before every reply (heartbeats, a corrupt length). Requests are recorded."""

    def __init__(self, replies: Mapping[Any, V3Reply], *, prefix: bytes = b"") -> None:
        self.replies = dict(replies)
        self.prefix = prefix
        self.requests: list[dict[str, Any]] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> FakeV3Miner:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            (length,) = struct.unpack("<I", await reader.readexactly(4))
            request = json.loads(await reader.readexactly(length))
            self.requests.append(request)
            reply = self.replies.get((request.get("cmd"), request.get("param")))
            reply = reply if reply is not None else self.replies.get(request.get("cmd"))
            if callable(reply):
                reply = reply(request)
            if reply is None:
                reply = json.dumps(
                    {"code": -2, "msg": "invalid command", "desc": request.get("cmd")}
                ).encode()
            writer.write(self.prefix + frame(reply))
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def v3_status(sections: Mapping[str, Any]) -> bytes:
    return json.dumps(
        {"code": 0, "when": 1692685476, "msg": dict(sections), "desc": "get.miner.status"}
    ).encode()


V3_EDEVS = [
    {"id": i, "hash-average": rate, "factory-hash": 62.0, "chip-temp-max": 81.0, "effective-chips": 225}
    for i, rate in enumerate((61.0, 59.5, 64.0))
]
V3_POOLS = [{"id": 1, "url": "stratum+tcp://a.example:3333", "account": "w.1", "stratum-active": True}]
V3_REPLIES: dict[Any, V3Reply] = {
    "get.device.info": raw("m60s_vk40_v3_get_device_info.json"),
    ("get.miner.status", "summary+edevs+pools"): v3_status(
        {"summary": V3_DOC_SUMMARY["msg"]["summary"], "edevs": V3_EDEVS, "pools": V3_POOLS}
    ),
}


# --- API v2 ----------------------------------------------------------------------------------------


async def test_v2_read_m31s_sends_one_multicommand_with_the_command_key() -> None:
    replies = {
        "summary": raw("m31s_summary.json"),
        "edevs": raw("m31s_edevs.json"),
        "pools": raw("m31s_pools.json"),
    }
    async with FakeRpcMiner(replies) as miner:
        wm = driver(miner.port)
        sample = await wm.read()

    assert sample == PARSER.parse(
        capture("whatsminer", **{k: f"m31s_{k}.json" for k in replies}), ctx("M31S")
    )
    assert sample.hashrate_ths == pytest.approx(76.69080844)
    assert len(sample.boards) == 3 and sample.fans_rpm == (5700, 0)
    # The key matters: {"cmd": "pools+summary+edevs"} earns Code 24 (m31s_multicommand_with_cmd_key_error).
    assert miner.requests == [{"command": "summary+edevs+pools"}, {"cmd": "status"}]
    assert wm.api == "v2"


async def test_v2_multicommand_error_falls_back_to_single_commands() -> None:
    replies = {
        "summary+edevs+pools": raw("m31s_multicommand_with_cmd_key_error.json"),
        "summary": raw("m31s_summary.json"),
        "edevs": raw("m31s_edevs.json"),
        "pools": raw("m31s_pools.json"),
    }
    async with FakeRpcMiner(replies, multi=False) as miner:
        sample = await driver(miner.port).read()

    assert sample.status is MinerStatus.MINING and len(sample.boards) == 3 and len(sample.pools) == 3
    assert [r.get("command") or r.get("cmd") for r in miner.requests] == [
        "summary+edevs+pools",
        "summary",
        "edevs",
        "pools",
        "status",
    ]


async def test_v2_m20s_2021_uses_devs_when_edevs_is_unknown() -> None:
    replies = {key: raw(f"m20s_fw20210322_{key}.json") for key in ("summary", "devs", "pools", "status")}
    async with FakeRpcMiner(replies) as miner:
        sample = await driver(miner.port, model_hint="M20S").read()

    assert sample.status is MinerStatus.MINING  # btmineroff "true" while hashing: not believed
    assert [b.hashrate_ths for b in sample.boards] == pytest.approx([20.05343874, 25.56731781, 24.35129228])
    assert sample.errors == ()  # edevs "invalid command" is the firmware, not a fault
    assert [r.get("command") or r.get("cmd") for r in miner.requests] == [
        "summary+edevs+pools",
        "devs",
        "status",
    ]


async def test_v2_m20s_2019_uses_per_chip_stats_when_no_devs() -> None:
    replies = {"summary": raw("m20s_oldfw_summary.json"), "stats": raw("m20s_oldfw_stats.json")}
    async with FakeRpcMiner(replies) as miner:
        sample = await driver(miner.port, model_hint="M20S").read()

    assert [b.temp_board_c for b in sample.boards] == [75.0, 73.0, 72.5]
    assert [b.chips_ok for b in sample.boards] == [105, 105, 105]
    assert sample.power_source is not None and sample.power_source.value == "estimated"


async def test_v2_sleeping_btminer() -> None:
    replies = {
        "summary": raw("m31s_multicommand_with_cmd_key_error.json"),  # btminer stopped: summary refused
        "status": raw("m31s_sleeping_status.json"),
    }
    async with FakeRpcMiner(replies) as miner:
        sample = await driver(miner.port).read()

    assert sample.status is MinerStatus.SLEEPING and sample.mode is Mode.SLEEP
    assert sample.power_w == PROFILES.get("whatsminer_m31s").sleep_w


async def test_v2_identify_asks_devdetails_version_and_miner_info() -> None:
    # devdetails shape as btminer answers it (`Model` with the board revision); no public capture exists.
    devdetails = (
        b'{"STATUS":[{"STATUS":"S","When":1,"Code":69,"Msg":"Device Details","Description":"btminer"}],'
        b'"DEVDETAILS":[{"DEVDETAILS":0,"Name":"SM","ID":0,"Driver":"bitmicro","Kernel":"","Model":"M20SV10"}],"id":1}'
    )
    replies = {
        "summary": raw("m20s_fw20210322_summary.json"),
        "get_version": raw("m20s_fw20210322_get_version.json"),
        "devdetails": devdetails,
    }
    async with FakeRpcMiner(replies) as miner:
        identity = await driver(miner.port, model_hint=None).identify()

    assert (identity.model, identity.firmware_version, identity.api_version) == (
        "M20S",
        "20210322.22.REL",
        "1.4.0",
    )
    assert identity.mac == "C4:08:28:00:A4:19" and identity.profile_key == "whatsminer_m20s"
    assert {"cmd": "get_miner_info", "info": "mac,hostname,minersn"} in miner.requests


@pytest.mark.parametrize(
    ("code", "error"), [(45, AuthFailed), (135, AuthFailed), (136, AuthFailed), (132, ProtocolError)]
)
async def test_v2_error_codes_reach_the_error_tree_with_the_host(code: int, error: type[Exception]) -> None:
    async with FakeRpcMiner({"summary": whatsminer_error(code, "refused")}) as miner:
        with pytest.raises(error, match=f"btminer error {code}") as caught:
            await driver(miner.port).read()
    assert getattr(caught.value, "host", None) == "127.0.0.1"


async def test_v2_invalid_summary_tries_v3_and_keeps_the_v2_answer_when_v3_is_closed() -> None:
    async with FakeRpcMiner({"summary": whatsminer_error(14, "invalid cmd")}) as miner:
        with pytest.raises(Unsupported, match="btminer error 14"):
            await driver(miner.port, v3_port=free_port()).read()


async def test_v2_invalid_summary_switches_to_v3_when_it_answers() -> None:
    async with (
        FakeRpcMiner({"summary": whatsminer_error(14, "invalid cmd")}) as v2,
        FakeV3Miner(V3_REPLIES) as v3,
    ):
        wm = driver(v2.port, v3.port)
        sample = await wm.read()
    assert sample.hashrate_ths == 101.847 and wm.api == "v3"


# --- API v3 ----------------------------------------------------------------------------------------


async def test_v3_used_when_v2_is_refused_and_remembered() -> None:
    async with FakeV3Miner(V3_REPLIES) as v3:
        wm = driver(free_port(), v3.port, model_hint=None)
        sample = await wm.read()
        again = await wm.read()

    assert sample == again
    assert sample.status is MinerStatus.MINING
    assert sample.hashrate_ths == 101.847 and sample.power_w == 3268.0
    assert [b.hashrate_ths for b in sample.boards] == [61.0, 59.5, 64.0]
    assert sample.pool_url == "stratum+tcp://a.example:3333"
    assert sample.identity is not None and sample.identity.model == "M60S"
    assert wm.api == "v3"
    assert (
        v3.requests
        == [
            {"cmd": "get.device.info"},
            {"cmd": "get.miner.status", "param": "summary+edevs+pools"},
        ]
        * 2
    )


async def test_v3_identify() -> None:
    async with FakeV3Miner(V3_REPLIES) as v3:
        identity = await driver(free_port(), v3.port, model_hint=None).identify()
    assert (identity.model, identity.serial, identity.api_version) == (
        "M60S",
        "BTM3CS40HD24083100000000000000000",
        "3.0.2",
    )


async def test_v3_combined_status_refused_falls_back_to_one_request_per_section() -> None:
    replies: dict[Any, V3Reply] = {
        "get.device.info": raw("m60s_vk40_v3_get_device_info.json"),
        ("get.miner.status", "summary+edevs+pools"): b'{"code":-3,"msg":"invalid json item"}',
        ("get.miner.status", "summary"): json.dumps(V3_DOC_SUMMARY).encode(),
        ("get.miner.status", "edevs"): v3_status({"edevs": V3_EDEVS}),
        ("get.miner.status", "pools"): v3_status({"pools": V3_POOLS}),
    }
    async with FakeV3Miner(replies) as v3:
        sample = await driver(free_port(), v3.port).read()
    assert len(sample.boards) == 3 and len(sample.pools) == 1
    assert [r.get("param") for r in v3.requests] == [None, "summary+edevs+pools", "summary", "edevs", "pools"]


@pytest.mark.parametrize(("code", "error"), [(-4, AuthFailed), (-2, Unsupported), (-1, ProtocolError)])
async def test_v3_error_codes_via_the_driver(code: int, error: type[Exception]) -> None:
    refused = json.dumps({"code": code, "when": 1, "msg": "refused", "desc": "get.miner.status"}).encode()
    replies = {"get.device.info": raw("m60s_vk40_v3_get_device_info.json"), "get.miner.status": refused}
    async with FakeV3Miner(replies) as v3:
        with pytest.raises(error, match=f"v3 error {code}"):
            await driver(free_port(), v3.port).read()


async def test_remembered_v3_is_forgotten_when_it_becomes_unreachable() -> None:
    async with FakeV3Miner(V3_REPLIES) as v3:
        wm = driver(free_port(), v3.port)
        await wm.read()
    assert wm.api == "v3"
    with pytest.raises(Unreachable):
        await wm.read()
    assert wm.api is None


async def test_both_apis_refused_names_both_ports() -> None:
    with pytest.raises(
        Unreachable, match=r"API v2 port \d+: connection refused; API v3 port \d+: connection refused"
    ):
        await driver(free_port(), free_port()).read()


async def test_v2_timeout_does_not_try_v3() -> None:
    async with bad_miner("hang") as port, FakeV3Miner(V3_REPLIES) as v3:
        started = time.monotonic()
        with pytest.raises(Unreachable, match="deadline"):
            await driver(port, v3.port).read()
        assert time.monotonic() - started < PROOF_BOUND_S
    assert v3.requests == []


# --- the v3 transport --------------------------------------------------------------------------------


async def test_v3_heartbeat_frames_are_skipped() -> None:
    async with FakeV3Miner({"get.device.info": b'{"code":0,"msg":{}}'}, prefix=b"\x00\x00\x00\x00" * 2) as v3:
        reply = await V3Client("127.0.0.1", v3.port, LIMITS).request({"cmd": "get.device.info"})
    assert reply == {"code": 0, "msg": {}}


async def test_v3_oversized_length_prefix_is_refused_before_reading() -> None:
    async with FakeV3Miner({"get.device.info": b"{}"}, prefix=struct.pack("<I", 0xFFFFFFF0)) as v3:
        with pytest.raises(ProtocolError, match="over the 1048576 cap") as caught:
            await exchange_v3("127.0.0.1", v3.port, b'{"cmd":"get.device.info"}', limits=LIMITS)
    assert caught.value.raw == struct.pack("<I", 0xFFFFFFF0)


@contextlib.asynccontextmanager
async def raw_v3_peer(answer: bytes, *, hang: bool = False) -> AsyncIterator[int]:
    """Writes `answer` verbatim after reading the request, then closes (or hangs until cut at exit)."""
    tasks: set[asyncio.Task[Any]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            (length,) = struct.unpack("<I", await reader.readexactly(4))
            await reader.readexactly(length)
            writer.write(answer)
            await writer.drain()
            if hang:
                await asyncio.sleep(3600)
            writer.close()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            writer.transport.abort()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


async def test_v3_truncated_body_is_a_protocol_error_with_the_bytes() -> None:
    async with raw_v3_peer(struct.pack("<I", 100) + b'{"code":0,') as port:
        with pytest.raises(
            ProtocolError, match="truncated: connection closed after 10 of 100 bytes"
        ) as caught:
            await exchange_v3("127.0.0.1", port, b"{}", limits=LIMITS)
    assert caught.value.raw == struct.pack("<I", 100) + b'{"code":0,'


async def test_v3_close_without_reply_is_unreachable() -> None:
    async with raw_v3_peer(b"") as port:
        with pytest.raises(Unreachable, match="closed without a reply"):
            await exchange_v3("127.0.0.1", port, b"{}", limits=LIMITS)


async def test_v3_hung_peer_costs_one_deadline() -> None:
    async with raw_v3_peer(struct.pack("<I", 50) + b"{", hang=True) as port:
        started = time.monotonic()
        with pytest.raises(Unreachable, match="deadline of 1s exceeded after 5 bytes"):
            await exchange_v3("127.0.0.1", port, b"{}", limits=LIMITS)
        assert time.monotonic() - started < PROOF_BOUND_S


async def test_v3_garbage_body_is_a_protocol_error() -> None:
    async with raw_v3_peer(frame(b"<html>login</html>")) as port:
        with pytest.raises(ProtocolError) as caught:
            await V3Client("127.0.0.1", port, LIMITS).request({"cmd": "get.device.info"})
    assert caught.value.raw == b"<html>login</html>"
