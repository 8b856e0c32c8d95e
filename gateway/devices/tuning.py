"""Control helpers the Braiins OS, LuxOS and Vnish drivers share: power-target windows from the profile,
choosing among a firmware's discrete power steps, and confirming a reboot.

These firmwares tune to a power target (BOS: any watt value in its window; LuxOS: a ladder of clock
profiles; Vnish: a ladder of presets named by their watts), so a mode is only a named power target:
normal is the model's stock watts, low/high the watts the profile gives those modes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable

from gateway.devices.driver import BaseDriver
from gateway.devices.errors import Unreachable
from gateway.devices.model import Mode, Sample
from gateway.devices.profiles import FirmwareName, MinerProfile

# A rebooted miner's uptime restarts at 0; allow this much for clock granularity and reply latency.
UPTIME_SLACK_S = 5.0


def power_window(profile: MinerProfile | None, firmware: FirmwareName) -> tuple[int, int] | None:
    """The power-target range the profile gives for this firmware, or None when the profile does not
    list one (then we cannot validate a target, and do not offer the control)."""
    if profile is None or profile.power_target is None or firmware not in profile.power_target.firmware:
        return None
    return profile.power_target.min_w, profile.power_target.max_w


def check_watts(watts: int, window: tuple[int, int] | None) -> None:
    """Refuse an out-of-range target before any I/O (a firmware would clamp it or reject it)."""
    if window is None:
        return
    low, high = window
    if isinstance(watts, bool) or not low <= watts <= high:
        raise ValueError(f"power target {watts} W is outside this model's range {low}-{high} W")


def tunable_modes(profile: MinerProfile | None, window: tuple[int, int] | None) -> frozenset[Mode]:
    """Sleep always; normal/low/high when a power target can express them (the profile knows their watts
    and they lie in the firmware's window)."""
    modes = {Mode.SLEEP}
    if profile is not None and window is not None:
        modes |= {
            mode
            for mode, spec in profile.modes.items()
            if mode is not Mode.SLEEP and window[0] <= spec.power_w <= window[1]
        }
    return frozenset(modes)


def floor_step(steps: Iterable[int], watts: int) -> int | None:
    """The highest of the firmware's power steps that does not exceed `watts` (never overshoot a cap)."""
    fitting = [step for step in steps if step <= watts]
    return max(fitting) if fitting else None


def nearest_step(steps: Iterable[int], watts: float) -> int | None:
    candidates = list(steps)
    return min(candidates, key=lambda step: abs(step - watts)) if candidates else None


async def reboot_and_confirm(driver: BaseDriver, send: Callable[[], Awaitable[object]]) -> Sample:
    """Send the reboot, then wait until the miner answers with an uptime younger than the request.

    Firmwares often drop the connection as they go down instead of answering, so a dropped request is
    not a failure: the read-back decides. Comparing with the time since the request (rather than with
    the uptime before it) needs no extra read and cannot be fooled by a miner that was just booted."""
    loop = asyncio.get_running_loop()
    sent_at = loop.time()
    with contextlib.suppress(Unreachable):
        await send()

    def fresh(sample: Sample) -> bool:
        return sample.uptime_s is not None and sample.uptime_s <= loop.time() - sent_at + UPTIME_SLACK_S

    return await driver.read_back(fresh, "reboot")
