"""Run a simulated site: build the fleet, open its sockets and the control API, write the inventory.

The inventory file is what lets the rest of the gateway find the fleet without guessing: it lists
each miner's address, firmware, model and ports (the web port differs when we could not bind 80).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from gateway.devices.model import FirmwareFamily
from gateway.devices.profiles import ProfileCatalog
from gateway.simulator.control_api import control_app
from gateway.simulator.families import frontends_for
from gateway.simulator.fleet import build_fleet, parse_mix
from gateway.simulator.miner import SimMiner
from gateway.simulator.physics import PhysicsParams
from gateway.simulator.servers import RPC_PORT, V3_PORT, FleetServers

log = logging.getLogger(__name__)
DEFAULT_CONTROL_PORT = 8479


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulatorConfig:
    miners: int
    mix: str
    seed: int = 1
    first_address: str = "127.10.0.1"
    web_port: int = 80
    control_host: str = "127.0.0.1"
    control_port: int = DEFAULT_CONTROL_PORT
    inventory_path: Path | None = None
    params: PhysicsParams | None = None


class Simulator:
    def __init__(
        self, config: SimulatorConfig, profiles: ProfileCatalog, clock: Callable[[], float] = time.time
    ):
        self.config = config
        mix = parse_mix(config.mix, profiles)
        self.miners: list[SimMiner] = build_fleet(
            count=config.miners,
            mix=mix,
            seed=config.seed,
            first_address=config.first_address,
            clock=clock,
            params=config.params,
        )
        families = {m.identity.family for m in self.miners}
        self.servers = FleetServers(frontends_for(families), web_port=config.web_port)
        self._control: web.AppRunner | None = None
        self.control_port = config.control_port

    async def start(self) -> None:
        await self.servers.start(self.miners)
        self._control = web.AppRunner(control_app(self.servers), access_log=None, shutdown_timeout=0.5)
        await self._control.setup()
        site = web.TCPSite(self._control, self.config.control_host, self.config.control_port)
        await site.start()
        self.control_port = self._control.addresses[0][1]
        if self.config.inventory_path is not None:
            write_inventory(self.config.inventory_path, self.inventory())

    async def stop(self) -> None:
        if self._control is not None:
            await self._control.cleanup()
        await self.servers.stop()

    @property
    def control_url(self) -> str:
        return f"http://{self.config.control_host}:{self.control_port}"

    def inventory(self) -> list[dict[str, Any]]:
        return [
            {
                "ip": m.ip,
                "family": m.identity.family.value,
                "make": m.identity.make,
                "model": m.identity.model,
                "rpc_port": RPC_PORT,
                "web_port": self.servers.web_port,
                "v3_port": V3_PORT if m.identity.family is FirmwareFamily.WHATSMINER else None,
                "username": m.username,
                "password": m.password,
            }
            for m in self.miners
        ]

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def write_inventory(path: Path, rows: list[dict[str, Any]]) -> None:
    """Written atomically: a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(rows, indent=1))
    tmp.replace(path)


async def serve_forever(simulator: Simulator, stop: asyncio.Event) -> None:
    await simulator.start()
    try:
        await stop.wait()
    finally:
        await simulator.stop()
