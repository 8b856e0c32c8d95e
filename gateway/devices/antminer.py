"""Stock Antminer backend (bmminer / "cgminer 1.0.0", S9 through S21): what to fetch, and from where.

Reads go to the CGMiner RPC on 4028 first: one `summary+stats+pools+version` multi-command (the client
falls back to one connection per command on firmwares without multi-command support). When the RPC is
refused, times out, denies us or answers nothing usable — S21 units are often shipped or configured
with the RPC closed — the same readings come from the web CGI (`stats.cgi`, `summary.cgi`, `pools.cgi`)
behind HTTP Digest auth (root/root unless the site changed it).

Stock readings never say "asleep"; only `get_miner_conf.cgi` does. It is fetched only when a miner is
not hashing — the one case where sleep and fault look alike — so a hashing fleet costs one RPC round trip
per miner per poll, not an extra digest handshake.

Control (sleep/wake through set_miner_conf.cgi, with read-back) is a later issue: BaseDriver's defaults
raise Unsupported before any I/O.
"""

from __future__ import annotations

from typing import Any, ClassVar

from gateway.devices.driver import BaseDriver, DriverContext
from gateway.devices.errors import AuthFailed, DeviceError
from gateway.devices.model import FirmwareFamily
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
