"""Metering: poll samples -> integer joules per miner per 15-minute interval (ARCHITECTURE §3, §5).

Left-Riemann, because an ASIC's load is a step function: it draws what it drew at the last reading until
something (a mode change, curtailment, a fault) changes it, and the next reading is the first time we can
know that. Trapezoids would invent a ramp that never happened and would smear a sleep command's drop over
the preceding poll period.

The gap cap (`max_gap_s`, default 1,800 s): a reading is trusted for at most that long. Past it the time is
*uncovered*: counted and reported per interval, never filled with invented energy, so a settlement can show
its coverage and a dispute can see exactly which minutes were not measured. A reading with no power
(`power_w` None: offline, unreadable) covers nothing; the time until the next reading is uncovered because
we do not know what the miner drew.

Integer joules with telescoping rounding: a segment (one reading to the next) of power P that started at
t0 has cumulative energy E(t) = round_half_even(P x (t - t0)), computed exactly from P's binary fraction.
Each interval receives E(end) - E(start) of its piece, so cutting a segment at a boundary (or closing a
billing period in the middle of it) never changes the segment's total, and intervals always sum to it.

Absolute rows: every emitted `IntervalEnergy` holds the interval's *whole* value so far, not an increment.
The store upserts them; a batch replayed after a crash rewrites the same numbers instead of adding them
again, and any interval can be recomputed from raw samples with `meter()` and compared.

Order and drops: samples are fed in arrival order. Per miner a sample is accepted only if its `ts` is
later than the last accepted one; energy is always placed by the sample's own `ts`, so a delayed or
buffered reading lands in its own interval. Otherwise it is dropped and counted: `duplicate` (same `ts`
as the last accepted; the first one wins), `out_of_order` (earlier; this includes a clock that stepped
backwards and an older sample replayed after a restart: with O(1) state per miner the meter cannot tell
them apart and need not, since both must be dropped), `late` (newer than the last reading but inside
time already finalised by `close()`).

Bounds (the property tests check them):
- Constant power P, any poll pattern with gaps <= max_gap_s: each segment is exact when P x dt is an
  integer (then the total is exactly P x covered seconds) and within 0.5 J otherwise.
- One step trajectory P(t) (right-continuous, jumps dP_k at times c_k), polled at t_0 < ... < t_n with
  gaps <= max_gap_s: |metered - true| <= sum_k |dP_k| x (t_next(c_k) - c_k) + n/2, where t_next(c_k) is the
  first poll at or after c_k. Per interval I: sum_k |dP_k| x |[c_k, t_next(c_k)) ∩ I| + 1 per segment
  piece in I. So two poll patterns A and B differ by at most sum_k |dP_k| x (h_A + h_B) + (n_A + n_B)/2,
  with h the largest poll gap: halving the poll period halves the discretisation error.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gateway.devices.model import Sample, Source

INTERVAL_S = 900
DEFAULT_MAX_GAP_S = 1800


@dataclass(frozen=True, slots=True, kw_only=True)
class IntervalEnergy:
    """The absolute value of one miner's interval `[interval_start, interval_start + interval_s)`.

    `covered_s + uncovered_s` is the part of the interval the meter has accounted for; time before a
    miner's first reading and after its latest one is neither, until a later reading or `close()`."""

    miner_id: str
    interval_start: int
    joules: int
    covered_s: int
    uncovered_s: int
    estimated_s: int  # part of covered_s whose power came from the profile, not the miner
    peak_w: float | None  # highest power held during covered time; None when nothing was covered

    @property
    def avg_w(self) -> float | None:
        return self.joules / self.covered_s if self.covered_s else None


@dataclass(frozen=True, slots=True, kw_only=True)
class DropCounts:
    out_of_order: int = 0
    duplicate: int = 0
    late: int = 0

    @property
    def total(self) -> int:
        return self.out_of_order + self.duplicate + self.late


def interval_start(ts: int, interval_s: int = INTERVAL_S) -> int:
    """Start of the interval holding `ts`: intervals are aligned to multiples of `interval_s` since the
    epoch (UTC), so every miner and every site shares the same grid."""
    return ts - ts % interval_s


def _power(power_w: float | None) -> tuple[int, int, float]:
    """(numerator, denominator, watts) of a reading's power; denominator 0 means unknown.

    NaN, infinities and negative watts are firmware garbage, not a draw: they are treated like a missing
    reading (uncovered) rather than turned into energy."""
    if power_w is None or not 0.0 <= power_w < math.inf:
        return 0, 0, 0.0
    num, den = power_w.as_integer_ratio()
    return num, den, power_w


def _round_half_even(num: int, den: int) -> int:
    """round(num / den) with ties to even, exactly (den > 0)."""
    q, r = divmod(num, den)
    r2 = r + r
    if r2 > den or (r2 == den and q & 1):
        return q + 1
    return q


