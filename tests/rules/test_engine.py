"""The engine: every rule fires on its condition and not otherwise, the precedence of unknown and
suspended, the compact `Evaluation` and its findings, and what the catalog's timing does to a fault."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.devices.model import MinerStatus, Mode
from gateway.polling import Availability
from gateway.rules.baselines import Baselines
from gateway.rules.catalog import CATALOG, RULE_IDS, RuleTable, apply_overrides
from gateway.rules.engine import evaluate
from gateway.rules.evaluation import R_INTENDED, REASONS
from gateway.rules.findings import FindingState
from gateway.rules.inputs import FleetFrame
from tests.rules import INTERVAL, POOL, T0, cycle, inp, run, sample, states_of, steady

FIRING, CLEAR = FindingState.FIRING, FindingState.CLEAR
UNKNOWN, SUSPENDED = FindingState.UNKNOWN, FindingState.SUSPENDED
POOLS = apply_overrides(CATALOG, {}, {}, allowed_pools=[POOL])


def state_after(readings, rule_id: str, table: RuleTable | None = None, **inp_kwargs) -> FindingState:
    """The rule's state for miner m1 after one cycle per reading (sample kwargs)."""
    series = [[inp(sample(ts=T0 + c * INTERVAL, **r), **inp_kwargs)] for c, r in enumerate(readings)]
    return run(series, table)[-1][1].state_of("m1", rule_id)


def warm(reading: dict, n: int = 20, base: dict | None = None) -> list[dict]:
    """`n` steady readings, then `reading` (both over the default healthy miner)."""
    return [dict(base or {})] * n + [{**(base or {}), **reading}]


# --- hard rules: one reading decides --------------------------------------------------------------------

HARD = [
    ("overheat_crit", {"temp": 85.0}, {"temp": 84.9}),
    ("overheat_warn", {"temp": 75.0}, {"temp": 74.9}),
    ("overheat_warn", {"temp": 84.9}, {"temp": 85.0}),  # critical territory belongs to overheat_crit
    ("hashrate_zero", {"rate": 0.0}, {"rate": 2.0}),  # 2 TH/s is 1.8 % of 110: slow, not zero
    ("boards_dead", {"board_rates": [36.7, 36.7, 0.0]}, {"board_rates": [36.7, 36.7, 36.6]}),
    ("boards_dead", {"rate": 73.4, "board_rates": [36.7, 36.7]}, {}),  # a board missing vs the profile
    ("fan_zero", {"fans": (0, 6000, 6000, 6000)}, {"fans": (900, 6000, 6000, 6000)}),
    ("power_spike", {"power": 3250 * 1.16}, {"power": 3250 * 1.14}),
    ("power_spike", {"power": 3000.0, "power_limit_w": 2500.0}, {"power": 2800.0, "power_limit_w": 2500.0}),
    ("boards_degrading", {"board_rates": [40.0, 40.0, 30.0]}, {"board_rates": [37.0, 37.0, 36.0]}),
    ("asleep_unplanned", {"status": MinerStatus.SLEEPING, "rate": 0.0}, {}),
]


@pytest.mark.parametrize(("rule_id", "fires", "holds"), HARD, ids=[f"{c[0]}-{i}" for i, c in enumerate(HARD)])
def test_hard_rules_fire_on_their_condition_only(rule_id, fires, holds):
    assert state_after([fires], rule_id) is FIRING
    assert state_after([holds], rule_id) is CLEAR


def test_offline_fires_and_suspends_every_other_rule():
    _, ev = cycle(Baselines("s"), [inp(sample(temp=99.0), availability="offline")])
    states = {rule_id: ev.state_of("m1", rule_id) for rule_id in RULE_IDS}
    assert states.pop("offline") is FIRING
    assert set(states.values()) == {SUSPENDED}


def test_pool_not_allowed_checks_every_configured_pool_against_the_allow_list():
    assert (
        state_after([{"pool_url": "stratum+tcp://evil.example.net:3333"}], "pool_not_allowed", POOLS)
        is FIRING
    )
    assert state_after([{}], "pool_not_allowed", POOLS) is CLEAR
    assert state_after([{"pool_url": "stratum+tcp://evil.example.net:3333"}], "pool_not_allowed") is CLEAR
    assert state_after([{"pool_url": None}], "pool_not_allowed", POOLS) is UNKNOWN
    _, ev = cycle(Baselines("s"), [inp(sample(pool_url="stratum+tcp://x.example:1"))], POOLS)
    assert (
        ev.finding("m1", "pool_not_allowed").detail
        == "pool stratum+tcp://x.example:1 is not on the site's allow-list"
    )


