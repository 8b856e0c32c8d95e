"""Every rule, end to end through the real pieces: recorded-style sample sequences -> baselines ->
engine -> alert lifecycle (SQLite). For each rule the alert opens within its debounce, stays single
while the fault lasts, resolves after the condition has been clear for its window, and a flapping
fault produces one alert, not many. (The simulator-driven path is covered by the demo test and
tests/test_api.py; here every rule gets an exact, hand-checkable sequence.)
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.alerts.lifecycle import AlertLifecycle
from gateway.devices.model import MinerStatus, Mode
from gateway.rules.baselines import Baselines
from gateway.rules.catalog import CATALOG, RuleTable, apply_overrides
from gateway.rules.findings import FindingState
from gateway.rules.inputs import MinerInput
from gateway.store.state import open_state
from tests.rules import INTERVAL, POOL, T0, cycle, inp, sample

ALLOWED = [POOL]
TABLE = apply_overrides(CATALOG, {}, {}, allowed_pools=ALLOWED)
FLEET = [f"peer{n}" for n in range(9)]  # same-model neighbours, for the fleet baseline

Reading = dict[str, Any]
Inputs = Callable[[int, Reading], list[MinerInput]]


def fleet_inputs(c: int, reading: Reading, *, availability: str = "ok") -> list[MinerInput]:
    ts = T0 + c * INTERVAL
    peers = [inp(sample(miner_id=m, ts=ts, rate=110.0 + (n % 3 - 1) * 0.4)) for n, m in enumerate(FLEET)]
    return [inp(sample(ts=ts, **reading), availability=availability), *peers]


def drift(c: int) -> Reading:
    """Hashrate falling 1 % of nominal per poll from cycle 40, at unchanged power."""
    return {"rate": 110.0 * (1 - 0.01 * max(0, c - 40))}


def failing_psu(k: int) -> Reading:
    """Power climbing 250 W a poll at unchanged hashrate: each reading far outside the rolling
    window (a sustained step is absorbed by the window within ~2 polls and is power_spike's job)."""
    return {"power": 3250.0 + 250.0 * (k + 1)}


# rule -> (the faulty reading, or a function of the fault's poll number; how the miner is presented).
# Healthy is the sample() default.
FAULTS: dict[str, tuple[Reading | Callable[[int], Reading], dict[str, Any]]] = {
    "overheat_crit": ({"temp": 90.0}, {}),
    "overheat_warn": ({"temp": 80.0}, {}),
    "offline": ({}, {"availability": "offline"}),
    "hashrate_zero": ({"rate": 0.0, "power": 400.0}, {}),
    "boards_dead": ({"rate": 73.3, "board_rates": [36.7, 36.6, 0.0]}, {}),
    "fan_zero": ({"fans": (6000, 0, 6000, 6000)}, {}),
    "hashrate_degradation": ({"rate": 80.0}, {}),
    "efficiency_degradation": ({"power": 4200.0}, {}),
    "temp_anomaly": ({"temp": 73.0}, {}),
    "fleet_outlier": ({"rate": 70.0}, {}),
    "boards_degrading": ({"rate": 103.0, "board_rates": [40.0, 40.0, 23.0]}, {}),
    "power_spike": ({"power": 3900.0}, {}),
    "power_3sigma": (failing_psu, {}),
    "pool_not_allowed": ({"pool_url": "stratum+tcp://stranger.example:3333"}, {}),
    "asleep_unplanned": (
        {"rate": 0.0, "power": 15.0, "status": MinerStatus.SLEEPING, "mode": Mode.SLEEP},
        {},
    ),
}


class Harness:
    def __init__(self, db: Path, table: RuleTable = TABLE) -> None:
        self.conn: sqlite3.Connection = open_state(db)
        self.table = table
        self.lifecycle = AlertLifecycle(self.conn, lambda miner_id, rule_id: table.rule(rule_id))
        self.baselines = Baselines("site-1")
        self.opened: dict[str, list[int]] = {}
        self.resolved: dict[str, list[int]] = {}
        self.firing: dict[str, list[int]] = {}

    def step(self, c: int, inputs: list[MinerInput]) -> None:
        now = T0 + c * INTERVAL
        _, evaluation = cycle(self.baselines, inputs, self.table, now)
        findings = evaluation.findings(pairs=self.lifecycle.pairs_needing_clear())
        for finding in findings:
            if finding.miner_id == "m1" and finding.state is FindingState.FIRING:
                self.firing.setdefault(finding.rule_id, []).append(c)
        for event in self.lifecycle.apply([f for f in findings if f.miner_id == "m1"], now):
            if event.kind.value in ("opened", "reopened"):
                self.opened.setdefault(event.rule_id, []).append(c)
            elif event.kind.value == "resolved":
                self.resolved.setdefault(event.rule_id, []).append(c)

    def open_count(self, rule_id: str) -> int:
        row = self.conn.execute(
            "SELECT count(*) FROM alerts WHERE miner_id = 'm1' AND rule_id = ?", (rule_id,)
        ).fetchone()
        return int(row[0])


WARMUP = 40  # cycles of healthy readings: the miner's and the fleet's baselines are trusted by then


def cycles_for(seconds: float) -> int:
    return int(seconds // INTERVAL) + 1


@pytest.mark.parametrize("rule_id", sorted(FAULTS))
def test_alert_opens_within_debounce_stays_single_and_resolves(tmp_path: Path, rule_id: str) -> None:
    rule = TABLE.rule(rule_id)
    fault, presentation = FAULTS[rule_id]
    debounce = max(rule.debounce_samples, cycles_for(rule.debounce_s))
    fault_cycles = debounce + 12
    clear_cycles = cycles_for(rule.clear_window_s) + 6
    h = Harness(tmp_path / "state.db")
    c = 0
    for _ in range(WARMUP):
        h.step(c, fleet_inputs(c, {}))
        c += 1
    first_fault = c
    for k in range(fault_cycles):
        h.step(c, fleet_inputs(c, fault(k) if callable(fault) else fault, **presentation))
        c += 1
    assert rule_id in h.opened, f"{rule_id} never opened"
    opened_at = h.opened[rule_id][0]
    # Opens once the condition has held for its debounce (z-score rules may need one more reading
    # for the jump to register against the pre-update baseline).
    assert first_fault + debounce - 1 <= opened_at <= first_fault + debounce + 1, (opened_at, first_fault)
    assert h.open_count(rule_id) == 1 and len(h.opened[rule_id]) == 1
    first_clear = c
    for _ in range(clear_cycles):
        h.step(c, fleet_inputs(c, {}))
        c += 1
    assert rule_id in h.resolved, f"{rule_id} never resolved"
    # Resolved only once the condition has been clear for its whole window (for a rolling-window rule
    # the condition may already stop holding while the fault lasts).
    last_firing = max(f for f in h.firing[rule_id] if f < first_clear + clear_cycles)
    assert h.resolved[rule_id][0] >= last_firing + cycles_for(rule.clear_window_s) - 1
    assert h.open_count(rule_id) == 1


@pytest.mark.parametrize("rule_id", ["overheat_crit", "fan_zero", "boards_dead", "pool_not_allowed"])
def test_a_flapping_fault_is_one_alert(tmp_path: Path, rule_id: str) -> None:
    """For an hour the fault holds just past its debounce, clears for two polls, returns: one alert,
    never a stream of them."""
    fault, presentation = FAULTS[rule_id]
    assert not callable(fault)
    period = TABLE.rule(rule_id).debounce_samples + 1 + 2
    h = Harness(tmp_path / "state.db")
    for c in range(WARMUP):
        h.step(c, fleet_inputs(c, {}))
    for c in range(WARMUP, WARMUP + 120):
        faulty = (c - WARMUP) % period < period - 2
        h.step(c, fleet_inputs(c, fault if faulty else {}, **(presentation if faulty else {})))
    assert h.open_count(rule_id) == 1
    assert len(h.opened.get(rule_id, [])) == 1


def test_slow_drift_is_caught_although_an_ewma_follows_it(tmp_path: Path) -> None:
    h = Harness(tmp_path / "state.db")
    for c in range(40 + 30):
        h.step(c, fleet_inputs(c, drift(c)))
    assert "hashrate_drift" in h.opened
    assert h.opened["hashrate_drift"][0] <= 40 + 20  # within 20 polls at 1 % per poll


def test_stale_shares_alert_after_the_configured_quiet_time(tmp_path: Path) -> None:
    table = apply_overrides(CATALOG, {"shares_stale": {"stale_after_s": 300}}, {}, allowed_pools=ALLOWED)
    h = Harness(tmp_path / "state.db", table)
    for c in range(WARMUP):
        h.step(c, fleet_inputs(c, {}))
    frozen = (T0 + WARMUP * INTERVAL - T0) // 3
    for c in range(WARMUP, WARMUP + 20):
        h.step(c, fleet_inputs(c, {"accepted": frozen}))
    assert "shares_stale" in h.opened
    # 300 s without a new share is 10 polls; the first poll after that opens it (debounce 1).
    assert WARMUP + 9 <= h.opened["shares_stale"][0] <= WARMUP + 12


def test_planned_sleep_raises_nothing(tmp_path: Path) -> None:
    """A miner the curtailment executor put to sleep: no offline, zero-hashrate or asleep alert."""
    h = Harness(tmp_path / "state.db")
    asleep, _ = FAULTS["asleep_unplanned"]
    for c in range(WARMUP):
        h.step(c, fleet_inputs(c, {}))
    for c in range(WARMUP, WARMUP + 30):
        ts = T0 + c * INTERVAL
        inputs = fleet_inputs(c, {})
        inputs[0] = inp(sample(ts=ts, **asleep), intended="sleep")
        h.step(c, inputs)
    assert not set(h.opened) & {"offline", "hashrate_zero", "asleep_unplanned"}, h.opened
