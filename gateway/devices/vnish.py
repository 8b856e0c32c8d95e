"""Vnish driver: telemetry over the cgminer-compatible RPC (4028), watts and the running preset over the
web API (`/api/v1`), both at once.

Either half alone still makes a sample (the parser reads the web summary when the RPC is off, and sums
`chain_consumptionN` for watts when the web API is unreachable), so a failure of one transport costs
detail, not the sample. A refused password is the exception: it is raised as `AuthFailed`, because only
a person can fix it and a sample that silently lost its web half would hide that.

Web authentication (protocols.md §7): `POST /api/v1/unlock {"pw": <password>}` -> `{"token"}`, then the
token in `Authorization`. Vnish's factory password is "admin". The token is kept between polls and
renewed once when the miner refuses it. `version` answers "Invalid command" on Vnish 1.2.7; it is only
asked for at identification, and the parser ignores that answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from gateway.devices.driver import BaseDriver, DriverContext
from gateway.devices.errors import AuthFailed, DeviceError, ProtocolError
from gateway.devices.model import FirmwareFamily
from gateway.devices.parsers.common import Capture
from gateway.devices.parsers.vnish import PARSER
from gateway.devices.rpc import decode, gather_optional
from gateway.devices.web import WebClient

RPC_READ = ("summary", "stats", "pools", "devdetails")
RPC_IDENTITY = ("stats", "devdetails", "version")

UNLOCK_PATH = "/api/v1/unlock"
WEB_PATHS: Mapping[str, str] = {
    "web:info": "/api/v1/info",
    "web:summary": "/api/v1/summary",
    "web:perf-summary": "/api/v1/perf-summary",
    "web:settings": "/api/v1/settings",
    "web:autotune_presets": "/api/v1/autotune/presets",
}
WEB_READ = ("web:summary", "web:perf-summary")
WEB_IDENTITY = ("web:info",)

DEFAULT_PASSWORD = "admin"


class VnishDriver(BaseDriver):
    family = FirmwareFamily.VNISH
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

    async def fetch(self) -> Capture:
        return await self._fetch(RPC_READ, WEB_READ)

    async def fetch_identity(self) -> Capture:
        return await self._fetch(RPC_IDENTITY, WEB_IDENTITY)

    async def _fetch(self, commands: Sequence[str], web_keys: Sequence[str]) -> Capture:
        rpc_result, web_result = await asyncio.gather(
            self.rpc.multi(list(commands)), self._web(web_keys), return_exceptions=True
        )
        for result in (rpc_result, web_result):
            if isinstance(result, BaseException) and not isinstance(result, DeviceError):
                raise result
        if isinstance(web_result, AuthFailed):
            raise web_result
        capture: dict[str, Any] = {}
        for result in (rpc_result, web_result):
            if isinstance(result, Mapping):
                capture.update(result)
        if not capture:
            failures = [r for r in (rpc_result, web_result) if isinstance(r, DeviceError)]
            raise failures[0] if failures else ProtocolError("no reply on either transport", host=self.host)
        return capture

    # --- web ---------------------------------------------------------------------------------------

    async def _web(self, keys: Sequence[str]) -> Capture:
        cached = self._token is not None
        token = self._token or await self._unlock()
        try:
            return await self._web_gets(keys, token)
        except AuthFailed:
            self._token = None
            if not cached:
                raise
        return await self._web_gets(keys, await self._unlock())

    async def _unlock(self) -> str:
        password = self.ctx.credentials.password
        body = {"pw": password if password is not None else DEFAULT_PASSWORD}
        reply = await self.web.request("POST", UNLOCK_PATH, json_body=body)  # 401/403 -> AuthFailed
        if reply.status in (404, 405):  # no such endpoint: not a Vnish web API, not a bad password
            raise ProtocolError(f"{UNLOCK_PATH}: HTTP {reply.status}", host=self.host, raw=reply.body)
        if 400 <= reply.status < 500:
            raise AuthFailed(
                f"{UNLOCK_PATH}: password refused (HTTP {reply.status})", host=self.host, raw=reply.body
            )
        if reply.status >= 400:
            raise ProtocolError(f"{UNLOCK_PATH}: HTTP {reply.status}", host=self.host, raw=reply.body)
        data = decode(reply.body, host=self.host, what=UNLOCK_PATH)
        token = data.get("token") if isinstance(data, Mapping) else None
        if not isinstance(token, str) or not token:
            raise ProtocolError(f"{UNLOCK_PATH}: reply carries no token", host=self.host, raw=reply.body)
        self._token = token
        return token

    async def _web_gets(self, keys: Sequence[str], token: str) -> Capture:
        headers = {"Authorization": token}
        ok, failed = await gather_optional(
            {key: self.web.get_json(WEB_PATHS[key], headers=headers) for key in keys}
        )
        auth = next((err for err in failed.values() if isinstance(err, AuthFailed)), None)
        if auth is not None:
            raise auth
        if not ok and failed:
            raise next(iter(failed.values()))
        return ok