def test_shares_stale_fires_once_the_counter_has_not_moved_for_stale_after_s():
    stuck = [{"accepted": 500}] * 22  # 21 intervals = 630 s without a new share
    states = states_of(stuck, "shares_stale")
    assert states[:21] == [UNKNOWN] * 21  # never seen it move, and not yet long enough to say
    assert states[21] is FIRING
    assert state_after([{}] * 22, "shares_stale") is CLEAR


def test_low_power_against_the_plan_is_unplanned_without_a_plan_it_is_not():
    low = {"mode": Mode.LOW, "rate": 88.0, "power": 2600.0}
    assert state_after([low], "asleep_unplanned", intended="normal") is FIRING
    assert state_after([low], "asleep_unplanned") is CLEAR
    assert state_after([low], "asleep_unplanned", intended="low") is CLEAR


# --- soft rules: against the miner's own baseline or its fleet ------------------------------------------

SOFT = [
    ("hashrate_degradation", {"rate": 100.0}, {"rate": 109.0}),
    ("efficiency_degradation", {"power": 3250 * 1.1}, {"power": 3250 * 1.01}),
    ("temp_anomaly", {"temp": 70.0}, {"temp": 66.0}),
]


@pytest.mark.parametrize(("rule_id", "fires", "holds"), SOFT, ids=[c[0] for c in SOFT])
def test_soft_rules_fire_against_the_warm_baseline_only(rule_id, fires, holds):
    assert state_after(warm(fires), rule_id) is FIRING
    assert state_after(warm(holds), rule_id) is CLEAR
    assert state_after([fires], rule_id) is UNKNOWN  # no baseline yet: unknown, never healthy


def test_power_3sigma_against_the_rolling_window():
    window = [{"power": p} for p in [3200.0, 3300.0] * 10]  # mean 3250, std 50
    assert state_after([*window, {"power": 3420.0}], "power_3sigma") is FIRING
    assert state_after([*window, {"power": 3380.0}], "power_3sigma") is CLEAR
    assert state_after([*window, {"power": 3420.0, "measured": False}], "power_3sigma") is UNKNOWN


def test_fleet_outlier_against_the_same_model():
    rates = [110.0, 111.0, 109.0, 110.5, 109.5, 110.2, 85.0]
    fleet = [inp(sample(f"m{i}", rate=r, measured=False)) for i, r in enumerate(rates)]
    _, ev = cycle(Baselines("s"), fleet)
    assert ev.miners("fleet_outlier") == ["m6"]
    assert "hashrate" in ev.finding("m6", "fleet_outlier").detail
    _, ev = cycle(Baselines("s"), fleet[:4])
    assert ev.state_of("m0", "fleet_outlier") is UNKNOWN  # four peers are not a fleet


def test_hashrate_drift_fires_on_a_slow_slide():
    slide = [{}] * 30 + [{"rate": 110.0 * 0.99**k} for k in range(1, 16)]
    states = states_of(slide, "hashrate_drift")
    assert states[20:30] == [CLEAR] * 10
    first = states.index(FIRING)
    assert 30 < first <= 30 + 12
    assert states[first:] == [FIRING] * (len(states) - first)


# --- modes: low power is not degradation, degradation is not low power ----------------------------------


def mode_change(rate_factor: float, power_factor: float, seed: int, polls_after: int = 15):
    rng = np.random.default_rng(seed)
    series = []
    for c in range(30 + polls_after):
        f_rate, f_power = (rate_factor, power_factor) if c >= 30 else (1.0, 1.0)
        reading = sample(
            ts=T0 + c * INTERVAL,
            rate=110.0 * f_rate * (1 + 0.01 * rng.standard_normal()),
            power=3250.0 * f_power * (1 + 0.005 * rng.standard_normal()),
        )
        series.append([inp(reading)])
    return [e.state_of("m1", "hashrate_degradation") for _, e in run(series)]


def longest_run(states: list[FindingState], state: FindingState) -> int:
    best = current = 0
    for s in states:
        current = current + 1 if s is state else 0
        best = max(best, current)
    return best


@settings(max_examples=25)
@given(st.floats(0.6, 0.9), st.floats(-0.04, 0.04), st.integers(0, 10_000))
def test_a_true_low_power_mode_does_not_fire_hashrate_degradation(drop, efficiency_change, seed):
    """Power and hashrate down together, W/TH near the model's (S19 Pro low mode: 0.8 x both). With
    1 % noise a lone z < -2 happens by chance to any miner; what must not happen is a run as long as
    the debounce, i.e. an alert."""
    states = mode_change(drop, drop * (1 + efficiency_change), seed)
    debounce = RuleTable().rule("hashrate_degradation").debounce_samples
    assert longest_run(states[30:], FIRING) < debounce
    assert states[30] is SUSPENDED  # the change itself: the old baseline no longer applies


