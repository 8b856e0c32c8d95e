"""HTTP access to the firmwares' web APIs (Antminer CGI with Digest auth, Vnish and Braiins REST,
Whatsminer LuCI), with the same guarantees as the RPC client: one hard deadline per request, a size
cap, and errors translated into the device error tree with the raw body kept."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from gateway.devices.errors import AuthFailed, ProtocolError, Unreachable
from gateway.devices.rpc import RpcLimits, decode


class EndpointMissing(ProtocolError):
    """The firmware has no such endpoint (HTTP 404/405): a different firmware or version."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpReply:
    status: int
    body: bytes
    headers: Mapping[str, str]


class WebClient:
    """HTTP to one miner. Pass a shared `session` from the poller to reuse its connection pool;
    without one, each request opens and closes its own (fine for the CLI)."""

    def __init__(
        self,
        host: str,
        *,
        port: int = 80,
        scheme: str = "http",
        limits: RpcLimits | None = None,
        digest: tuple[str, str] | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.host = host
        self.base = f"{scheme}://{host}:{port}"
        self.limits = limits or RpcLimits()
        self._digest = digest
        self._session = session

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpReply:
        url = self.base + path
        middlewares = (aiohttp.DigestAuthMiddleware(*self._digest),) if self._digest else ()
        own_session = self._session is None
        session = self._session or aiohttp.ClientSession()
        body = bytearray()
        try:
            async with asyncio.timeout(self.limits.deadline_s):
                async with session.request(
                    method,
                    url,
                    json=json_body,
                    data=data,
                    headers=headers,
                    middlewares=middlewares,
                    allow_redirects=False,
                ) as response:
                    async for chunk in response.content.iter_chunked(65536):
                        body += chunk
                        if len(body) > self.limits.max_bytes:
                            raise ProtocolError(
                                f"{path}: reply exceeds {self.limits.max_bytes} bytes",
                                host=self.host,
                                raw=bytes(body),
                            )
                    reply = HttpReply(
                        status=response.status, body=bytes(body), headers=dict(response.headers)
                    )
        except TimeoutError as err:
            raise Unreachable(
                f"{path}: deadline of {self.limits.deadline_s:g}s exceeded",
                host=self.host,
                raw=bytes(body),
            ) from err
        except aiohttp.ClientResponseError as err:
            raise ProtocolError(f"{path}: bad HTTP response: {err.message}", host=self.host) from err
        except (aiohttp.ClientError, OSError) as err:
            raise Unreachable(
                f"{path}: {type(err).__name__}: {err}", host=self.host, raw=bytes(body)
            ) from err
        finally:
            if own_session:
                await session.close()
        if reply.status in (401, 403):
            raise AuthFailed(f"{path}: HTTP {reply.status}", host=self.host, raw=reply.body)
        return reply

    async def get_json(self, path: str, *, headers: Mapping[str, str] | None = None) -> Any:
        return self._json(await self.request("GET", path, headers=headers), path)

    async def post_json(self, path: str, body: Any, *, headers: Mapping[str, str] | None = None) -> Any:
        return self._json(await self.request("POST", path, json_body=body, headers=headers), path)

    async def token_login(self, path: str, body: Any) -> str:
        """POST credentials, return the session token the firmware answers with (`{"token": ...}`).

        Shared by the REST firmwares (Braiins OS, Vnish): any other 4xx is refused credentials
        (`AuthFailed`: a person must fix them); 404/405 means the endpoint does not exist on this
        firmware (`EndpointMissing`, which a caller may treat as "no such API" rather than an error).
        """
        reply = await self.request("POST", path, json_body=body)  # 401/403 -> AuthFailed
        if reply.status in (404, 405):
            raise EndpointMissing(f"{path}: HTTP {reply.status}", host=self.host, raw=reply.body)
        if 400 <= reply.status < 500:
            raise AuthFailed(f"{path}: login refused (HTTP {reply.status})", host=self.host, raw=reply.body)
        if reply.status >= 400:
            raise ProtocolError(f"{path}: HTTP {reply.status}", host=self.host, raw=reply.body)
        data = decode(reply.body, host=self.host, what=path)
        token = data.get("token") if isinstance(data, Mapping) else None
        if not isinstance(token, str) or not token:
            raise ProtocolError(f"{path}: reply carries no token", host=self.host, raw=reply.body)
        return token

    def _json(self, reply: HttpReply, path: str) -> Any:
        if reply.status >= 400:
            raise ProtocolError(f"{path}: HTTP {reply.status}", host=self.host, raw=reply.body)
        return decode(reply.body, host=self.host, what=path)
