"""Simulator physics and fleet construction: plain invariants, injected clock, no sockets."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.clock import FakeClock
from gateway.devices.model import Mode
from gateway.simulator.faults import Fault, FaultKind
from gateway.simulator.fleet import MixError, addresses, apportion, build_fleet, parse_mix
from gateway.simulator.physics import MinerPhysics, PhysicsParams
from tests.devices.capture import PROFILES

S19 = PROFILES.get("antminer_s19")


def physics(clock: FakeClock, **params: float) -> MinerPhysics:
    return MinerPhysics.start(S19, random.Random(7), clock.now(), PhysicsParams(**params))  # type: ignore[arg-type]


def test_hashrate_and_power_sit_at_nominal() -> None:
    clock = FakeClock()
    p = physics(clock, noise=0.0)
    assert p.hashrate_ths(clock.now()) == pytest.approx(S19.nominal_ths)
    assert p.power_w(clock.now()) == pytest.approx(S19.modes[Mode.NORMAL].power_w)


def test_sleep_draws_only_the_control_board_and_wake_takes_the_configured_time() -> None:
    clock = FakeClock()
    p = physics(clock, noise=0.0, mode_change_s=600.0, restart_dead_s=60.0)
    p.set_mode(Mode.SLEEP, clock.now())
    assert p.hashrate_ths(clock.now()) == 0
    assert p.power_w(clock.now()) == S19.sleep_w
    clock.advance(3600)
    p.set_mode(Mode.NORMAL, clock.now())
    clock.advance(30)
    assert p.hashrate_ths(clock.now()) == 0  # the mining process is still restarting
    clock.advance(300)
    assert 0 < p.hashrate_ths(clock.now()) < S19.nominal_ths
    clock.advance(300)
    assert p.hashrate_ths(clock.now()) == pytest.approx(S19.nominal_ths)


def test_temperature_relaxes_towards_a_hotter_steady_state_when_fans_stop() -> None:
    clock = FakeClock()
    p = physics(clock, noise=0.0)
    p.advance(clock.now())
    before = max(b.chip_c for b in p.boards)
    p.fans_stopped = True
    clock.advance(30)
    p.advance(clock.now())
    warming = max(b.chip_c for b in p.boards)
    clock.advance(3000)
    p.advance(clock.now())
    settled = max(b.chip_c for b in p.boards)
    assert before < warming < settled
    assert p.fan_rpm == 0


@given(st.lists(st.floats(min_value=0.1, max_value=600), min_size=1, max_size=40))
def test_shares_accrue_with_work_regardless_of_read_pattern(steps: list[float]) -> None:
    """Shares depend on the work done, not on how often someone looked."""
    clock = FakeClock()
    p = physics(clock, noise=0.0)
    p.advance(clock.now())
    start = p.accepted + p.rejected
    for step in steps:
        clock.advance(step)
        p.advance(clock.now())
    expected = S19.nominal_ths * 1e12 * sum(steps) / (65536 * 2**32)
    assert abs((p.accepted + p.rejected - start) - expected) < 1.0 + 1e-9


def test_apportion_is_exact() -> None:
    assert apportion(10, [0.5, 0.5]) == [5, 5]
    assert sum(apportion(997, [0.2, 0.3, 0.1, 0.4])) == 997
    assert apportion(3, [1, 1, 1, 1]).count(1) == 3


def test_addresses_skip_zero_and_broadcast_hosts() -> None:
    got = list(addresses("127.10.0.253", 4))
    assert got == ["127.10.0.253", "127.10.0.254", "127.10.1.1", "127.10.1.2"]
    with pytest.raises(ValueError, match="loopback"):
        list(addresses("10.0.0.1", 1))


@pytest.mark.parametrize(
    ("mix", "message"),
    [
        ("s19", "needs a weight"),
        ("nosuchminer=1", "unknown model"),
        ("m30s+@braiins=1", "does not run braiins"),
        ("s19=abc", "not a number"),
        ("s19=-1", "positive"),
        ("", "empty"),
    ],
)
def test_bad_mix_is_refused_clearly(mix: str, message: str) -> None:
    with pytest.raises(MixError, match=message):
        parse_mix(mix, PROFILES)


def test_same_seed_same_fleet() -> None:
    mix = parse_mix("s19=0.5,m30s+=0.3,s21pro@braiins=0.2", PROFILES)
    clock = FakeClock()
    a = build_fleet(count=20, mix=mix, seed=3, first_address="127.20.0.1", clock=clock.now)
    b = build_fleet(count=20, mix=mix, seed=3, first_address="127.20.0.1", clock=clock.now)
    assert [(m.ip, m.identity) for m in a] == [(m.ip, m.identity) for m in b]
    assert sum(m.profile.key == "antminer_s19" for m in a) == 10


def test_faults_change_the_physics_and_clear_cleanly() -> None:
    clock = FakeClock()
    mix = parse_mix("s19=1", PROFILES)
    (miner,) = build_fleet(count=1, mix=mix, seed=1, first_address="127.20.0.1", clock=clock.now)
    healthy = miner.snapshot()
    miner.inject(Fault.make("dead_board", slot=1))
    miner.inject(Fault.make("power_spike", factor=1.5))
    faulty = miner.snapshot()
    assert faulty.boards[1].hashrate_ths == 0 and faulty.boards[1].chips_ok == 0
    assert faulty.power_w > healthy.power_w
    miner.clear()
    assert miner.snapshot().boards[1].hashrate_ths > 0
    with pytest.raises(ValueError, match="unknown fault"):
        Fault.make("gremlins")
    with pytest.raises(ValueError, match="no parameter"):
        Fault.make(FaultKind.OVERHEAT, bogus=1)
