"""Each cycle's health pass: poller snapshot -> baselines -> rules engine -> alert lifecycle.

The engine is pure and the lifecycle owns memory across cycles; this module only builds the inputs
and carries the results between them. It hands the lifecycle every firing finding plus the current
state of the (miner, rule) pairs it tracks (pending or open), not all ~20 findings of every miner:
at 10,000 miners materialising every finding would cost more than the whole evaluation.

Baselines are saved atomically next to the databases (every few cycles and at shutdown), keyed by
site and miner, so a restart does not start every z-score from zero.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path

from gateway.alerts.lifecycle import AlertLifecycle
from gateway.alerts.model import AlertEvent
from gateway.devices.profiles import MinerProfile, ProfileCatalog
from gateway.polling import PollCoordinator
from gateway.rules.baselines import BaselineError, Baselines
from gateway.rules.catalog import RuleTable
from gateway.rules.engine import evaluate
from gateway.rules.findings import Finding
from gateway.rules.inputs import FleetFrame, IntendedState, MinerInput, Nominal
from gateway.store.state import InventoryRow

log = logging.getLogger(__name__)
SAVE_EVERY_CYCLES = 10


class HealthMonitor:
    def __init__(
        self,
        *,
        site_id: str,
        rules: RuleTable,
        lifecycle: AlertLifecycle,
        profiles: ProfileCatalog,
        baselines_path: Path,
        intended: Callable[[], Mapping[str, IntendedState]] | None = None,
        extra_findings: Callable[[int, Collection[tuple[str, str]]], list[Finding]] | None = None,
    ) -> None:
        self.site_id = site_id
        self.rules = rules
        self.lifecycle = lifecycle
        self.profiles = profiles
        self.baselines_path = baselines_path
        self.intended = intended or dict
        # Site-level findings (contracts, prices) join the miners' in the *same* lifecycle.apply call:
        # a tracked pair missing from an apply is "unknown" and pauses its clocks, so two applies per
        # cycle would keep each other's alerts from ever resolving.
        self.extra_findings = extra_findings
        self.baselines = self._load()
        self._nominals: dict[str, Nominal | None] = {}
        self.cycles = 0
        self.last_eval_s = 0.0

    def _load(self) -> Baselines:
        try:
            data = self.baselines_path.read_bytes()
        except FileNotFoundError:
            return Baselines(self.site_id)
        try:
            return Baselines.from_bytes(data, site_id=self.site_id)
        except BaselineError as err:
            log.warning("baselines in %s not usable (%s): starting afresh", self.baselines_path, err)
            return Baselines(self.site_id)

    def save(self) -> None:
        tmp = self.baselines_path.with_name(self.baselines_path.name + ".tmp")
        tmp.write_bytes(self.baselines.to_bytes())
        tmp.replace(self.baselines_path)

    def _nominal(self, profile_key: str | None) -> Nominal | None:
        if profile_key not in self._nominals:
            profile: MinerProfile | None = None
            if profile_key:
                try:
                    profile = self.profiles.get(profile_key)
                except KeyError:
                    profile = None
            self._nominals[profile_key or ""] = Nominal.from_profile(profile) if profile else None
        return self._nominals.get(profile_key or "")

    def evaluate_cycle(
        self, poller: PollCoordinator, inventory: Mapping[str, InventoryRow], now: int
    ) -> list[AlertEvent]:
        started = time.perf_counter()
        states = poller.states()
        intended = self.intended()
        inputs = [
            MinerInput(
                miner_id=miner_id,
                availability=poller.availability(miner_id, now).value,
                sample=states[miner_id].last_sample if miner_id in states else None,
                model_key=row.profile_key,
                nominal=self._nominal(row.profile_key),
                intended_state=intended.get(miner_id),
            )
            for miner_id, row in inventory.items()
        ]
        pairs = self.lifecycle.pairs_needing_clear()
        findings = self.extra_findings(now, pairs) if self.extra_findings is not None else []
        if inputs:
            frame = FleetFrame.from_inputs(inputs)
            scores = self.baselines.observe(frame)
            evaluation = evaluate(frame, scores, self.rules, now)
            findings = [*evaluation.findings(pairs=pairs), *findings]
        elif not findings:
            return []
        events = self.lifecycle.apply(findings, now)
        self.cycles += 1
        if self.cycles % SAVE_EVERY_CYCLES == 0:
            self.save()
        self.last_eval_s = time.perf_counter() - started
        return events
