"""One virtual miner: who it is, its physics, its faults and quirks, and the controls it obeys.

Protocol front-ends (gateway/simulator/families/) never touch the physics directly: they take a
`Snapshot` (what the firmware would report right now) and call the control methods here, so every
family's wire format reports the same machine and the same control has the same effect.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.devices.model import FirmwareFamily, Mode
from gateway.devices.profiles import MinerProfile
from gateway.simulator.faults import Fault, FaultKind
from gateway.simulator.physics import MinerPhysics, PhysicsParams


@dataclass(frozen=True, slots=True, kw_only=True)
class SimIdentity:
    make: str
    model: str
    family: FirmwareFamily
    mac: str
    serial: str
    hostname: str
    firmware_version: str


@dataclass(slots=True, kw_only=True)
class Quirks:
    """Real-firmware misbehaviour, switchable per miner (all seen in captures or field reports)."""

    concatenated_objects: bool = False  # S9 bmminer: `}{` between STATS entries
    numbers_as_strings: bool = False  # S9 `"GHS 5s":"13883.81"`, Vnish chain rates
    ignores_mode_write: bool = False  # stock Antminer: answers M000 OK, changes nothing
    no_nul: bool = False  # closes without the terminating NUL


@dataclass(frozen=True, slots=True, kw_only=True)
class BoardSnapshot:
    slot: int
    hashrate_ths: float
    ideal_ths: float
    chip_c: float
    board_c: float
    chips: int
    chips_ok: int
    active: bool
    hw_errors: int
    # Four sensors per board as Antminer-style firmware reports them: two on the inlet side, two on
    # the outlet side (whole degrees). Clients differ in how they combine them (max, mean), so tests
    # compare against these rather than against chip_c/board_c.
    pcb_sensors_c: tuple[int, int, int, int] = (0, 0, 0, 0)
    chip_sensors_c: tuple[int, int, int, int] = (0, 0, 0, 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolSnapshot:
    url: str
    user: str
    active: bool
    accepted: int
    rejected: int
    last_share_ts: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """What the firmware would report now. Temperatures and rates are plain floats; each family
    renders them in its own units and shapes."""

    ts: float
    mode: Mode
    sleeping: bool
    in_transition: bool
    hashrate_ths: float
    average_ths: float
    ideal_ths: float
    power_w: float
    power_target_w: float | None
    boards: tuple[BoardSnapshot, ...]
    fans_rpm: tuple[int, ...]
    inlet_c: float
    outlet_c: float
    accepted: int
    rejected: int
    hw_errors: int
    uptime_s: int
    pools: tuple[PoolSnapshot, ...]
    blinking: bool


@dataclass(slots=True)
class SimMiner:
    ip: str
    identity: SimIdentity
    profile: MinerProfile
    physics: MinerPhysics
    clock: Callable[[], float]
    quirks: Quirks = field(default_factory=Quirks)
    username: str = "root"
    password: str = "root"
    web_port: int = 80
    pool_url: str = "stratum+tcp://pool.hashinsight.test:3333"
    pool_user: str = "site.worker"
    blinking: bool = False
    faults: dict[FaultKind, Fault] = field(default_factory=dict)
    rng: random.Random = field(default_factory=random.Random)

    @classmethod
    def create(
        cls,
        *,
        ip: str,
        identity: SimIdentity,
        profile: MinerProfile,
        clock: Callable[[], float],
        seed: int,
        params: PhysicsParams | None = None,
        quirks: Quirks | None = None,
        password: str = "root",
        username: str = "root",
    ) -> SimMiner:
        rng = random.Random(seed)
        physics = MinerPhysics.start(profile, rng, clock() - rng.uniform(3_600, 400_000), params)
        return cls(
            ip=ip,
            identity=identity,
            profile=profile,
            physics=physics,
            clock=clock,
            quirks=quirks or Quirks(),
            username=username,
            password=password,
            rng=rng,
        )

    # --- faults ------------------------------------------------------------------------------------

    def inject(self, fault: Fault) -> None:
        self.physics.advance(self.clock())
        self.faults[fault.kind] = fault
        self._apply_condition_faults()

    def clear(self, kind: FaultKind | None = None) -> None:
        self.physics.advance(self.clock())
        if kind is None:
            self.faults.clear()
        else:
            self.faults.pop(kind, None)
        self._apply_condition_faults()

    def has(self, kind: FaultKind) -> bool:
        return kind in self.faults

    def _apply_condition_faults(self) -> None:
        p = self.physics
        f = self.faults
        p.extra_heat_c = f[FaultKind.OVERHEAT].params["extra_c"] if FaultKind.OVERHEAT in f else 0.0
        p.fans_stopped = FaultKind.FAN_STOP in f
        dead_slot = f[FaultKind.DEAD_BOARD].params["slot"] if FaultKind.DEAD_BOARD in f else None
        for board in p.boards:
            board.dead = board.slot == dead_slot
        if FaultKind.DEGRADING in f:
            p.degradation_per_h = f[FaultKind.DEGRADING].params["per_hour"]
        else:
            p.degradation_per_h, p.degraded_factor = 0.0, 1.0
        p.power_factor = f[FaultKind.POWER_SPIKE].params["factor"] if FaultKind.POWER_SPIKE in f else 1.0
        p.shares_frozen = FaultKind.STALE_SHARES in f

    def credentials_ok(self, username: str | None, password: str | None) -> bool:
        if self.has(FaultKind.WRONG_CREDENTIALS):
            return False
        return (username is None or username == self.username) and password == self.password

    @property
    def current_pool_url(self) -> str:
        fault = self.faults.get(FaultKind.POOL_CHANGED)
        return str(fault.params["url"]) if fault else self.pool_url

    # --- controls ------------------------------------------------------------------------------------

    def set_mode(self, mode: Mode) -> bool:
        """Returns False when the firmware silently ignored the write (the Antminer quirk)."""
        if self.quirks.ignores_mode_write:
            return False
        if mode is not Mode.SLEEP and mode not in self.profile.modes:
            return False
        self.physics.set_mode(mode, self.clock())
        return True

    def set_power_target(self, watts: float) -> None:
        now = self.clock()
        self.physics.advance(now)
        self.physics.power_target_w = watts
        self.physics.from_fraction = 1.0
        self.physics.mode_since = now

    def reboot(self) -> None:
        self.physics.reboot(self.clock())

    def booting(self) -> bool:
        return self.physics.booting(self.clock())

    def rpc_down(self) -> bool:
        """Booting, or the mining process restarting after a mode change (its RPC is down, the web
        server is not)."""
        now = self.clock()
        return self.physics.booting(now) or self.physics.restarting(now)

    # --- what the firmware reports -------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        now = self.clock()
        p = self.physics
        p.advance(now)
        rates = p.board_ths(now)
        nominal = p.nominal_ths() if p.mode is not Mode.SLEEP else 0.0
        boards = tuple(
            BoardSnapshot(
                slot=board.slot,
                hashrate_ths=rate,
                ideal_ths=nominal * board.share,
                chip_c=board.chip_c,
                board_c=board.chip_c - p.params.board_offset_c,
                chips=board.chips,
                chips_ok=0 if board.dead else board.chips,
                active=p.mode is not Mode.SLEEP,
                hw_errors=0,
                pcb_sensors_c=_sensors(board.chip_c - p.params.board_offset_c, p.params.ambient_c),
                chip_sensors_c=_sensors(board.chip_c, p.params.ambient_c),
            )
            for board, rate in zip(p.boards, rates, strict=True)
        )
        fan = int(p.fan_rpm)
        fans = tuple(max(0, fan + self.rng.randint(-60, 60)) if fan else 0 for _ in range(self.profile.fans))
        inlet = p.params.ambient_c + (p.extra_heat_c * 0.5)
        power = p.power_w(now)
        outlet = inlet + power / 1000.0 * 4.5
        last_share = int(p.last_share_at) if p.last_share_at else None
        pools = (
            PoolSnapshot(
                url=self.current_pool_url,
                user=self.pool_user,
                active=True,
                accepted=p.accepted,
                rejected=p.rejected,
                last_share_ts=last_share,
            ),
            PoolSnapshot(
                url="stratum+tcp://backup.hashinsight.test:3333",
                user=self.pool_user,
                active=False,
                accepted=0,
                rejected=0,
                last_share_ts=None,
            ),
        )
        return Snapshot(
            ts=now,
            mode=p.mode,
            sleeping=p.mode is Mode.SLEEP,
            in_transition=p.in_transition(now),
            hashrate_ths=sum(rates),
            average_ths=p.average_ths(now),
            ideal_ths=nominal,
            power_w=power,
            power_target_w=p.power_target_w,
            boards=boards,
            fans_rpm=fans,
            inlet_c=inlet,
            outlet_c=outlet,
            accepted=p.accepted,
            rejected=p.rejected,
            hw_errors=p.hw_errors,
            uptime_s=p.uptime_s(now),
            pools=pools,
            blinking=self.blinking,
        )


def _sensors(outlet_c: float, ambient_c: float) -> tuple[int, int, int, int]:
    """Inlet-side sensors read cooler than outlet-side ones: air warms as it crosses the board."""
    inlet_c = outlet_c - 0.3 * max(0.0, outlet_c - ambient_c)
    return (round(inlet_c), round(inlet_c) + 1, round(outlet_c) - 1, round(outlet_c))
