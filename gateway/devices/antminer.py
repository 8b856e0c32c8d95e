"""Stock Antminer backend (bmminer / "cgminer 1.0.0", S9 through S21): what to fetch, and from where.

Reads go to the CGMiner RPC on 4028 first: one `summary+stats+pools+version` multi-command (the client
falls back to one connection per command on firmwares without multi-command support). When the RPC is
refused, times out, denies us or answers nothing usable — S21 units are often shipped or configured
with the RPC closed — the same readings come from the web CGI (`stats.cgi`, `summary.cgi`, `pools.cgi`)
behind HTTP Digest auth (root/root unless the site changed it).

Stock readings never say "asleep"; only `get_miner_conf.cgi` does. It is fetched only when a miner is
not hashing — the one case where sleep and fault look alike — so a hashing fleet costs one RPC round trip
per miner per poll, not an extra digest handshake.

Control goes through the CGI too: `set_miner_conf.cgi` with the integer `miner-mode` (0 normal, 1 sleep,
3 low power) for sleep, wake and mode; `blink.cgi` for the fault light; `reboot.cgi`. The firmware answers
`M000 OK` even when it ignores a write, so each control is confirmed by reading the state back from the
firmware's own read endpoint (`get_miner_conf.cgi`, `get_blink_status.cgi`, or uptime for a reboot).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from gateway.devices.driver import BaseDriver, DriverContext
from gateway.devices.errors import AuthFailed, DeviceError, ProtocolError
from gateway.devices.model import Capabilities, FirmwareFamily, Mode
from gateway.devices.parsers.antminer import FETCH_ERRORS_KEY, PARSER, has_readings, is_hashing
from gateway.devices.parsers.common import Capture, FamilyParser, first_section
from gateway.devices.rpc import gather_optional
from gateway.devices.web import WebClient

RPC_READ = ("summary", "stats", "pools", "version")
WEB_STATS = "stats.cgi"
WEB_OPTIONAL = ("summary.cgi", "pools.cgi")
WEB_CONF = "get_miner_conf.cgi"
WEB_SYSTEM = "get_system_info.cgi"
DEFAULT_WEB_CREDENTIALS = ("root", "root")  # Bitmain's factory default, which many sites keep
# set_miner_conf `miner-mode` (an integer on write) and get_miner_conf `bitmain-work-mode` (a string on read)
MINER_MODE = {Mode.NORMAL: 0, Mode.SLEEP: 1, Mode.LOW: 3}
WORK_MODE_READ = {str(code): mode for mode, code in MINER_MODE.items()}


class AntminerDriver(BaseDriver):
    family: ClassVar[FirmwareFamily] = FirmwareFamily.ANTMINER
    parser: ClassVar[FamilyParser] = PARSER

    def __init__(self, ctx: DriverContext) -> None:
        super().__init__(ctx)
        user = ctx.credentials.username or DEFAULT_WEB_CREDENTIALS[0]
        password = ctx.credentials.password
        self.web = WebClient(
            ctx.endpoint.host,
            port=ctx.endpoint.web_port,
            scheme=ctx.endpoint.web_scheme,
            digest=(user, DEFAULT_WEB_CREDENTIALS[1] if password is None else password),
            session=ctx.session,
            limits=ctx.limits,
        )

    async def fetch(self) -> Capture:
        notes: list[str] = []
        capture: dict[str, Any] = {}
        rpc_error: DeviceError | None = None
        try:
            capture.update(await self.rpc.multi(RPC_READ))
        except DeviceError as err:
            rpc_error = err
        if not has_readings(capture):
            notes.append(f"rpc: {rpc_error or 'no usable stats or summary'}; read from the web CGI instead")
            try:
                capture[WEB_STATS] = await self._cgi(WEB_STATS)
            except DeviceError as web_error:
                if capture and not isinstance(web_error, AuthFailed):
                    return capture  # RPC error replies: the parser raises the firmware's own error
                raise _worse(rpc_error, web_error) from web_error
            capture.update(await self._optional(WEB_OPTIONAL, notes))
        if not is_hashing(capture):
            capture.update(await self._optional((WEB_CONF,), notes))
        if notes:
            capture[FETCH_ERRORS_KEY] = notes
        return capture

    async def fetch_identity(self) -> Capture:
        """RPC `version` names the model and firmware; `get_system_info.cgi` adds MAC, serial, hostname.
        Either alone identifies the miner. A web AuthFailed is ignored when the RPC answered (the identity
        is still right, only less complete), and raised when the web is all there is."""
        capture: dict[str, Any] = {}
        rpc_error: DeviceError | None = None
        try:
            capture["version"] = await self.rpc.command("version")
        except DeviceError as err:
            rpc_error = err
        try:
            capture[WEB_SYSTEM] = await self._cgi(WEB_SYSTEM)
        except DeviceError as web_error:
            if rpc_error is not None or not first_section(capture.get("version"), "VERSION"):
                raise _worse(rpc_error, web_error) from web_error
        return capture

    # --- control -----------------------------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        """Stock firmware sleeps and changes mode through miner-mode (S17 and later; the S9's stock
        firmware cannot), has no power target, and always has a fault light and reboot."""
        profile = self.profile
        can_sleep = profile is None or profile.sleep_method == "antminer_miner_mode"
        modes = set(profile.modes) & set(MINER_MODE) if profile else {Mode.NORMAL, Mode.SLEEP}
        if not can_sleep:
            modes.discard(Mode.SLEEP)
        return Capabilities(
            sleep=can_sleep,
            wake=can_sleep,
            set_power=False,
            set_mode=len(modes - {Mode.SLEEP}) > 1 or can_sleep,
            reboot=True,
            blink=True,
            modes=frozenset(modes),
        )

    async def sleep(self) -> None:
        self.require("sleep")
        await self._write_mode(Mode.SLEEP, "sleep")

    async def wake(self) -> None:
        self.require("wake")
        await self._write_mode(Mode.NORMAL, "wake")

    async def set_mode(self, mode: Mode) -> None:
        self.require("set_mode")
        if mode not in self.capabilities.modes:
            raise self._unsupported(f"mode {mode.value}")
        await self._write_mode(mode, f"set_mode {mode.value}")

    async def _write_mode(self, mode: Mode, action: str) -> None:
        # Field reports (S19 XP): only an integer miner-mode sent as text/plain is honoured.
        await self._post_cgi("set_miner_conf.cgi", {"miner-mode": MINER_MODE[mode]})
        await self.confirm(self.work_mode, lambda current: current is mode, action)

    async def work_mode(self) -> Mode | None:
        """The configured mode, as the firmware reports it back."""
        conf = await self._cgi(WEB_CONF)
        raw = conf.get("bitmain-work-mode") if isinstance(conf, Mapping) else None
        return WORK_MODE_READ.get(str(raw).strip()) if raw is not None else None

    async def blink(self, on: bool) -> None:
        self.require("blink")
        await self._post_cgi("blink.cgi", {"blink": "true" if on else "false"})
        await self.confirm(self.blinking, lambda state: state is on, "blink on" if on else "blink off")

    async def blinking(self) -> bool | None:
        status = await self._cgi("get_blink_status.cgi")
        value = status.get("blink") if isinstance(status, Mapping) else None
        return value if isinstance(value, bool) else {"true": True, "false": False}.get(str(value).lower())

    async def reboot(self) -> None:
        """Reboot, then wait until the miner answers again with a fresh uptime."""
        self.require("reboot")
        before = (await self.read()).uptime_s
        await self.web.request("POST", "/cgi-bin/reboot.cgi")
        await self.read_back(
            lambda sample: sample.uptime_s is not None and (before is None or sample.uptime_s < before),
            "reboot",
        )

    async def _post_cgi(self, name: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
        reply = await self.web.request(
            "POST",
            f"/cgi-bin/{name}",
            data=json.dumps(body),
            headers={"Content-Type": "text/plain;charset=UTF-8"},
        )
        try:
            decoded = json.loads(reply.body) if reply.body.strip() else {}
        except ValueError as err:
            raise ProtocolError(f"{name}: reply is not JSON", host=self.host, raw=reply.body) from err
        if not isinstance(decoded, Mapping):
            raise ProtocolError(f"{name}: unexpected reply", host=self.host, raw=reply.body)
        code = str(decoded.get("code", ""))
        # M000/B000/B100 are the success codes; the firmware says them even when it ignored the write.
        if reply.status >= 400 or (code and code not in {"M000", "B000", "B100"}):
            raise ProtocolError(f"{name}: firmware refused: {decoded}", host=self.host, raw=reply.body)
        return decoded

    async def _cgi(self, name: str) -> Any:
        return await self.web.get_json(f"/cgi-bin/{name}")

    async def _optional(self, names: tuple[str, ...], notes: list[str]) -> dict[str, Any]:
        replies, failed = await gather_optional({name: self._cgi(name) for name in names})
        notes.extend(f"{name}: {err}" for name, err in failed.items())
        return replies


def _worse(rpc_error: DeviceError | None, web_error: DeviceError) -> DeviceError:
    """The error to report when neither API gave readings. The web's AuthFailed wins (the miner is there
    and refuses our credentials: a person must act); otherwise the RPC's error, which says why the
    primary API failed, with the web's failure in the message."""
    if isinstance(web_error, AuthFailed) or rpc_error is None:
        return web_error
    message = f"rpc: {rpc_error.args[0]}; web: {web_error.args[0]}"
    return type(rpc_error)(message, host=rpc_error.host or web_error.host, raw=rpc_error.raw)
