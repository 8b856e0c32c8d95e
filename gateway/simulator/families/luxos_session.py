"""LUXminer's session-guarded commands, as the simulator serves them (protocols.md §6).

Facts (pyasic rpc/luxminer.py, asic-rs luxminer rpc, LuxorLabs/luxos-tooling asyncops):
* `logon` creates the one session the miner allows: SESSION[{SessionID}]. While a session is active a
  second `logon` is refused with STATUS Code 402 "Another session is active" and no SESSION section;
  `session` returns the active one (SessionID "" when there is none), which is how clients share it.
* Privileged commands carry the session id as the first parameter: `curtail` "<sid>,sleep|wakeup",
  `profileset` "<sid>,<profile>", `rebootdevice` "<sid>", `ledset` "<sid>,red,blink|on|off|auto",
  `logoff` "<sid>". `profileset` answers PROFILE[{Profile}] (pyasic reads it back from there).
* The session API has no password: the wrong_credentials fault does not apply to LuxOS RPC.

Not captured, our assumptions: the wording and code of the wrong-session error (Code 401 "Invalid
session id") and the STATUS codes of the successful privileged replies; the idle timeout.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass
from typing import Any

from gateway.devices.model import Mode
from gateway.simulator.families.base import status
from gateway.simulator.families.thirdparty import MinerStates, expected_ths_at, reboot_after_reply
from gateway.simulator.miner import SimMiner

SESSION_IDLE_S = 900.0
CODE_INVALID_SESSION = 401
CODE_SESSION_ACTIVE = 402
LED_STATES = ("on", "off", "blink", "auto")
FREQUENCY_STEP_MHZ = 25
STOCK_FREQUENCY_MHZ = 590
LOWEST_STEP = -16
PRIVILEGED = ("curtail", "profileset", "rebootdevice", "ledset", "logoff", "resetminer")


@dataclass(slots=True, kw_only=True)
class LuxProfile:
    name: str
    step: int
    frequency: int
    hashrate_ths: float
    watts: int


@dataclass(slots=True)
class LuxState:
    session_id: str | None = None
    session_used: float = 0.0
    profile: str = "default"
    red_led: str = "auto"


def profile_table(miner: SimMiner) -> list[LuxProfile]:
    """LUXminer's profile ladder: 25 MHz steps around the stock ("default", step 0) clock. Hashrate
    follows the clock; the watts are what the simulator's physics draws for that rate (which is linear,
    so every step has the stock efficiency: a simplification of the real, convex, table). The ladder
    stops where the physics stops scaling (120 % of stock)."""
    stock_w = miner.profile.modes[Mode.NORMAL].power_w
    table = []
    step = LOWEST_STEP
    while True:
        frequency = STOCK_FREQUENCY_MHZ + step * FREQUENCY_STEP_MHZ
        ratio = frequency / STOCK_FREQUENCY_MHZ
        if ratio > 1.2:
            break
        watts = round(stock_w * ratio)
        table.append(
            LuxProfile(
                name="default" if step == 0 else f"{frequency}MHz",
                step=step,
                frequency=frequency,
                hashrate_ths=round(expected_ths_at(miner, watts), 1),
                watts=watts,
            )
        )
        step += 1
    return table


def find_profile(miner: SimMiner, name: str) -> LuxProfile | None:
    return next((p for p in profile_table(miner) if p.name == name), None)


class LuxSessions:
    """Session bookkeeping and the privileged commands."""

    def __init__(self, description: str) -> None:
        self.description = description
        self.states: MinerStates[LuxState] = MinerStates(lambda _miner: LuxState())

    def _reply(self, code: int, msg: str, when: int, letter: str = "S", **sections: Any) -> dict[str, Any]:
        return {"STATUS": status(letter, code, msg, self.description, when=when), **sections, "id": 1}

    def _live(self, miner: SimMiner) -> LuxState:
        state = self.states.get(miner)
        if state.session_id is not None and miner.clock() - state.session_used > SESSION_IDLE_S:
            state.session_id = None
        return state

    def logon(self, miner: SimMiner, when: int) -> dict[str, Any]:
        state = self._live(miner)
        if state.session_id is not None:
            return self._reply(CODE_SESSION_ACTIVE, "Another session is active", when, "E")
        state.session_id = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(8))
        state.session_used = miner.clock()
        return self._reply(330, "Session created", when, SESSION=[{"SessionID": state.session_id}])

    def session(self, miner: SimMiner, when: int) -> dict[str, Any]:
        state = self._live(miner)
        return self._reply(331, "Session", when, SESSION=[{"SessionID": state.session_id or ""}])

    def privileged(self, miner: SimMiner, command: str, parameter: str, when: int) -> dict[str, Any]:
        sid, *args = parameter.split(",") if parameter else [""]
        state = self._live(miner)
        if state.session_id is None or not secrets.compare_digest(sid, state.session_id):
            return self._reply(CODE_INVALID_SESSION, "Invalid session id", when, "E")
        state.session_used = miner.clock()
        if command == "logoff":
            state.session_id = None
            return self._reply(332, "Session logged off", when)
        if command == "curtail":
            return self._curtail(miner, args, when)
        if command == "profileset":
            return self._profileset(miner, state, args, when)
        if command == "ledset":
            return self._ledset(miner, state, args, when)
        if command == "rebootdevice":
            state.session_id = None  # the reboot ends every session
            reboot_after_reply(miner)
            return self._reply(350, "Rebooting device", when)
        return self._reply(351, "Resetting LUXminer", when)  # resetminer: no physical effect here

    def _curtail(self, miner: SimMiner, args: list[str], when: int) -> dict[str, Any]:
        action = args[0].strip().lower() if args else ""
        if action == "sleep":
            miner.set_mode(Mode.SLEEP)
        elif action == "wakeup":
            miner.set_mode(Mode.NORMAL)
        else:
            return self._reply(341, f"Invalid curtail action '{action}'", when, "E")
        return self._reply(340, f"Curtail {action}", when)

    def _profileset(self, miner: SimMiner, state: LuxState, args: list[str], when: int) -> dict[str, Any]:
        name = args[0].strip() if args else ""
        profile = find_profile(miner, name)
        if profile is None:
            return self._reply(325, f"Invalid profile '{name}'", when, "E")
        state.profile = profile.name
        miner.set_power_target(float(profile.watts))
        return self._reply(324, "Profile set", when, PROFILE=[{"Profile": profile.name}])

    def _ledset(self, miner: SimMiner, state: LuxState, args: list[str], when: int) -> dict[str, Any]:
        color, value = [*args, "", ""][:2]
        color, value = color.strip().lower(), value.strip().lower()
        if color not in ("red", "green") or value not in LED_STATES:
            return self._reply(353, f"Invalid LED setting '{color},{value}'", when, "E")
        if color == "red":
            state.red_led = value
            miner.blinking = value in ("blink", "on")
        return self._reply(352, "LED set", when)
