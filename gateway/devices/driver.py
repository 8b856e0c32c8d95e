"""The one interface the rest of the gateway sees for a miner, whatever its firmware.

A backend is two halves: a pure parser (`gateway.devices.parsers.<family>`) that turns decoded replies
into a `Sample`, and a driver here-shaped class that knows *what to fetch* and *how* (RPC, CGI, REST).
`BaseDriver.read()` fetches, then parses; anything unexpected the parser trips over on a malformed reply
becomes a `ProtocolError` carrying the raw reply, so the poller only ever sees the error tree.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import ClassVar, Protocol, TypeVar, runtime_checkable

import aiohttp

from gateway.devices.errors import ControlNotVerified, DeviceError, ProtocolError, Unreachable, Unsupported
from gateway.devices.model import Capabilities, FirmwareFamily, MinerIdentity, Mode, Sample
from gateway.devices.parsers.common import Capture, FamilyParser, ParseContext
from gateway.devices.profiles import MinerProfile, ProfileCatalog
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
    # Read-back after a control write: how long to keep re-reading before ControlNotVerified. A stock
    # Antminer restarts its mining process on a mode change and is unreachable for several seconds.
    verify_timeout_s: float = 60.0
    verify_interval_s: float = 2.0


@runtime_checkable
class MinerDriver(Protocol):
    @property
    def family(self) -> FirmwareFamily: ...

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

    @property
    def profile(self) -> MinerProfile | None:
        """The inventory's model for this miner, when known: capabilities depend on it."""
        if self.ctx.profiles is None or not self.ctx.model_hint:
            return None
        return self.ctx.profiles.match(None, self.ctx.model_hint)

    def require(self, capability: str) -> None:
        """Refuse an action the miner cannot do, before any I/O."""
        if not getattr(self.capabilities, capability):
            raise self._unsupported(capability)

    async def read_back(self, accept: Callable[[Sample], bool], action: str) -> Sample:
        """Re-read the miner until `accept(sample)` holds, or raise ControlNotVerified."""
        return await self.confirm(self.read, accept, action)

    async def confirm(self, probe: Callable[[], Awaitable[T]], accept: Callable[[T], bool], action: str) -> T:
        """Re-run `probe` until `accept` holds, or raise ControlNotVerified.

        Firmwares acknowledge writes they then ignore (Antminer's `M000 OK`), so no control is done
        until the miner itself reports the new state. A miner that restarts its mining process after
        a write is briefly unreachable: that is waited out, up to `verify_timeout_s`.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ctx.verify_timeout_s
        last: T | None = None
        last_error: DeviceError | None = None
        while True:
            try:
                value = await probe()
            except Unreachable as err:
                last_error = err
            else:
                if accept(value):
                    return value
                last = value
            if loop.time() + self.ctx.verify_interval_s > deadline:
                raise ControlNotVerified(
                    f"{action}: not confirmed by read-back within {self.ctx.verify_timeout_s:g}s "
                    f"({_describe(last) if last is not None else f'last error: {last_error}'})",
                    host=self.host,
                )
            await asyncio.sleep(self.ctx.verify_interval_s)

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


def _describe(value: object) -> str:
    if isinstance(value, Sample):
        mode = value.mode.value if value.mode else None
        return f"last read: status={value.status.value}, mode={mode}, uptime={value.uptime_s}"
    return f"last read: {value!r}"[:300]


def _raw_of(capture: Capture) -> bytes:
    try:
        return json.dumps(capture, default=str)[:8192].encode()
    except (TypeError, ValueError):
        return repr(capture)[:8192].encode()