class _MinerState:
    """One miner's cursor: its last accepted reading (the open segment) and its open interval's totals.

    Mutable and private on purpose: `advance` runs 10,000 times per poll cycle and must not allocate."""

    __slots__ = (
        "cov",
        "cum",
        "cursor",
        "den",
        "est",
        "est_s",
        "hold",
        "j",
        "miner_id",
        "n_dup",
        "n_late",
        "n_ooo",
        "num",
        "p_w",
        "peak",
        "seg_ts",
        "start",
        "unc",
    )

    def __init__(self, sample: Sample, max_gap_s: int, interval_s: int) -> None:
        ts = sample.ts
        self.miner_id = sample.miner_id
        self.num, self.den, self.p_w = _power(sample.power_w)
        self.est = sample.power_source is Source.ESTIMATED
        self.seg_ts = ts  # the reading the open segment started from (the base of its cumulative energy)
        self.cursor = ts  # everything before this is accounted; > seg_ts only after close()
        self.hold = ts + max_gap_s if self.den else ts  # the reading is trusted until here
        self.cum = 0  # E(min(cursor, hold)) of the open segment
        self.start = interval_start(ts, interval_s)
        self.j = self.cov = self.unc = self.est_s = 0
        self.peak: float | None = None
        self.n_ooo = self.n_dup = self.n_late = 0

    def row(self) -> IntervalEnergy:
        return IntervalEnergy(
            miner_id=self.miner_id,
            interval_start=self.start,
            joules=self.j,
            covered_s=self.cov,
            uncovered_s=self.unc,
            estimated_s=self.est_s,
            peak_w=self.peak,
        )


