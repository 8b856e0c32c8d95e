"""Physics of one virtual miner: hashrate, power, temperatures, fans and shares as functions of time.

The state advances lazily: every read calls `advance(now)`, which integrates exactly from the last
update (first-order lags have a closed form, so a miner read once an hour is as right as one read every
second). Everything random comes from the miner's own seeded generator, so a fleet is reproducible from
its seed. The numbers are deliberately plain physics, not curve fits: power follows hashrate and mode
(a sleeping miner draws only its control board), temperatures relax towards ambient + power/cooling
with a time constant, fans speed up with temperature, shares accrue as a Poisson process of the
hashrate against the pool difficulty.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from gateway.devices.model import Mode
from gateway.devices.profiles import MinerProfile

SHARE_DIFFICULTY = 65536.0  # a typical stratum vardiff floor for these machines
HASHES_PER_DIFF1 = 2.0**32


@dataclass(slots=True, kw_only=True)
class PhysicsParams:
    ambient_c: float = 25.0
    thermal_tau_s: float = 90.0  # chips settle in a few minutes after a load change
    c_per_kw: float = 13.0  # chip temperature rise per kW at full fan speed
    board_offset_c: float = 9.0  # the PCB sensor reads cooler than the chips
    fan_min_rpm: int = 2400
    fan_max_rpm: int = 6600
    target_chip_c: float = 72.0  # fan controller setpoint
    noise: float = 0.015  # relative sd of the 5-second hashrate
    mode_change_s: float = 420.0  # real stock Antminers take 5-10 min to return to full rate
    restart_on_mode_change: bool = True
    restart_dead_s: float = 60.0  # the mining process restarting: 0 GH/s
    restart_unreachable_s: float = 15.0  # ... and at first not even answering its RPC port
    boot_s: float = 60.0  # after a reboot: unreachable, then hashing from zero


@dataclass(slots=True, kw_only=True)
class BoardState:
    slot: int
    share: float  # this board's fraction of the machine's rate
    chips: int
    dead: bool = False
    chip_c: float = 25.0


@dataclass(slots=True, kw_only=True)
class MinerPhysics:
    """Evolving state of one machine. All times are epoch seconds from the simulator's clock."""

    profile: MinerProfile
    rng: random.Random
    params: PhysicsParams = field(default_factory=PhysicsParams)
    started_at: float = 0.0
    updated_at: float = 0.0
    mode: Mode = Mode.NORMAL
    mode_since: float = 0.0
    from_fraction: float = 1.0  # ramp start, as a fraction of the new mode's rate
    boards: list[BoardState] = field(default_factory=list)
    fan_rpm: float = 0.0
    accepted: int = 0
    rejected: int = 0
    hw_errors: int = 0
    share_credit: float = 0.0
    terahashes: float = 0.0  # work done since boot, for the since-boot average rate
    last_share_at: float | None = None
    # fault knobs (set by the fault layer)
    degradation_per_h: float = 0.0
    degraded_factor: float = 1.0
    power_factor: float = 1.0
    fans_stopped: bool = False
    extra_heat_c: float = 0.0
    shares_frozen: bool = False
    power_target_w: float | None = None

    @classmethod
    def start(
        cls, profile: MinerProfile, rng: random.Random, now: float, params: PhysicsParams | None = None
    ) -> MinerPhysics:
        boards = []
        weights = [1.0 + rng.uniform(-0.03, 0.03) for _ in range(profile.hashboards)]
        total = sum(weights)
        for slot, weight in enumerate(weights):
            boards.append(BoardState(slot=slot, share=weight / total, chips=profile.chips_per_board))
        physics = cls(
            profile=profile,
            rng=rng,
            params=params or PhysicsParams(),
            started_at=now,
            updated_at=now,
            mode_since=now - 10_000.0,
            boards=boards,
        )
        steady = physics._steady_chip_c(physics.power_w(now))
        for board in boards:
            board.chip_c = steady + rng.uniform(-2.0, 2.0)
        physics.fan_rpm = physics._fan_for(steady)
        return physics

    # --- what the miner is doing -------------------------------------------------------------------

    def ramp_fraction(self, now: float) -> float:
        """How far the current mode's rate has been reached, 0..1.

        Stock Antminer firmware restarts its mining process on any mode change: nothing for a while
        (`restart_dead_s`), then a climb from zero. Firmwares that retune in place (power targets on
        Braiins/LuxOS/Vnish) glide from the old rate to the new one instead.
        """
        elapsed = now - self.mode_since
        span = self.params.mode_change_s
        if elapsed >= span or span <= 0:
            return 1.0
        if self.params.restart_on_mode_change:
            dead = min(self.params.restart_dead_s, span)
            if elapsed < dead:
                return 0.0
            return (elapsed - dead) / max(span - dead, 1e-9)
        return self.from_fraction + (1.0 - self.from_fraction) * elapsed / span

    def in_transition(self, now: float) -> bool:
        return now - self.mode_since < self.params.mode_change_s

    def nominal_ths(self) -> float:
        spec = self.profile.mode(self.mode)
        rate = spec.hashrate_ths
        if self.power_target_w and spec.power_w and self.mode is not Mode.SLEEP:
            rate *= min(1.2, self.power_target_w / spec.power_w)
        return rate

    def board_ths(self, now: float, *, noisy: bool = True) -> list[float]:
        if self.mode is Mode.SLEEP:
            return [0.0 for _ in self.boards]
        base = self.nominal_ths() * self.ramp_fraction(now) * self.degraded_factor
        rates = []
        for board in self.boards:
            if board.dead:
                rates.append(0.0)
                continue
            jitter = self.rng.gauss(1.0, self.params.noise) if noisy and base > 0 else 1.0
            rates.append(max(0.0, base * board.share * jitter))
        return rates

    def hashrate_ths(self, now: float) -> float:
        return sum(self.board_ths(now, noisy=False))

    def power_w(self, now: float) -> float:
        sleep_w = self.profile.sleep_w
        if self.mode is Mode.SLEEP:
            return sleep_w
        spec = self.profile.mode(self.mode)
        nominal = self.nominal_ths() or 1.0
        mode_w = self.power_target_w if self.power_target_w else spec.power_w
        load = self.hashrate_ths(now) / nominal
        return (sleep_w + (mode_w - sleep_w) * load) * self.power_factor

    # --- time evolution ----------------------------------------------------------------------------

    def _steady_chip_c(self, power_w: float) -> float:
        cooling = 1.0 if not self.fans_stopped else 0.4  # passive airflow through the case only
        return self.params.ambient_c + self.params.c_per_kw * power_w / 1000.0 / cooling + self.extra_heat_c

    def _fan_for(self, chip_c: float) -> float:
        if self.fans_stopped or not self.profile.fans:
            return 0.0
        p = self.params
        span = max(1.0, p.target_chip_c - p.ambient_c)
        fraction = min(1.0, max(0.0, (chip_c - p.ambient_c) / span))
        return p.fan_min_rpm + (p.fan_max_rpm - p.fan_min_rpm) * fraction

    def advance(self, now: float) -> None:
        dt = now - self.updated_at
        if dt <= 0:
            return
        if self.degradation_per_h:
            self.degraded_factor = max(
                0.0, self.degraded_factor * (1 - self.degradation_per_h) ** (dt / 3600)
            )
        power = self.power_w(now)
        decay = math.exp(-dt / self.params.thermal_tau_s)
        steady = self._steady_chip_c(power)
        for board in self.boards:
            board_steady = steady if not board.dead else self.params.ambient_c + 8.0
            board.chip_c = board_steady + (board.chip_c - board_steady) * decay
        self.fan_rpm = self._fan_for(max(b.chip_c for b in self.boards))
        rate = self.hashrate_ths(now)
        self.terahashes += rate * dt
        if not self.shares_frozen:
            hashes = rate * 1e12 * dt
            self.share_credit += hashes / (SHARE_DIFFICULTY * HASHES_PER_DIFF1)
            whole = int(self.share_credit)
            self.share_credit -= whole
            rejected = sum(1 for _ in range(min(whole, 50)) if self.rng.random() < 0.002)
            self.accepted += whole - rejected
            self.rejected += rejected
            if whole:
                self.last_share_at = now
        self.updated_at = now

    def set_mode(self, mode: Mode, now: float) -> None:
        """Start a transition. The new rate is approached over `mode_change_s`."""
        if mode is self.mode:
            return
        self.advance(now)
        old_rate = self.hashrate_ths(now)
        self.mode = mode
        self.mode_since = now
        new_nominal = self.nominal_ths()
        self.from_fraction = min(1.0, old_rate / new_nominal) if new_nominal else 1.0

    def reboot(self, now: float) -> None:
        self.advance(now)
        self.started_at = now + self.params.boot_s
        self.mode_since = now + self.params.boot_s
        self.from_fraction = 0.0
        self.accepted = self.rejected = self.hw_errors = 0
        self.terahashes = 0.0

    def booting(self, now: float) -> bool:
        return now < self.started_at

    def restarting(self, now: float) -> bool:
        """The mining process is restarting after a mode change: its RPC port is closed."""
        return (
            self.params.restart_on_mode_change
            and 0 <= now - self.mode_since < self.params.restart_unreachable_s
        )

    def average_ths(self, now: float) -> float:
        uptime = now - self.started_at
        return self.terahashes / uptime if uptime > 0 else 0.0

    def uptime_s(self, now: float) -> int:
        return max(0, int(now - self.started_at))
