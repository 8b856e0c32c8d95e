"""Faults a virtual miner can be given at run time, and what each does.

Transport faults change how the miner's sockets behave (the poller must survive them); condition faults
change the physics (the rules engine must notice them). Each fault is one entry in the miner's fault
table, keyed by kind, so injecting the same fault twice updates it rather than stacking it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class FaultKind(enum.StrEnum):
    # transport: the sockets misbehave
    OFFLINE = "offline"  # connections refused (the listener is gone)
    HUNG = "hung"  # accepts, reads the request, never answers
    SLOW = "slow"  # answers after `delay_s`
    RESET = "reset"  # sends part of the reply, then a TCP reset
    MALFORMED = "malformed"  # replies with broken JSON
    WRONG_CREDENTIALS = "wrong_credentials"  # the miner's password changed: our logins fail
    # condition: the physics changes
    OVERHEAT = "overheat"  # `extra_c` degrees of heat from a blocked intake or hot aisle
    FAN_STOP = "fan_stop"  # all fans at 0 rpm
    DEAD_BOARD = "dead_board"  # board `slot` stops hashing
    DEGRADING = "degrading"  # hashrate falls by `per_hour` (fraction) every hour
    POWER_SPIKE = "power_spike"  # power draw multiplied by `factor` at the same hashrate
    STALE_SHARES = "stale_shares"  # hashing, but the pool accepts nothing
    POOL_CHANGED = "pool_changed"  # someone pointed the miner at `url`


TRANSPORT_FAULTS = frozenset(
    {
        FaultKind.OFFLINE,
        FaultKind.HUNG,
        FaultKind.SLOW,
        FaultKind.RESET,
        FaultKind.MALFORMED,
        FaultKind.WRONG_CREDENTIALS,
    }
)

DEFAULTS: dict[FaultKind, dict[str, Any]] = {
    FaultKind.SLOW: {"delay_s": 3.0},
    FaultKind.OVERHEAT: {"extra_c": 30.0},
    FaultKind.DEAD_BOARD: {"slot": 0},
    FaultKind.DEGRADING: {"per_hour": 0.05},
    FaultKind.POWER_SPIKE: {"factor": 1.3},
    FaultKind.POOL_CHANGED: {"url": "stratum+tcp://unknown-pool.example:3333"},
}


@dataclass(frozen=True, slots=True)
class Fault:
    kind: FaultKind
    params: dict[str, Any]

    @classmethod
    def make(cls, kind: str | FaultKind, **params: Any) -> Fault:
        try:
            fault_kind = FaultKind(kind)
        except ValueError:
            known = ", ".join(k.value for k in FaultKind)
            raise ValueError(f"unknown fault {kind!r}; known: {known}") from None
        merged = {**DEFAULTS.get(fault_kind, {}), **params}
        unknown = set(merged) - set(DEFAULTS.get(fault_kind, {}))
        if unknown:
            raise ValueError(f"fault {fault_kind.value} takes no parameter(s) {sorted(unknown)}")
        for key, default in DEFAULTS.get(fault_kind, {}).items():
            value = merged[key]
            if isinstance(default, float) and isinstance(value, int | float) and not isinstance(value, bool):
                merged[key] = float(value)
            elif type(value) is not type(default):
                raise ValueError(f"fault {fault_kind.value}: {key} must be a {type(default).__name__}")
        return cls(fault_kind, merged)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, **self.params}
