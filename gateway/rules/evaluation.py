"""The engine's compact answer for one cycle, and how the alert lifecycle gets `Finding`s out of it.

10,000 miners x 17 rules is 170,000 (miner, rule) states per cycle; building a `Finding` object for
each would take longer than the whole evaluation. So the engine returns one `uint8` state per (rule,
miner) in a (rules x miners) array, with the measured values alongside, and `Finding`s are made only
for what the caller asks for:

    ev.findings()                                     # every FIRING (miner, rule)
    ev.findings(states={FIRING, UNKNOWN, SUSPENDED})  # ... plus every unknown and suspended one
    ev.findings(pairs=lifecycle.tracked_pairs())      # every firing one, plus these pairs in any state

Contract: every (miner, rule) the arrays do not mark FIRING, UNKNOWN or SUSPENDED is CLEAR. The
lifecycle needs CLEAR findings only for the pairs it tracks (open or pending alerts), which it names
in `pairs`; it gets those in whatever state they are, with the reason when they are not judged.

Cost: a `Finding` takes 2-4 us to build (a frozen dataclass), so a fleet's few hundred firing pairs
are cheap, but "every unknown and suspended" is large by nature: half of a typical fleet reports no
watts, so its three power rules are UNKNOWN every cycle (~15,000 findings at 10,000 miners, ~90 ms).
Prefer `findings(pairs=...)` for what the lifecycle tracks and `counts()`/`mask()` for aggregates.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from gateway.rules.catalog import Rule
from gateway.rules.findings import Finding, FindingState
from gateway.rules.inputs import F64, I64, B

U8 = npt.NDArray[np.uint8]

CLEAR, FIRING, UNKNOWN, SUSPENDED = 0, 1, 2, 3
STATES = (FindingState.CLEAR, FindingState.FIRING, FindingState.UNKNOWN, FindingState.SUSPENDED)
CODE = {state: code for code, state in enumerate(STATES)}

# Why a (miner, rule) is not judged; the detail line of an UNKNOWN or SUSPENDED finding.
REASONS = (
    "",
    "no reading yet",
    "offline: only the offline rule speaks",
    "reading is stale (the gateway fell behind)",
    "asleep on purpose (curtailment)",
    "not hashing",
    "sleeping",
    "no new reading this cycle",
    "settling after a start or a mode change",
    "not reported, or its baseline is still warming up",
    "rule disabled for this miner's model",
)
(R_NONE, R_NO_READING, R_OFFLINE, R_STALE, R_INTENDED, R_NOT_HASHING, R_ASLEEP, R_NOT_NEW, R_SETTLING,
 R_NOT_REPORTED, R_DISABLED) = range(len(REASONS))  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleResult:
    """One rule's measured values for every miner (the per-miner threshold after model overrides)."""

    value: F64
    threshold: F64
    aux: F64 | None = None  # a number the detail line may quote (a board slot ...)
    aux_labels: tuple[str, ...] = ()  # `aux` as an index into these, for {aux_name}
    labels: Mapping[int, str] = field(default_factory=dict)  # row -> {aux_name} (pool URLs ...)


@dataclass(frozen=True, slots=True, kw_only=True)
class Evaluation:
    """One cycle's result: `state[r, i]` and `reason[r, i]` for rule `rules[r]` and miner `miner_ids[i]`."""

    miner_ids: tuple[str, ...]
    rules: tuple[Rule, ...]
    state: U8
    reason: U8
    results: tuple[RuleResult, ...]
    ts: I64  # per miner: the sample time the findings are about (`now` without a sample)
    _rows: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def rule_index(self, rule_id: str) -> int:
        for index, rule in enumerate(self.rules):
            if rule.id == rule_id:
                return index
        raise KeyError(f"no rule {rule_id!r} in this evaluation")

    def row(self, miner_id: str) -> int:
        if not self._rows:
            self._rows.update((mid, i) for i, mid in enumerate(self.miner_ids))
        return self._rows[miner_id]

    def mask(self, rule_id: str, state: FindingState = FindingState.FIRING) -> B:
        """Per miner: is `rule_id` in `state`? (a fresh array; aligned with `miner_ids`)"""
        result: B = self.state[self.rule_index(rule_id)] == CODE[state]
        return result

    def miners(self, rule_id: str, state: FindingState = FindingState.FIRING) -> list[str]:
        return [self.miner_ids[i] for i in np.flatnonzero(self.mask(rule_id, state))]

    def state_of(self, miner_id: str, rule_id: str) -> FindingState:
        return STATES[int(self.state[self.rule_index(rule_id), self.row(miner_id)])]

    def counts(self) -> dict[str, dict[FindingState, int]]:
        """Per rule, how many miners are in each state (for /metrics and the TUI)."""
        return {
            rule.id: dict(zip(STATES, np.bincount(self.state[r], minlength=4).tolist(), strict=True))
            for r, rule in enumerate(self.rules)
        }

    def finding(self, miner_id: str, rule_id: str) -> Finding:
        return self._make(self.rule_index(rule_id), self.row(miner_id))

    def findings(
        self,
        states: Collection[FindingState] = (FindingState.FIRING,),
        pairs: Iterable[tuple[str, str]] = (),
    ) -> list[Finding]:
        """`Finding`s for every (miner, rule) in one of `states`, plus each named (miner_id, rule_id)
        pair in whatever state it is. Ordered by rule then miner; no duplicates. Pairs naming a miner
        or rule not in this evaluation are skipped (the miner left the fleet: the lifecycle decides)."""
        wanted = np.isin(self.state, [CODE[state] for state in states])
        for miner_id, rule_id in pairs:
            try:
                wanted[self.rule_index(rule_id), self.row(miner_id)] = True
            except KeyError:
                continue
        out: list[Finding] = []
        for r in np.flatnonzero(wanted.any(axis=1)).tolist():
            out.extend(self._batch(r, np.flatnonzero(wanted[r])))
        return out

    def _batch(self, r: int, rows: npt.NDArray[np.intp]) -> list[Finding]:
        """One rule's findings for `rows`, with the per-miner arrays read once (a Finding costs ~2 us
        to build; everything around it is kept out of the loop)."""
        rule, result = self.rules[r], self.results[r]
        ids, make, states, reasons = self.miner_ids, Finding, STATES, REASONS
        rule_id, severity = rule.id, rule.severity
        columns = zip(
            rows.tolist(),
            self.state[r, rows].tolist(),
            self.reason[r, rows].tolist(),
            result.value[rows].tolist(),
            result.threshold[rows].tolist(),
            self.ts[rows].tolist(),
            strict=True,
        )
        return [
            make(
                miner_id=ids[i],
                rule_id=rule_id,
                severity=severity,
                state=states[code],
                ts=ts,
                value=value if value == value else None,
                threshold=threshold if threshold == threshold else None,
                detail=self._detail(r, i, value, threshold) if code == FIRING else reasons[why],
            )
            for i, code, why, value, threshold, ts in columns
        ]

    def _detail(self, r: int, i: int, value: float, threshold: float) -> str:
        rule, result = self.rules[r], self.results[r]
        aux = float(result.aux[i]) if result.aux is not None else float("nan")
        name = result.labels.get(i, "")
        if not name and result.aux_labels and aux == aux:
            name = result.aux_labels[int(aux)]
        return rule.detail.format(value=value, threshold=threshold, aux=aux, aux_name=name)

    def _make(self, r: int, i: int) -> Finding:
        return self._batch(r, np.array([i], dtype=np.intp))[0]
