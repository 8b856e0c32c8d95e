"""Braiins OS control paths (the BraiinsDriver's base class), and the transport facts they share with
the reads in braiins.py.

BOS 25.07+ REST (protocols.md §4; braiins/bos-plus-api ActionsService and PerformanceService):

    PUT /api/v1/actions/pause | resume        mining paused (hash boards off) / resumed; no restart
    PUT /api/v1/performance/power-target      {"watt": N}: the tuner retunes live to the new target
    PUT /api/v1/actions/reboot                the whole controller
    PUT /api/v1/actions/locate  true|false    the locate (fault) LED; GET returns its state as a bool

On a BOS without REST (HTTP 404) only pause/resume remain, as the RPC's `pause`/`resume` commands;
power target, reboot and locate are then reported unsupported.

Read-back: every control is confirmed from the miner's own reads, taken over REST where it exists
(`miner/details.status` says "paused"; the RPC only shows 0 H/s, which a fault shows too). Sleep is
"paused" and never power-off: BOS pause keeps the controller up and resumes in seconds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import aiohttp

from gateway.devices.driver import BaseDriver
from gateway.devices.errors import DeviceError, ProtocolError, Unreachable
from gateway.devices.model import Capabilities, MinerStatus, Mode, Sample
from gateway.devices.parsers.common import check_status
from gateway.devices.tuning import check_watts, power_window, reboot_and_confirm, tunable_modes

T = TypeVar("T")

API = "/api/v1"


class RestApiAbsent(ProtocolError):
    """HTTP 404 on a REST path: this BOS predates the REST API."""


def service_absent(err: DeviceError) -> bool:
    """The port is closed or the API path does not exist: the miner is up, that service is not."""
    if isinstance(err, RestApiAbsent):
        return True
    if not isinstance(err, Unreachable):
        return False
    cause = err.__cause__
    if isinstance(cause, aiohttp.ClientConnectorError):
        cause = cause.os_error
    return isinstance(cause, ConnectionRefusedError)


class BraiinsControl(BaseDriver):
    # provided by BraiinsDriver (braiins.py), which owns the transports
    rest_absent: bool
    last_transport: str | None
    _rest_first: bool

    async def with_token(self, call: Callable[[str], Awaitable[T]]) -> T:
        raise NotImplementedError

    async def rest_call(self, method: str, path: str, headers: Mapping[str, str], body: Any = None) -> Any:
        raise NotImplementedError

    @property
    def capabilities(self) -> Capabilities:
        """Pause/resume always (REST or RPC). Power target and modes need REST and a profile that gives
        the model's window for BOS; reboot and the locate LED need REST."""
        rest = not self.rest_absent
        window = power_window(self.profile, "braiins") if rest else None
        return Capabilities(
            sleep=True,
            wake=True,
            set_power=window is not None,
            set_mode=True,
            reboot=rest,
            blink=rest,
            modes=tunable_modes(self.profile, window),
        )

    # --- controls ------------------------------------------------------------------------------------

    async def sleep(self) -> None:
        self.require("sleep")
        await self._pause_or_resume("pause")
        await self._confirm(lambda s: s.status is MinerStatus.SLEEPING or self._rpc_idle(s), "sleep")

    async def wake(self) -> None:
        self.require("wake")
        await self._pause_or_resume("resume")
        await self._confirm(self._awake, "wake")

    async def set_power(self, watts: int) -> None:
        self.require("set_power")
        check_watts(watts, power_window(self.profile, "braiins"))
        await self._put("/performance/power-target", {"watt": int(watts)})
        await self._confirm(lambda s: s.power_limit_w == watts, f"set_power {watts} W")

    async def set_mode(self, mode: Mode) -> None:
        """A mode is a power target (the profile's watts for it); setting one also resumes a paused
        miner, as a mode change does on stock firmware."""
        self.require("set_mode")
        if mode not in self.capabilities.modes:
            raise self._unsupported(f"mode {mode.value}")
        if mode is Mode.SLEEP:
            await self.sleep()
            return
        assert self.profile is not None  # tunable_modes offers no other mode without one
        watts = round(self.profile.modes[mode].power_w)
        await self.set_power(watts)
        if (await self._read_preferring_rest()).status is MinerStatus.SLEEPING:
            await self.wake()
        await self._confirm(lambda s: s.mode is mode and s.power_limit_w == watts, f"set_mode {mode.value}")

    async def reboot(self) -> None:
        self.require("reboot")
        await reboot_and_confirm(self, lambda: self._put("/actions/reboot", None))

    async def blink(self, on: bool) -> None:
        self.require("blink")
        await self._put("/actions/locate", on)
        await self.confirm(self.locating, lambda state: state is on, "blink on" if on else "blink off")

    async def locating(self) -> bool | None:
        """The locate LED as BOS reports it (a bare bool; {"enabled": ..} is accepted too)."""
        reply = await self.with_token(
            lambda token: self.rest_call("GET", f"{API}/actions/locate", _auth(token))
        )
        if isinstance(reply, Mapping):
            reply = reply.get("enabled")
        return reply if isinstance(reply, bool) else None

    # --- plumbing ------------------------------------------------------------------------------------

    async def _put(self, path: str, body: Any) -> Any:
        try:
            return await self.with_token(lambda token: self.rest_call("PUT", API + path, _auth(token), body))
        except RestApiAbsent as err:
            raise self._unsupported(f"{path} (this Braiins OS has no REST API)") from err

    async def _pause_or_resume(self, action: str) -> None:
        try:
            await self.with_token(
                lambda token: self.rest_call("PUT", f"{API}/actions/{action}", _auth(token))
            )
        except DeviceError as err:
            if not service_absent(err):
                raise
            # BOS before 25.07: the cgminer-compatible API's own pause/resume.
            check_status(await self.rpc.command(action), action, host=self.host)

    async def _confirm(self, accept: Callable[[Sample], bool], action: str) -> Sample:
        """Read back over REST where the miner has it (it reports "paused" explicitly)."""
        previous = self._rest_first
        self._rest_first = not self.rest_absent
        try:
            return await self.read_back(accept, action)
        finally:
            self._rest_first = previous

    async def _read_preferring_rest(self) -> Sample:
        return await self._confirm(lambda _sample: True, "read")

    def _rpc_idle(self, sample: Sample) -> bool:
        """Over the RPC a paused BOS is just a miner at 0 H/s: the best evidence that BOS has."""
        return self.last_transport == "rpc" and sample.status is MinerStatus.IDLE and not sample.hashrate_ths

    def _awake(self, sample: Sample) -> bool:
        """REST says "normal" at once, while the boards power up (IDLE); the RPC needs hashes."""
        if sample.status is MinerStatus.MINING:
            return True
        return self.last_transport == "rest" and sample.status is MinerStatus.IDLE


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": token}
