"""Avalon (Canaan cgminer 4.11.1) backend: A10/A11/A12 series and the Avalon Q.

What to fetch: `summary+stats+pools+version` as one cgminer multi-command (cgminer >= API 3.1; the
client falls back to one connection per command when a firmware refuses it). `stats` carries the MM
string with nearly everything; the others fill in shares, pools and identity, and any of them may fail
on its own (an A-series controller that answers `version` with "invalid command" still gets a sample).
Identity needs `version` (product, MAC, firmware) and `stats` (the MM `Ver`, which names the model on
firmwares whose `version` does not).

Control is cgminer's `ascset|0,<option>,...` (replies read by `parsers.avalon_control`) and `restart`:
* sleep / wake: `softoff` / `softon` with `1:<epoch>`, the moment to act. Canaan's own clients ask for a
  few seconds ahead (the captures: softoff:<When + 5>); we do the same. Confirmed when the MM string's
  `SoftOFF` flag and zero hashrate make the status SLEEPING, and when it leaves SLEEPING.
* mode (Avalon Q only): `workmode,set,<0|1|2>` = Eco/Standard/Super, applied without a restart;
  confirmed by the MM `WORKMODE` the parser maps to low/normal/high. The A-series `WORKMODE` numbers mean
  other things per model and no table is published, so no mode control is offered there.
* LED: `led,1-1` / `led,1-0`, confirmed by the MM `Led[1]`/`Led[0]` token (A-series). The Avalon Q has
  no `led` option (its `ascset 0,help` lists `lcd`, not `led`) and no `Led` token: not offered there.
* reboot: cgminer `restart` (answers `{"STATUS":"RESTART"}`), confirmed by the uptime going down.
* No power target: stock firmware has work levels (`worklevel,set,N`), not watts.
Privileged commands need the miner's `--api-allow W:` entry for our address; without it cgminer answers
Code 45 "Access denied", which becomes AuthFailed (a person must fix the miner's API access list).
"""

from __future__ import annotations

import contextlib
import re
from typing import ClassVar

from gateway.devices.driver import BaseDriver
from gateway.devices.errors import DeviceError, ProtocolError, Unreachable
from gateway.devices.model import Capabilities, FirmwareFamily, MinerStatus, Mode
from gateway.devices.parsers import avalon_mm as mm_string
from gateway.devices.parsers.avalon import PARSER, normalize_model
from gateway.devices.parsers.avalon_control import AscsetResult, interpret_ascset
from gateway.devices.parsers.common import Capture, FamilyParser, check_status, section

_READ = ("summary", "stats", "pools", "version")
_IDENTIFY = ("version", "stats")
AVALON_Q = "Avalon Q"
# Avalon Q work modes (its app's Eco / Standard / Super), as `ascset 0,workmode,set,N` takes them.
Q_WORKMODES = {Mode.LOW: 0, Mode.NORMAL: 1, Mode.HIGH: 2}
SOFT_SWITCH_DELAY_S = 5.0


class AvalonDriver(BaseDriver):
    family: ClassVar[FirmwareFamily] = FirmwareFamily.AVALON
    parser: ClassVar[FamilyParser] = PARSER
    # How far ahead softoff/softon are scheduled; an instance attribute so a test can shorten it.
    soft_switch_delay_s: float = SOFT_SWITCH_DELAY_S

    async def fetch(self) -> Capture:
        return await self.rpc.multi(_READ)

    async def fetch_identity(self) -> Capture:
        return await self.rpc.multi(_IDENTIFY)

    # --- control -----------------------------------------------------------------------------------

    def model(self) -> str | None:
        """The model in the parser's spelling ("Avalon Q", "A1246"), from the profile or the hint."""
        return normalize_model(self.profile.model if self.profile else self.ctx.model_hint)

    @property
    def capabilities(self) -> Capabilities:
        """Soft-off sleep and restart on every Avalon; work modes on the Avalon Q (those its profile
        has figures for); the LED on the A-series. An unknown model gets only what all of them have."""
        profile, model = self.profile, self.model()
        can_sleep = profile is None or profile.sleep_method == "avalon_softoff"
        modes: set[Mode] = {Mode.SLEEP} if can_sleep else set()
        if model == AVALON_Q:
            modes |= set(Q_WORKMODES) & set(profile.modes) if profile else set(Q_WORKMODES)
        return Capabilities(
            sleep=can_sleep,
            wake=can_sleep,
            set_power=False,
            set_mode=bool(modes),
            reboot=True,
            blink=bool(model and re.fullmatch(r"A\d{3,4}\w*", model)),
            modes=frozenset(modes),
        )

    async def sleep(self) -> None:
        self.require("sleep")
        await self._soft_switch("softoff")
        await self.read_back(lambda s: s.status is MinerStatus.SLEEPING, "sleep")

    async def wake(self) -> None:
        self.require("wake")
        await self._soft_switch("softon")
        await self.read_back(lambda s: s.status is not MinerStatus.SLEEPING, "wake")

    async def set_mode(self, mode: Mode) -> None:
        """Set the Avalon Q work mode; a soft-off miner is switched back on (a mode means "mine so")."""
        self.require("set_mode")
        if mode not in self.capabilities.modes:
            raise self._unsupported(f"mode {mode.value}")
        if mode is Mode.SLEEP:
            await self.sleep()
            return
        asleep = (await self.read()).status is MinerStatus.SLEEPING
        await self.ascset(f"0,workmode,set,{Q_WORKMODES[mode]}")
        if asleep:
            await self._soft_switch("softon")
        # The parser reports SLEEP while soft-off, so this also waits for the miner to be back on.
        await self.read_back(lambda s: s.mode is mode, f"set_mode {mode.value}")

    async def reboot(self) -> None:
        """cgminer `restart`; the reply may be lost as cgminer goes down, so the uptime decides."""
        self.require("reboot")
        before = (await self.read()).uptime_s
        with contextlib.suppress(Unreachable):
            reply = await self.rpc.command("restart")
            check_status(reply, "restart", host=self.host)
        await self.read_back(
            lambda s: s.uptime_s is not None and (before is None or s.uptime_s < before), "reboot"
        )

    async def blink(self, on: bool) -> None:
        self.require("blink")
        await self.ascset(f"0,led,1-{1 if on else 0}")
        await self.confirm(self.led_state, lambda led: led is on, "blink on" if on else "blink off")

    async def led_state(self) -> bool | None:
        """The MM string's `Led[0|1]`, or None when the firmware does not report one."""
        reply = await self.rpc.command("stats")
        check_status(reply, "stats", host=self.host)
        for entry in section(reply, "STATS"):
            mm, _ = mm_string.find_mm(entry)
            if mm:
                led = mm_string.value(mm.get("Led"))
                return None if led is None else led != 0
        return None

    async def ascset(self, parameter: str) -> AscsetResult:
        """One `ascset` write; a refusal ("ASC 0 set failed: ...") is a ProtocolError with the reason."""
        reply = await self.rpc.command("ascset", parameter)
        try:
            result = interpret_ascset(reply)
        except DeviceError as err:
            err.host = err.host or self.host
            raise
        if not result.ok:
            raise ProtocolError(f"ascset {parameter}: refused: {result.message}", host=self.host)
        return result

    async def _soft_switch(self, option: str) -> None:
        at = int(self.ctx.wall_clock() + self.soft_switch_delay_s)
        await self.ascset(f"0,{option},1:{at}")
