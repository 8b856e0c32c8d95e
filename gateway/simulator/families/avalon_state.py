"""What a simulated Avalon controller keeps besides the physics: the configured work mode and level,
the last soft-off/on requests, and the effects of its `ascset` writes.

Firmware behaviour modelled (protocols.md §5, the Avalon Q captures):
* `softoff` / `softon` take `1:<epoch>`, the moment to act, and answer at once ("success softoff:<ts>",
  Code 118); the switch happens at that moment (immediately if it is already past).
* Avalon Q work modes 0/1/2 (Eco/Standard/Super, `workmode,set,N`) apply without a restart; while
  soft-off the setting is kept and used by the next `softon`. The simulator can run only the modes the
  model's profile has figures for; another is refused ("set failed"), where the real firmware would
  comply - a limit of the simulator, not of the firmware.
* A-series `WORKMODE` numbers have no published meaning: a write is stored and echoed, the physics is
  left alone. `worklevel,set,N` likewise (both dialects).
* `restart` answers `{"STATUS":"RESTART"}`, then cgminer restarts (modelled as a reboot).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from gateway.devices.model import Mode
from gateway.simulator.families.perminer import PerMiner
from gateway.simulator.miner import SimMiner

APPLY_DELAY_S = 0.1
Q_WORKMODES = {0: Mode.LOW, 1: Mode.NORMAL, 2: Mode.HIGH}
Q_WORKMODE_OF = {mode: number for number, mode in Q_WORKMODES.items()}
A_SERIES_WORKMODE = 1  # a1246_stats.json


@dataclass(slots=True)
class AvalonState:
    mode: Mode = Mode.NORMAL  # the Q's configured work mode
    workmode: int = A_SERIES_WORKMODE  # the A-series' raw WORKMODE
    worklevel: int = 0
    soft_off_at: int = 0
    soft_on_at: int = 0


STATES: PerMiner[AvalonState] = PerMiner(lambda miner: AvalonState())


def is_q(miner: SimMiner) -> bool:
    return miner.profile.model == "Q"


def soft_off(miner: SimMiner) -> bool:
    return miner.physics.mode is Mode.SLEEP


def mm_workmode(miner: SimMiner) -> int:
    state = STATES.get(miner)
    return Q_WORKMODE_OF[state.mode] if is_q(miner) else state.workmode


def _at(miner: SimMiner, when: float, action: Callable[[], object]) -> None:
    delay = max(APPLY_DELAY_S, when - miner.clock())
    asyncio.get_running_loop().call_later(delay, action)


def schedule_soft_off(miner: SimMiner, at: int) -> None:
    STATES.get(miner).soft_off_at = at
    _at(miner, at, lambda: miner.set_mode(Mode.SLEEP))


def schedule_soft_on(miner: SimMiner, at: int) -> None:
    state = STATES.get(miner)
    state.soft_on_at = at
    _at(miner, at, lambda: miner.set_mode(state.mode) if soft_off(miner) else None)


def set_workmode(miner: SimMiner, number: int) -> bool:
    state = STATES.get(miner)
    if not is_q(miner):
        state.workmode = number
        return True
    mode = Q_WORKMODES.get(number)
    if mode is None or mode not in miner.profile.modes:
        return False
    state.mode = mode
    if not soft_off(miner):
        miner.set_mode(mode)
    return True


def restart(miner: SimMiner) -> None:
    asyncio.get_running_loop().call_later(APPLY_DELAY_S, miner.reboot)
