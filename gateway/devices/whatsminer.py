"""Whatsminer (MicroBT btminer) backend: API v2 on the RPC port, API v3 on `endpoint.v3_port`.

What to fetch, and why:
* v2 read: `summary+edevs+pools` as one cgminer multi-command (the client falls back to one connection
  per command on firmwares that refuse it); `devs` when `edevs` is unknown (2021 M20S firmware), the
  per-chip `stats` when neither gives boards (2019 firmware); the native `{"cmd":"status"}` for the
  `btmineroff` flag. Note the key: btminer answers `{"cmd": "summary+..."}` with Code 24 "Missing JSON
  'command'" (m31s_multicommand_with_cmd_key_error.json) - cgminer-style commands need "command".
* v2 identity adds `get_version` (firmware, API), `devdetails` (the model: v2 has it nowhere else) and
  `get_miner_info` (MAC, hostname, serial; an explicit field list, as firmwares differ without one).
* v3: `get.device.info` (model, firmware, serials, the `working` flag) and one
  `get.miner.status summary+edevs+pools`.

Which API: v2 first. v3 when v2 is refused or closed without a reply (2024+ firmwares can turn the v2
API off), or when v2 says so (its `summary` is "invalid command", or `get_version` reports API 3.x). A
v2 timeout does not try v3: a hung controller would then cost two deadlines every poll. The choice is
remembered per driver and forgotten as soon as that API becomes unreachable.

Control (`power_off`/`power_on`, power modes and limits) needs v2's AES token dance or v3's signed `set.*`
commands and is a later step; until then the BaseDriver methods raise Unsupported before any I/O.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar, Literal

from gateway.devices.driver import BaseDriver, DriverContext
from gateway.devices.errors import DeviceError, Unreachable
from gateway.devices.model import FirmwareFamily
from gateway.devices.parsers.common import Capture, FamilyParser, integer, section, status_entry
from gateway.devices.parsers.whatsminer import PARSER
from gateway.devices.parsers.whatsminer_v3 import INFO
from gateway.devices.whatsminer_v3 import V3Client

Api = Literal["v2", "v3"]
Fetch = Callable[[], Awaitable[dict[str, Any]]]

_V2_READ = ("summary", "edevs", "pools")
_V3_SECTIONS = ("summary", "edevs", "pools")
_MINER_INFO_FIELDS = "mac,hostname,minersn"
_INVALID_COMMAND = 14


class WhatsminerDriver(BaseDriver):
    family: ClassVar[FirmwareFamily] = FirmwareFamily.WHATSMINER
    parser: ClassVar[FamilyParser] = PARSER

    def __init__(self, ctx: DriverContext) -> None:
        super().__init__(ctx)
        self.v3 = V3Client(ctx.endpoint.host, ctx.endpoint.v3_port, ctx.limits)
        self.api: Api | None = None  # learned on the first successful exchange

    async def fetch(self) -> Capture:
        return await self._choose_api(self._read_v2, self._read_v3)

    async def fetch_identity(self) -> Capture:
        return await self._choose_api(self._identity_v2, self._read_v3)

    # --- API selection ----------------------------------------------------------------------------

    async def _choose_api(self, v2: Fetch, v3: Fetch) -> Capture:
        if self.api == "v3":
            return await self._remembered(v3)
        try:
            capture = await v2()
        except Unreachable as v2_error:
            if isinstance(v2_error.__cause__, TimeoutError):
                self.api = None
                raise
            return await self._fall_back_to_v3(v3, v2_error)
        if _v2_points_to_v3(capture):
            try:
                result = await v3()
            except Unreachable:
                return capture  # v2's own answer (e.g. "invalid command") is the better explanation
            self.api = "v3"
            return result
        self.api = "v2"
        return capture

    async def _remembered(self, fetch: Fetch) -> Capture:
        try:
            return await fetch()
        except Unreachable:
            self.api = None  # next poll starts from v2 again (firmware downgrade, API switched back)
            raise

    async def _fall_back_to_v3(self, v3: Fetch, v2_error: Unreachable) -> Capture:
        try:
            capture = await v3()
        except Unreachable as v3_error:
            self.api = None
            raise Unreachable(
                f"API v2 {v2_error.args[0]}; API v3 {v3_error.args[0]}",
                host=self.host,
                raw=v3_error.raw or v2_error.raw,
            ) from v3_error
        self.api = "v3"
        return capture

    # --- API v2 -----------------------------------------------------------------------------------

    async def _read_v2(self) -> dict[str, Any]:
        capture: dict[str, Any] = dict(await self.rpc.multi(_V2_READ))
        if not _has_section(capture.get("edevs"), "DEVS"):
            devs = await _optional(self.rpc.command("devs"))
            if _has_section(devs, "DEVS"):
                capture["devs"] = devs
            elif (stats := await _optional(self.rpc.command("stats"))) is not None:
                capture["stats"] = stats
        if (status := await _optional(self.rpc.request({"cmd": "status"}))) is not None:
            capture["status"] = status
        return capture

    async def _identity_v2(self) -> dict[str, Any]:
        capture: dict[str, Any] = {"summary": await self.rpc.command("summary")}
        optional: Mapping[str, Callable[[], Awaitable[Any]]] = {
            "get_version": lambda: self.rpc.request({"cmd": "get_version"}),
            "devdetails": lambda: self.rpc.command("devdetails"),
            "get_miner_info": lambda: self.rpc.request({"cmd": "get_miner_info", "info": _MINER_INFO_FIELDS}),
        }
        for key, call in optional.items():  # in sequence: small controllers dislike parallel sockets
            if (reply := await _optional(call())) is not None:
                capture[key] = reply
        return capture

    # --- API v3 -----------------------------------------------------------------------------------

    async def _read_v3(self) -> dict[str, Any]:
        capture: dict[str, Any] = {INFO: await self.v3.request({"cmd": "get.device.info"})}
        capture.update(await self.v3.miner_status(_V3_SECTIONS))
        return capture


async def _optional(call: Awaitable[Any]) -> Any:
    """A command whose failure costs only its own data (the parser notes what is missing)."""
    try:
        return await call
    except DeviceError:
        return None


def _has_section(reply: Any, name: str) -> bool:
    return bool(section(reply, name))


def _v2_points_to_v3(capture: Mapping[str, Any]) -> bool:
    """v2 answered but says the real API is elsewhere: `summary` unknown, or an API version of 3.x."""
    entry = status_entry(capture.get("summary"))
    if str(entry.get("STATUS", "S")) in {"E", "F"} and integer(entry.get("Code")) == _INVALID_COMMAND:
        return True
    version = capture.get("get_version")
    msg = version.get("Msg") if isinstance(version, Mapping) else None
    api = str(msg.get("api_ver", "")) if isinstance(msg, Mapping) else ""
    return api.removeprefix("whatsminer v").startswith("3")
