"""The one interface the rest of the gateway sees for a miner, whatever its firmware.

A backend is two halves: a pure parser (`gateway.devices.parsers.<family>`) that turns decoded replies
into a `Sample`, and a driver here-shaped class that knows *what to fetch* and *how* (RPC, CGI, REST).
`BaseDriver.read()` fetches, then parses; anything unexpected the parser trips over on a malformed reply
becomes a `ProtocolError` carrying the raw reply, so the poller only ever sees the error tree.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Protocol, TypeVar, runtime_checkable

import aiohttp

from gateway.devices.errors import DeviceError, ProtocolError, Unsupported
from gateway.devices.model import Capabilities, FirmwareFamily, MinerIdentity, Mode, Sample
from gateway.devices.parsers.common import Capture, FamilyParser, ParseContext
from gateway.devices.profiles import ProfileCatalog
from gateway.devices.rpc import RpcClient, RpcLimits

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    """Where a miner listens. Ports are per miner: the inventory may override them (a simulator run
    by a non-root user serves the web APIs on an unprivileged port)."""

    host: str
    rpc_port: int = 4028
    web_port: int = 80
    web_scheme: str = "http"
    v3_port: int = 4433  # Whatsminer API v3


@dataclass(frozen=True, slots=True, kw_only=True)
class Credentials:
    """Web/API credentials. Defaults are the firmwares' factory values, which sites often keep."""

    username: str | None = None
    password: str | None = None


@dataclass(frozen=True, kw_only=True)
class DriverContext:
    miner_id: str
    endpoint: Endpoint
    credentials: Credentials = field(default_factory=Credentials)
    limits: RpcLimits = field(default_factory=RpcLimits)
    profiles: ProfileCatalog | None = None
    model_hint: str | None = None
    session: aiohttp.ClientSession | None = None
    wall_clock: Callable[[], float] = field(default=time.time)


@runtime_checkable
class MinerDriver(Protocol):
    family: FirmwareFamily

    @property
    def capabilities(self) -> Capabilities: ...

    async def identify(self) -> MinerIdentity: ...

    async def read(self) -> Sample: ...

    async def sleep(self) -> None: ...

    async def wake(self) -> None: ...

    async def set_power(self, watts: int) -> None: ...

    async def set_mode(self, mode: Mode) -> None: ...

    async def reboot(self) -> None: ...

    async def blink(self, on: bool) -> None: ...


class BaseDriver:
    """Shared plumbing. Subclasses set `family` and `parser` and implement `fetch()`; control methods
    raise `Unsupported` (before any I/O) until a backend implements them."""

    family: ClassVar[FirmwareFamily]
    parser: ClassVar[FamilyParser]

    def __init__(self, ctx: DriverContext) -> None:
        self.ctx = ctx
        self.rpc = RpcClient(ctx.endpoint.host, ctx.endpoint.rpc_port, ctx.limits)

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities()

    @property
    def host(self) -> str:
        return self.ctx.endpoint.host

    async def fetch(self) -> Capture:
        """Everything `read()` needs, keyed as the parser expects."""
        raise NotImplementedError

    async def fetch_identity(self) -> Capture:
        """What `identify()` needs; by default the same as a read."""
        return await self.fetch()

    def parse_context(self) -> ParseContext:
        return ParseContext(
            miner_id=self.ctx.miner_id,
            ts=int(self.ctx.wall_clock()),
            profiles=self.ctx.profiles,
            model_hint=self.ctx.model_hint,
        )

    async def read(self) -> Sample:
        capture = await self.fetch()
        return run_parser(self.parser.parse, capture, self.parse_context(), host=self.host)

    async def identify(self) -> MinerIdentity:
        capture = await self.fetch_identity()
        return run_parser(self.parser.identify, capture, self.parse_context(), host=self.host)

    def _unsupported(self, action: str) -> Unsupported:
        return Unsupported(f"{action} is not supported by {self.family.value}", host=self.host)

    async def sleep(self) -> None:
        raise self._unsupported("sleep")

    async def wake(self) -> None:
        raise self._unsupported("wake")

    async def set_power(self, watts: int) -> None:
        raise self._unsupported("set_power")

    async def set_mode(self, mode: Mode) -> None:
        raise self._unsupported("set_mode")

    async def reboot(self) -> None:
        raise self._unsupported("reboot")

    async def blink(self, on: bool) -> None:
        raise self._unsupported("blink")


def run_parser(
    parse: Callable[[Capture, ParseContext], T], capture: Capture, ctx: ParseContext, *, host: str | None
) -> T:
    """Run a pure parser so that only the error tree escapes: a parser tripping over a reply of the
    wrong shape (KeyError, TypeError ...) becomes a ProtocolError carrying the replies it was given."""
    try:
        return parse(capture, ctx)
    except DeviceError as err:
        err.host = err.host or host
        if not err.raw:
            err.raw = _raw_of(capture)
        raise
    except Exception as err:
        raise ProtocolError(
            f"unexpected reply shape ({type(err).__name__}: {err})", host=host, raw=_raw_of(capture)
        ) from err


def _raw_of(capture: Capture) -> bytes:
    try:
        return json.dumps(capture, default=str)[:8192].encode()
    except (TypeError, ValueError):
        return repr(capture)[:8192].encode()
