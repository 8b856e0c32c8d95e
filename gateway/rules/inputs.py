"""What the rules read each cycle: one `MinerInput` per miner, turned once into a columnar `FleetFrame`.

The runtime builds `MinerInput`s from the poller's states, the firmware profiles and the curtailment
executor's intentions. Everything after that is numpy over the whole fleet: at 10,000 miners a Python
pass per rule per miner would cost more than the 200 ms a cycle may spend here, so the one unavoidable
pass (reading attributes off the samples) happens exactly once, here, one attribute at a time.

Nothing here does I/O; the firmware profile is read structurally (no import of the loader), so the
engine that depends on this module stays free of file and network code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from operator import attrgetter
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt

from gateway.devices.model import MinerStatus, Mode, PoolReading, Sample

if TYPE_CHECKING:
    from gateway.devices.profiles import MinerProfile

F64 = npt.NDArray[np.float64]
I8 = npt.NDArray[np.int8]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

# Operating modes as small integers (the k-means clusters are indexed the same way).
LOW, NORMAL, HIGH, SLEEP = 0, 1, 2, 3
MODE_CODE = {Mode.LOW: LOW, Mode.NORMAL: NORMAL, Mode.HIGH: HIGH, Mode.SLEEP: SLEEP}
MODE_NAMES = ("low", "normal", "high", "sleep")
# polling.Availability values, by code (the engine does not import the poller: it pulls in drivers)
AVAILABILITY = ("ok", "failing", "offline", "stale", "unknown")
OK, FAILING, OFFLINE, STALE, UNKNOWN = range(5)
STATUS_CODE: dict[object, int] = {
    MinerStatus.MINING: 0,
    MinerStatus.SLEEPING: 1,
    MinerStatus.IDLE: 2,
    MinerStatus.ERROR: 3,
    MinerStatus.OFFLINE: -1,  # the poller's placeholder sample for an offline miner: no reading
}
_MODE_OR_NONE: dict[object, int] = {
    None: -1,
    Mode.LOW: LOW,
    Mode.NORMAL: NORMAL,
    Mode.HIGH: HIGH,
    Mode.SLEEP: SLEEP,
}
_AVAILABILITY_CODE: dict[object, int] = {value: code for code, value in enumerate(AVAILABILITY)}
MINING, SLEEPING = 0, 1
DEAD_BOARD_FRACTION = 0.05  # a board below 5 % of its expected rate is dead, not slow

IntendedState = Literal["sleep", "low", "normal", "high"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Nominal:
    """A model's published figures, per mode (low, normal, high; NaN where the profile has no such mode)."""

    ths: tuple[float, float, float]
    watts: tuple[float, float, float]
    sleep_w: float
    boards: int
    fans: int

    @classmethod
    def from_profile(cls, profile: MinerProfile) -> Nominal:
        def spec(mode: Mode, attr: str) -> float:
            found = profile.modes.get(mode)
            return float(getattr(found, attr)) if found is not None else float("nan")

        modes = (Mode.LOW, Mode.NORMAL, Mode.HIGH)
        return cls(
            ths=(spec(modes[0], "hashrate_ths"), profile.nominal_ths, spec(modes[2], "hashrate_ths")),
            watts=(spec(modes[0], "power_w"), spec(modes[1], "power_w"), spec(modes[2], "power_w")),
            sleep_w=profile.sleep_w,
            boards=profile.hashboards,
            fans=profile.fans,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class MinerInput:
    """One miner this cycle.

    `availability` is the poller's word (`polling.Availability`, a str enum, or its value). `sample` is
    the latest reading (None before the first). `model_key` is the firmware profile's key (None when the
    model is unknown) and `nominal` its figures: miners of one `model_key` share one `Nominal`.
    `intended_state` is what the curtailment executor last asked of this miner (None: no opinion),
    so that a miner it put to sleep raises no offline/zero-hashrate/asleep alert.
    """

    miner_id: str
    availability: str
    sample: Sample | None = None
    model_key: str | None = None
    nominal: Nominal | None = None
    intended_state: IntendedState | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetFrame:
    """The fleet as columns, one row per miner (in input order). NaN marks a value not reported."""

    miner_ids: tuple[str, ...]
    model_keys: tuple[str, ...]  # the distinct model keys; `model_idx` indexes it (-1: unknown model)
    model_idx: I32
    availability: I8
    has_sample: B
    ts: I64  # sample time (0 without a sample)
    status: I8  # STATUS_CODE, -1 without a sample / offline
    reported_mode: I8  # MODE_CODE of the firmware's own mode report, -1 if none
    intended: I8  # MODE_CODE of the executor's intention, -1 if none
    hashrate_ths: F64
    expected_ths: F64  # the firmware's own expectation (rate_ideal ...), NaN if silent
    power_w: F64
    power_measured: B
    power_limit_w: F64
    temp_max_c: F64
    boards_dead: F64  # NaN: no boards reported
    board_residual: F64  # worst alive board's share / expected share - 1 (NaN: < 2 alive boards)
    board_residual_slot: F64
    fans_zero: F64  # NaN: no fans reported
    accepted: F64
    last_share_ts: F64
    uptime_s: F64
    pool_url: tuple[str | None, ...]
    pools: tuple[tuple[PoolReading, ...], ...]
    nominal_ths: F64  # (n, 3): low, normal, high
    nominal_w: F64  # (n, 3)
    sleep_w: F64

    def __len__(self) -> int:
        return len(self.miner_ids)

    @property
    def hashing(self) -> B:
        """Mining with a positive real-time rate: the soft rules' precondition."""
        result: B = (self.status == MINING) & (self.hashrate_ths > 0)
        return result

    @property
    def asleep(self) -> B:
        result: B = (self.status == SLEEPING) | (self.reported_mode == SLEEP)
        return result

    @classmethod
    def from_inputs(cls, inputs: Sequence[MinerInput]) -> FleetFrame:
        n = len(inputs)
        models: dict[str, int] = {}
        nominals: list[Nominal | None] = []
        model_idx = np.full(n, -1, np.int32)
        for row, item in enumerate(inputs):
            key = item.model_key
            if key is None:
                continue
            index = models.get(key)
            if index is None:
                index = models[key] = len(models)
                nominals.append(item.nominal)
            elif nominals[index] is None:
                nominals[index] = item.nominal
            model_idx[row] = index
        nom_ths, nom_w, nom_sleep, nom_boards = _nominal_columns(nominals, model_idx)

        samples = [item.sample for item in inputs]
        has = np.array([s is not None for s in samples], dtype=np.bool_)
        rows = np.flatnonzero(has)
        present: list[Sample] = [s for s in samples if s is not None]

        def col(attr: str) -> F64:
            out = np.full(n, np.nan)
            out[rows] = _floats(present, attr)
            return out

        def codes(attr: str, table: Mapping[object, int]) -> I8:
            out = np.full(n, -1, np.int8)
            out[rows] = np.array(list(map(table.__getitem__, map(attrgetter(attr), present))), dtype=np.int8)
            return out

        ts = np.zeros(n, np.int64)
        ts[rows] = np.array(list(map(attrgetter("ts"), present)), dtype=np.int64)
        measured = np.zeros(n, np.bool_)
        measured[rows] = np.array(
            [source == "measured" for source in map(attrgetter("power_source"), present)]
        )
        boards = _board_columns(present, rows, n, nom_boards)
        fans = _fan_columns(present, rows, n)
        availability = np.array([_AVAILABILITY_CODE[i.availability] for i in inputs], dtype=np.int8)
        intended = np.array([_MODE_OR_NONE[i.intended_state] for i in inputs], dtype=np.int8)
        miner_ids = tuple(item.miner_id for item in inputs)
        if len(set(miner_ids)) != n:
            raise ValueError("each miner may appear once per cycle; the inputs repeat a miner id")
        return cls(
            miner_ids=miner_ids,
            model_keys=tuple(models),
            model_idx=model_idx,
            availability=availability,
            has_sample=has,
            ts=ts,
            status=codes("status", STATUS_CODE),
            reported_mode=codes("mode", _MODE_OR_NONE),
            intended=intended,
            hashrate_ths=col("hashrate_ths"),
            expected_ths=col("expected_ths"),
            power_w=col("power_w"),
            power_measured=measured,
            power_limit_w=col("power_limit_w"),
            temp_max_c=boards[0],
            boards_dead=boards[1],
            board_residual=boards[2],
            board_residual_slot=boards[3],
            fans_zero=fans,
            accepted=col("accepted"),
            last_share_ts=col("last_share_ts"),
            uptime_s=col("uptime_s"),
            pool_url=tuple(s.pool_url if s is not None else None for s in samples),
            pools=tuple(s.pools if s is not None else () for s in samples),
            nominal_ths=nom_ths,
            nominal_w=nom_w,
            sleep_w=nom_sleep,
        )


def _nominal_columns(nominals: list[Nominal | None], model_idx: I32) -> tuple[F64, F64, F64, F64]:
    """Per-model figures gathered onto rows; the extra last row (index -1) is all NaN (unknown model)."""
    m = len(nominals)
    ths = np.full((m + 1, 3), np.nan)
    watts = np.full((m + 1, 3), np.nan)
    sleep = np.full(m + 1, np.nan)
    boards = np.full(m + 1, np.nan)
    for index, nominal in enumerate(nominals):
        if nominal is not None:
            ths[index] = nominal.ths
            watts[index] = nominal.watts
            sleep[index] = nominal.sleep_w
            boards[index] = nominal.boards
    return ths[model_idx], watts[model_idx], sleep[model_idx], boards[model_idx]


def _floats(items: Sequence[object], attr: str) -> F64:
    """One attribute of every item as float64; None becomes NaN. (numpy converts a list holding None
    four times slower than a list of floats, and many attributes are None fleet-wide: short-cut those.)"""
    values = list(map(attrgetter(attr), items))
    if values.count(None) == len(values):
        return np.full(len(values), np.nan)
    return np.array(values, dtype=np.float64)


def _segments(owner: I64) -> tuple[I64, I64]:
    """For sorted owner ids: the owners that have items and where each one's run starts."""
    starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]]) if len(owner) else np.zeros(0, np.int64)
    return owner[starts], starts


