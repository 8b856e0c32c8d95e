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
v2 timeout does not try v3: a hung controller would then cost two deadlines every poll. Nor does a
connection reset: v2 is there (it accepted us) and broke mid-exchange, which is a fault of that API to
report and retry, not a sign it is switched off. The choice is remembered per driver and forgotten as
soon as that API becomes unreachable.

Control goes over whichever API the reads use (`whatsminer_control`: v2's AES-encrypted privileged
commands, or v3's signed `set.*`), with the admin password from the inventory's credentials ("admin" /
v3 "super", the factory values, when none is stored). Every control is confirmed from the miner's own
report: sleep by the status turning SLEEPING (btmineroff / v3 `working` false with no hashrate), wake
by it leaving SLEEPING, a mode by the firmware's configured power mode (v2 summary "Power Mode", v3
`get.miner.setting`), a power cap by the reported power limit, the LED by its reported state, a reboot
by the uptime going down. Sleep is `power_off` (btminer stops, the controller stays up and answers);
MicroBT has no deeper "sleep" than that.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar, Literal

from gateway.devices.driver import BaseDriver, DriverContext
from gateway.devices.errors import DeviceError, Unreachable
from gateway.devices.model import Capabilities, FirmwareFamily, MinerStatus, Mode
from gateway.devices.parsers.common import Capture, FamilyParser, integer, section, status_entry
from gateway.devices.parsers.whatsminer import PARSER
from gateway.devices.parsers.whatsminer_v3 import INFO
from gateway.devices.whatsminer_control import LED_AUTO, V2Writer, V3Writer, Writer
from gateway.devices.whatsminer_v3 import V3Client

Api = Literal["v2", "v3"]
Fetch = Callable[[], Awaitable[dict[str, Any]]]

_V2_READ = ("summary", "edevs", "pools")
_V3_SECTIONS = ("summary", "edevs", "pools")
_MINER_INFO_FIELDS = "mac,hostname,minersn"
_INVALID_COMMAND = 14
# Factory passwords: API v2's "admin" user, API v3's "super" account.
DEFAULT_V2_PASSWORD = "admin"
DEFAULT_V3_PASSWORD = "super"
FIRMWARE_MODES = frozenset({Mode.LOW, Mode.NORMAL, Mode.HIGH})  # btminer's three power modes


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
            if isinstance(v2_error.__cause__, TimeoutError | ConnectionResetError):
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

    # --- control -----------------------------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        """btminer can power off/on, switch low/normal/high power modes, cap its power, reboot and set
        its LED on every model. The profile narrows that: its sleep method; its power-target window for
        stock firmware (without one a target cannot be checked, so it is not offered); and the modes it
        has figures for (the gateway plans and estimates per mode, so a mode without figures is not
        offered - the M30S+ profile, for one, lists only normal)."""
        profile = self.profile
        can_sleep = profile is None or profile.sleep_method == "whatsminer_power_off"
        modes = set(FIRMWARE_MODES & set(profile.modes)) if profile else set(FIRMWARE_MODES)
        if can_sleep:
            modes.add(Mode.SLEEP)
        return Capabilities(
            sleep=can_sleep,
            wake=can_sleep,
            set_power=self.power_window() is not None,
            set_mode=bool(modes),
            reboot=True,
            blink=True,
            modes=frozenset(modes),
        )

    def power_window(self) -> tuple[int, int] | None:
        target = self.profile.power_target if self.profile else None
        if target is None or "stock" not in target.firmware:
            return None
        return target.min_w, target.max_w

    async def sleep(self) -> None:
        self.require("sleep")
        await (await self._writer()).power(False)
        await self.read_back(lambda s: s.status is MinerStatus.SLEEPING, "sleep")

    async def wake(self) -> None:
        self.require("wake")
        await (await self._writer()).power(True)
        await self.read_back(lambda s: s.status is not MinerStatus.SLEEPING, "wake")

    async def set_mode(self, mode: Mode) -> None:
        """Set the power mode; a sleeping miner is woken too (a mode means "mine like this")."""
        self.require("set_mode")
        if mode not in self.capabilities.modes:
            raise self._unsupported(f"mode {mode.value}")
        if mode is Mode.SLEEP:
            await self.sleep()
            return
        action = f"set_mode {mode.value}"
        asleep = (await self.read()).status is MinerStatus.SLEEPING
        writer = await self._writer()
        await writer.power_mode(mode)
        if asleep:
            await writer.power(True)
        await self.confirm(writer.configured_mode, lambda configured: configured is mode, action)
        if asleep:
            await self.read_back(lambda s: s.status is not MinerStatus.SLEEPING, action)

    async def set_power(self, watts: int) -> None:
        """Cap the power (btminer restarts its mining process to apply it). Checked against the
        profile's window before any I/O: the firmware silently clamps what it does not like."""
        self.require("set_power")
        window = self.power_window()
        if window is not None and (isinstance(watts, bool) or not window[0] <= watts <= window[1]):
            raise ValueError(
                f"power target {watts} W is outside this model's range {window[0]}-{window[1]} W"
            )
        await (await self._writer()).power_limit(watts)
        await self.read_back(
            lambda s: s.power_limit_w is not None and round(s.power_limit_w) == watts, f"set_power {watts}"
        )

    async def reboot(self) -> None:
        """Reboot the controller; confirmed when the reported uptime is below what it was before (the
        write's reply may be lost as the controller goes down: the read-back decides)."""
        self.require("reboot")
        before = (await self.read()).uptime_s
        writer = await self._writer()
        with contextlib.suppress(Unreachable):
            await writer.reboot()
        await self.read_back(
            lambda s: s.uptime_s is not None and (before is None or s.uptime_s < before), "reboot"
        )

    async def blink(self, on: bool) -> None:
        self.require("blink")
        writer = await self._writer()
        await writer.led(on)
        await self.confirm(
            writer.led_state,
            lambda state: state is not None and (state != LED_AUTO) is on,
            "blink on" if on else "blink off",
        )

    async def _writer(self) -> Writer:
        """The writer for the API the reads use (learned by a read when not known yet)."""
        if self.api is None:
            await self.fetch()
        password = self.ctx.credentials.password
        if self.api == "v3":
            return V3Writer(self.v3, password or DEFAULT_V3_PASSWORD, self.ctx.wall_clock)
        return V2Writer(self.rpc, password or DEFAULT_V2_PASSWORD)


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
