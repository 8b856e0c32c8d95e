"""The one rules engine: this cycle's fleet, its baseline scores and the site's rules -> an `Evaluation`.

Pure: no I/O, no clock (`now` is a parameter), no memory between calls (memory is the baselines' and
the lifecycle's job). The engine knows nothing about any particular rule: it computes each `Signal`
once for the whole fleet (numpy), then for every `Rule` compares the signal with the rule's threshold
(per miner, after model overrides) and applies the same precedence of "cannot judge" and "must not
judge", driven by the rule's flags. From lowest to highest priority:

1. the comparison: FIRING or CLEAR; UNKNOWN where the signal is missing (NaN), or is only a lower
   bound that does not reach the threshold;
2. `needs_baseline`: SUSPENDED while the miner settles (just started hashing, just changed mode) and
   when its sample is not new (the last reading was already scored);
3. `hashing_only`: SUSPENDED when the miner is known not to hash, UNKNOWN when that is not known;
4. `asleep_suspends`: SUSPENDED while the miner reports sleeping;
5. every rule but `offline`: UNKNOWN without a sample; SUSPENDED when the miner is offline;
6. `needs_fresh`: SUSPENDED when the poller calls the miner stale;
7. `intended_sleep_suspends`: SUSPENDED when the curtailment executor put the miner to sleep;
8. every rule: UNKNOWN when the poller has not read the miner yet — never CLEAR;
9. a rule disabled for the miner's model: CLEAR.

Per cycle the runtime does:

    frame = FleetFrame.from_inputs(inputs)       # one pass over the samples
    scores = baselines.observe(frame)            # scored against the pre-update baselines, then learned
    evaluation = evaluate(frame, scores, table, now)
    lifecycle.apply(evaluation.findings(pairs=lifecycle.tracked_pairs()), now)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from gateway.rules.baselines import Scores
from gateway.rules.catalog import Op, Rule, RuleTable, Signal, pool_allowed
from gateway.rules.evaluation import (
    CLEAR,
    FIRING,
    R_ASLEEP,
    R_DISABLED,
    R_INTENDED,
    R_NO_READING,
    R_NOT_HASHING,
    R_NOT_NEW,
    R_NOT_REPORTED,
    R_OFFLINE,
    R_SETTLING,
    R_STALE,
    SUSPENDED,
    U8,
    UNKNOWN,
    Evaluation,
    RuleResult,
)
from gateway.rules.inputs import F64, HIGH, LOW, MINING, NORMAL, OFFLINE, SLEEP, STALE, B, FleetFrame
from gateway.rules.inputs import UNKNOWN as AVAIL_UNKNOWN
from gateway.rules.modes import DEFAULT_MODE_POINTS

MIN_EXPECTED_W = 100.0  # a sleeping miner's 15 W control board must not make 20 W a "spike"


def evaluate(frame: FleetFrame, scores: Scores, rules: RuleTable, now: int) -> Evaluation:
    """Judge every (miner, rule) for this cycle. See the module docstring for the precedence."""
    if scores.miner_ids != frame.miner_ids:
        raise ValueError("scores and frame are not aligned: call baselines.observe(frame) on this frame")
    n, table = len(frame), rules
    signals = compute_signals(frame, scores, table)
    state = np.zeros((len(table.rules), n), np.uint8)
    reason = np.zeros((len(table.rules), n), np.uint8)
    hashrate_known = np.isfinite(frame.hashrate_ths) | ((frame.status >= 0) & (frame.status != MINING))
    hashing = frame.hashing
    avail = frame.availability
    masks = {
        "no_sample": ~frame.has_sample,
        "offline": avail == OFFLINE,
        "stale": avail == STALE,
        "unread": avail == AVAIL_UNKNOWN,
        "intended_sleep": frame.intended == SLEEP,
        "not_new": frame.has_sample & ~scores.new,
        "not_hashing": hashrate_known & ~hashing,
        "hashing_unknown": ~hashrate_known,
        "asleep": frame.asleep,
    }
    results = []
    for r, rule in enumerate(table.rules):
        signal = signals[rule.signal]
        threshold, upper, enabled = _per_miner(table, r, frame)
        value = signal.value
        firing = _compare(value, rule.op, threshold, upper)
        state[r] = np.where(firing, FIRING, CLEAR)
        mark = partial(_mark, state[r], reason[r])
        unknown = np.isnan(value)
        if signal.lower_bound is not None:
            unknown |= signal.lower_bound & ~firing
        mark(unknown, UNKNOWN, R_NOT_REPORTED)
        if rule.needs_baseline:
            mark(scores.settling, SUSPENDED, R_SETTLING)
            mark(masks["not_new"], SUSPENDED, R_NOT_NEW)
        if rule.hashing_only:
            mark(masks["hashing_unknown"], UNKNOWN, R_NOT_REPORTED)
            mark(masks["not_hashing"], SUSPENDED, R_NOT_HASHING)
        if rule.asleep_suspends:
            mark(masks["asleep"], SUSPENDED, R_ASLEEP)
        if not rule.judged_when_offline:
            mark(masks["no_sample"], UNKNOWN, R_NO_READING)
            mark(masks["offline"], SUSPENDED, R_OFFLINE)
        if rule.needs_fresh:
            mark(masks["stale"], SUSPENDED, R_STALE)
        if rule.intended_sleep_suspends:
            mark(masks["intended_sleep"], SUSPENDED, R_INTENDED)
        mark(masks["unread"], UNKNOWN, R_NO_READING)
        if enabled is not None:
            mark(~enabled, CLEAR, R_DISABLED)
        results.append(
            RuleResult(
                value=value,
                threshold=np.broadcast_to(threshold, (n,)),
                aux=signal.aux,
                aux_labels=signal.aux_labels,
                labels=signal.labels,
            )
        )
    ts = np.where(frame.has_sample, frame.ts, now)
    return Evaluation(
        miner_ids=frame.miner_ids,
        rules=table.rules,
        state=state,
        reason=reason,
        results=tuple(results),
        ts=ts,
    )


def _mark(states: U8, reasons: U8, where: B, code: int, cause: int) -> None:
    """Later marks override earlier ones: the caller applies them from lowest to highest priority."""
    states[where] = code
    reasons[where] = cause


@dataclass(frozen=True, slots=True)
class SignalValues:
    """One signal for the fleet: values (NaN: not known), and what the detail line may quote."""

    value: F64
    aux: F64 | None = None
    aux_labels: tuple[str, ...] = ()
    labels: Mapping[int, str] = field(default_factory=dict)
    lower_bound: B | None = None  # where True, `value` is only known to be at least this


def compute_signals(frame: FleetFrame, scores: Scores, table: RuleTable) -> dict[Signal, SignalValues]:
    """Every signal the catalog can name, for the whole fleet. Only the ones some rule reads are used;
    each costs a few vectorised operations, so computing all of them is simpler than selecting."""
    rows = np.arange(len(frame))
    mode = np.where(scores.mode >= 0, scores.mode, NORMAL)
    rate, power = frame.hashrate_ths, frame.power_w
    asleep = frame.asleep

    nominal_ths = frame.nominal_ths[:, NORMAL]
    reference = np.where(
        np.isfinite(frame.expected_ths) & (frame.expected_ths > 0), frame.expected_ths, nominal_ths
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = np.where(np.isfinite(reference), rate / reference, np.where(rate == 0, 0.0, np.inf))
    fraction = np.where(np.isnan(rate), np.nan, fraction)

    mode_w = frame.nominal_w[rows, mode]
    mode_w = np.where(np.isfinite(mode_w), mode_w, frame.nominal_w[:, NORMAL] * DEFAULT_MODE_POINTS[mode, 0])
    expected_w = np.where(
        asleep, frame.sleep_w, np.where(np.isfinite(frame.power_limit_w), frame.power_limit_w, mode_w)
    )
    power_ratio = np.where(frame.power_measured, power / np.fmax(expected_w, MIN_EXPECTED_W), np.nan)

    status_known = frame.status >= 0
    low = (frame.reported_mode == LOW) | (scores.mode == LOW)
    planned_full = (frame.intended == NORMAL) | (frame.intended == HIGH)
    unplanned_sleep = asleep & (frame.intended != SLEEP)
    unplanned_low = low & planned_full & ~asleep
    unplanned = np.where(status_known, (unplanned_sleep | unplanned_low).astype(np.float64), np.nan)

    return {
        Signal.TEMP_MAX_C: SignalValues(frame.temp_max_c),
        Signal.OFFLINE: SignalValues((frame.availability == OFFLINE).astype(np.float64)),
        Signal.HASHRATE_FRAC: SignalValues(fraction),
        Signal.BOARDS_DEAD: SignalValues(frame.boards_dead),
        Signal.FANS_ZERO: SignalValues(frame.fans_zero),
        Signal.HASHRATE_Z: SignalValues(scores.hashrate_z),
        Signal.EFFICIENCY_Z: SignalValues(scores.efficiency_z),
        Signal.TEMP_Z: SignalValues(scores.temp_z),
        Signal.FLEET_Z: SignalValues(
            scores.fleet_z, aux=scores.fleet_metric.astype(np.float64), aux_labels=("hashrate", "W/TH")
        ),
        Signal.BOARD_RESIDUAL: SignalValues(frame.board_residual, aux=frame.board_residual_slot),
        Signal.POWER_RATIO: SignalValues(power_ratio),
        Signal.POWER_SIGMA: SignalValues(scores.power_sigma),
        Signal.SHARE_AGE_S: SignalValues(scores.share_age_s, lower_bound=~scores.share_age_exact),
        Signal.POOL_DISALLOWED: _pools(frame, table.allowed_pools),
        Signal.ASLEEP_UNPLANNED: SignalValues(
            unplanned, aux=np.where(unplanned_sleep, 0.0, 1.0), aux_labels=("sleeping", "in low-power mode")
        ),
        Signal.HASHRATE_CUSUM: SignalValues(scores.cusum),
    }


# Vnish hashes a few percent of the time on its own fee pool, reported as the bare name "DevFee" with
# no address: the firmware's, not a pool anyone configured, so it is not judged against the list.
FIRMWARE_FEE_POOLS = frozenset({"devfee"})


def _pools(frame: FleetFrame, allowed: frozenset[str] | None) -> SignalValues:
    """1 where any configured pool (not only the active one: a hijack often hides as a backup pool)
    is off the allow-list. A site without an allow-list has nothing to violate: 0 for everyone."""
    if allowed is None:
        return SignalValues(np.where(frame.has_sample, 0.0, np.nan))
    value = np.full(len(frame), np.nan)
    labels: dict[int, str] = {}
    verdict: dict[str, bool] = {}
    for row, (active, pools) in enumerate(zip(frame.pool_url, frame.pools, strict=True)):
        urls = [
            url
            for url in ([active] if active else []) + [pool.url for pool in pools if pool.url]
            if url.strip().lower() not in FIRMWARE_FEE_POOLS
        ]
        if not urls:
            continue
        bad = None
        for url in urls:
            ok = verdict.get(url)
            if ok is None:
                ok = verdict[url] = pool_allowed(url, allowed)
            if not ok:
                bad = url
                break
        value[row] = 0.0 if bad is None else 1.0
        if bad is not None:
            labels[row] = bad
    return SignalValues(value, labels=labels)


def _per_miner(table: RuleTable, r: int, frame: FleetFrame) -> tuple[F64, F64, B | None]:
    """Rule `r`'s threshold, upper bound and enabled flag per miner, after model overrides."""
    site = table.rules[r]
    variants: list[Rule] = [table.for_model(key)[r] for key in frame.model_keys] + [site]
    if all(v is site for v in variants):
        return (
            np.full(1, site.threshold),
            np.full(1, site.upper if site.upper is not None else np.nan),
            None if site.enabled else np.zeros(len(frame), np.bool_),
        )
    idx = frame.model_idx  # -1 picks the trailing site-level entry
    threshold: F64 = np.array([v.threshold for v in variants], dtype=np.float64)[idx]
    upper: F64 = np.array([v.upper if v.upper is not None else np.nan for v in variants], dtype=np.float64)[
        idx
    ]
    enabled: B = np.array([v.enabled for v in variants], dtype=np.bool_)[idx]
    return threshold, upper, enabled


_OPS: dict[Op, Callable[[F64, F64, F64], B]] = {
    Op.GE: lambda v, t, u: v >= t,
    Op.GT: lambda v, t, u: v > t,
    Op.LT: lambda v, t, u: v < t,
    Op.LE: lambda v, t, u: v <= t,
    Op.ABS_GT: lambda v, t, u: np.abs(v) > t,
    Op.RANGE: lambda v, t, u: (v >= t) & (v < u),
}


def _compare(value: F64, op: Op, threshold: F64, upper: F64) -> B:
    with np.errstate(invalid="ignore"):
        return _OPS[op](value, threshold, upper)
