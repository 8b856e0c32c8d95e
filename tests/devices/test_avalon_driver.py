"""AvalonDriver over a real loopback socket (FakeRpcMiner replaying the captured cgminer 4.11.1 replies)."""

from __future__ import annotations

import pytest

from gateway.devices.avalon import AvalonDriver
from gateway.devices.driver import DriverContext, Endpoint
from gateway.devices.errors import AuthFailed, ProtocolError, Unreachable
from gateway.devices.model import MinerStatus, Mode
from gateway.devices.parsers.avalon import PARSER
from gateway.devices.rpc import RpcLimits
from tests.devices.badminer import free_port
from tests.devices.capture import FIXTURES, PROFILES, TS, capture, ctx
from tests.devices.fakeminer import FakeRpcMiner

LIMITS = RpcLimits(deadline_s=1.0, max_bytes=1 << 20)
Q_FILES = {key: f"avalon_q_{key}.json" for key in ("summary", "stats", "pools", "version")}


def raw(name: str) -> bytes:
    return (FIXTURES / "avalon" / name).read_bytes()


def driver(port: int) -> AvalonDriver:
    return AvalonDriver(
        DriverContext(
            miner_id="m1",
            endpoint=Endpoint(host="127.0.0.1", rpc_port=port),
            limits=LIMITS,
            profiles=PROFILES,
            wall_clock=lambda: TS,
        )
    )


async def test_avalon_q_read_is_one_multicommand() -> None:
    async with FakeRpcMiner({key: raw(name) for key, name in Q_FILES.items()}) as miner:
        sample = await driver(miner.port).read()

    assert sample == PARSER.parse(capture("avalon", **Q_FILES), ctx())
    assert sample.status is MinerStatus.SLEEPING and sample.mode is Mode.SLEEP
    assert sample.hashrate_avg_ths == pytest.approx(44.49941)
    assert miner.requests == [{"command": "summary+stats+pools+version"}]


async def test_avalon_q_without_multicommand_falls_back_to_single_commands() -> None:
    async with FakeRpcMiner({key: raw(name) for key, name in Q_FILES.items()}, multi=False) as miner:
        sample = await driver(miner.port).read()

    assert sample == PARSER.parse(capture("avalon", **Q_FILES), ctx())
    assert [r["command"] for r in miner.requests] == ["summary+stats+pools+version", *Q_FILES]


async def test_a1246_with_only_stats_still_reads() -> None:
    """The other commands answer "Invalid command" (Code 14): that costs their data, not the sample, and
    is not an error of the miner."""
    async with FakeRpcMiner({"stats": raw("a1246_stats.json")}) as miner:
        sample = await driver(miner.port).read()

    assert sample.status is MinerStatus.MINING
    assert sample.hashrate_ths == pytest.approx(81.07268)
    assert sample.power_w == 3189.0
    assert len(sample.boards) == 3
    assert sample.identity is not None and sample.identity.model == "A1246"
    assert sample.errors == ()


async def test_identify_reads_version_and_stats() -> None:
    async with FakeRpcMiner(
        {"version": raw("avalon_q_version.json"), "stats": raw("avalon_q_stats.json")}
    ) as miner:
        identity = await driver(miner.port).identify()

    assert (identity.make, identity.model, identity.mac) == ("Avalon", "Avalon Q", "AA:BB:CC:DD:EE:FF")
    assert identity.profile_key == "avalon_q"
    assert miner.requests == [{"command": "version+stats"}]


async def test_access_denied_is_auth_failed_with_the_host() -> None:
    denied = (
        b'{"STATUS":[{"STATUS":"E","When":1,"Code":45,"Msg":"Access denied to \'stats\' command"}],"id":1}'
    )
    async with FakeRpcMiner({"stats": denied, "summary": denied}, multi=False) as miner:
        with pytest.raises(AuthFailed) as caught:
            await driver(miner.port).read()
    assert caught.value.host == "127.0.0.1"


async def test_nothing_but_errors_is_a_protocol_error() -> None:
    async with FakeRpcMiner({"pools": raw("avalon_q_pools.json")}) as miner:
        with pytest.raises(ProtocolError, match="no usable data"):
            await driver(miner.port).read()


async def test_refused_is_unreachable() -> None:
    with pytest.raises(Unreachable, match="refused"):
        await driver(free_port()).read()
