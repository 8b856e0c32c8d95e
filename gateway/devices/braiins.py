"""Braiins OS driver: BOSminer's cgminer-compatible RPC (4028) or the REST API (`/api/v1`, BOS 25.07+).

Which transport: RPC first, because every BOS version has had it and it costs one connection. When the
RPC port *refuses* (newer BOS installs with the cgminer API switched off) we use REST, and remember that
REST worked so the next poll starts there. Only a refusal (or a REST 404: BOS too old for REST) moves us
to the other transport; a timeout means the miner is down, and trying the other port would only double
the time the poller waits for it.

REST authentication (protocols.md §4): `POST /api/v1/auth/login {"username", "password"}` -> `{"token",
"timeout_s"}`, then the bare token in `Authorization` (no "Bearer"). BOS ships `root` with an empty
password. The token is kept between polls; when the miner rejects it (expired, miner rebooted) we log in
again once, and a rejected login is `AuthFailed`.

Control goes through REST (braiins_control.py): the power target, reboot and the locate LED exist only
there; pause/resume fall back to the RPC's `pause`/`resume` on a BOS too old for REST. Every control is
confirmed from REST reads, which say "paused" (miner_details.status 3) where the RPC only shows 0 H/s.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import suppress
from typing import Any, TypeVar

from gateway.devices.braiins_control import BraiinsControl, RestApiAbsent, service_absent
from gateway.devices.driver import DriverContext
from gateway.devices.errors import AuthFailed, DeviceError, ProtocolError
from gateway.devices.model import FirmwareFamily
from gateway.devices.parsers.braiins import PARSER
from gateway.devices.parsers.common import Capture
from gateway.devices.rpc import decode, gather_optional
from gateway.devices.web import EndpointMissing, WebClient

RPC_READ = ("summary", "devs", "pools", "fans", "temps", "tunerstatus", "version", "devdetails")
# DEVS is in the identity set because its STATUS Description names the platform ("...-am1-s9").
RPC_IDENTITY = ("version", "devdetails", "devs")

LOGIN_PATH = "/api/v1/auth/login"
REST_PATHS: Mapping[str, str] = {
    "rest:miner_stats": "/api/v1/miner/stats",
    "rest:miner_details": "/api/v1/miner/details",
    "rest:miner_hw_hashboards": "/api/v1/miner/hw/hashboards",
    "rest:cooling_state": "/api/v1/cooling/state",
    "rest:performance_tuner_state": "/api/v1/performance/tuner-state",
    "rest:pools": "/api/v1/pools",
    "rest:configuration_miner": "/api/v1/configuration/miner",
}
# The first key of each set is the one the parser cannot do without; the others are optional.
REST_READ = tuple(REST_PATHS)
REST_IDENTITY = ("rest:miner_details",)

T = TypeVar("T")

DEFAULT_USERNAME = "root"
DEFAULT_PASSWORD = ""


class BraiinsDriver(BraiinsControl):
    family = FirmwareFamily.BRAIINS
    parser = PARSER

    def __init__(self, ctx: DriverContext, *, prefer_rest: bool = False) -> None:
        """`prefer_rest` starts with REST instead of the RPC (the driver learns this by itself when the
        RPC port is refused)."""
        super().__init__(ctx)
        self.web = WebClient(
            ctx.endpoint.host,
            port=ctx.endpoint.web_port,
            scheme=ctx.endpoint.web_scheme,
            limits=ctx.limits,
            session=ctx.session,
        )
        self._token: str | None = None
        self._rest_first = prefer_rest
        self.last_transport: str | None = None  # which transport produced the last reply
        self.rest_absent = False  # learned from a 404: this BOS has no REST API (no power target)

    async def fetch(self) -> Capture:
        return await self._fetch(RPC_READ, REST_READ)

    async def fetch_identity(self) -> Capture:
        """The RPC names model and firmware; only REST `miner/details` has the MAC, serial and hostname
        (discovery wants them), so it is added when REST answers. Its failure costs those fields only."""
        capture = dict(await self._fetch(RPC_IDENTITY, REST_IDENTITY))
        if self.last_transport == "rpc" and not self.rest_absent:
            with suppress(DeviceError):
                capture.update(await self._rest(REST_IDENTITY))
        return capture

    async def _fetch(self, commands: Sequence[str], rest_keys: Sequence[str]) -> Capture:
        first, second = ("rest", "rpc") if self._rest_first else ("rpc", "rest")
        try:
            capture = await self._via(first, commands, rest_keys)
        except DeviceError as err:
            if not service_absent(err):
                raise
            try:
                capture = await self._via(second, commands, rest_keys)
            except AuthFailed:
                raise  # the other transport is there, but our credentials are wrong: a person must know
            except DeviceError as other:
                raise err from other
            self._rest_first = second == "rest"
            self.last_transport = second
            return capture
        self.last_transport = first
        return capture

    async def _via(self, transport: str, commands: Sequence[str], rest_keys: Sequence[str]) -> Capture:
        if transport == "rest":
            try:
                return await self._rest(rest_keys)
            except RestApiAbsent:
                self.rest_absent = True
                raise
        return await self.rpc.multi(list(commands))

    # --- REST --------------------------------------------------------------------------------------

    async def _rest(self, keys: Sequence[str]) -> Capture:
        return await self.with_token(lambda token: self._rest_gets(keys, token))

    async def with_token(self, call: Callable[[str], Awaitable[T]]) -> T:
        """Run `call(token)`; when the kept token is refused (it expires after timeout_s, and a reboot
        forgets it) log in again, once. A refused login is AuthFailed."""
        cached = self._token is not None
        token = self._token or await self._login()
        try:
            return await call(token)
        except AuthFailed:
            self._token = None
            if not cached:
                raise
        return await call(await self._login())

    async def _login(self) -> str:
        creds = self.ctx.credentials
        body = {
            "username": creds.username or DEFAULT_USERNAME,
            "password": creds.password if creds.password is not None else DEFAULT_PASSWORD,
        }
        try:
            token = await self.web.token_login(LOGIN_PATH, body)
        except EndpointMissing as err:
            self.rest_absent = True
            raise RestApiAbsent(str(err.args[0]), host=self.host, raw=err.raw) from err
        self._token = token
        return token

    async def _rest_gets(self, keys: Sequence[str], token: str) -> Capture:
        headers = {"Authorization": token}
        ok, failed = await gather_optional({key: self._get(REST_PATHS[key], headers) for key in keys})
        auth = next((err for err in failed.values() if isinstance(err, AuthFailed)), None)
        if auth is not None:
            raise auth
        if keys[0] in failed:
            raise failed[keys[0]]
        return ok

    async def _get(self, path: str, headers: Mapping[str, str]) -> Any:
        return await self.rest_call("GET", path, headers)

    async def rest_call(self, method: str, path: str, headers: Mapping[str, str], body: Any = None) -> Any:
        """One authenticated REST request; the decoded reply (None for an empty body)."""
        reply = await self.web.request(method, path, headers=headers, json_body=body)
        if reply.status == 404:
            self.rest_absent = True
            raise RestApiAbsent(f"{path}: HTTP 404", host=self.host, raw=reply.body)
        if reply.status >= 400:
            raise ProtocolError(f"{path}: HTTP {reply.status}", host=self.host, raw=reply.body)
        return decode(reply.body, host=self.host, what=path) if reply.body.strip() else None
