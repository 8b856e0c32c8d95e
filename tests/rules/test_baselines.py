"""Baselines: EWMA and EW variance, pre-update z-scores, the drift CUSUM, mode inference, the fleet's
robust z, share ages, settling, and persistence across restarts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.devices.model import MinerStatus, Mode
from gateway.rules.baselines import BaselineError, BaselineParams, Baselines
from gateway.rules.inputs import HIGH, LOW, NORMAL, FleetFrame
from gateway.rules.modes import kmeans
from gateway.rules.stats import robust_z
from tests.rules import INTERVAL, T0, cycle, inp, sample

WARMUP = BaselineParams().warmup


def observe_series(values: list[dict[str, float]], miner_id: str = "m1", baselines: Baselines | None = None):
    """Observe one miner through a list of per-cycle sample fields; returns (baselines, [scores])."""
    baselines = baselines or Baselines("site-1")
    out = []
    for c, fields in enumerate(values):
        frame = FleetFrame.from_inputs([inp(sample(miner_id, T0 + c * INTERVAL, **fields))])
        out.append(baselines.observe(frame))
    return baselines, out


def noisy(n: int, seed: int = 1, rate: float = 110.0, rate_sd: float = 0.01, temp_sd: float = 0.3):
    rng = np.random.default_rng(seed)
    return [
        {"rate": rate * (1 + rate_sd * rng.standard_normal()), "temp": 65 + temp_sd * rng.standard_normal()}
        for _ in range(n)
    ]


# --- EWMA, EW variance, warm-up -------------------------------------------------------------------------


def test_ewma_and_ew_variance_follow_the_incremental_formulas():
    temps = [60.0, 62.0, 61.0]
    baselines, _ = observe_series([{"temp": t} for t in temps])
    mean, var = 60.0, 0.0
    for t in temps[1:]:
        diff = t - mean
        mean += 0.1 * diff
        var = 0.9 * (var + diff * 0.1 * diff)
    assert baselines.column("temp_mean")[0] == pytest.approx(mean)
    assert baselines.column("temp_var")[0] == pytest.approx(var)
    assert baselines.column("temp_n")[0] == 3


def test_scores_are_unknown_until_warm_then_defined():
    _, scores = observe_series(noisy(WARMUP + 1))
    assert all(math.isnan(s.hashrate_z[0]) for s in scores[:WARMUP])
    assert math.isfinite(scores[WARMUP].hashrate_z[0])
    assert math.isfinite(scores[WARMUP].temp_z[0])


def test_a_30c_jump_scores_far_higher_than_a_1c_jump():
    """Against the pre-update baseline: updating first would cap both near sqrt(0.9 / 0.1) = 3."""
    history = noisy(30, seed=2)
    _, small = observe_series([*history, {"temp": 66.0}])
    _, large = observe_series([*history, {"temp": 95.0}])
    z_small, z_large = small[-1].temp_z[0], large[-1].temp_z[0]
    assert z_small < 3
    assert z_large > 25
    assert z_large > 10 * z_small


@settings(max_examples=50)
@given(st.floats(0.0, 40.0), st.floats(0.0, 40.0))
def test_z_against_the_pre_update_baseline_is_monotonic_in_the_jump(a, b):
    history = noisy(20, seed=3)
    ta, tb = sorted((65.0 + a, 65.0 + b))
    _, first = observe_series([*history, {"temp": ta}])
    _, second = observe_series([*history, {"temp": tb}])
    za, zb = first[-1].temp_z[0], second[-1].temp_z[0]
    assert za <= zb
    if tb - ta > 1e-9:
        assert za < zb


def test_a_persistent_step_keeps_scoring_long_enough_to_pass_a_debounce():
    """Robust learning: a 10 % drop (5 sigma at 2 % noise) must score z < -2 for more polls than
    hashrate_degradation's debounce (5), instead of being absorbed within three."""
    history = noisy(30, seed=4, rate_sd=0.02)
    dropped = [{"rate": 99.0, "temp": 65.0}] * 12
    _, scores = observe_series(history + dropped)
    firing = [s.hashrate_z[0] < -2 for s in scores[30:]]
    assert firing[:6] == [True] * 6


def test_the_same_sample_twice_is_learned_once():
    baselines = Baselines("site-1")
    frame = FleetFrame.from_inputs([inp(sample(temp=60.0))])
    first = baselines.observe(frame)
    again = baselines.observe(frame)
    assert first.new[0] and not again.new[0]
    assert baselines.column("temp_n")[0] == 1


# --- rolling power --------------------------------------------------------------------------------------


def test_power_sigma_is_against_the_window_before_this_reading():
    powers = [3200.0, 3300.0] * 10  # mean 3250, population std 50
    _, scores = observe_series([{"power": p} for p in [*powers, 3450.0]])
    assert scores[-1].power_sigma[0] == pytest.approx((3450 - 3250) / 50)
    assert math.isnan(scores[WARMUP - 1].power_sigma[0])  # window still filling


# --- drift: CUSUM ---------------------------------------------------------------------------------------