@settings(max_examples=25)
@given(st.floats(0.6, 0.9), st.integers(0, 10_000))
def test_a_degrading_miner_fires_hashrate_degradation_for_longer_than_its_debounce(drop, seed):
    states = mode_change(drop, 1.0, seed)
    debounce = RuleTable().rule("hashrate_degradation").debounce_samples
    assert states[30 : 30 + debounce] == [FIRING] * debounce


# --- precedence: unknown, suspended ---------------------------------------------------------------------

SLEEP_SUSPENDED = ("offline", "hashrate_zero", "asleep_unplanned")


@given(st.sampled_from([a.value for a in Availability]), st.booleans(), st.booleans())
def test_intended_sleep_suspends_offline_zero_hashrate_and_asleep(availability, asleep, has_sample):
    reading = (
        sample(status=MinerStatus.SLEEPING, rate=0.0, power=15.0, mode=Mode.SLEEP) if asleep else sample()
    )
    _, ev = cycle(
        Baselines("s"), [inp(reading if has_sample else None, availability=availability, intended="sleep")]
    )
    for rule_id in SLEEP_SUSPENDED:
        expected = UNKNOWN if availability == "unknown" else SUSPENDED
        assert ev.state_of("m1", rule_id) is expected, rule_id
        if expected is SUSPENDED:
            assert ev.finding("m1", rule_id).detail == REASONS[R_INTENDED]


@given(st.sampled_from(["ok", "failing", "stale", "unknown"]))
def test_missing_inputs_are_unknown_never_clear(availability):
    _, ev = cycle(Baselines("s"), [inp(None, availability=availability)])
    for rule in CATALOG:
        state = ev.state_of("m1", rule.id)
        if rule.id == "offline" and availability != "unknown":
            assert state is CLEAR  # the poller says it is reachable; it simply has no reading to judge
        elif availability == "stale" and rule.needs_fresh:
            assert state is SUSPENDED
        else:
            assert state is UNKNOWN, rule.id


@given(st.floats(20.0, 99.0), st.sampled_from(["", "evil.example.net"]))
def test_stale_suspends_every_rule_that_needs_fresh_data(temp, pool_host):
    pool = f"stratum+tcp://{pool_host}:3333" if pool_host else POOL
    _, ev = cycle(
        Baselines("s"), [inp(sample(temp=temp, pool_url=pool), availability=Availability.STALE)], POOLS
    )
    for rule in CATALOG:
        state = ev.state_of("m1", rule.id)
        if rule.needs_fresh:
            assert state is SUSPENDED, rule.id
    assert ev.state_of("m1", "offline") is CLEAR
    assert ev.state_of("m1", "pool_not_allowed") is (FIRING if pool_host else CLEAR)


def test_soft_rules_are_suspended_for_a_reading_already_scored():
    baselines = Baselines("s")
    series = steady(15)
    for inputs in series:
        cycle(baselines, inputs)
    _, ev = cycle(baselines, [inp(series[-1][0].sample, availability="failing")])
    assert ev.state_of("m1", "hashrate_degradation") is SUSPENDED
    assert ev.state_of("m1", "overheat_crit") is CLEAR  # hard rules still judge the last reading


def test_a_sleeping_miner_suspends_hashing_rules_and_board_and_fan_checks():
    _, ev = cycle(Baselines("s"), [inp(sample(status=MinerStatus.SLEEPING, rate=0.0, fans=(0, 0, 0, 0)))])
    for rule_id in ("hashrate_zero", "boards_dead", "fan_zero", "hashrate_degradation", "shares_stale"):
        assert ev.state_of("m1", rule_id) is SUSPENDED, rule_id
    assert ev.state_of("m1", "asleep_unplanned") is FIRING


# --- per-model tables -----------------------------------------------------------------------------------


def test_model_overrides_apply_to_that_model_only_and_disabled_rules_are_clear():
    table = apply_overrides(
        CATALOG, {}, {"antminer_s9": {"overheat_crit": {"temp_c": 80}, "fan_zero": {"enabled": False}}}
    )
    fleet = [
        inp(sample("s9", temp=82.0, fans=(0, 0)), model_key="antminer_s9"),
        inp(sample("s19", temp=82.0, fans=(0, 0, 0, 0))),
    ]
    _, ev = cycle(Baselines("s"), fleet, table)
    assert ev.state_of("s9", "overheat_crit") is FIRING and ev.state_of("s19", "overheat_crit") is CLEAR
    assert ev.state_of("s9", "overheat_warn") is CLEAR  # its band ends at the model's critical 80
    assert ev.state_of("s9", "fan_zero") is CLEAR and ev.state_of("s19", "fan_zero") is FIRING
    assert ev.finding("s9", "overheat_crit").threshold == 80


# --- the Evaluation contract ----------------------------------------------------------------------------


