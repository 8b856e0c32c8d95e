"""What the rules engine hands to the alert lifecycle: one `Finding` per (miner, rule) per cycle.

The engine is pure and stateless about alerts: it only says, for this cycle, whether each rule's
condition holds for each miner (`firing`), does not (`clear`), cannot be judged because an input is
missing (`unknown` — never "healthy"), or is deliberately not judged (`suspended`: the miner's data
is stale, or it sleeps on purpose). Debounce, cooldown and one-open-alert-per-(miner, rule) are the
lifecycle's job, because they need memory across cycles and across restarts.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Severity(enum.IntEnum):
    """P0 pages someone now; P3 is for the weekly review. Lower is worse."""

    P0 = 0
    P1 = 1
    P2 = 2
    P3 = 3

    @property
    def label(self) -> str:
        return self.name


class FindingState(enum.StrEnum):
    FIRING = "firing"
    CLEAR = "clear"
    UNKNOWN = "unknown"
    SUSPENDED = "suspended"


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    miner_id: str
    rule_id: str
    severity: Severity
    state: FindingState
    ts: int  # the sample time the finding is about (UTC epoch seconds)
    value: float | None = None  # the measured value (temperature, z-score, ratio ...)
    threshold: float | None = None
    detail: str = ""  # one line a technician can act on: "chip 91 C >= 85 C on board 2"