def drift_series(rate_per_poll: float, noise: float, seed: int, steady_polls: int = 40, polls: int = 60):
    rng = np.random.default_rng(seed)
    values = []
    for c in range(steady_polls + polls):
        level = 110.0 * (1 - rate_per_poll) ** max(0, c - steady_polls)
        values.append({"rate": level * (1 + noise * rng.standard_normal())})
    return values


def polls_to_detect(values, steady_polls: int = 40, h: float = 10.0) -> int | None:
    _, scores = observe_series(values)
    for c, s in enumerate(scores[steady_polls:], start=1):
        if s.cusum[0] < -h:
            return c
    return None


def test_a_1_percent_per_poll_drift_is_caught_and_held_while_the_ewma_z_lets_go():
    values = drift_series(0.01, 0.01, seed=5)
    _, scores = observe_series(values)
    assert polls_to_detect(values) <= 12
    late = scores[-20:]  # the slide goes on (-40 % .. -45 %) ...
    assert all(-2 < s.hashrate_z[0] < 0 for s in late)  # ... the EWMA has caught up with it ...
    assert all(s.cusum[0] < -10 for s in late)  # ... the CUSUM has not


@settings(max_examples=40)
@given(st.floats(0.005, 0.03), st.floats(0.0, 0.02), st.integers(0, 1000))
def test_drift_is_caught_within_a_bounded_number_of_polls(rate, noise, seed):
    detected = polls_to_detect(drift_series(rate, noise, seed))
    assert detected is not None
    # k = 1.5 sigma, h = 10: about k/s + sqrt(2h/s) polls, s = the slide in sigmas per poll.
    s = rate / max(noise, 0.01)
    assert detected <= math.ceil(1.5 / s + math.sqrt(20 / s)) + 6


def test_a_healthy_noisy_miner_does_not_accumulate_a_cusum_alarm():
    _, scores = observe_series(noisy(600, seed=6, rate_sd=0.02))
    assert min(s.cusum[0] for s in scores[WARMUP:]) > -10


# --- modes ----------------------------------------------------------------------------------------------


def mode_series(rate_factor: float, power_factor: float, seed: int = 7, measured: bool = True, mode=None):
    rng = np.random.default_rng(seed)
    values = []
    for c in range(60):
        after = c >= 30
        values.append(
            {
                "rate": 110.0 * (rate_factor if after else 1.0) * (1 + 0.01 * rng.standard_normal()),
                "power": 3250.0 * (power_factor if after else 1.0) * (1 + 0.005 * rng.standard_normal()),
                "measured": measured,
                "mode": (mode if after else Mode.NORMAL) if mode is not None else None,
            }
        )
    return values


def test_a_true_low_power_mode_is_accepted_and_relearned():
    _, scores = observe_series(mode_series(0.8, 0.8))
    assert scores[29].mode[0] == NORMAL
    assert scores[30].mode_changed[0] and scores[30].mode[0] == LOW
    assert all(s.mode[0] == LOW for s in scores[30:])
    assert not any(s.hashrate_z[0] < -2 for s in scores[30:])


def test_a_degrading_miner_is_not_relabelled_low_power():
    _, scores = observe_series(mode_series(0.8, 1.0))
    assert all(s.mode[0] == NORMAL for s in scores[29:])
    assert scores[30].hashrate_z[0] < -10
    assert scores[30].efficiency_z[0] > 10


def test_a_mode_change_into_high_power_is_accepted_when_efficiency_holds():
    _, scores = observe_series(mode_series(1.12, 1.15))
    assert scores[-1].mode[0] == HIGH


def test_estimated_power_cannot_prove_a_mode_change_but_the_firmware_can():
    unreported = observe_series(mode_series(0.8, 0.8, measured=False))[1]
    assert unreported[-1].mode[0] == NORMAL
    reported = observe_series(mode_series(0.8, 0.8, measured=False, mode=Mode.LOW))[1]
    assert reported[-1].mode[0] == LOW


def test_a_miner_first_seen_degraded_is_normal_and_degraded_not_low():
    _, scores = observe_series([{"rate": 77.0, "power": 3250.0}] * 3)
    assert scores[-1].mode[0] == NORMAL


def test_kmeans_is_deterministic_and_keeps_empty_clusters_in_place():
    points = np.array([[[0.75, 0.8], [0.76, 0.8], [1.0, 1.0], [1.01, 0.99]]])
    valid = np.ones((1, 4), bool)
    seeds = np.array([[[0.7, 0.75], [1.0, 1.0], [1.2, 1.1]]])
    centroids, counts = kmeans(points, valid, seeds, iterations=3)
    assert counts[0].tolist() == [2, 2, 0]
    assert centroids[0, 0] == pytest.approx([0.755, 0.8])
    assert centroids[0, 1] == pytest.approx([1.005, 0.995])
    assert centroids[0, 2].tolist() == [1.2, 1.1]
    again, _ = kmeans(points, valid, seeds, iterations=3)
    assert np.array_equal(again, centroids)


# --- fleet ----------------------------------------------------------------------------------------------


