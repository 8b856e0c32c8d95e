"""Shared by the lifecycle tests: a real state.db in a temporary directory, findings made short, and
a reader for an alert's history."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gateway.alerts.lifecycle import AlertLifecycle
from gateway.alerts.model import AlertEvent, AlertPolicy, Policy
from gateway.rules.findings import Finding, FindingState, Severity
from gateway.store.state import open_state

T0 = 1_700_000_000
INTERVAL = 30
F, C, U, S = FindingState.FIRING, FindingState.CLEAR, FindingState.UNKNOWN, FindingState.SUSPENDED

POLICIES: dict[str, AlertPolicy] = {
    # three consecutive samples, clear for 2 minutes, 15 min cooldown
    "samples": Policy(
        severity=Severity.P1, debounce_samples=3, debounce_s=0, clear_window_s=120, cooldown_s=900
    ),
    # 90 s of firing, whatever the sample count; resolve at the first clear; no cooldown
    "seconds": Policy(
        severity=Severity.P2, debounce_samples=1, debounce_s=90, clear_window_s=0, cooldown_s=0
    ),
    # both: 3 samples AND 60 s
    "both": Policy(
        severity=Severity.P2, debounce_samples=3, debounce_s=60, clear_window_s=60, cooldown_s=300
    ),
    # opens at the first firing finding
    "instant": Policy(
        severity=Severity.P0, debounce_samples=1, debounce_s=0, clear_window_s=60, cooldown_s=600
    ),
}


def finding(
    state: FindingState,
    ts: int,
    *,
    miner: str = "m1",
    rule: str = "samples",
    value: float | None = 91.0,
    detail: str = "chip 91 C >= 85 C",
) -> Finding:
    severity = POLICIES[rule].severity if rule in POLICIES else Severity.P3
    return Finding(
        miner_id=miner,
        rule_id=rule,
        severity=severity,
        state=state,
        ts=ts,
        value=value,
        threshold=85.0,
        detail=detail,
    )


def open_db(path: Path) -> sqlite3.Connection:
    return open_state(path / "state.db")


class Feed:
    """Drives one (miner, rule) through cycles `INTERVAL` seconds apart; `now` is the sample time."""

    def __init__(self, lifecycle: AlertLifecycle, *, miner: str = "m1", rule: str = "samples") -> None:
        self.lifecycle = lifecycle
        self.miner, self.rule = miner, rule
        self.now = T0
        self.events: list[AlertEvent] = []

    def __call__(self, *states: FindingState | None, step: int = INTERVAL) -> list[AlertEvent]:
        """One cycle per state (None: the pair gets no finding in that cycle)."""
        out: list[AlertEvent] = []
        for state in states:
            found = [] if state is None else [finding(state, self.now, miner=self.miner, rule=self.rule)]
            out += self.lifecycle.apply(found, self.now)
            self.now += step
        self.events += out
        return out


def kinds(events: list[AlertEvent]) -> list[str]:
    return [e.kind.value for e in events]


def history_kinds(conn: sqlite3.Connection, alert_id: int) -> list[str]:
    return [
        row[0]
        for row in conn.execute("SELECT kind FROM alert_events WHERE alert_id = ? ORDER BY id", (alert_id,))
    ]


def open_count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM alerts WHERE state = 'open'").fetchone()[0])