def _board_columns(present: list[Sample], rows: I64, n: int, nom_boards: F64) -> tuple[F64, F64, F64, F64]:
    """Hottest board, dead boards, and the worst board's hashrate share, without a loop per miner."""
    temp_max, dead, residual, slot = (np.full(n, np.nan) for _ in range(4))
    per_miner = list(map(attrgetter("boards"), present))
    counts = np.array(list(map(len, per_miner)), dtype=np.int64)
    flat = list(chain.from_iterable(per_miner))
    if not flat:
        return temp_max, dead, residual, slot
    owner = np.repeat(rows, counts)
    active = np.array(list(map(attrgetter("active"), flat)), dtype=np.bool_)
    rate = _floats(flat, "hashrate_ths")
    expected = _floats(flat, "expected_ths")
    chips_ok = _floats(flat, "chips_ok")
    slots = _floats(flat, "slot")
    temps = np.fmax(_floats(flat, "temp_chip_c"), _floats(flat, "temp_board_c"))
    temps[~active | ~(temps > 0)] = np.nan  # a 0 C reading is a dead sensor, not a cold board
    who, starts = _segments(owner)
    temp_max[who] = np.fmax.reduceat(temps, starts)

    # Dead: active but below 5 % of its expected rate (the firmware's, else its best sibling's).
    best = np.zeros(n)
    best[who] = np.fmax.reduceat(np.where(active, rate, np.nan), starts)
    reference = np.where(np.isfinite(expected), expected, best[owner])
    is_dead = active & ((rate <= DEAD_BOARD_FRACTION * reference) | (chips_ok == 0))
    n_active = np.zeros(n)
    dead[who] = np.add.reduceat(is_dead.astype(np.float64), starts)
    n_active[who] = np.add.reduceat(active.astype(np.float64), starts)
    missing = np.clip(np.nan_to_num(nom_boards, nan=0.0) - n_active, 0, None)
    dead = dead + np.where(np.isfinite(dead), missing, 0.0)

    # Residual of each alive board: its share of the miner's rate against its expected share.
    alive = active & ~is_dead & np.isfinite(rate)
    a_owner, a_rate, a_exp, a_slot = owner[alive], rate[alive], expected[alive], slots[alive]
    if len(a_owner):
        a_who, a_starts = _segments(a_owner)
        sizes = np.diff(np.r_[a_starts, len(a_owner)])
        total = np.add.reduceat(a_rate, a_starts)
        exp_known = np.add.reduceat(np.isfinite(a_exp).astype(np.int64), a_starts) == sizes
        exp_total = np.add.reduceat(np.nan_to_num(a_exp), a_starts)
        run = np.repeat(np.arange(len(a_who)), sizes)
        expected_share = np.where(
            exp_known[run], a_exp / np.where(exp_total > 0, exp_total, 1)[run], 1 / sizes[run]
        )
        share = a_rate / np.where(total > 0, total, np.nan)[run]
        board_res = share / expected_share - 1
        order = np.lexsort((board_res, run))  # NaN sorts last within each miner
        first = order[a_starts]
        keep = sizes >= 2
        residual[a_who[keep]] = board_res[first[keep]]
        slot[a_who[keep]] = a_slot[first[keep]]
    return temp_max, dead, residual, slot


def _fan_columns(present: list[Sample], rows: I64, n: int) -> F64:
    zero = np.full(n, np.nan)
    per_miner = list(map(attrgetter("fans_rpm"), present))
    counts = np.array(list(map(len, per_miner)), dtype=np.int64)
    flat = np.fromiter(chain.from_iterable(per_miner), np.float64, int(counts.sum()))
    if not len(flat):
        return zero
    who, starts = _segments(np.repeat(rows, counts))
    zero[who] = np.add.reduceat((flat == 0).astype(np.float64), starts)
    return zero