class Meter:
    """The streaming meter: per miner, O(1) state and O(1) work per reading (plus one row per interval a
    reading's segment crosses). Its rows equal `meter()`'s on the same input, however the input is split
    into calls, and it can be rebuilt after a restart with `Meter.restore`."""

    __slots__ = ("_interval_s", "_max_gap_s", "_states")

    def __init__(self, *, max_gap_s: int = DEFAULT_MAX_GAP_S, interval_s: int = INTERVAL_S) -> None:
        if max_gap_s < 0 or interval_s <= 0:
            raise ValueError(f"need max_gap_s >= 0 and interval_s > 0, got {max_gap_s}, {interval_s}")
        self._max_gap_s = max_gap_s
        self._interval_s = interval_s
        self._states: dict[str, _MinerState] = {}

    @classmethod
    def restore(
        cls,
        samples: Iterable[Sample],
        *,
        max_gap_s: int = DEFAULT_MAX_GAP_S,
        interval_s: int = INTERVAL_S,
    ) -> Meter:
        """Rebuild after a restart from the recent raw samples, in arrival order.

        Exact when, per miner, the history starts at or before the last accepted reading at or before the
        start of the miner's open interval (24 h of raw samples always does, unless the miner was silent
        for longer). Drop counters start at zero: they describe this process's input."""
        meter = cls(max_gap_s=max_gap_s, interval_s=interval_s)
        meter._feed(samples, None)
        for st in meter._states.values():
            st.n_ooo = st.n_dup = st.n_late = 0
        return meter

    def advance(self, sample: Sample) -> list[IntervalEnergy]:
        """Account one reading; return the absolute value of every interval it touched (none for a
        miner's first reading or a dropped one)."""
        st = self._states.get(sample.miner_id)
        if st is None:
            self._states[sample.miner_id] = _MinerState(sample, self._max_gap_s, self._interval_s)
            return []
        out: list[IntervalEnergy] = []
        self._run(st, (sample,), 0, None, out)
        return out

    def feed(self, samples: Iterable[Sample]) -> list[IntervalEnergy]:
        """Account a batch (a poll cycle); one row per (miner, interval) touched, holding its latest
        value, so the batch can be upserted in one statement."""
        return self._feed(samples, None)

    def close(self, until_ts: int, miner_ids: Iterable[str] | None = None) -> list[IntervalEnergy]:
        """Finalise every known miner (or `miner_ids`) up to `until_ts`, e.g. at the end of a billing
        period: the last reading holds for at most `max_gap_s`, the rest is uncovered.

        Transparent: a reading that arrives later at or after `until_ts` continues the same segment, so
        the rows end up exactly as if `close` had never been called. Readings with a `ts` before
        `until_ts` that arrive after it are dropped as `late`."""
        out: list[IntervalEnergy] = []
        ids = self._states.keys() if miner_ids is None else miner_ids
        for miner_id in ids:
            st = self._states.get(miner_id)
            if st is not None:
                self._run(st, (), 0, until_ts, out)
        return out

    def open_intervals(self) -> list[IntervalEnergy]:
        """Current (partial) value of each miner's open interval, for live views."""
        return [st.row() for st in self._states.values() if st.cov or st.unc]

    def last_ts(self, miner_id: str) -> int | None:
        st = self._states.get(miner_id)
        return None if st is None else st.seg_ts

    def forget(self, miner_id: str) -> None:
        """Drop a miner removed from the inventory (its open interval stays as last emitted)."""
        self._states.pop(miner_id, None)

    @property
    def drops(self) -> DropCounts:
        states = self._states.values()
        return DropCounts(
            out_of_order=sum(st.n_ooo for st in states),
            duplicate=sum(st.n_dup for st in states),
            late=sum(st.n_late for st in states),
        )

    def drops_for(self, miner_id: str) -> DropCounts:
        st = self._states.get(miner_id)
        if st is None:
            return DropCounts()
        return DropCounts(out_of_order=st.n_ooo, duplicate=st.n_dup, late=st.n_late)

    def _feed(self, samples: Iterable[Sample], until_ts: int | None) -> list[IntervalEnergy]:
        by_miner: dict[str, list[Sample]] = {}
        for sample in samples:
            group = by_miner.get(sample.miner_id)
            if group is None:
                by_miner[sample.miner_id] = [sample]
            else:
                group.append(sample)
        out: list[IntervalEnergy] = []
        for miner_id, group in by_miner.items():
            st = self._states.get(miner_id)
            first = 0
            if st is None:
                st = self._states[miner_id] = _MinerState(group[0], self._max_gap_s, self._interval_s)
                first = 1
            self._run(st, group, first, until_ts, out)
        return out

    def _run(
        self,
        st: _MinerState,
        samples: Sequence[Sample],
        first: int,
        until_ts: int | None,
        out: list[IntervalEnergy],
    ) -> None:
        """Account `samples[first:]` (all of `st`'s miner, arrival order), then close up to `until_ts`.

        Appends each interval that closed, then the open interval if it was touched: each interval at
        most once per call. The hot loop works on locals and writes the state back once."""
        span = self._interval_s
        cap = self._max_gap_s
        miner_id = st.miner_id
        seg_ts, cursor, hold, cum = st.seg_ts, st.cursor, st.hold, st.cum
        num, den, p_w, est = st.num, st.den, st.p_w, st.est
        start, j, cov, unc, est_s, peak = st.start, st.j, st.cov, st.unc, st.est_s, st.peak
        touched = False
        n = len(samples)
        i = first
        while True:
            sample: Sample | None
            if i < n:
                sample = samples[i]
                i += 1
                t1 = sample.ts
                if t1 <= seg_ts:
                    if t1 == seg_ts:
                        st.n_dup += 1
                    else:
                        st.n_ooo += 1
                    continue
                if t1 < cursor:
                    st.n_late += 1
                    continue
            elif until_ts is not None and until_ts > cursor:
                sample, t1, until_ts = None, until_ts, None
            else:
                break
            a = cursor
            while a < t1:
                end = start + span
                b = t1 if t1 < end else end
                if a < hold:
                    c = b if b < hold else hold
                    e = num * (c - seg_ts) if den == 1 else _round_half_even(num * (c - seg_ts), den)
                    j += e - cum
                    cum = e
                    cov += c - a
                    if est:
                        est_s += c - a
                    if peak is None or p_w > peak:
                        peak = p_w
                    unc += b - c
                else:
                    unc += b - a
                touched = True
                if b == end:
                    out.append(
                        IntervalEnergy(
                            miner_id=miner_id,
                            interval_start=start,
                            joules=j,
                            covered_s=cov,
                            uncovered_s=unc,
                            estimated_s=est_s,
                            peak_w=peak,
                        )
                    )
                    start = end
                    j = cov = unc = est_s = 0
                    peak = None
                    touched = False
                a = b
            cursor = t1
            if sample is not None:
                num, den, p_w = _power(sample.power_w)
                est = sample.power_source is Source.ESTIMATED
                seg_ts = t1
                hold = t1 + cap if den else t1
                cum = 0
        st.seg_ts, st.cursor, st.hold, st.cum = seg_ts, cursor, hold, cum
        st.num, st.den, st.p_w, st.est = num, den, p_w, est
        st.start, st.j, st.cov, st.unc, st.est_s, st.peak = start, j, cov, unc, est_s, peak
        if touched:
            out.append(st.row())


def meter(
    samples: Iterable[Sample],
    *,
    max_gap_s: int = DEFAULT_MAX_GAP_S,
    interval_s: int = INTERVAL_S,
    until_ts: int | None = None,
) -> list[IntervalEnergy]:
    """Batch metering of one or many miners' samples (arrival order; miners may interleave freely).

    Returns one row per (miner, interval) with time accounted, miners in order of first appearance,
    intervals ascending. With `until_ts`, every miner is closed up to it (see `Meter.close`). This is the
    recompute path: its rows are what the streaming `Meter` emitted last for each interval."""
    return Meter(max_gap_s=max_gap_s, interval_s=interval_s)._feed(samples, until_ts)
