"""What the Braiins OS, LuxOS and Vnish front-ends share: per-miner firmware state (tokens, sessions,
presets), unit conversions, the cgminer POOLS block in its third-party dialects, and small HTML pages.

Front-ends are module-level singletons serving a whole fleet, so state that real firmware keeps per box
(a login token, the LuxOS session, the running Vnish preset) lives here keyed by the miner's address.
The key is checked against the `SimMiner` object itself: a new simulator reusing an address (the next
test) starts from factory state instead of inheriting the last one's session.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from aiohttp import web

from gateway.devices.model import Mode
from gateway.simulator.faults import FaultKind
from gateway.simulator.miner import BoardSnapshot, SimMiner

S = TypeVar("S")

# A firmware answers a reboot request and then goes down; the servers drop connections to a booting
# miner at once, so the reboot is applied a moment after the reply has been written.
REBOOT_DELAY_S = 0.2


class MinerStates(Generic[S]):
    """Per-miner firmware state, created on first use by `factory`."""

    def __init__(self, factory: Callable[[SimMiner], S]) -> None:
        self._factory = factory
        self._states: dict[str, tuple[SimMiner, S]] = {}

    def get(self, miner: SimMiner) -> S:
        held = self._states.get(miner.ip)
        if held is None or held[0] is not miner:
            held = (miner, self._factory(miner))
            self._states[miner.ip] = held
        return held[1]


@dataclass(slots=True)
class Token:
    """A bearer token as BOS and Vnish hand them out. Any reboot forgets every token."""

    value: str
    expires_at: float
    boot: float  # physics.started_at when issued


def issue_token(miner: SimMiner, lifetime_s: float, tokens: dict[str, Token]) -> Token:
    """A new token, remembered in `tokens` (from which expired ones are dropped)."""
    now = miner.clock()
    for value in [v for v, t in tokens.items() if t.expires_at <= now]:
        del tokens[value]
    token = Token(secrets.token_hex(16), now + lifetime_s, miner.physics.started_at)
    tokens[token.value] = token
    return token


def token_valid(token: Token | None, presented: str | None, miner: SimMiner) -> bool:
    """A live token from this boot. While the password is wrong (the wrong_credentials fault: someone
    changed it) sessions opened with the old password are over too."""
    return (
        not miner.has(FaultKind.WRONG_CREDENTIALS)
        and token is not None
        and presented is not None
        and secrets.compare_digest(token.value, presented)
        and miner.clock() < token.expires_at
        and token.boot == miner.physics.started_at
    )


def reboot_after_reply(miner: SimMiner) -> None:
    asyncio.get_running_loop().call_later(REBOOT_DELAY_S, miner.reboot)


# --- units and formats -----------------------------------------------------------------------------


def ghs(ths: float) -> float:
    return round(ths * 1_000, 2)


def mhs(ths: float) -> float:
    return round(ths * 1_000_000, 2)


def dashed(values: list[float]) -> str:
    """Antminer-family per-sensor packing: '47-34-34-47'."""
    return "-".join(str(round(v)) for v in values)


def hms(seconds: float, *, two_digit_hours: bool) -> str:
    """A duration as LUXminer ("00:57:33") or Vnish/bmminer ("0:00:05") print 'Last Share Time'."""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    head = f"{hours:02d}" if two_digit_hours else str(hours)
    return f"{head}:{rest // 60:02d}:{rest % 60:02d}"


# Every family reports the same four sensors per board (BoardSnapshot.pcb_sensors_c / chip_sensors_c,
# intake side first, outlet side last); these name the readings the firmwares pick from them.


def exhaust_pcb(board: BoardSnapshot) -> int:
    return max(board.pcb_sensors_c)


def intake_pcb(board: BoardSnapshot) -> int:
    return min(board.pcb_sensors_c)


def hottest_chip(board: BoardSnapshot) -> int:
    return max(board.chip_sensors_c)


def coolest_chip(board: BoardSnapshot) -> int:
    return min(board.chip_sensors_c)


def pool_quota_split(accepted: int, fee_fraction: float) -> tuple[int, int]:
    """(user, fee) shares when a fee-charging firmware hashes part of the time on its own pool."""
    fee = round(accepted * fee_fraction)
    return accepted - fee, fee


# --- power targets ---------------------------------------------------------------------------------


def power_window(miner: SimMiner, firmware: str) -> tuple[int, int]:
    """The power targets this firmware accepts on this model: the profile's window when the profile says
    the firmware offers one, else 60-120 % of the stock watts. Capped at 120 % of stock, which is as far
    as the simulator's physics scales the hashrate with the target."""
    stock = miner.profile.modes[Mode.NORMAL].power_w
    ceiling = int(stock * 1.2)
    target = miner.profile.power_target
    if target is not None and firmware in target.firmware:
        return target.min_w, min(target.max_w, ceiling)
    return int(stock * 0.6), ceiling


def expected_ths_at(miner: SimMiner, watts: float) -> float:
    """The rate the physics settles at for a power target (see MinerPhysics.nominal_ths)."""
    spec = miner.profile.modes[Mode.NORMAL]
    return spec.hashrate_ths * min(1.2, watts / spec.power_w)


# --- web -------------------------------------------------------------------------------------------


def html_page(title: str, body: str) -> web.Response:
    """The landing page of a firmware's web UI. Scanners (pyasic among them) recognise the firmware by
    words in it, so the title carries the same product name the real UI shows."""
    text = f"<!DOCTYPE html><html><head><title>{title}</title></head><body>{body}</body></html>"
    return web.Response(text=text, content_type="text/html")


def json_error(status: int, payload: Any) -> web.Response:
    return web.json_response(payload, status=status)
