"""What the device layer hands to the rest of the gateway: one `Sample` per poll of one miner.

These are plain frozen dataclasses rather than pydantic models because a site polls tens of thousands of
miners per cycle and validation has already happened in the parser; construction must be cheap. Units
live in the names (`_ths`, `_w`, `_c`, `_s`). A value the firmware did not report is `None`, never 0: a
zero would be indistinguishable from a real stopped fan or a dead board.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any


class MinerStatus(enum.StrEnum):
    MINING = "mining"
    SLEEPING = "sleeping"
    IDLE = "idle"  # powered and reachable but not hashing, not by request (e.g. no pool, warming up)
    ERROR = "error"
    OFFLINE = "offline"


class Mode(enum.StrEnum):
    NORMAL = "normal"
    LOW = "low"
    HIGH = "high"
    SLEEP = "sleep"


class Source(enum.StrEnum):
    """Whether a value was read from the miner or derived by us from a model (the profile)."""

    MEASURED = "measured"
    ESTIMATED = "estimated"


class FirmwareFamily(enum.StrEnum):
    ANTMINER = "antminer"  # Bitmain stock (bmminer / cgminer 1.0.0)
    WHATSMINER = "whatsminer"  # MicroBT btminer
    AVALON = "avalon"  # Canaan cgminer 4.11
    BRAIINS = "braiins"  # Braiins OS / BOSminer / BOSer
    LUXOS = "luxos"  # LUXminer
    VNISH = "vnish"  # Vnish / AnthillOS
    PYASIC = "pyasic"  # anything else, read through the pyasic fallback


@dataclass(frozen=True, slots=True, kw_only=True)
class BoardReading:
    """One hashboard (chain). `active` is False for a slot the firmware reports but that is not hashing
    by design (absent, or off because the miner sleeps); a dead board is active with ~0 hashrate."""

    slot: int
    hashrate_ths: float | None = None
    expected_ths: float | None = None
    temp_chip_c: float | None = None
    temp_board_c: float | None = None
    chips_ok: int | None = None
    chips_expected: int | None = None
    hw_errors: int | None = None
    active: bool = True
    serial: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolReading:
    url: str
    user: str | None = None
    status: str | None = None  # the firmware's word: Alive, Dead, Active ...
    active: bool = False  # the pool the miner is currently hashing on
    accepted: int | None = None
    rejected: int | None = None
    last_share_ts: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MinerIdentity:
    make: str  # "Antminer", "Whatsminer", "Avalon"
    model: str | None  # "S19 Pro", "M30S+"; None when the firmware would not say
    firmware: FirmwareFamily
    firmware_version: str | None = None
    api_version: str | None = None
    mac: str | None = None
    serial: str | None = None
    hostname: str | None = None
    profile_key: str | None = None  # the firmware profile this identity matched, if any


@dataclass(frozen=True, slots=True, kw_only=True)
class Sample:
    """One poll of one miner (ARCHITECTURE §3).

    `hashrate_ths` is the firmware's real-time rate (GHS 5s, rate_5s, HS RT, MHS 5s); the since-boot
    average lives in `hashrate_avg_ths` because after a restart or a curtailment it lags reality by hours.
    """

    miner_id: str
    ts: int
    status: MinerStatus
    hashrate_ths: float | None = None
    hashrate_avg_ths: float | None = None
    expected_ths: float | None = None
    expected_ths_source: Source | None = None
    power_w: float | None = None
    power_source: Source | None = None
    power_limit_w: float | None = None
    boards: tuple[BoardReading, ...] = ()
    fans_rpm: tuple[int, ...] = ()
    inlet_c: float | None = None
    outlet_c: float | None = None
    accepted: int | None = None
    rejected: int | None = None
    hw_errors: int | None = None
    last_share_ts: int | None = None
    pool_url: str | None = None
    pools: tuple[PoolReading, ...] = ()
    uptime_s: int | None = None
    mode: Mode | None = None
    errors: tuple[str, ...] = ()
    identity: MinerIdentity | None = None

    @property
    def boards_active(self) -> int:
        return sum(1 for b in self.boards if b.active)

    @property
    def temp_max_c(self) -> float | None:
        temps = [t for b in self.boards if b.active for t in (b.temp_chip_c, b.temp_board_c) if t]
        return max(temps) if temps else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (enums become their string values).

        Hand-rolled rather than `dataclasses.asdict`, which deep-copies recursively and costs ~100 us
        per sample: the gateway serialises every live sample of a 10,000-miner site every cycle."""
        result: dict[str, Any] = _plain(self)
        return result


_FIELDS: dict[type, tuple[str, ...]] = {}


def _plain(obj: Any) -> Any:
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, tuple | list):
        return [_plain(item) for item in obj]
    names = _FIELDS.get(type(obj))
    if names is None:
        if not dataclasses.is_dataclass(obj):
            return obj
        names = _FIELDS[type(obj)] = tuple(f.name for f in dataclasses.fields(obj))
    return {name: _plain(getattr(obj, name)) for name in names}


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a given miner (model x firmware) can be asked to do. Checked before touching the miner."""

    sleep: bool = False
    wake: bool = False
    set_power: bool = False
    set_mode: bool = False
    reboot: bool = False
    blink: bool = False
    modes: frozenset[Mode] = field(default_factory=frozenset)
