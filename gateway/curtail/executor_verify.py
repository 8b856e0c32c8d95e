"""Telemetry verification and drift detection for the executor's actions (pure).

The driver's read-back proves the firmware *accepted* a sleep or wake. It does not prove the load moved:
a stock Antminer takes minutes to ramp after a mode change, and the metered power is what the site pays
for. So each action stays pending until telemetry shows the power has moved at least `fall_fraction` of
the way from its baseline to the expected level, within a verification window (not an instant check).
Past the window without that, the attempt has failed and counts against the miner's retry budget.

Drift: a miner whose settled state (no action pending) contradicts the executor's intention - it came
back on by itself after a firmware watchdog, a power cycle, a person at the rack - is re-dispatched.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from gateway.devices.model import MinerStatus, Mode, Sample


class Outcome(enum.StrEnum):
    PENDING = "pending"
    VERIFIED = "verified"
    EXPIRED = "expired"  # the window passed without the power moving


@dataclass(frozen=True, slots=True, kw_only=True)
class Pending:
    """An issued action awaiting telemetry: power should go from `baseline_w` towards `expected_w`."""

    action_id: int
    miner_id: str
    action: str  # sleep | wake
    issued_ts: int
    baseline_w: float
    expected_w: float


def progress(pending: Pending, power_w: float) -> float:
    """How far the power has moved from baseline to expected (0: not at all, 1: all the way)."""
    span = pending.baseline_w - pending.expected_w
    if span == 0:
        return 1.0
    return (pending.baseline_w - power_w) / span


def check(
    pending: Pending, sample: Sample | None, now: int, *, window_s: int, fall_fraction: float = 0.5
) -> Outcome:
    """Judge a pending action by the latest sample, which must be newer than the action."""
    power = sample.power_w if sample is not None and sample.ts >= pending.issued_ts else None
    if power is not None and progress(pending, power) >= fall_fraction:
        return Outcome.VERIFIED
    if now - pending.issued_ts >= window_s:
        return Outcome.EXPIRED
    return Outcome.PENDING


def observed_on(sample: Sample | None, *, sleep_w: float, nominal_w: float) -> bool | None:
    """Whether telemetry says the miner is on (drawing mining load); None when it cannot say.

    Not the status alone: some firmwares report a paused miner as idle rather than sleeping (Braiins OS
    over its cgminer-compatible API), so a miner that does not hash and draws no more than its control
    board (twice the profile's sleep watts, or 5 % of nominal, whichever is more) counts as off."""
    if sample is None or sample.status is MinerStatus.OFFLINE:
        return None
    if sample.status is MinerStatus.SLEEPING or sample.mode is Mode.SLEEP:
        return False
    idle_w = max(2 * sleep_w, 0.05 * nominal_w)
    control_board_only = sample.power_w is not None and sample.power_w <= idle_w
    return bool(sample.hashrate_ths) or not control_board_only


def drifted(intended_on: bool, sample: Sample | None, *, sleep_w: float, nominal_w: float) -> bool:
    """A settled miner whose telemetry contradicts the intention."""
    seen = observed_on(sample, sleep_w=sleep_w, nominal_w=nominal_w)
    return seen is not None and seen != intended_on
