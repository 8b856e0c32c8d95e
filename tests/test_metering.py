"""Metering: exact hand-checkable cases, then hypothesis properties (conservation, constant-power
exactness, the resampling bound, stream == batch, crash + replay == no crash)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from gateway.devices.model import MinerStatus, Sample, Source
from gateway.metering import (
    DEFAULT_MAX_GAP_S,
    INTERVAL_S,
    DropCounts,
    IntervalEnergy,
    Meter,
    interval_start,
    meter,
)

T0 = 1_700_001_000  # an interval boundary: 900 x 1,888,890
KWH_J = 3_600_000
Key = tuple[str, int]


def s(
    miner: str,
    ts: int,
    w: float | None = 3000.0,
    src: Source = Source.MEASURED,
    status: MinerStatus = MinerStatus.MINING,
) -> Sample:
    return Sample(
        miner_id=miner, ts=ts, status=status, power_w=w, power_source=src if w is not None else None
    )


def polls(miner: str, start: int, stop: int, every: int = 30, w: float | None = 3000.0) -> list[Sample]:
    """Readings at start, start + every, ... up to and including stop."""
    return [s(miner, t, w) for t in range(start, stop + 1, every)]


def by_key(rows: Iterable[IntervalEnergy]) -> dict[Key, IntervalEnergy]:
    """What the store holds after upserting `rows` in order (later values replace earlier ones)."""
    return {(r.miner_id, r.interval_start): r for r in rows}


def total_j(rows: Iterable[IntervalEnergy], miner: str | None = None) -> int:
    return sum(r.joules for r in rows if miner is None or r.miner_id == miner)


# --- the hand-checkable case from the issue ----------------------------------------------------------


def test_three_miners_3kw_for_one_hour_is_exactly_9_kwh_fully_covered() -> None:
    samples = [x for m in ("a", "b", "c") for x in polls(m, T0, T0 + 3600)]
    rows = meter(samples)
    assert total_j(rows) == 32_400_000 == 9 * KWH_J  # 3 x 3,000 W x 3,600 s
    assert len(rows) == 12  # 3 miners x 4 intervals; the final reading at +1 h starts nothing yet
    for r in rows:
        assert (r.joules, r.covered_s, r.uncovered_s, r.estimated_s) == (2_700_000, 900, 0, 0)
        assert r.avg_w == 3000.0 and r.peak_w == 3000.0
    assert sum(r.covered_s for r in rows) == 3 * 3600  # 100 % coverage


def test_one_miner_silent_for_40_minutes_shows_its_uncovered_time() -> None:
    # Miner c answers until +10 min, then nothing for 40 min (next reading at +50 min). Its +10 min
    # reading is trusted for max_gap_s = 30 min (to +40 min); +40..+50 min = 600 s is uncovered, split by
    # the +45 min boundary into 300 s in each of the last two intervals. The shortfall is
    # 3,000 W x 600 s = 1,800,000 J = 0.5 kWh: 8.5 kWh instead of 9.
    samples = polls("a", T0, T0 + 3600) + polls("b", T0, T0 + 3600)
    samples += polls("c", T0, T0 + 600) + polls("c", T0 + 3000, T0 + 3600)
    rows = meter(samples)
    assert total_j(rows) == 30_600_000 == 9 * KWH_J - 1_800_000
    got = {r.interval_start - T0: (r.joules, r.covered_s, r.uncovered_s) for r in rows if r.miner_id == "c"}
    assert got == {
        0: (2_700_000, 900, 0),
        900: (2_700_000, 900, 0),
        1800: (1_800_000, 600, 300),  # covered to +40 min, then uncovered
        2700: (1_800_000, 600, 300),  # uncovered until the +50 min reading, covered after it
    }
    assert sum(r.uncovered_s for r in rows) == 600
    assert all(r.uncovered_s == 0 for r in rows if r.miner_id != "c")


# --- exact semantics ----------------------------------------------------------------------------------


def test_segment_is_split_exactly_at_the_interval_boundary() -> None:
    rows = meter([s("m", T0 + 850, 1000.0), s("m", T0 + 950, 2000.0), s("m", T0 + 960)])
    got = {r.interval_start - T0: (r.joules, r.covered_s, r.peak_w) for r in rows}
    assert got == {0: (50_000, 50, 1000.0), 900: (50_000 + 20_000, 60, 2000.0)}


def test_rounding_telescopes_so_a_split_never_changes_the_total() -> None:
    # 1.5 W from +899 to +902: E(1 s) = round(1.5) = 2, E(3 s) = round(4.5) = 4 (ties to even). The
    # intervals get 2 and 4 - 2 = 2: the total stays round(4.5) = 4, where rounding each part would give 5.
    rows = meter([s("m", T0 + 899, 1.5), s("m", T0 + 902)])
    assert [(r.joules, r.covered_s) for r in rows] == [(2, 1), (2, 2)]


def test_a_delayed_or_buffered_reading_lands_in_its_own_interval() -> None:
    m = Meter()
    m.feed([s("a", T0, 1000.0), s("b", T0, 1000.0)])
    m.feed([s("b", T0 + 930, 1000.0)])  # b's next cycle arrives first
    rows = by_key(m.feed([s("a", T0 + 890, 2000.0), s("a", T0 + 920, 2000.0)]))  # a's reading was buffered
    assert rows[("a", T0)].joules == 890 * 1000 + 10 * 2000
    assert rows[("a", T0 + 900)].joules == 20 * 2000
    assert m.drops == DropCounts()


def test_duplicate_out_of_order_and_backwards_clock_are_dropped_and_counted() -> None:
    clean = [s("m", T0), s("m", T0 + 30), s("m", T0 + 60), s("m", T0 + 90)]
    noisy = [
        s("m", T0),
        s("m", T0 + 30),
        s("m", T0 + 30, 9999.0),  # duplicate timestamp with other data: the first one wins
        s("m", T0 + 60),
        s("m", T0 + 45, 9999.0),  # the clock stepped back: out of order
        s("m", T0 + 10, 9999.0),  # an old reading replayed: out of order
        s("m", T0 + 60),  # exact duplicate
        s("m", T0 + 90),
    ]
    m = Meter()
    assert by_key(m.feed(noisy)) == by_key(meter(clean))
    assert m.drops == DropCounts(out_of_order=2, duplicate=2)
    assert m.drops_for("m").total == 4 and m.drops_for("other") == DropCounts()
    assert total_j(meter(noisy)) == 3000 * 90


def test_a_reading_without_power_covers_nothing() -> None:
    rows = meter([s("m", T0), s("m", T0 + 30, None), s("m", T0 + 90), s("m", T0 + 120)])
    (r,) = rows
    assert (r.joules, r.covered_s, r.uncovered_s) == (3000 * 60, 60, 60)


def test_garbage_power_is_treated_as_unknown_not_energy() -> None:
    for bad in (math.nan, math.inf, -5.0):
        (r,) = meter([s("m", T0, bad), s("m", T0 + 30)])
        assert (r.joules, r.covered_s, r.uncovered_s, r.peak_w, r.avg_w) == (0, 0, 30, None, None)


def test_estimated_seconds_peak_and_sleeping_miners() -> None:
    samples = [
        s("m", T0, 3000.0, Source.ESTIMATED),
        s("m", T0 + 60, 3500.0),
        s("m", T0 + 90, 50.0, Source.ESTIMATED, MinerStatus.SLEEPING),  # profile sleep watts count
        s("m", T0 + 390),
    ]
    (r,) = meter(samples)
    assert r.joules == 3000 * 60 + 3500 * 30 + 50 * 300
    assert (r.covered_s, r.estimated_s, r.peak_w) == (390, 360, 3500.0)
    assert r.avg_w == r.joules / 390


def test_close_finalises_trailing_time_with_the_cap() -> None:
    m = Meter(max_gap_s=600)
    m.feed([s("m", T0), s("m", T0 + 100)])
    rows = m.close(T0 + 2000)
    got = {r.interval_start - T0: (r.joules, r.covered_s, r.uncovered_s) for r in rows}
    # +100 holds to +700; +700..+2000 is uncovered.
    assert got == {0: (3000 * 700, 700, 200), 900: (0, 0, 900), 1800: (0, 0, 200)}
    assert m.close(T0 + 1000) == []  # closing is monotone: the past is final
    assert meter([s("m", T0), s("m", T0 + 100)], max_gap_s=600, until_ts=T0 + 2000) == rows


def test_close_is_transparent_and_late_readings_after_it_are_dropped() -> None:
    samples = polls("m", T0, T0 + 3600, every=45)
    m = Meter()
    store = by_key(m.feed(samples[:10]))  # last reading at +405
    store |= by_key(m.close(T0 + 420))  # e.g. a billing period ends at +420 (not on a boundary)
    store |= by_key(m.feed([s("m", T0 + 410, 1.0)]))  # inside finalised time
    store |= by_key(m.feed(samples[10:]))
    assert store == by_key(meter(samples))
    assert m.drops == DropCounts(late=1)


# --- restarts and replays -----------------------------------------------------------------------------


def test_restart_from_recent_samples_then_the_rest_equals_batch() -> None:
    samples = polls("m", T0, T0 + 7200, every=30)
    samples = [s("m", x.ts, 3000.0 + (x.ts % 7) * 10.5) for x in samples]  # varying, non-integer power
    crash = 100  # last reading before the crash at +2970, inside the interval starting at +2700
    before = samples[:crash]
    store = by_key(Meter().feed(before))
    # Recent history only: from the last reading at or before the open interval's start (+2700).
    open_start = interval_start(before[-1].ts)
    first = max(i for i, x in enumerate(before) if x.ts <= open_start)
    restored = Meter.restore(before[first:])
    store |= by_key(restored.feed(samples[crash - 5 :]))  # the last 5 are replayed: a crash mid-batch
    assert store == by_key(meter(samples))
    assert restored.drops == DropCounts(out_of_order=4, duplicate=1)


def test_replaying_the_same_samples_adds_nothing() -> None:
    samples = polls("a", T0, T0 + 1800) + polls("b", T0, T0 + 1800)
    m = Meter()
    first = by_key(m.feed(samples))
    assert m.feed(samples) == [] and m.close(T0 + 1800) == []
    assert by_key(meter(samples + samples)) == first
    assert m.drops.total == len(samples)


# --- properties ---------------------------------------------------------------------------------------

powers = st.one_of(
    st.integers(0, 6000).map(float),
    st.floats(0, 6000, allow_nan=False, allow_infinity=False),
    st.none(),
)


@st.composite
def arrivals(draw: st.DrawFn, miners: Sequence[str] = ("a", "b", "c"), noisy: bool = True) -> list[Sample]:
    """Samples of a few miners in arrival order: gaps up to past the cap, sometimes a timestamp that goes
    backwards or repeats, miners interleaved at random."""
    per_miner: list[list[Sample]] = []
    for miner in miners:
        t = T0 + draw(st.integers(0, 2000))
        out = []
        for _ in range(draw(st.integers(0, 25))):
            step = draw(st.integers(-60, 2400) if noisy else st.integers(1, 2400))
            t += step
            out.append(s(miner, t, draw(powers), draw(st.sampled_from(Source))))
        per_miner.append(out)
    merged: list[Sample] = []
    while any(per_miner):
        queue = draw(st.sampled_from([q for q in per_miner if q]))
        merged.append(queue.pop(0))
    return merged


def accepted(samples: Iterable[Sample]) -> dict[str, list[Sample]]:
    out: dict[str, list[Sample]] = {}
    for x in samples:
        kept = out.setdefault(x.miner_id, [])
        if not kept or x.ts > kept[-1].ts:
            kept.append(x)
    return out


def known(x: Sample) -> bool:
    return x.power_w is not None and 0 <= x.power_w < math.inf


@given(arrivals(), st.sampled_from([30, 600, DEFAULT_MAX_GAP_S]))
def test_conservation_and_time_accounting(samples: list[Sample], cap: int) -> None:
    """Intervals sum to the per-segment totals, time is accounted exactly once, and each interval is
    within 1 J per segment piece of the exact rational energy."""
    rows = meter(samples, max_gap_s=cap)
    assert len(by_key(rows)) == len(rows)
    ref: dict[Key, list[Fraction]] = {}  # exact joules, covered, uncovered, estimated, pieces
    for miner, kept in accepted(samples).items():
        seg_total = 0
        for x, y in itertools.pairwise(kept):
            hold = x.ts + cap if known(x) else x.ts
            seg_total += round(Fraction(x.power_w or 0) * (min(y.ts, hold) - x.ts))
            for start in range(interval_start(x.ts), y.ts, INTERVAL_S):
                a, b = max(x.ts, start), min(y.ts, start + INTERVAL_S)
                cov = max(0, min(b, hold) - a)
                acc = ref.setdefault((miner, start), [Fraction(0)] * 5)
                acc[0] += Fraction(x.power_w or 0) * cov
                acc[1] += cov
                acc[2] += b - a - cov
                acc[3] += cov if x.power_source is Source.ESTIMATED else 0
                acc[4] += 1 if cov else 0
        assert total_j(rows, miner) == seg_total
        assert sum(r.covered_s + r.uncovered_s for r in rows if r.miner_id == miner) == (
            kept[-1].ts - kept[0].ts
        )
    got = by_key(rows)
    assert got.keys() == ref.keys()
    for key, (exact, covered, uncovered, estimated, pieces) in ref.items():
        r = got[key]
        assert (r.covered_s, r.uncovered_s, r.estimated_s) == (int(covered), int(uncovered), int(estimated))
        assert 0 < r.covered_s + r.uncovered_s <= INTERVAL_S and r.interval_start % INTERVAL_S == 0
        assert abs(Fraction(r.joules) - exact) <= pieces


@given(
    st.one_of(st.integers(0, 10_000).map(float), st.floats(0, 10_000, allow_nan=False)),
    st.integers(0, 899),
    st.lists(st.integers(1, DEFAULT_MAX_GAP_S), min_size=1, max_size=80),
)
def test_constant_power_is_exact_for_any_poll_pattern_within_the_cap(
    w: float, offset: int, gaps: list[int]
) -> None:
    times = [T0 + offset]
    for gap in gaps:
        times.append(times[-1] + gap)
    rows = meter([s("m", t, w) for t in times])
    covered = times[-1] - times[0]
    assert sum(r.covered_s for r in rows) == covered and all(r.uncovered_s == 0 for r in rows)
    if w.is_integer():  # P x dt is an integer for every segment: exact to the joule, per interval too
        assert total_j(rows) == int(w) * covered
        assert all(r.joules == int(w) * r.covered_s for r in rows)
    else:  # each segment is rounded once (half-even): within 0.5 J per segment
        assert abs(total_j(rows) - Fraction(w) * covered) <= Fraction(len(gaps), 2)


@st.composite
def trajectories(draw: st.DrawFn) -> tuple[int, int, float, list[tuple[int, float]]]:
    """A step power trajectory: start, duration, initial watts, (time, new watts) changes."""
    start = T0 + draw(st.integers(0, 899))
    duration = draw(st.integers(60, 3 * 3600))
    watts = st.one_of(st.integers(0, 6000).map(float), st.floats(0, 6000, allow_nan=False))
    times = draw(st.lists(st.integers(start + 1, start + duration - 1), max_size=12, unique=True))
    return start, duration, draw(watts), sorted((t, draw(watts)) for t in times)


@st.composite
def poll_times(draw: st.DrawFn, start: int, duration: int) -> list[int]:
    """Polls from start to start + duration with gaps of at most a random period h <= the cap: a grid
    every h plus up to 30 irregular extra polls (jitter, retries)."""
    h = draw(st.integers(60, DEFAULT_MAX_GAP_S))
    extra = draw(st.lists(st.integers(start, start + duration), max_size=30))
    return sorted({*range(start, start + duration, h), start + duration, *extra})


def power_at(t: int, w0: float, changes: list[tuple[int, float]]) -> float:
    w = w0
    for c, wc in changes:
        if c <= t:
            w = wc
    return w


def overlap(a: int, b: int, c: int, d: int) -> int:
    return max(0, min(b, d) - max(a, c))


def check_resampling_bound(
    times: list[int], w0: float, changes: list[tuple[int, float]]
) -> tuple[int, Fraction]:
    """Meter one poll pattern; check total and per-interval error against the true energy; return the
    metered total and the proved total bound."""
    rows = by_key(meter([s("m", t, power_at(t, w0, changes)) for t in times]))
    edges = [times[0], *(c for c, _ in changes), times[-1]]
    levels = [w0, *(wc for _, wc in changes)]
    jumps = [(c, abs(Fraction(wc) - Fraction(power_at(c - 1, w0, changes)))) for c, wc in changes]
    windows = [(c, min(t for t in times if t >= c), dp) for c, dp in jumps]  # [c_k, t_next(c_k))
    total_bound = sum(dp * (nxt - c) for c, nxt, dp in windows) + Fraction(len(times) - 1, 2)
    true_total = Fraction(0)
    for start in range(interval_start(times[0]), times[-1], INTERVAL_S):
        end = start + INTERVAL_S
        true_i = sum(
            Fraction(w) * overlap(a, b, start, end) for a, b, w in zip(edges, edges[1:], levels, strict=False)
        )
        true_total += true_i
        pieces = sum(1 for a, b in itertools.pairwise(times) if overlap(a, b, start, end))
        bound_i = sum(dp * overlap(c, nxt, start, end) for c, nxt, dp in windows) + pieces
        assert abs(Fraction(rows[("m", start)].joules) - true_i) <= bound_i
    metered = sum(r.joules for r in rows.values())
    assert abs(metered - true_total) <= total_bound
    return metered, total_bound


@given(st.data(), trajectories())
def test_resampling_changes_energy_only_by_the_discretisation_bound(
    data: st.DataObject, trajectory: tuple[int, int, float, list[tuple[int, float]]]
) -> None:
    start, duration, w0, changes = trajectory
    poll_a = data.draw(poll_times(start, duration))
    poll_b = data.draw(poll_times(start, duration))
    e_a, bound_a = check_resampling_bound(poll_a, w0, changes)
    e_b, bound_b = check_resampling_bound(poll_b, w0, changes)
    assert abs(e_a - e_b) <= bound_a + bound_b
    # The coarser statement: sum |dP| x (h_A + h_B) + (n_A + n_B) / 2, h the largest poll gap.
    jumps = sum(abs(Fraction(wc) - Fraction(power_at(c - 1, w0, changes))) for c, wc in changes)
    h_a = max(b - a for a, b in itertools.pairwise(poll_a))
    h_b = max(b - a for a, b in itertools.pairwise(poll_b))
    assert abs(e_a - e_b) <= jumps * (h_a + h_b) + Fraction(len(poll_a) + len(poll_b) - 2, 2)


def chunks(data: st.DataObject, samples: list[Sample]) -> list[list[Sample]]:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(samples)), max_size=6)))
    bounds = [0, *cuts, len(samples)]
    return [samples[a:b] for a, b in itertools.pairwise(bounds)]


@given(st.data(), arrivals())
def test_streaming_equals_batch_however_the_input_is_split(
    data: st.DataObject, samples: list[Sample]
) -> None:
    m = Meter()
    store: dict[Key, IntervalEnergy] = {}
    for chunk in chunks(data, samples):
        if data.draw(st.booleans()):
            store |= by_key(m.feed(chunk))
        else:
            for x in chunk:
                store |= by_key(m.advance(x))
    batch = Meter()
    assert store == by_key(batch.feed(samples)) == by_key(meter(samples))
    assert m.drops == batch.drops
    assert {(r.miner_id, r.interval_start) for r in m.open_intervals()} <= store.keys()


@given(st.data(), arrivals())
def test_crash_restore_and_replay_count_nothing_twice(data: st.DataObject, samples: list[Sample]) -> None:
    crash = data.draw(st.integers(0, len(samples)))
    replay = data.draw(st.integers(0, crash))
    live = Meter()
    store: dict[Key, IntervalEnergy] = {}
    for chunk in chunks(data, samples[:crash]):
        store |= by_key(live.feed(chunk))  # what the gateway wrote before it was killed
    restored = Meter.restore(samples[:crash])
    for chunk in chunks(data, samples[crash - replay :]):
        store |= by_key(restored.feed(chunk))  # the last `replay` samples are fed again
    assert store == by_key(meter(samples))


@given(st.data(), arrivals(miners=("m",), noisy=False))
def test_close_then_continue_equals_batch(data: st.DataObject, samples: list[Sample]) -> None:
    k = data.draw(st.integers(1, max(1, len(samples))))
    head, tail = samples[:k], samples[k:]
    until = (head[-1].ts if head else T0) + data.draw(st.integers(0, 3000))
    m = Meter()
    store = by_key(m.feed(head)) | by_key(m.close(until))
    store |= by_key(m.feed(tail))
    kept = head + [x for x in tail if x.ts >= until]
    assert store == by_key(meter(kept, until_ts=until))
    assert m.drops.late == len(tail) - (len(kept) - len(head))
