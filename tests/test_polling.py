"""The poll coordinator against real sockets: simulated miners, misbehaving peers, real drivers.

Every miner here is a real TCP endpoint on its own loopback address (127.80.x.x belongs to this module):
the simulator's virtual miners (with faults injected through its control API) and the bad peers of
tests/devices/badminer.py. Drivers come from `make_driver`, exactly as the gateway builds them.

Time: cycles that only need real I/O run on the system clock, and the only bounds asserted are derived
from the configured deadline and interval (see each test). Backoff, `offline` and `stale` are about
the schedule, not about I/O speed, so those tests drive a `FakeClock` cycle by cycle: the miners'
sockets stay real, and the decision to poll or not is checked by counting connections on the peer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping

import aiohttp
import pytest

from gateway.clock import Clock, FakeClock, SystemClock
from gateway.config import PollingSettings
from gateway.devices.driver import BaseDriver, Credentials, DriverContext, Endpoint
from gateway.devices.model import FirmwareFamily, MinerStatus, Sample
from gateway.devices.parsers.common import ParseContext
from gateway.devices.registry import make_driver
from gateway.devices.rpc import RpcLimits
from gateway.devices.vnish import VnishDriver
from gateway.polling import Availability, CycleStats, PollCoordinator
from gateway.simulator.fleet import DEFAULT_CREDENTIALS
from gateway.simulator.miner import SimMiner
from gateway.simulator.run import Simulator
from tests.devices.badminer import bad_miner
from tests.devices.capture import PROFILES
from tests.simulator.conftest import FaultApi, simulator


class Sink:
    """Collects what the coordinator hands over, cycle by cycle (the gateway's store would get it)."""

    def __init__(self) -> None:
        self.cycles: list[tuple[list[Sample], CycleStats]] = []

    def __call__(self, samples: list[Sample], stats: CycleStats) -> None:
        self.cycles.append((list(samples), stats))

    @property
    def last(self) -> list[Sample]:
        return self.cycles[-1][0]


def sim_driver(
    miner: SimMiner, *, deadline_s: float, clock: Clock | None = None, password: str | None = None
) -> BaseDriver:
    """The driver the gateway would build for this simulated miner (RPC deadline = poll deadline)."""
    username, factory_password = DEFAULT_CREDENTIALS[miner.identity.family]
    return make_driver(
        miner.identity.family,
        DriverContext(
            miner_id=miner.ip,
            endpoint=Endpoint(host=miner.ip, web_port=miner.web_port),
            credentials=Credentials(username=username, password=password or factory_password),
            limits=RpcLimits(deadline_s=deadline_s),
            profiles=PROFILES,
            model_hint=miner.identity.model,
            wall_clock=(clock or SystemClock()).now,
        ),
    )


def peer_driver(host: str, *, port: int = 4028, rpc_deadline_s: float) -> BaseDriver:
    """An Avalon driver (one RPC connection per read, nothing else) for a bad peer at host:port."""
    return make_driver(
        FirmwareFamily.AVALON,
        DriverContext(
            miner_id=host,
            endpoint=Endpoint(host=host, rpc_port=port),
            limits=RpcLimits(deadline_s=rpc_deadline_s),
            profiles=PROFILES,
        ),
    )


@contextlib.asynccontextmanager
async def counting_peer(host: str, port: int = 4028) -> AsyncIterator[list[int]]:
    """A peer that accepts and hangs up at once (the reader sees no reply: `Unreachable`). Yields a
    one-element list holding the number of connections accepted so far."""
    accepted = [0]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted[0] += 1
        writer.close()

    server = await asyncio.start_server(handle, host, port, reuse_address=True)
    try:
        yield accepted
    finally:
        server.close()
        await server.wait_closed()


@contextlib.asynccontextmanager
async def fleet(mix: str, first_address: str, miners: int) -> AsyncIterator[tuple[Simulator, FaultApi]]:
    async with simulator(mix, first_address, miners=miners) as sim, aiohttp.ClientSession() as http:
        yield sim, FaultApi(sim.control_url, http)


def coordinator(
    settings: PollingSettings, drivers: Mapping[str, BaseDriver], clock: Clock
) -> PollCoordinator:
    return PollCoordinator(settings, drivers, clock, Sink())


def sink_of(poller: PollCoordinator) -> Sink:
    assert isinstance(poller.sink, Sink)
    return poller.sink


async def test_hung_garbage_and_slow_miners_do_not_delay_the_others() -> None:
    """Four misbehaving miners take the first slots of the spread (one hung, one spewing 10 MiB of
    garbage, one slower than the deadline, one slow but within it), then six healthy ones follow.

    Bounds, all from the settings (interval 10 s, spread 0.1 -> 1 s, deadline 6 s):
    * a healthy miner's sample is stamped (int epoch seconds, floor) before started + deadline - 1: had
      it waited for the hung miner's deadline, its stamp would be >= floor(started + 6) > started + 5.
      Its slot is at most 1 s into the cycle, so it has ~4 s of slack for its own read on a busy box.
    * the cycle lasts at least the deadline (the hung miner really was waited out, not skipped) and
      ends within the interval (spread 1 s + deadline 6 s = 7 s; 3 s of slack for scheduling).
    """
    s = PollingSettings(interval_s=10, spread=0.1, deadline_s=6)
    async with (
        fleet("s19=1", "127.80.0.1", miners=9) as (sim, faults),
        bad_miner("garbage", "127.80.0.100", 4028),
    ):
        hung, too_slow, slow, *healthy = sim.miners
        await faults.inject(hung.ip, "hung")
        await faults.inject(too_slow.ip, "slow", delay_s=30.0)  # answers long after the deadline
        await faults.inject(slow.ip, "slow", delay_s=2.0)  # slow, but within the deadline
        drivers = {
            hung.ip: sim_driver(hung, deadline_s=s.deadline_s),
            "127.80.0.100": peer_driver("127.80.0.100", rpc_deadline_s=s.deadline_s),
            too_slow.ip: sim_driver(too_slow, deadline_s=s.deadline_s),
            slow.ip: sim_driver(slow, deadline_s=s.deadline_s),
            **{m.ip: sim_driver(m, deadline_s=s.deadline_s) for m in healthy},
        }
        poller = coordinator(s, drivers, SystemClock())
        stats = await poller.poll_cycle()

    samples = {sample.miner_id: sample for sample in sink_of(poller).last}
    assert set(samples) == {slow.ip, *(m.ip for m in healthy)}
    assert all(sample.status is MinerStatus.MINING for sample in samples.values())
    for miner in healthy:
        assert samples[miner.ip].ts < stats.started_at + s.deadline_s - 1, (miner.ip, stats)
    assert samples[slow.ip].ts >= int(stats.started_at + 2.0)  # it did answer late, and was kept
    assert (stats.polled, stats.succeeded, stats.failed, stats.backed_off) == (10, 7, 3, 0)
    assert stats.errors_by_kind["ProtocolError"] == 1  # the 10 MiB of garbage, cut at the reader's cap
    assert sum(stats.errors_by_kind.values()) == 3
    assert set(stats.errors_by_kind) - {"ProtocolError"} <= {"Timeout", "Unreachable"}
    assert s.deadline_s <= stats.duration_s < s.interval_s
    states = poller.states()
    assert states[hung.ip].failures == states[too_slow.ip].failures == states["127.80.0.100"].failures == 1
    assert poller.availability(hung.ip) is Availability.FAILING  # one miss is not an outage (K = 3)


async def test_requests_are_spread_over_the_first_part_of_the_interval() -> None:
    """Six miners, interval 6 s, spread 0.5: miner i's slot is 3 s x i / 6 into the cycle.

    Spreading is checked with lower bounds only (a busy box can delay a read, never advance it): no
    sample is stamped before floor(started + its slot), so the last one is at least two whole seconds
    after the cycle started; a burst would have read them all in the first second or so."""
    s = PollingSettings(interval_s=6, spread=0.5, deadline_s=2)
    async with fleet("s19=1", "127.80.1.1", miners=6) as (sim, _):
        drivers = {m.ip: sim_driver(m, deadline_s=s.deadline_s) for m in sim.miners}
        poller = coordinator(s, drivers, SystemClock())
        stats = await poller.poll_cycle()
    samples = {sample.miner_id: sample for sample in sink_of(poller).last}
    assert list(samples) and set(samples) == set(drivers)
    spread_s = s.interval_s * s.spread
    for index, miner_id in enumerate(drivers):
        slot = spread_s * index / len(drivers)
        assert samples[miner_id].ts >= int(stats.started_at + slot), (index, samples[miner_id].ts, stats)
    stamps = [sample.ts for sample in samples.values()]
    assert max(stamps) - int(stats.started_at) >= 2
    assert stats.duration_s >= spread_s * (len(drivers) - 1) / len(drivers)
    assert stats.duration_s < s.interval_s


async def test_offline_after_k_failures_and_capped_exponential_backoff_without_io() -> None:
    """K = 2, interval 10 s, backoff cap 40 s, on a FakeClock advanced 10 s per cycle.

    The peer accepts and hangs up (`Unreachable`). Backoff starts at the K-th failure: interval x 2^0,
    then 2^1 ... capped at 40 s; a miner is due again when the schedule reaches `next_due`. So it is
    polled at t = 0, 10, 20, 40, 80, 120 and not at all in between: the peer's connection count is the
    proof that nothing was sent while backed off. Every cycle from the K-th failure on records an
    offline sample for it, whether it was polled or backed off."""
    s = PollingSettings(interval_s=10, spread=0, deadline_s=2, offline_after_failures=2, backoff_max_s=40)
    clock = FakeClock()
    polled_at = {0, 10, 20, 40, 80, 120}
    async with counting_peer("127.80.2.1") as accepted:
        poller = coordinator(s, {"127.80.2.1": peer_driver("127.80.2.1", rpc_deadline_s=2)}, clock)
        expected_connections = 0
        for t in range(0, 140, 10):
            stats = await poller.poll_cycle()
            expected_connections += t in polled_at
            assert accepted[0] == expected_connections, f"t={t}"
            assert (stats.failed, stats.backed_off) == ((1, 0) if t in polled_at else (0, 1)), f"t={t}"
            samples = sink_of(poller).last
            if t == 0:
                assert samples == []  # one failure: the last reading (none here) keeps holding
                assert poller.availability("127.80.2.1") is Availability.FAILING
            else:
                assert [(x.miner_id, x.status, x.ts, x.power_w) for x in samples] == [
                    ("127.80.2.1", MinerStatus.OFFLINE, int(clock.now()), None)
                ], f"t={t}"
                assert "Unreachable" in samples[0].errors[0]
                assert poller.availability("127.80.2.1") is Availability.OFFLINE
            clock.advance(10)
    state = poller.states()["127.80.2.1"]
    assert state.failures == len(polled_at)
    assert state.next_due_mono == 120 + 40  # the last backoff is the cap, not 10 x 2^4
    assert poller.totals.errors_by_kind == {"Unreachable": len(polled_at)}


async def test_recovery_resets_failures_and_backoff() -> None:
    """A simulated miner goes offline (listeners closed: connection refused), is marked offline and
    backed off, comes back, and is read normally from the next due cycle: failures, backoff and last
    error are cleared, so a later single failure is again just `failing`, not `offline`."""
    s = PollingSettings(interval_s=10, spread=0, deadline_s=3, offline_after_failures=2, backoff_max_s=40)
    clock = FakeClock()
    async with fleet("s19=1", "127.80.3.1", miners=1) as (sim, faults):
        miner = sim.miners[0]
        poller = coordinator(s, {miner.ip: sim_driver(miner, deadline_s=3, clock=clock)}, clock)
        await faults.inject(miner.ip, "offline")
        for _ in range(2):
            await poller.poll_cycle()
            clock.advance(10)
        assert poller.availability(miner.ip) is Availability.OFFLINE
        state = poller.states()[miner.ip]
        assert state.failures == 2 and state.next_due_mono == 20
        await faults.clear(miner.ip)

        stats = await poller.poll_cycle()  # t = 20: due again, and answering
        assert (stats.succeeded, stats.failed, stats.backed_off) == (1, 0, 0)
        assert (state.failures, state.next_due_mono, state.last_error) == (0, 0.0, None)
        assert state.last_good_ts == int(clock.now())
        assert poller.availability(miner.ip) is Availability.OK
        assert sink_of(poller).last[0].status is MinerStatus.MINING

        clock.advance(10)
        stats = await poller.poll_cycle()  # t = 30: polled, not backed off
        assert (stats.succeeded, stats.backed_off) == (1, 0)

        await faults.inject(miner.ip, "offline")
        clock.advance(10)
        await poller.poll_cycle()
        assert state.failures == 1
        assert poller.availability(miner.ip) is Availability.FAILING
        assert sink_of(poller).last == []


async def test_stale_when_the_last_good_reading_is_older_than_two_intervals() -> None:
    """`stale` is about the age of the last good reading (FakeClock; interval 10 s): fine at exactly two
    intervals, stale one second later (the gateway was paused, no cycle ran), current again after the
    next read. After a restart the remembered last good reading makes a miner that does not answer
    `stale` (its reading is old), until K failures make it `offline`."""
    s = PollingSettings(interval_s=10, spread=0, deadline_s=3, offline_after_failures=3)
    clock = FakeClock()
    async with fleet("s19=1", "127.80.5.1", miners=1) as (sim, faults):
        miner = sim.miners[0]
        driver = sim_driver(miner, deadline_s=3, clock=clock)
        poller = coordinator(s, {miner.ip: driver}, clock)
        assert poller.availability(miner.ip) is Availability.UNKNOWN
        await poller.poll_cycle()
        read_at = int(clock.now())
        assert poller.availability(miner.ip) is Availability.OK
        clock.advance(20)
        assert poller.availability(miner.ip) is Availability.OK
        clock.advance(1)
        assert poller.availability(miner.ip) is Availability.STALE
        assert poller.availability(miner.ip, now=read_at + 5) is Availability.OK
        await poller.poll_cycle()
        assert poller.availability(miner.ip) is Availability.OK

        restarted = coordinator(s, {miner.ip: driver}, clock)
        restarted.restore(miner.ip, int(clock.now()) - 60)
        assert restarted.availability(miner.ip) is Availability.UNKNOWN  # not read by this process yet
        await faults.inject(miner.ip, "offline")
        await restarted.poll_cycle()
        assert restarted.availability(miner.ip) is Availability.STALE
        for _ in range(2):
            clock.advance(10)
            await restarted.poll_cycle()
        assert restarted.availability(miner.ip) is Availability.OFFLINE


class BuggyVnishDriver(VnishDriver):
    """A backend with a bug: it fetches from the miner, then trips over its own code (not a device
    error). The coordinator must count it as "Bug", log it with its traceback, and carry on."""

    def parse_context(self) -> ParseContext:
        raise ZeroDivisionError("a bug in the backend")


async def test_errors_are_counted_by_kind_and_a_bug_does_not_stop_the_cycle(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One miner per error kind, plus a healthy one, in one cycle (deadline 1.5 s):
    Unreachable (nothing listens), ProtocolError (a JSON list where an object belongs), AuthFailed
    (a Vnish whose password we have wrong), Timeout (a hung peer whose driver would wait 30 s: the
    coordinator's deadline is what ends it) and Bug (a driver raising ZeroDivisionError)."""
    s = PollingSettings(interval_s=10, spread=0, deadline_s=1.5)
    async with (
        fleet("s21pro@vnish=1", "127.80.4.10", miners=3) as (sim, _),
        bad_miner("wrong_shape", "127.80.4.2", 4028),
        bad_miner("hang", "127.80.4.3", 4028),
    ):
        locked, healthy, buggy = sim.miners
        username, password = DEFAULT_CREDENTIALS[buggy.identity.family]
        buggy_driver = BuggyVnishDriver(
            DriverContext(
                miner_id=buggy.ip,
                endpoint=Endpoint(host=buggy.ip, web_port=buggy.web_port),
                credentials=Credentials(username=username, password=password),
                limits=RpcLimits(deadline_s=1.5),
                profiles=PROFILES,
            )
        )
        drivers: dict[str, BaseDriver] = {
            "127.80.4.1": peer_driver("127.80.4.1", rpc_deadline_s=1.5),
            "127.80.4.2": peer_driver("127.80.4.2", rpc_deadline_s=1.5),
            locked.ip: sim_driver(locked, deadline_s=1.5, password="not-the-password"),
            "127.80.4.3": peer_driver("127.80.4.3", rpc_deadline_s=30),
            buggy.ip: buggy_driver,
            healthy.ip: sim_driver(healthy, deadline_s=1.5),
        }
        poller = coordinator(s, drivers, SystemClock())
        with caplog.at_level(logging.ERROR, logger="gateway.polling"):
            first = await poller.poll_cycle()
            second = await poller.poll_cycle()

    kinds = {"Unreachable": 1, "ProtocolError": 1, "AuthFailed": 1, "Timeout": 1, "Bug": 1}
    assert dict(first.errors_by_kind) == dict(second.errors_by_kind) == kinds
    assert dict(poller.totals.errors_by_kind) == dict.fromkeys(kinds, 2)
    assert (second.succeeded, second.failed) == (1, 5)
    assert [sample.miner_id for sample in sink_of(poller).last] == [healthy.ip]
    states = poller.states()
    expected_prefix = {
        "127.80.4.1": "Unreachable",
        "127.80.4.2": "ProtocolError",
        locked.ip: "AuthFailed",
        "127.80.4.3": "Timeout",
        buggy.ip: "Bug",
    }
    for miner_id, kind in expected_prefix.items():
        assert (states[miner_id].last_error or "").startswith(f"{kind}:"), states[miner_id]
    bug_logs = [r for r in caplog.records if "failed unexpectedly" in r.getMessage()]
    assert len(bug_logs) == 2 and all(r.exc_info and r.exc_info[0] is ZeroDivisionError for r in bug_logs)


async def test_cancellation_mid_cycle_hands_over_what_was_read() -> None:
    """Shutting down mid-cycle (the gateway's SIGTERM path cancels the poller): the samples read so far
    go to the sink, the cancellation propagates, and the miners still in flight are not charged a
    failure. Order [hung, healthy, slow 7 s]; the cycle is cancelled as soon as the healthy miner's
    reading is in, which is long before the slow one can answer (7 s after its slot)."""
    s = PollingSettings(interval_s=10, spread=0.1, deadline_s=8)
    async with fleet("s19=1", "127.80.6.1", miners=3) as (sim, faults):
        hung, healthy, slow = sim.miners
        await faults.inject(hung.ip, "hung")
        await faults.inject(slow.ip, "slow", delay_s=7.0)
        drivers = {m.ip: sim_driver(m, deadline_s=s.deadline_s) for m in (hung, healthy, slow)}
        poller = coordinator(s, drivers, SystemClock())
        cycle = asyncio.create_task(poller.poll_cycle())
        async with asyncio.timeout(30):  # a guard against a hang of the test itself, not a bound
            while poller.states()[healthy.ip].last_sample is None:  # noqa: ASYNC110 (poller state)
                await asyncio.sleep(0.02)
        cycle.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cycle

        (samples, stats), *more = sink_of(poller).cycles
        assert more == []
        assert samples == [poller.states()[healthy.ip].last_sample]
        assert (stats.polled, stats.succeeded, stats.failed) == (3, 1, 0)
        assert poller.totals.cycles == 0  # an interrupted cycle is handed over, not counted as done
        assert poller.states()[hung.ip].failures == poller.states()[slow.ip].failures == 0

        await faults.clear(hung.ip)
        await faults.clear(slow.ip)
        after = await poller.poll_cycle()  # the coordinator is intact after a cancellation
        assert after.succeeded == 3 and poller.totals.cycles == 1
