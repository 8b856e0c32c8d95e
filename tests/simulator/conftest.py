"""Shared pieces for tests against a running simulator: fast physics, drivers, the fault API."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from gateway.devices.driver import BaseDriver, Credentials, DriverContext, Endpoint
from gateway.devices.errors import ProtocolError, Unreachable
from gateway.devices.model import MinerStatus
from gateway.devices.registry import make_driver
from gateway.devices.rpc import RpcLimits
from gateway.simulator.fleet import DEFAULT_CREDENTIALS
from gateway.simulator.miner import SimMiner
from gateway.simulator.physics import PhysicsParams
from gateway.simulator.run import Simulator, SimulatorConfig
from tests.devices.capture import PROFILES

# Mode changes in seconds instead of minutes; no noise so readings can be compared exactly.
FAST = PhysicsParams(noise=0.0, mode_change_s=2.0, restart_dead_s=0.5, restart_unreachable_s=0.3, boot_s=1.0)
IS_ROOT = os.geteuid() == 0
needs_port_80 = pytest.mark.skipif(
    not IS_ROOT, reason="pyasic only talks to web APIs on port 80 (needs root)"
)


def simulator(mix: str, first_address: str, *, miners: int = 2, params: PhysicsParams = FAST) -> Simulator:
    return Simulator(
        SimulatorConfig(
            miners=miners,
            mix=mix,
            first_address=first_address,
            control_port=0,
            web_port=80 if IS_ROOT else 8080,
            params=params,
        ),
        PROFILES,
    )


@pytest.fixture
def driver_for() -> Callable[..., BaseDriver]:
    def make(
        miner: SimMiner, *, deadline_s: float = 2.0, verify_timeout_s: float = 10.0, **overrides: Any
    ) -> BaseDriver:
        username, password = DEFAULT_CREDENTIALS[miner.identity.family]
        context = DriverContext(
            miner_id=miner.ip,
            endpoint=Endpoint(host=miner.ip, web_port=miner.web_port),
            credentials=overrides.pop("credentials", Credentials(username=username, password=password)),
            limits=RpcLimits(deadline_s=deadline_s),
            profiles=PROFILES,
            model_hint=overrides.pop("model_hint", miner.identity.model),
            verify_timeout_s=verify_timeout_s,
            verify_interval_s=0.2,
        )
        return make_driver(miner.identity.family, context)

    return make


class FaultApi:
    """The simulator's control API, used over HTTP exactly as a test harness or the demo would."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession) -> None:
        self.base_url = base_url
        self.session = session

    async def inject(self, ip: str, kind: str, **params: Any) -> None:
        async with self.session.post(
            f"{self.base_url}/miners/{ip}/faults", json={"kind": kind, **params}
        ) as r:
            assert r.status == 200, await r.text()

    async def clear(self, ip: str, kind: str | None = None) -> None:
        url = f"{self.base_url}/miners/{ip}/faults" + (f"/{kind}" if kind else "")
        async with self.session.delete(url) as r:
            assert r.status == 200, await r.text()

    async def state(self, ip: str) -> dict[str, Any]:
        async with self.session.get(f"{self.base_url}/miners/{ip}") as r:
            result: dict[str, Any] = await r.json()
            return result


# Every transport fault a family must map to the error tree (slow: past the tests' 1 s deadline).
TRANSPORT_FAULTS = pytest.mark.parametrize(
    ("kind", "params", "error"),
    [
        ("offline", {}, Unreachable),
        ("hung", {}, Unreachable),
        ("slow", {"delay_s": 3.0}, Unreachable),
        ("reset", {}, Unreachable),
        ("malformed", {}, ProtocolError),
    ],
)


async def assert_transport_fault(
    faults: FaultApi,
    miner: SimMiner,
    make_driver: Callable[..., BaseDriver],
    kind: str,
    params: dict[str, float],
    error: type[Exception],
) -> None:
    """Inject the fault over the control API: the read fails with `error`; cleared, it reads again."""
    await faults.inject(miner.ip, kind, **params)
    with pytest.raises(error):
        await make_driver(miner, deadline_s=1.0).read()
    await faults.clear(miner.ip)
    assert (await make_driver(miner).read()).status is MinerStatus.MINING


EVIL_POOL = "stratum+tcp://evil.example:3333"


async def inject_condition_faults(faults: FaultApi, miner: SimMiner, *, dead_slot: int) -> None:
    """Every condition fault at once (dead board, stopped fans, +25 C, a foreign pool, no accepted
    shares), then ten minutes of physics pass at the next read."""
    await faults.inject(miner.ip, "dead_board", slot=dead_slot)
    await faults.inject(miner.ip, "fan_stop")
    await faults.inject(miner.ip, "overheat", extra_c=25.0)
    await faults.inject(miner.ip, "pool_changed", url=EVIL_POOL)
    await faults.inject(miner.ip, "stale_shares")
    miner.physics.updated_at -= 600


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
