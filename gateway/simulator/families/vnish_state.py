"""Per-miner Vnish state shared by its RPC and web front-ends: the running preset (its power target), the
miner state word, login tokens, and the numbers both APIs derive from one `Snapshot`.

Facts (protocols.md §7, the S21 Pro capture, pyasic web/vnish.py, asic-rs vnish backend):
* A preset is named by its watts ("2800"); "disabled" is stock clocks. `/autotune/presets` lists them;
  `POST /settings {"miner": {"overclock": {"preset": ..}}}` selects one and answers
  {"restart_required": false, "reboot_required": false} *whether or not* the preset exists (pyasic notes
  this): only reading back `/perf-summary` shows what runs.
* The miner state word ("mining", "auto-tuning", "stopped", "paused", "failure") is in RPC `stats`
  `state`, web `/summary` `miner_status.miner_state` and `/status` `miner_state`.
* Vnish charges a dev fee by hashing a few percent of the time on its own "DevFee" pool; cgminer's
  SUMMARY Accepted counts those shares too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.devices.model import Mode
from gateway.simulator.families.thirdparty import MinerStates, Token, expected_ths_at, power_window
from gateway.simulator.miner import SimMiner, Snapshot

FEE_FRACTION = 0.028  # the capture: 224 of 1823 accepted shares, devfee_percent 2.812
STOCK_PRESET = "disabled"
PRESET_COUNT = 25


@dataclass(slots=True)
class VnishState:
    preset: str = STOCK_PRESET
    stopped_word: str = "stopped"  # "stopped" after /mining/stop, "paused" after /mining/pause
    state_since: float = 0.0
    tokens: dict[str, Token] = field(default_factory=dict)


STATES: MinerStates[VnishState] = MinerStates(lambda miner: VnishState(state_since=miner.physics.started_at))


def preset_watts(miner: SimMiner) -> list[int]:
    """The preset ladder: evenly spaced (rounded to 10 W) over the power window Vnish offers this model
    (the S21 Pro capture: 25 presets, 2550-4690 W)."""
    low, high = power_window(miner, "vnish")
    low = (low + 9) // 10 * 10
    step = max(10, round((high - low) / (PRESET_COUNT - 1) / 10) * 10)
    return list(range(low, high + 1, step))


def preset_label(miner: SimMiner, name: str) -> str:
    if name == STOCK_PRESET:
        return "Disabled"
    watts = int(name)
    return f"{watts} watt ~ {round(expected_ths_at(miner, watts))} TH"


def apply_preset(miner: SimMiner, name: str) -> bool:
    """Switch presets live (Vnish retunes without a restart). False for a name that is not a preset."""
    if name == STOCK_PRESET:
        watts = miner.profile.modes[Mode.NORMAL].power_w
    elif name.isdigit() and int(name) in preset_watts(miner):
        watts = float(name)
    else:
        return False
    STATES.get(miner).preset = name
    miner.set_power_target(watts)
    return True


def stop(miner: SimMiner, word: str) -> None:
    state = STATES.get(miner)
    state.stopped_word = word
    state.state_since = miner.clock()
    miner.set_mode(Mode.SLEEP)


def start(miner: SimMiner) -> None:
    STATES.get(miner).state_since = miner.clock()
    miner.set_mode(Mode.NORMAL)


def miner_state(miner: SimMiner, snap: Snapshot) -> str:
    if snap.sleeping:
        return STATES.get(miner).stopped_word
    return "auto-tuning" if snap.in_transition else "mining"


def state_time(miner: SimMiner, snap: Snapshot) -> int:
    return max(0, int(snap.ts - max(STATES.get(miner).state_since, miner.physics.started_at)))


def chain_watts(snap: Snapshot) -> list[int]:
    """Per-chain consumption: the hashing draw split over the boards (0 while stopped)."""
    if snap.sleeping or not snap.boards:
        return [0 for _ in snap.boards]
    return [round(snap.power_w / len(snap.boards)) for _ in snap.boards]


def packed(sensors: tuple[int, int, int, int]) -> list[float]:
    """A board's four sensors in the order Vnish prints them: the capture's "65-55-65-65" has the one
    on the cool (intake) side second."""
    intake, intake2, outlet2, outlet = sensors
    return [float(outlet), float(intake), float(outlet2), float(max(intake2, outlet))]