def test_robust_z_uses_median_and_mad_per_group_and_needs_enough_peers():
    values = np.array([100.0, 101.0, 99.0, 100.0, 102.0, 80.0, 50.0, 51.0])
    group = np.array([0, 0, 0, 0, 0, 0, 1, 1])
    z = robust_z(values, group, np.ones(8, bool), min_size=5, rel_floor=0.0)
    # group 0: median 100, |dev| = [0, 1, 1, 0, 2, 20] -> MAD 1
    assert z[5] == pytest.approx(-20 / 1.4826)
    assert z[0] == 0
    assert np.isnan(z[6:]).all()


def test_fleet_z_flags_the_one_miner_far_from_its_model():
    baselines = Baselines("site-1")
    rates = [110.0, 111.0, 109.0, 110.5, 109.5, 110.2, 85.0]
    frame = FleetFrame.from_inputs([inp(sample(f"m{i}", rate=r, power=3250.0)) for i, r in enumerate(rates)])
    scores = baselines.observe(frame)
    assert scores.fleet_z[6] > 3 and scores.fleet_metric[6] == 1  # W/TH: the larger of the two z's
    assert (np.abs(scores.fleet_z[:6]) < 3).all()
    frame = FleetFrame.from_inputs(
        [inp(sample(f"e{i}", rate=r, power=3250.0, measured=False)) for i, r in enumerate(rates)]
    )
    scores = baselines.observe(frame)  # estimated power: only hashrate can be compared
    assert scores.fleet_z[6] < -3 and scores.fleet_metric[6] == 0


# --- shares, settling -----------------------------------------------------------------------------------


def test_share_age_is_exact_once_the_counter_moved_and_a_lower_bound_before():
    values = [{"accepted": 10}, {"accepted": 10}, {"accepted": 12}, {"accepted": 12}, {"accepted": 12}]
    _, scores = observe_series(values)
    assert scores[1].share_age_s[0] == INTERVAL and not scores[1].share_age_exact[0]
    assert scores[2].share_age_s[0] == 0 and scores[2].share_age_exact[0]
    assert scores[4].share_age_s[0] == 2 * INTERVAL


def test_a_miner_that_resumes_hashing_settles_before_it_is_scored():
    values = [{}] * 20 + [{"status": MinerStatus.SLEEPING, "rate": 0.0}] + [{"rate": 60.0}] * 12
    _, scores = observe_series(values)
    resumed = scores[21:]
    settle_polls = int(BaselineParams().settle_s // INTERVAL)
    assert all(s.settling[0] for s in resumed[:settle_polls])
    assert all(math.isnan(s.hashrate_z[0]) for s in resumed[:settle_polls])
    assert not resumed[settle_polls].settling[0]


def test_a_reboot_between_polls_is_seen_through_uptime():
    _, scores = observe_series([{}] * 20 + [{"uptime_s": 40}])
    assert scores[-1].settling[0]


# --- fleet changes and persistence ----------------------------------------------------------------------


def test_rows_follow_the_fleet_new_miners_fresh_removed_dropped():
    baselines = Baselines("site-1")
    cycle(baselines, [inp(sample("a", temp=60.0)), inp(sample("b", temp=70.0))])
    cycle(baselines, [inp(sample("b", T0 + INTERVAL, temp=70.0)), inp(sample("c", T0 + INTERVAL, temp=80.0))])
    assert baselines.miner_ids == ("b", "c")
    assert baselines.column("temp_n").tolist() == [2, 1]
    assert baselines.column("temp_mean").tolist() == [70.0, 80.0]


def test_round_trip_restores_every_column_and_continues_identically():
    series = noisy(25, seed=8)
    original, _ = observe_series(series)
    restored = Baselines.from_bytes(original.to_bytes(), site_id="site-1")
    assert restored.miner_ids == original.miner_ids
    assert restored.params == original.params
    for name in ("hr_mean", "hr_var", "temp_mean", "ring_power", "centroids", "cusum", "mode", "last_ts"):
        assert np.array_equal(restored.column(name), original.column(name), equal_nan=True), name
    nxt = [inp(sample(ts=T0 + 25 * INTERVAL, rate=100.0, temp=70.0))]
    a, b = cycle(original, nxt)[0], cycle(restored, nxt)[0]
    assert a.hashrate_z[0] == b.hashrate_z[0] and a.temp_z[0] == b.temp_z[0]


def test_stored_baselines_of_another_site_or_damaged_bytes_are_refused():
    blob = observe_series(noisy(3))[0].to_bytes()
    with pytest.raises(BaselineError, match="site-1"):
        Baselines.from_bytes(blob, site_id="site-2")
    with pytest.raises(BaselineError, match="damaged"):
        Baselines.from_bytes(b"not an npz", site_id="site-1")


def test_reset_forgets_one_miner_only():
    baselines = Baselines("site-1")
    cycle(baselines, [inp(sample("a")), inp(sample("b"))])
    baselines.reset(["a"])
    assert baselines.column("hr_n").tolist() == [0, 1]
