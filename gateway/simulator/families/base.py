"""What a firmware front-end provides to the simulator's servers.

A front-end turns a miner's `Snapshot` into the exact reply shapes of its firmware (modelled on the
real captures in tests/fixtures/devices) and applies control requests through `SimMiner`'s methods.
The servers own sockets, timing and transport faults; front-ends own only the firmware's language.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any, ClassVar, Protocol

from aiohttp import web

from gateway.devices.model import FirmwareFamily
from gateway.simulator.miner import SimMiner

MINER_KEY: web.AppKey[dict[str, SimMiner]] = web.AppKey("miners_by_ip", dict)


class Frontend(Protocol):
    family: ClassVar[FirmwareFamily]
    has_web: ClassVar[bool]
    has_v3: ClassVar[bool]

    def rpc(self, miner: SimMiner, request: Mapping[str, Any]) -> bytes:
        """The reply to one RPC request (JSON text, without the NUL the server appends)."""
        ...

    def web_routes(self) -> list[web.RouteDef]:
        """aiohttp routes of the firmware's web API; handlers find their miner with `miner_of`."""
        ...

    def v3(self, miner: SimMiner, request: Mapping[str, Any]) -> bytes:
        """Whatsminer API v3 reply JSON (the server adds the length prefix)."""
        ...


def miner_of(request: web.Request) -> SimMiner:
    """The virtual miner a web request was addressed to: the local address it arrived on."""
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    miner = request.app[MINER_KEY].get(sockname[0]) if sockname else None
    if miner is None:
        raise web.HTTPNotFound(text="no simulated miner at this address")
    return miner


def dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def status(
    letter: str, code: int, msg: str, description: str, *, when: int | None = None
) -> list[dict[str, Any]]:
    """The CGMiner STATUS block (a one-element list)."""
    return [
        {
            "STATUS": letter,
            "When": int(time.time()) if when is None else when,
            "Code": code,
            "Msg": msg,
            "Description": description,
        }
    ]


def invalid_command(description: str, when: int) -> dict[str, Any]:
    return {"STATUS": status("E", 14, "Invalid command", description, when=when), "id": 1}


def multi_command(
    frontend: Frontend, miner: SimMiner, request: Mapping[str, Any], single: Mapping[str, Any]
) -> bytes:
    """cgminer's `a+b+c` (API >= 3.1): each part's full reply in a one-element list under its name."""
    command = str(request.get("command", ""))
    parts: dict[str, Any] = {}
    for part in dict.fromkeys(command.split("+")):
        body = frontend.rpc(miner, {**single, "command": part})
        parts[part] = [json.loads(body)]
    parts["id"] = 1
    return dumps(parts)
