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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp

from gateway.devices.driver import BaseDriver, DriverContext
from gateway.devices.errors import AuthFailed, DeviceError, ProtocolError, Unreachable
from gateway.devices.model import FirmwareFamily
from gateway.devices.parsers.braiins import PARSER
from gateway.devices.parsers.common import Capture
from gateway.devices.rpc import decode, gather_optional
from gateway.devices.web import WebClient

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

DEFAULT_USERNAME = "root"
DEFAULT_PASSWORD = ""


class RestApiAbsent(ProtocolError):
    """HTTP 404 on a REST path: this BOS predates the REST API."""


class BraiinsDriver(BaseDriver):
    family = FirmwareFamily.BRAIINS
    parser = PARSER

    def __init__(self, ctx: DriverContext) -> None:
        super().__init__(ctx)
        self.web = WebClient(
            ctx.endpoint.host,
            port=ctx.endpoint.web_port,
            scheme=ctx.endpoint.web_scheme,
            limits=ctx.limits,
            session=ctx.session,
        )
        self._token: str | None = None
        self._rest_first = False

    async def fetch(self) -> Capture:
        return await self._fetch(RPC_READ, REST_READ)

    async def fetch_identity(self) -> Capture:
        return await self._fetch(RPC_IDENTITY, REST_IDENTITY)

    async def _fetch(self, commands: Sequence[str], rest_keys: Sequence[str]) -> Capture:
        first, second = ("rest", "rpc") if self._rest_first else ("rpc", "rest")
        try:
            return await self._via(first, commands, rest_keys)
        except DeviceError as err:
            if not _service_absent(err):
                raise
            try:
                capture = await self._via(second, commands, rest_keys)
            except AuthFailed:
                raise  # the other transport is there, but our credentials are wrong: a person must know
            except DeviceError as other:
                raise err from other
        self._rest_first = second == "rest"
        return capture

    async def _via(self, transport: str, commands: Sequence[str], rest_keys: Sequence[str]) -> Capture:
        if transport == "rest":
            return await self._rest(rest_keys)
        return await self.rpc.multi(list(commands))

    # --- REST --------------------------------------------------------------------------------------

    async def _rest(self, keys: Sequence[str]) -> Capture:
        cached = self._token is not None
        token = self._token or await self._login()
        try:
            return await self._rest_gets(keys, token)
        except AuthFailed:
            self._token = None
            if not cached:
                raise
        # The kept token was refused (it expires after timeout_s, and a reboot forgets it): log in once.
        return await self._rest_gets(keys, await self._login())

    async def _login(self) -> str:
        creds = self.ctx.credentials
        body = {
            "username": creds.username or DEFAULT_USERNAME,
            "password": creds.password if creds.password is not None else DEFAULT_PASSWORD,
        }
        reply = await self.web.request("POST", LOGIN_PATH, json_body=body)  # 401/403 -> AuthFailed
        if reply.status in (404, 405):
            raise RestApiAbsent(f"{LOGIN_PATH}: HTTP {reply.status}", host=self.host, raw=reply.body)
        if 400 <= reply.status < 500:
            raise AuthFailed(
                f"{LOGIN_PATH}: login refused (HTTP {reply.status})", host=self.host, raw=reply.body
            )
        if reply.status >= 400:
            raise ProtocolError(f"{LOGIN_PATH}: HTTP {reply.status}", host=self.host, raw=reply.body)
        data = decode(reply.body, host=self.host, what=LOGIN_PATH)
        token = data.get("token") if isinstance(data, Mapping) else None
        if not isinstance(token, str) or not token:
            raise ProtocolError(f"{LOGIN_PATH}: reply carries no token", host=self.host, raw=reply.body)
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
        reply = await self.web.request("GET", path, headers=headers)
        if reply.status == 404:
            raise RestApiAbsent(f"{path}: HTTP 404", host=self.host, raw=reply.body)
        if reply.status >= 400:
            raise ProtocolError(f"{path}: HTTP {reply.status}", host=self.host, raw=reply.body)
        return decode(reply.body, host=self.host, what=path)


def _service_absent(err: DeviceError) -> bool:
    """The port is closed or the API path does not exist: the miner is up, that service is not."""
    if isinstance(err, RestApiAbsent):
        return True
    if not isinstance(err, Unreachable):
        return False
    cause = err.__cause__
    if isinstance(cause, aiohttp.ClientConnectorError):
        cause = cause.os_error
    return isinstance(cause, ConnectionRefusedError)
