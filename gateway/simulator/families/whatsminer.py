"""Whatsminer (MicroBT btminer) front-end: API v2 on 4028 and API v3 on 4433 (protocols.md §3).

API v2 dispatch, as the firmware behaves in the captures and the API doc:
* cgminer-style reports under `"command"`: summary, devs, edevs, pools, devdetails, and their `a+b+c`
  multi-command (pyasic's BTMinerV2 reads `summary+devs+pools` and gets nothing without it). The same
  reports asked under `"cmd"` are refused with Code 24 "Missing JSON 'command'"
  (m31s_multicommand_with_cmd_key_error.json). `version` is not a btminer command: Code 14.
* btminer-native reads (get_version, get_psu, status, get_miner_info, get_error_code, get_token) under
  either key, with flat replies.
* Write commands only as `{"enc": 1, "data": ...}` (whatsminer_privileged); sent in clear they are
  refused (45).
* A firmware dated 2024-11 or later has API v2 switched off: everything on 4028 is "invalid command"
  and clients must use 4433. The fleet's default firmware (2024-05) keeps v2, so pyasic picks BTMinerV2.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from aiohttp import web

from gateway.devices.model import FirmwareFamily
from gateway.simulator.families import whatsminer_privileged as privileged
from gateway.simulator.families import whatsminer_v3
from gateway.simulator.families.base import dumps, invalid_command, multi_command
from gateway.simulator.families.whatsminer_replies import DESCRIPTION, cg_error, native_read, report
from gateway.simulator.families.whatsminer_state import v2_enabled
from gateway.simulator.miner import SimMiner

REPORTS = frozenset({"summary", "devs", "edevs", "pools", "devdetails"})


class WhatsminerFrontend:
    family: ClassVar[FirmwareFamily] = FirmwareFamily.WHATSMINER
    has_web: ClassVar[bool] = False  # LuCI is not simulated; pyasic and our driver need only the APIs
    has_v3: ClassVar[bool] = True

    def rpc(self, miner: SimMiner, request: Mapping[str, Any]) -> bytes:
        when = int(miner.clock())
        if not v2_enabled(miner):
            return dumps(invalid_command(DESCRIPTION, when))
        if request.get("__invalid_json__"):
            return dumps(cg_error(23, "Invalid JSON", when))
        if "enc" in request:
            return privileged.encrypted(miner, request)
        command = str(request.get("command") or "")
        under_cmd = not command
        name = command or str(request.get("cmd") or "")
        parts = name.split("+")
        if under_cmd and any(part in REPORTS for part in parts):
            return dumps(cg_error(24, "Missing JSON 'command'", when))
        if len(parts) > 1:
            return multi_command(self, miner, {"command": name}, {})
        if name == "get_token":
            return privileged.get_token(miner)
        if name in privileged.PRIVILEGED:
            return privileged.denied_in_clear(miner)
        snap = miner.snapshot()
        reply = report(name, miner, snap) or native_read(name, miner, snap, request)
        return dumps(reply if reply is not None else invalid_command(DESCRIPTION, when))

    def v3(self, miner: SimMiner, request: Mapping[str, Any]) -> bytes:
        return whatsminer_v3.handle(miner, request)

    def web_routes(self) -> list[web.RouteDef]:
        return []


FRONTEND = WhatsminerFrontend()