def test_findings_are_made_for_firing_and_for_named_pairs_only():
    fleet = [
        inp(sample("hot", temp=90.0)),
        inp(sample("ok")),
        inp(None, miner_id="new", availability="unknown"),
    ]
    _, ev = cycle(Baselines("s"), fleet)
    firing = ev.findings()
    assert {(f.miner_id, f.rule_id) for f in firing} == {("hot", "overheat_crit")}
    hot = firing[0]
    assert (hot.state, hot.value, hot.threshold, hot.ts) == (FIRING, 90.0, 85.0, T0)
    assert hot.detail == "hottest board 90 C >= 85 C"
    named = ev.findings(pairs=[("ok", "overheat_crit"), ("gone", "overheat_crit"), ("ok", "no_such_rule")])
    assert [(f.miner_id, f.state) for f in named] == [("hot", FIRING), ("ok", CLEAR)]
    everything = ev.findings(states=set(FindingState))
    assert len(everything) == 3 * len(CATALOG)
    assert ev.counts()["overheat_crit"] == {CLEAR: 1, FIRING: 1, UNKNOWN: 1, SUSPENDED: 0}
    assert ev.miners("overheat_crit", UNKNOWN) == ["new"]
    assert ev.mask("overheat_crit").tolist() == [True, False, False]
    unknown = ev.finding("new", "overheat_crit")
    assert unknown.value is None and unknown.detail == "no reading yet"


def test_the_engine_is_pure_same_inputs_same_answer():
    fleet = [inp(sample(f"m{i}", temp=60.0 + 5 * i)) for i in range(6)]
    frame = FleetFrame.from_inputs(fleet)
    scores = Baselines("s").observe(frame)
    first, second = evaluate(frame, scores, RuleTable(), T0), evaluate(frame, scores, RuleTable(), T0)
    assert np.array_equal(first.state, second.state)
    assert first.findings() == second.findings()


# --- what the catalog's timing does to a fault (a minimal reference of the lifecycle's debounce) --------


def alerts(states: list[FindingState], rule_id: str) -> list[tuple[int, int | None]]:
    """(opened, resolved) polls under the rule's debounce_samples/debounce_s/clear_window_s/cooldown_s:
    open after the debounce, resolve after the clear window, reopen the same alert within the cooldown."""
    rule = RuleTable().rule(rule_id)
    out: list[tuple[int, int | None]] = []
    run_start, run_len, clear_since, open_at = None, 0, None, None
    for poll, state in enumerate(states):
        if state is FIRING:
            run_start = poll if run_len == 0 else run_start
            run_len += 1
            clear_since = None
            long_enough = (poll - run_start) * INTERVAL >= rule.debounce_s
            if open_at is None and run_len >= rule.debounce_samples and long_enough:
                last = out[-1] if out else None
                if last and last[1] is not None and (poll - last[1]) * INTERVAL < rule.cooldown_s:
                    out[-1] = (last[0], None)  # reopened: the same alert
                else:
                    out.append((poll, None))
                open_at = out[-1][0]
        elif state is CLEAR:
            run_len = 0
            clear_since = poll if clear_since is None else clear_since
            if open_at is not None and (poll - clear_since) * INTERVAL >= rule.clear_window_s:
                out[-1] = (out[-1][0], poll)
                open_at = None
    return out


def test_a_flapping_overheat_opens_one_alert_within_its_debounce_and_resolves_after_clearing():
    temps = [70.0] * 5 + [86.0, 86.0, 84.0] * 8 + [70.0] * 12  # hot, hot, just below ... for 12 minutes
    states = states_of([{"temp": t} for t in temps], "overheat_crit")
    assert states[5:8] == [FIRING, FIRING, CLEAR]
    assert alerts(states, "overheat_crit") == [(6, 34)]  # opened on its 2nd sample; one alert; 180 s clear


def test_vnish_firmware_fee_pool_is_not_judged_against_the_allow_list() -> None:
    """Vnish reports its own dev-fee pool as the bare name 'DevFee'; only configured pools count."""
    from gateway.devices.model import PoolReading, Sample
    from gateway.rules.engine import _pools
    from gateway.rules.inputs import MinerInput

    allowed = ["stratum+tcp://pool.example:3333"]
    table = apply_overrides(CATALOG, {}, {}, allowed_pools=allowed)
    pools = (PoolReading(url="stratum+tcp://pool.example:3333", active=True), PoolReading(url="DevFee"))
    sample = Sample(miner_id="v", ts=1, status=MinerStatus.MINING, hashrate_ths=200.0, pool_url="DevFee",
                    pools=pools)  # fmt: skip
    frame = FleetFrame.from_inputs([MinerInput(miner_id="v", availability="ok", sample=sample)])
    assert table.allowed_pools is not None
    assert _pools(frame, table.allowed_pools).value.tolist() == [0.0]
