"""The poll coordinator: the one owner of interval, concurrency, deadlines, backoff and availability.

Every `interval_s` a cycle reads every miner once. Requests are spread over the first `spread` of the
interval (a site's switches and the gateway's CPU prefer a steady trickle to a burst of 10,000 SYNs),
at most `concurrency` at a time, each under a hard `deadline_s` for its whole read. So a cycle ends
by `interval_s x spread + deadline_s`, which config validation keeps below the interval: one hung,
slow or garbage-spewing miner costs its own deadline and nothing else. Reads start in waves, one per
`WAVE_S` tick (each miner at the first tick at or after its slot, never past the spread): at 10,000
miners that is ~70 connections per wave, served in shared event-loop wake-ups; a timer and a wake-up
of its own for every miner cost ~15 % more CPU per read (bench/pipeline.py).

Availability, per miner: a failed read is retried next cycle; after `offline_after_failures` in a row
the miner is `offline` (an offline sample is recorded every cycle, so metering sees the gap) and
unreachable ones are re-tried with exponential backoff, capped at `backoff_max_s`. A miner whose last
good reading is older than two intervals while not offline — the gateway itself was paused, or the
cycle is running late — is `stale`, a state of its own: its last reading is not current and must not
be presented as such.

Consumers never call drivers: they get each cycle's samples through `sink` and read snapshots.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import math
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from gateway.clock import Clock
from gateway.config import PollingSettings
from gateway.devices.driver import MinerDriver
from gateway.devices.errors import AuthFailed, DeviceError, Unreachable
from gateway.devices.model import MinerStatus, Sample

log = logging.getLogger(__name__)
WAVE_S = 0.1  # reads start in waves this far apart


class Availability(enum.StrEnum):
    OK = "ok"
    FAILING = "failing"  # failed at least once, fewer than K times in a row
    OFFLINE = "offline"
    STALE = "stale"
    UNKNOWN = "unknown"  # not read yet


@dataclass(slots=True)
class MinerPollState:
    miner_id: str
    failures: int = 0
    next_due_mono: float = 0.0
    last_good_ts: int | None = None
    last_sample: Sample | None = None
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class CycleStats:
    started_at: float  # wall clock
    duration_s: float
    lateness_s: float  # how late the cycle started against its schedule
    polled: int
    succeeded: int
    failed: int
    backed_off: int
    errors_by_kind: Mapping[str, int]


@dataclass(slots=True)
class PollTotals:
    cycles: int = 0
    errors_by_kind: Counter[str] = field(default_factory=Counter)
    last: CycleStats | None = None


Sink = Callable[[list[Sample], CycleStats], None]


def error_kind(err: BaseException) -> str:
    if isinstance(err, TimeoutError):
        return "Timeout"
    if isinstance(err, DeviceError):
        return type(err).__name__
    return "Bug"


class PollCoordinator:
    def __init__(
        self,
        settings: PollingSettings,
        drivers: Mapping[str, MinerDriver],
        clock: Clock,
        sink: Sink,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.sink = sink
        self.totals = PollTotals()
        self._drivers: dict[str, MinerDriver] = {}
        self._states: dict[str, MinerPollState] = {}
        self.set_drivers(drivers)

    def set_drivers(self, drivers: Mapping[str, MinerDriver]) -> None:
        """Replace the fleet (inventory changed). Known miners keep their availability history."""
        self._drivers = dict(drivers)
        self._states = {mid: self._states.get(mid) or MinerPollState(mid) for mid in self._drivers}

    def restore(self, miner_id: str, last_good_ts: int | None) -> None:
        """After a restart, remember when a miner was last read well (for `stale`)."""
        state = self._states.get(miner_id)
        if state is not None and last_good_ts is not None:
            state.last_good_ts = max(state.last_good_ts or 0, last_good_ts)

    # --- what consumers read ---------------------------------------------------------------------

    def availability(self, miner_id: str, now: float | None = None) -> Availability:
        state = self._states.get(miner_id)
        if state is None or (state.last_sample is None and state.failures == 0):
            return Availability.UNKNOWN
        if state.failures >= self.settings.offline_after_failures:
            return Availability.OFFLINE
        now = self.clock.now() if now is None else now
        if state.last_good_ts is not None and now - state.last_good_ts > 2 * self.settings.interval_s:
            return Availability.STALE
        return Availability.FAILING if state.failures else Availability.OK

    def states(self) -> Mapping[str, MinerPollState]:
        return self._states

    # --- the loop --------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Cycle every interval until `stop` is set. A cycle that starts late is not skipped; its
        lateness is recorded, and the schedule re-anchors so cycles never pile up."""
        interval = self.settings.interval_s
        scheduled = self.clock.monotonic()
        while not stop.is_set():
            lateness = max(0.0, self.clock.monotonic() - scheduled)
            if lateness > interval:
                scheduled = self.clock.monotonic()  # we were paused or overloaded: start afresh
            await self.poll_cycle(lateness)
            scheduled += interval
            delay = scheduled - self.clock.monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)

    async def poll_cycle(self, lateness_s: float = 0.0) -> CycleStats:
        loop = asyncio.get_running_loop()
        started_loop = loop.time()
        started_mono = self.clock.monotonic()
        started_wall = self.clock.now()
        s = self.settings
        semaphore = asyncio.Semaphore(s.concurrency)
        spread_s = s.interval_s * s.spread
        ids = list(self._drivers)
        samples: list[Sample] = []
        kinds: Counter[str] = Counter()
        outcome = Counter[str]()

        async def poll_one(miner_id: str, state: MinerPollState) -> None:
            async with semaphore:
                try:
                    async with asyncio.timeout(s.deadline_s):
                        sample = await self._drivers[miner_id].read()
                except Exception as err:
                    kind = error_kind(err)
                    kinds[kind] += 1
                    outcome["failed"] += 1
                    if kind == "Bug":
                        log.exception("reading %s failed unexpectedly", miner_id)
                    self._record_failure(state, err, kind, samples)
                    return
            outcome["succeeded"] += 1
            state.failures = 0
            state.next_due_mono = 0.0
            state.last_error = None
            state.last_sample = sample
            if sample.status is not MinerStatus.OFFLINE:
                state.last_good_ts = sample.ts
            samples.append(sample)

        tasks: list[asyncio.Task[None]] = []
        try:
            for index, miner_id in enumerate(ids):
                state = self._states[miner_id]
                if state.next_due_mono > started_mono:
                    outcome["backed_off"] += 1
                    if state.failures >= s.offline_after_failures:
                        samples.append(self._offline_sample(state))
                    continue
                # The miner's slot, rounded up to the next wave (never earlier than the slot, never
                # later than the end of the spread, so the cycle's bound is unchanged).
                slot = spread_s * index / len(ids)
                start = min(math.ceil(slot / WAVE_S) * WAVE_S, spread_s)
                delay = started_loop + start - loop.time()  # real waiting, whatever the Clock
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(poll_one(miner_id, state)))
            await asyncio.gather(*tasks)
        except asyncio.CancelledError:
            # Shutting down mid-cycle: keep what was read (SIGTERM flushes the last batch).
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.sink(samples, self._stats(started_wall, started_mono, lateness_s, len(ids), outcome, kinds))
            raise
        stats = self._stats(started_wall, started_mono, lateness_s, len(ids), outcome, kinds)
        self.totals.cycles += 1
        self.totals.errors_by_kind.update(kinds)
        self.totals.last = stats
        self.sink(samples, stats)
        return stats

    def _stats(
        self,
        started_wall: float,
        started_mono: float,
        lateness_s: float,
        polled: int,
        outcome: Counter[str],
        kinds: Counter[str],
    ) -> CycleStats:
        return CycleStats(
            started_at=started_wall,
            duration_s=self.clock.monotonic() - started_mono,
            lateness_s=lateness_s,
            polled=polled,
            succeeded=outcome["succeeded"],
            failed=outcome["failed"],
            backed_off=outcome["backed_off"],
            errors_by_kind=dict(kinds),
        )

    def _record_failure(
        self, state: MinerPollState, err: BaseException, kind: str, out: list[Sample]
    ) -> None:
        s = self.settings
        state.failures += 1
        state.last_error = f"{kind}: {err}"
        if state.failures < s.offline_after_failures:
            return  # one missed poll is not an outage: the last reading keeps holding
        out.append(self._offline_sample(state))
        if isinstance(err, Unreachable | AuthFailed | TimeoutError):
            # Exponential backoff from the K-th failure: interval, 2x, 4x ... capped.
            backoff = min(s.backoff_max_s, s.interval_s * 2 ** (state.failures - s.offline_after_failures))
            state.next_due_mono = self.clock.monotonic() + backoff

    def _offline_sample(self, state: MinerPollState) -> Sample:
        return Sample(
            miner_id=state.miner_id,
            ts=int(self.clock.now()),
            status=MinerStatus.OFFLINE,
            errors=(state.last_error,) if state.last_error else (),
            identity=state.last_sample.identity if state.last_sample else None,
        )
