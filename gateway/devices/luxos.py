"""LuxOS driver: everything over LUXminer's cgminer-compatible RPC (4028), in one multi-command.

Reads need no session. Privileged commands do (protocols.md §6; pyasic rpc/luxminer.py, LuxorLabs'
luxos-tooling): LUXminer allows one session at a time. `session` returns the active one's SessionID
(empty when none) and clients share it; otherwise `logon` creates one (SESSION[{SessionID}]), and a
second `logon` is refused with Code 402 "Another session is active". The id is the first parameter of
every privileged command: `curtail` "<sid>,sleep|wakeup", `profileset` "<sid>,<profile>",
`rebootdevice` "<sid>", `ledset` "<sid>,red,blink|auto". A session we created is closed with `logoff`
when the control is written (only one can exist, and the operator's tools need it too); a borrowed one is
left alone. A refused session id (expired, the miner rebooted) is renewed once.

Controls and their read-back:
* sleep / wake: `curtail`; confirmed by `config` CurtailMode / IsPowerSupplyOn in the sample's status.
  Curtail sleep is LuxOS's sleep (hash boards off, controller up), not a power-off.
* set_power: LuxOS has no free power target, it has profiles (a clock ladder, each with its `Watts`): we
  select the highest profile at or below the requested watts and confirm that profile's watts as the
  sample's power limit (the running profile's watts; see parsers/luxos.py).
* set_mode: normal is the "default" (stock-clock) profile; low/high the profile nearest the model's
  watts for that mode; sleep is curtail.
* reboot: `rebootdevice`, confirmed by a fresh uptime. blink: `ledset red,blink` (off: `red,auto`, back
  to the firmware's own use of the LED), confirmed from `config` RedLed.
LuxOS's ATM (automatic profile switching on temperature) can move a miner off the profile we set; the
read-back would then fail with ControlNotVerified rather than report a profile that is not running.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from typing import Any

from gateway.devices.driver import BaseDriver
from gateway.devices.errors import DeviceError, ProtocolError
from gateway.devices.model import Capabilities, FirmwareFamily, MinerStatus, Mode, Sample
from gateway.devices.parsers.common import (
    Capture,
    check_status,
    first_section,
    integer,
    section,
    status_entry,
)
from gateway.devices.parsers.luxos import COMMANDS, PARSER
from gateway.devices.tuning import (
    check_watts,
    floor_step,
    nearest_step,
    power_window,
    reboot_and_confirm,
)

RPC_READ = COMMANDS
RPC_IDENTITY = ("version", "config", "stats")
STOCK_PROFILE = "default"
CODE_SESSION_ACTIVE = 402
LED_ON, LED_OFF = "blink", "auto"


class LuxosDriver(BaseDriver):
    family = FirmwareFamily.LUXOS
    parser = PARSER

    async def fetch(self) -> Capture:
        return await self.rpc.multi(list(RPC_READ))

    async def fetch_identity(self) -> Capture:
        return await self.rpc.multi(list(RPC_IDENTITY))

    @property
    def capabilities(self) -> Capabilities:
        """Curtail, reboot and the LED exist on every LuxOS; a power target needs the model's window
        (from the profile); modes beyond normal need the profile's watts for them."""
        profile = self.profile
        modes = {Mode.SLEEP, Mode.NORMAL}
        if profile is not None:
            modes |= {m for m in (Mode.LOW, Mode.HIGH) if m in profile.modes}
        return Capabilities(
            sleep=True,
            wake=True,
            set_power=power_window(profile, "luxos") is not None,
            set_mode=True,
            reboot=True,
            blink=True,
            modes=frozenset(modes),
        )

    # --- controls ------------------------------------------------------------------------------------

    async def sleep(self) -> None:
        self.require("sleep")
        await self.privileged("curtail", "sleep")
        await self.read_back(lambda s: s.status is MinerStatus.SLEEPING, "sleep")

    async def wake(self) -> None:
        self.require("wake")
        await self.privileged("curtail", "wakeup")
        await self.read_back(lambda s: s.status is not MinerStatus.SLEEPING, "wake")

    async def set_power(self, watts: int) -> None:
        self.require("set_power")
        check_watts(watts, power_window(self.profile, "luxos"))
        profiles = await self.profiles()
        step = floor_step(profiles.values(), watts)
        if step is None:
            lowest = min(profiles.values(), default=None)
            raise ValueError(f"no LuxOS profile at or below {watts} W (the lowest draws {lowest} W)")
        name = next(n for n, w in profiles.items() if w == step)
        await self._profileset(name, f"set_power {watts} W", lambda s: s.power_limit_w == step)

    async def set_mode(self, mode: Mode) -> None:
        self.require("set_mode")
        if mode not in self.capabilities.modes:
            raise self._unsupported(f"mode {mode.value}")
        if mode is Mode.SLEEP:
            await self.sleep()
            return
        name = STOCK_PROFILE
        if mode is not Mode.NORMAL:
            assert self.profile is not None  # capabilities offer low/high only with a profile
            profiles = await self.profiles()
            step = nearest_step(profiles.values(), self.profile.modes[mode].power_w)
            name = next((n for n, w in profiles.items() if w == step), STOCK_PROFILE)
        await self._profileset(name, f"set_mode {mode.value}", lambda s: s.mode is mode)

    async def _profileset(self, name: str, action: str, accept: Callable[[Sample], bool]) -> None:
        """Select a profile; a curtailed miner is woken too (a mode or power target means 'mine so')."""
        await self.privileged("profileset", name)
        sample = await self.read()
        if sample.status is MinerStatus.SLEEPING:
            await self.privileged("curtail", "wakeup")
        await self.read_back(lambda s: s.status is not MinerStatus.SLEEPING and accept(s), action)

    async def reboot(self) -> None:
        self.require("reboot")
        await reboot_and_confirm(self, lambda: self.privileged("rebootdevice"))

    async def blink(self, on: bool) -> None:
        self.require("blink")
        await self.privileged("ledset", "red", LED_ON if on else LED_OFF)
        await self.confirm(self.red_led, lambda led: (led == LED_ON) is on, "blink on" if on else "blink off")

    # --- reads the controls need ---------------------------------------------------------------------

    async def profiles(self) -> dict[str, int]:
        """Profile name -> watts, from LUXminer's profile table."""
        reply = await self.rpc.command("profiles")
        check_status(reply, "profiles", host=self.host)
        table = {str(p.get("Profile Name")): integer(p.get("Watts")) for p in section(reply, "PROFILES")}
        return {name: watts for name, watts in table.items() if watts}

    async def red_led(self) -> str | None:
        """The red LED's mode from `config` (auto, on, off, blink)."""
        reply = await self.rpc.command("config")
        check_status(reply, "config", host=self.host)
        value = first_section(reply, "CONFIG").get("RedLed")
        return str(value).strip().lower() if value is not None else None

    # --- sessions ------------------------------------------------------------------------------------

    async def privileged(self, command: str, *args: str) -> Mapping[str, Any]:
        """Run a session-guarded command; a refused session id is renewed once."""
        for attempt in (1, 2):
            async with self._session() as sid:
                reply = await self.rpc.command(command, ",".join([sid, *args]))
            if attempt == 1 and _session_refused(reply):
                continue
            check_status(reply, command, host=self.host)
            if not isinstance(reply, Mapping):
                raise ProtocolError(f"{command}: unexpected reply", host=self.host)
            return reply
        raise AssertionError("unreachable")

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[str]:
        """The active session (borrowed), else a new one that is logged off afterwards."""
        sid = await self._current_session()
        created = False
        if not sid:
            reply = await self.rpc.command("logon")
            if integer(status_entry(reply).get("Code")) == CODE_SESSION_ACTIVE:
                sid = await self._current_session()  # someone logged on between our two requests
            else:
                check_status(reply, "logon", host=self.host)
                sid, created = _session_id(reply), True
        if not sid:
            raise ProtocolError("logon: no SessionID in the reply", host=self.host)
        try:
            yield sid
        finally:
            if created:
                await self._logoff(sid)

    async def _current_session(self) -> str | None:
        reply = await self.rpc.command("session")
        return _session_id(reply) if isinstance(reply, Mapping) else None

    async def _logoff(self, sid: str) -> None:
        # A rebooting miner drops its sessions anyway, and a failed logoff must not fail the control.
        with suppress(DeviceError):
            await self.rpc.command("logoff", sid)


def _session_id(reply: Any) -> str | None:
    value = first_section(reply, "SESSION").get("SessionID")
    return str(value) if value else None


def _session_refused(reply: Any) -> bool:
    entry = status_entry(reply)
    return str(entry.get("STATUS")) == "E" and "session" in str(entry.get("Msg", "")).lower()
