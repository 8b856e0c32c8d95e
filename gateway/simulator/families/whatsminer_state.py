"""What a simulated btminer keeps besides the physics, and the effect of its write commands.

API v2 (4028) and API v3 (4433) are two doors into the same firmware, so both front-end halves call
the effects here: power off/on, the configured power mode, the power limit, the LED and reboots.

Firmware behaviour modelled (protocols.md §3, the M31S/M20S captures):
* `power_off` stops btminer; the controller keeps answering (`status` says `btmineroff: "true"`).
  `power_on` restarts it in the *configured* power mode, which a mode write changes even while
  powered off (the summary's "Power Mode" is the setting, not what is running).
* A mode change or a new power limit restarts btminer (SimMiner's physics does the restart).
* The write is answered first, then applied (`power_off respbefore=true`; a restart would otherwise
  cut the reply): effects are scheduled `APPLY_DELAY_S` after the reply.
* Tokens (API v2) live 30 minutes, at most 32 are kept (the oldest goes), a reboot forgets them all.
* The `wrong_credentials` fault means someone changed the admin password: every token and signature
  computed from the old one fails.

Simplifications: `restart_btminer` and v3 `set.miner.service restart` are modelled as a reboot (the
simulator core restarts the whole machine, not a process); the LED has two states, "auto" and "manual".
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from gateway.devices.model import Mode
from gateway.simulator.families.perminer import PerMiner
from gateway.simulator.faults import FaultKind
from gateway.simulator.miner import SimMiner, Snapshot

APPLY_DELAY_S = 0.1
TOKEN_LIFETIME_S = 1800.0
MAX_TOKENS = 32
V2_API = "2.0.5"
V3_API = "3.0.2"
# The firmware date from which pyasic (and MicroBT's tooling) assume API v3 only.
V3_ONLY_FROM = "20241100"
MODE_NAMES = {Mode.LOW: "Low", Mode.NORMAL: "Normal", Mode.HIGH: "High"}
_SALT_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


@dataclass(slots=True)
class BtminerState:
    salt: str  # the salt of the stored admin password hash (API v2 get_token)
    v3_salt: str  # get.device.info "salt" (API v3 tokens)
    power_mode: Mode = Mode.NORMAL
    tokens: dict[str, float] = field(default_factory=dict)  # v2 sign -> expiry
    tokens_boot: float = 0.0  # physics.started_at when the tokens were issued


def _fixed_salt(miner: SimMiner, purpose: str) -> str:
    digest = hashlib.sha256(f"{miner.identity.serial}:{purpose}".encode()).digest()
    return "".join(_SALT_ALPHABET[b % 64] for b in digest[:8])


STATES: PerMiner[BtminerState] = PerMiner(
    lambda miner: BtminerState(salt=_fixed_salt(miner, "v2"), v3_salt=_fixed_salt(miner, "v3"))
)


def new_salt() -> str:
    return "".join(secrets.choice(_SALT_ALPHABET) for _ in range(8))


def password(miner: SimMiner) -> str:
    """The admin password the firmware checks: changed (unknown to us) under wrong_credentials."""
    return f"changed-{miner.password}" if miner.has(FaultKind.WRONG_CREDENTIALS) else miner.password


def tokens(miner: SimMiner) -> dict[str, float]:
    """The live v2 tokens (expired ones and those from before a reboot are dropped)."""
    state = STATES.get(miner)
    if state.tokens_boot != miner.physics.started_at:
        state.tokens.clear()
        state.tokens_boot = miner.physics.started_at
    now = miner.clock()
    for sign in [s for s, expiry in state.tokens.items() if expiry <= now]:
        del state.tokens[sign]
    return state.tokens


def remember_token(miner: SimMiner, sign: str) -> None:
    live = tokens(miner)
    live[sign] = miner.clock() + TOKEN_LIFETIME_S
    while len(live) > MAX_TOKENS:
        del live[next(iter(live))]


# --- identity ----------------------------------------------------------------------------------------


def firmware_version(miner: SimMiner) -> str:
    return miner.identity.firmware_version


def v2_enabled(miner: SimMiner) -> bool:
    """Firmware from 2024-11 on serves API v3 only (pyasic switches to v3 from that date too)."""
    date = re.match(r"\d{8}", firmware_version(miner))
    return date is None or date.group(0) < V3_ONLY_FROM


def reported_model(miner: SimMiner) -> str:
    """devdetails `Model` / v3 `miner.type`: model and hashboard revision ("M30S+_V10"). The revision is
    the one whose chip count the profile's boards have, so every client counts the same chips."""
    profile = miner.profile
    table = profile.chips_per_board_by_revision
    revision = next((rev for rev, chips in table.items() if chips == profile.chips_per_board), "V10")
    return f"{profile.model}_{revision}"


def power_limit(miner: SimMiner, snap: Snapshot) -> int:
    """The configured limit: the last one written, else the PSU's ceiling for this model."""
    if snap.power_target_w:
        return round(snap.power_target_w)
    target = miner.profile.power_target
    return target.max_w if target is not None else round(miner.profile.modes[Mode.NORMAL].power_w)


def error_codes(miner: SimMiner, snap: Snapshot) -> list[tuple[int, str]]:
    """Active btminer error codes with their start time. Only the fan codes are modelled: 110/111
    (intake/outlet fan speed error), as on the M31S capture whose outlet fan reads 0 rpm."""
    since = datetime.fromtimestamp(snap.ts - 60, UTC).strftime("%Y-%m-%d %H:%M:%S")
    found = []
    if len(snap.fans_rpm) > 0 and snap.fans_rpm[0] == 0:
        found.append((110, since))
    if len(snap.fans_rpm) > 1 and snap.fans_rpm[1] == 0:
        found.append((111, since))
    return found


def led_status(miner: SimMiner) -> str:
    return "manual" if miner.blinking else "auto"


def configured_mode(miner: SimMiner) -> Mode:
    return STATES.get(miner).power_mode


def running_mode(miner: SimMiner) -> Mode:
    """The summary's "Power Mode": what btminer runs; while powered off, what it will run."""
    mode = miner.physics.mode
    return mode if mode in MODE_NAMES else configured_mode(miner)


def powered_off(miner: SimMiner) -> bool:
    return miner.physics.mode is Mode.SLEEP


# --- effects of write commands ---------------------------------------------------------------------


def after_reply(action: Callable[[], object]) -> None:
    asyncio.get_running_loop().call_later(APPLY_DELAY_S, action)


def power_off(miner: SimMiner) -> None:
    after_reply(lambda: miner.set_mode(Mode.SLEEP))


def power_on(miner: SimMiner) -> None:
    mode = configured_mode(miner)
    after_reply(lambda: miner.set_mode(mode))


def set_power_mode(miner: SimMiner, mode: Mode) -> bool:
    """False when the simulated model has no figures for the mode (the simulator cannot run it)."""
    if mode not in miner.profile.modes or mode is Mode.SLEEP:
        return False
    STATES.get(miner).power_mode = mode
    if not powered_off(miner):
        after_reply(lambda: miner.set_mode(mode))
    return True


def set_power_limit(miner: SimMiner, watts: int) -> bool:
    target = miner.profile.power_target
    ceiling = target.max_w if target is not None else round(miner.profile.modes[Mode.NORMAL].power_w)
    if not 0 < watts <= ceiling:
        return False
    after_reply(lambda: miner.set_power_target(float(watts)))
    return True


def set_led(miner: SimMiner, on: bool) -> None:
    miner.blinking = on


def reboot(miner: SimMiner) -> None:
    after_reply(miner.reboot)
