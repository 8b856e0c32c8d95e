"""Sockets of the simulated fleet: CGMiner RPC (4028), web APIs (80, or an unprivileged port), and
Whatsminer API v3 (4433), each bound on the miner's own loopback address.

Transport faults live here because they are about sockets, not firmware: an `offline` miner's
listeners are closed (connections are refused, as with a powered-off controller), `hung` reads the
request and never answers, `slow` answers late, `reset` sends part of the reply and then a TCP RST,
`malformed` corrupts the reply. A rebooting miner drops connections until it has booted.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import socket
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from gateway.devices.model import FirmwareFamily
from gateway.simulator.families.base import MINER_KEY, Frontend
from gateway.simulator.faults import FaultKind
from gateway.simulator.miner import SimMiner

log = logging.getLogger(__name__)

RPC_PORT = 4028
V3_PORT = 4433
FALLBACK_WEB_PORT = 8080


def corrupt(reply: bytes) -> bytes:
    """A malformed reply: cut mid-structure, with a stray fragment, as a crashing firmware sends."""
    return reply[: max(1, len(reply) // 2)] + b'}{"STATUS":,'


async def _transport_fault(
    miner: SimMiner, writer: asyncio.StreamWriter, reply: bytes, *, frame: bytes = b""
) -> bytes | None:
    """Apply transport faults; return the bytes to send, or None when the fault already answered.
    `frame` is the protocol's header (v3's length prefix): a reset cuts the framed reply, as a real
    connection drop would, rather than sending a fragment without its header."""
    if miner.rpc_down():
        writer.transport.abort()
        return None
    if miner.has(FaultKind.HUNG):
        await asyncio.sleep(3600)
        return None
    if miner.has(FaultKind.SLOW):
        await asyncio.sleep(float(miner.faults[FaultKind.SLOW].params["delay_s"]))
    if miner.has(FaultKind.RESET):
        writer.write(frame + reply[: max(1, len(reply) // 3)])
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
        return None
    if miner.has(FaultKind.MALFORMED):
        return corrupt(reply)
    return reply


def _decode_request(data: bytes) -> Mapping[str, Any]:
    """CGMiner accepts JSON (`{"command":..}`) or plain `cmd|param`."""
    text = data.strip(b"\x00 \r\n").decode("utf-8", errors="replace")
    if text.startswith("{"):
        try:
            decoded = json.loads(text)
        except ValueError:
            return {"__invalid_json__": True}
        return decoded if isinstance(decoded, dict) else {"__invalid_json__": True}
    command, _, parameter = text.partition("|")
    return {"command": command, "parameter": parameter} if parameter else {"command": command}


@dataclass
class MinerListeners:
    servers: list[asyncio.Server] = field(default_factory=list)
    web_sites: list[web.TCPSite] = field(default_factory=list)


class FleetServers:
    """Starts and stops every socket of a fleet, and re-opens a miner's after an `offline` fault."""

    def __init__(self, frontends: Mapping[FirmwareFamily, Frontend], *, web_port: int = 80) -> None:
        self.frontends = frontends
        self.requested_web_port = web_port
        self.web_port = web_port
        self.miners: dict[str, SimMiner] = {}
        self._listeners: dict[str, MinerListeners] = {}
        self._web_runners: dict[FirmwareFamily, web.AppRunner] = {}
        self._connections: set[asyncio.Task[Any]] = set()

    # --- lifecycle -----------------------------------------------------------------------------------

    async def start(self, miners: list[SimMiner]) -> None:
        self.web_port = await self._choose_web_port(miners)
        for family, frontend in self.frontends.items():
            if frontend.has_web:
                app = web.Application(middlewares=[web_faults])
                app[MINER_KEY] = self.miners
                app.add_routes(frontend.web_routes())
                runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
                await runner.setup()
                self._web_runners[family] = runner
        for miner in miners:
            miner.web_port = self.web_port
            self.miners[miner.ip] = miner
            await self.open(miner)

    async def _choose_web_port(self, miners: list[SimMiner]) -> int:
        """Port 80 needs root (or CAP_NET_BIND_SERVICE). Without it, serve the web APIs on an
        unprivileged port and say so: drivers take per-miner port overrides from the inventory."""
        if not miners or self.requested_web_port >= 1024:
            return self.requested_web_port
        probe = socket.socket()
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the real listeners will
        try:
            probe.bind((miners[0].ip, self.requested_web_port))
        except PermissionError:
            log.warning(
                "cannot bind port %d without root: serving web APIs on port %d instead",
                self.requested_web_port,
                FALLBACK_WEB_PORT,
            )
            return FALLBACK_WEB_PORT
        finally:
            probe.close()
        return self.requested_web_port

    async def open(self, miner: SimMiner) -> None:
        if miner.ip in self._listeners:
            return
        frontend = self.frontends[miner.identity.family]
        listeners = MinerListeners()
        listeners.servers.append(
            await asyncio.start_server(
                functools.partial(self._serve_rpc, miner), miner.ip, RPC_PORT, reuse_address=True
            )
        )
        if frontend.has_v3:
            listeners.servers.append(
                await asyncio.start_server(
                    functools.partial(self._serve_v3, miner), miner.ip, V3_PORT, reuse_address=True
                )
            )
        if frontend.has_web:
            site = web.TCPSite(
                self._web_runners[miner.identity.family], miner.ip, self.web_port, reuse_address=True
            )
            await site.start()
            listeners.web_sites.append(site)
        self._listeners[miner.ip] = listeners

    async def close(self, miner: SimMiner) -> None:
        listeners = self._listeners.pop(miner.ip, None)
        if listeners is None:
            return
        for server in listeners.servers:
            server.close()
        for site in listeners.web_sites:
            await site.stop()
        for server in listeners.servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)

    async def stop(self) -> None:
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        for miner in list(self.miners.values()):
            await self.close(miner)
        for runner in self._web_runners.values():
            await runner.cleanup()

    async def sync_offline(self, miner: SimMiner) -> None:
        """Make the listeners match the `offline` fault."""
        if miner.has(FaultKind.OFFLINE):
            await self.close(miner)
        else:
            await self.open(miner)

    # --- protocol loops ------------------------------------------------------------------------------

    def _track(self) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
            task.add_done_callback(self._connections.discard)

    async def _serve_rpc(
        self, miner: SimMiner, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._track()
        try:
            data = await asyncio.wait_for(reader.read(65536), 10.0)
            if not data:
                return
            request = _decode_request(data)
            reply = self.frontends[miner.identity.family].rpc(miner, request)
            out = await _transport_fault(miner, writer, reply)
            if out is None:
                return
            writer.write(out if miner.quirks.no_nul else out + b"\x00")
            await writer.drain()
        except (ConnectionError, TimeoutError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _serve_v3(
        self, miner: SimMiner, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Whatsminer API v3: 4-byte little-endian length, then JSON; several requests per connection."""
        self._track()
        frontend = self.frontends[miner.identity.family]
        try:
            while True:
                header = await asyncio.wait_for(reader.readexactly(4), 10.0)
                (length,) = struct.unpack("<I", header)
                if length > 1 << 20:
                    return
                body = await reader.readexactly(length)
                try:
                    request = json.loads(body)
                except ValueError:
                    request = {"__invalid_json__": True}
                reply = frontend.v3(miner, request if isinstance(request, dict) else {})
                out = await _transport_fault(miner, writer, reply, frame=struct.pack("<I", len(reply)))
                if out is None:
                    return
                writer.write(struct.pack("<I", len(out)) + out)
                await writer.drain()
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


@web.middleware
async def web_faults(request: web.Request, handler: Any) -> web.StreamResponse:
    """Transport faults for the web APIs, mirroring the RPC ones."""
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    miner = request.app[MINER_KEY].get(sockname[0]) if sockname else None
    if miner is not None:
        if miner.booting() and request.transport is not None:
            request.transport.abort()  # a rebooting controller has no web server yet
            raise web.HTTPServiceUnavailable()
        if miner.has(FaultKind.HUNG):
            await asyncio.sleep(3600)
        if miner.has(FaultKind.SLOW):
            await asyncio.sleep(float(miner.faults[FaultKind.SLOW].params["delay_s"]))
        if miner.has(FaultKind.RESET) and request.transport is not None:
            request.transport.abort()
            raise web.HTTPServiceUnavailable()
    response: web.StreamResponse = await handler(request)
    if (
        miner is not None
        and miner.has(FaultKind.MALFORMED)
        and isinstance(response, web.Response)
        and response.body
    ):
        body = response.body if isinstance(response.body, bytes) else b""
        response.body = corrupt(body)
    return response
