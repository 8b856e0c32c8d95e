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

Controls (web API; pyasic web/vnish.py, asic-rs vnish backend) and their read-back:
* sleep / wake: POST /mining/stop | /mining/start (stop is Vnish's sleep: hash boards off, controller and
  APIs up); confirmed by the state word ("stopped") in the sample's status.
* set_power: a preset, named by its watts. We select the highest preset at or below the target from
  /autotune/presets and POST /settings {"miner": {"overclock": {"preset": ..}}}. Vnish answers that
  POST the same way whether or not it took the preset, so only /perf-summary's running preset (the
  sample's power limit) confirms it.
* set_mode: normal is the stock preset "disabled"; low/high the preset nearest the model's watts for it.
* reboot: POST /system/reboot, confirmed by a fresh uptime.
* blink: POST /find-miner {"on": bool} (older builds toggle and ignore the body: the reply's "on" then
  tells us to post once more), confirmed from /status `find_miner`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from gateway.devices.driver import BaseDriver, DriverContext
from gateway.devices.errors import AuthFailed, DeviceError, ProtocolError
from gateway.devices.model import Capabilities, FirmwareFamily, MinerStatus, Mode, Sample
from gateway.devices.parsers.common import Capture, integer
from gateway.devices.parsers.vnish import PARSER
from gateway.devices.rpc import decode, gather_optional
from gateway.devices.tuning import (
    check_watts,
    floor_step,
    nearest_step,
    power_window,
    reboot_and_confirm,
    tunable_modes,
)
from gateway.devices.web import WebClient

T = TypeVar("T")

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
STOCK_PRESET = "disabled"


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
        return await self.with_token(lambda token: self._web_gets(keys, token))

    async def with_token(self, call: Callable[[str], Awaitable[T]]) -> T:
        """Run `call(token)`; a refused kept token is renewed once. A refused password is AuthFailed."""
        cached = self._token is not None
        token = self._token or await self._unlock()
        try:
            return await call(token)
        except AuthFailed:
            self._token = None
            if not cached:
                raise
        return await call(await self._unlock())

    async def _unlock(self) -> str:
        password = self.ctx.credentials.password
        body = {"pw": password if password is not None else DEFAULT_PASSWORD}
        # A missing unlock endpoint (EndpointMissing, a ProtocolError) means no Vnish web API here,
        # not a bad password.
        token = await self.web.token_login(UNLOCK_PATH, body)
        self._token = token
        return token

    async def _web_gets(self, keys: Sequence[str], token: str) -> Capture:
        headers = _auth(token)
        ok, failed = await gather_optional(
            {key: self.web.get_json(WEB_PATHS[key], headers=headers) for key in keys}
        )
        auth = next((err for err in failed.values() if isinstance(err, AuthFailed)), None)
        if auth is not None:
            raise auth
        if not ok and failed:
            raise next(iter(failed.values()))
        return ok

    # --- control -----------------------------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        """Stop/start, reboot and the locate LED on every Vnish; a power target needs the model's window
        (from the profile); normal is the stock preset, low/high need the profile's watts for them."""
        window = power_window(self.profile, "vnish")
        return Capabilities(
            sleep=True,
            wake=True,
            set_power=window is not None,
            set_mode=True,
            reboot=True,
            blink=True,
            modes=tunable_modes(self.profile, window) | {Mode.NORMAL},
        )

    async def sleep(self) -> None:
        self.require("sleep")
        await self.post("/api/v1/mining/stop")
        await self.read_back(lambda s: s.status is MinerStatus.SLEEPING, "sleep")

    async def wake(self) -> None:
        self.require("wake")
        await self.post("/api/v1/mining/start")
        await self.read_back(lambda s: s.status is not MinerStatus.SLEEPING, "wake")

    async def set_power(self, watts: int) -> None:
        self.require("set_power")
        check_watts(watts, power_window(self.profile, "vnish"))
        presets = await self.presets()
        step = floor_step(presets, watts)
        if step is None:
            raise ValueError(
                f"no Vnish preset at or below {watts} W (the lowest is {min(presets, default=None)} W)"
            )
        await self._preset(str(step), f"set_power {watts} W", lambda s: s.power_limit_w == step)

    async def set_mode(self, mode: Mode) -> None:
        self.require("set_mode")
        if mode not in self.capabilities.modes:
            raise self._unsupported(f"mode {mode.value}")
        if mode is Mode.SLEEP:
            await self.sleep()
            return
        if mode is Mode.NORMAL:
            await self._preset(STOCK_PRESET, "set_mode normal", lambda s: s.power_limit_w is None)
            return
        assert self.profile is not None  # capabilities offer low/high only with a profile
        step = nearest_step(await self.presets(), self.profile.modes[mode].power_w)
        if step is None:
            raise self._unsupported(f"mode {mode.value} (the miner lists no presets)")
        await self._preset(
            str(step), f"set_mode {mode.value}", lambda s: s.power_limit_w == step and s.mode is mode
        )

    async def _preset(self, name: str, action: str, accept: Callable[[Sample], bool]) -> None:
        """Select a preset; a stopped miner is started too (a mode or power target means 'mine so')."""
        await self.post("/api/v1/settings", {"miner": {"overclock": {"preset": name}}})
        if (await self.read()).status is MinerStatus.SLEEPING:
            await self.post("/api/v1/mining/start")
        await self.read_back(lambda s: s.status is not MinerStatus.SLEEPING and accept(s), action)

    async def reboot(self) -> None:
        self.require("reboot")
        await reboot_and_confirm(self, lambda: self.post("/api/v1/system/reboot"))

    async def blink(self, on: bool) -> None:
        self.require("blink")
        reply = await self.post("/api/v1/find-miner", {"on": on})
        if isinstance(reply, Mapping) and reply.get("on") is (not on):
            await self.post("/api/v1/find-miner", {"on": on})  # a build that only toggles
        await self.confirm(self.finding, lambda state: state is on, "blink on" if on else "blink off")

    async def presets(self) -> list[int]:
        """The preset ladder in watts (the stock preset "disabled" is not a power target)."""
        reply = await self.with_token(
            lambda token: self.web.get_json(WEB_PATHS["web:autotune_presets"], headers=_auth(token))
        )
        names = [p.get("name") for p in reply if isinstance(p, Mapping)] if isinstance(reply, list) else []
        return sorted(w for w in (integer(n) for n in names) if w and w > 0)

    async def finding(self) -> bool | None:
        """The locate LED ("find miner") as /status reports it."""
        reply = await self.with_token(lambda token: self.web.get_json("/api/v1/status", headers=_auth(token)))
        value = reply.get("find_miner") if isinstance(reply, Mapping) else None
        return value if isinstance(value, bool) else None

    async def post(self, path: str, body: Any = None) -> Any:
        """An authenticated POST; the decoded reply (None for an empty body). HTTP errors are refusals."""

        async def send(token: str) -> Any:
            reply = await self.web.request("POST", path, json_body=body, headers=_auth(token))
            if reply.status >= 400:
                raise ProtocolError(f"{path}: HTTP {reply.status}", host=self.host, raw=reply.body)
            return decode(reply.body, host=self.host, what=path) if reply.body.strip() else None

        return await self.with_token(send)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": token}
