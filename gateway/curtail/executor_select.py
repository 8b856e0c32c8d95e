"""Which concrete miners to sleep or wake so each class reaches the plan's count (pure).

The planner decides *how many* miners of a class run; this module decides *which*. It is a pure
function of the fleet as the executor sees it (`MinerView`), the targets and `now`, so the choice can be
tested exactly and replayed.

Order of preference, and why:

- To curtail: least efficient first (measured J/TH, the profile's where the reading cannot be trusted),
  then hottest, then the miner that has rested *least* (cumulative curtailed seconds, then cycles), so
  wear spreads across the class instead of always cycling the same few machines.
- To resume: the reverse - most efficient, coolest, then the miner that has rested *most*.

Within a class the machines are nominally identical, so measured J/TH differs by sensor noise; comparing
raw floats would let noise pin the same machine every time and rotation would never happen. Efficiency
and temperature are therefore compared in bands (`SelectionSettings.efficiency_band_j_th`,
`temp_band_c`): only a real difference (a degraded board, a hot aisle) beats wear.

A miner is never picked while inside its minimum on or off time, nor when its telemetry could not show
the effect of the action: drawing power but not hashing (phantom load: sleeping it would not change the
hashrate we can see and the power we see may be a stuck reading) or hashing with power near zero (a dead
power reading: the fall we must verify would be invisible). Every miner left out is counted by reason,
and a class that cannot reach its target reports the shortfall instead of silently overshooting with
another class.
"""

from __future__ import annotations

import enum
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field


class Skip(enum.StrEnum):
    """Why a miner that would otherwise be a candidate was left alone."""

    MIN_ON_TIME = "min_on_time"
    MIN_OFF_TIME = "min_off_time"
    PHANTOM_LOAD = "phantom_load"  # drawing power, not hashing
    DEAD_POWER_READING = "dead_power_reading"  # hashing, power near zero
    NO_TELEMETRY = "no_telemetry"  # no recent reading at all
    UNREACHABLE = "unreachable"
    NO_CONTROL = "no_control"  # firmware cannot sleep/wake/power-limit this model
    OVERRIDE = "override"  # a person holds or forces this miner
    RETRY_BUDGET = "retry_budget"  # its recent actions failed too often
    VERIFYING = "verifying"  # our last action on it is still inside its verification window
    UNKNOWN_CLASS = "unknown_class"  # the plan has no class for it


@dataclass(frozen=True, slots=True, kw_only=True)
class MinerView:
    """One miner as the executor sees it this cycle.

    `on` is the executor's belief: its own intention while an action is being verified, else telemetry.
    `power_w`/`hashrate_ths` are the latest reading (None: not reported). `nominal_w`/`nominal_ths` are
    the profile's figures for the class's mode, `sleep_w` the profile's sleep draw. `last_change_ts` is
    when the miner last changed between on and off (None: never seen to change), `curtailed_s` and
    `cycles` its cumulative curtailment wear. `blocked` carries a reason decided outside selection
    (override, unreachable, retry budget, no control).
    """

    miner_id: str
    class_key: str | None
    on: bool
    power_w: float | None
    hashrate_ths: float | None
    nominal_w: float
    nominal_ths: float
    sleep_w: float = 0.0
    temp_c: float | None = None
    last_change_ts: int | None = None
    curtailed_s: int = 0
    cycles: int = 0
    blocked: Skip | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SelectionSettings:
    min_on_s: int = 900
    min_off_s: int = 900
    efficiency_band_j_th: float = 1.0
    temp_band_c: float = 5.0
    # Phantom load: power above this share of nominal while hashing below `hashing_fraction` of nominal.
    phantom_power_fraction: float = 0.2
    # Dead power reading: hashing above `hashing_fraction` of nominal with power below this share.
    dead_power_fraction: float = 0.05
    hashing_fraction: float = 0.05

    def __post_init__(self) -> None:
        if self.min_on_s < 0 or self.min_off_s < 0:
            raise ValueError("min_on_s and min_off_s must be >= 0")
        if self.efficiency_band_j_th <= 0 or self.temp_band_c <= 0:
            raise ValueError("efficiency_band_j_th and temp_band_c must be > 0")


@dataclass(frozen=True, slots=True, kw_only=True)
class Selection:
    """What to do: miners to curtail and to resume, per-reason skip counts, and per-class shortfall
    (positive: that many more miners should have been curtailed; negative: resumed)."""

    curtail: tuple[str, ...]
    resume: tuple[str, ...]
    skipped: Mapping[str, Skip] = field(default_factory=dict)
    shortfall_by_class: Mapping[str, int] = field(default_factory=dict)

    @property
    def skip_counts(self) -> Mapping[Skip, int]:
        return dict(Counter(self.skipped.values()))


def telemetry_skip(view: MinerView, settings: SelectionSettings) -> Skip | None:
    """Whether the latest reading could show this miner's action taking effect."""
    if view.power_w is None or view.hashrate_ths is None:
        return Skip.NO_TELEMETRY
    if not view.on:
        return None  # asleep: no hashing and low power is exactly what we expect
    hashing = view.hashrate_ths > settings.hashing_fraction * view.nominal_ths
    if not hashing and view.power_w > settings.phantom_power_fraction * view.nominal_w:
        return Skip.PHANTOM_LOAD
    if hashing and view.power_w < settings.dead_power_fraction * view.nominal_w:
        return Skip.DEAD_POWER_READING
    return None


def dwell_skip(view: MinerView, settings: SelectionSettings, now: int) -> Skip | None:
    """Inside its minimum on (when on) or off (when off) time since it last changed."""
    if view.last_change_ts is None:
        return None
    dwell = now - view.last_change_ts
    if view.on and dwell < settings.min_on_s:
        return Skip.MIN_ON_TIME
    if not view.on and dwell < settings.min_off_s:
        return Skip.MIN_OFF_TIME
    return None


def efficiency_j_th(view: MinerView, settings: SelectionSettings) -> float:
    """Measured J/TH when the reading is trustworthy, else the profile's."""
    nominal = view.nominal_w / view.nominal_ths if view.nominal_ths > 0 else math.inf
    if (
        view.on
        and view.power_w is not None
        and view.hashrate_ths is not None
        and view.hashrate_ths > settings.hashing_fraction * view.nominal_ths
        and view.power_w > 0
    ):
        return view.power_w / view.hashrate_ths
    return nominal


def _band(value: float | None, width: float) -> int:
    if value is None or not math.isfinite(value):
        return 0
    return math.floor(value / width)


def curtail_order(view: MinerView, settings: SelectionSettings) -> tuple[int, int, int, int, str]:
    """Sort key: smallest first is curtailed first."""
    eff = _band(efficiency_j_th(view, settings), settings.efficiency_band_j_th)
    temp = _band(view.temp_c, settings.temp_band_c)
    return (-eff, -temp, view.curtailed_s, view.cycles, view.miner_id)


def resume_order(view: MinerView, settings: SelectionSettings) -> tuple[int, int, int, int, str]:
    """Sort key: smallest first is resumed first."""
    eff = _band(efficiency_j_th(view, settings), settings.efficiency_band_j_th)
    temp = _band(view.temp_c, settings.temp_band_c)
    return (eff, temp, -view.curtailed_s, view.cycles, view.miner_id)


def select(
    fleet: Sequence[MinerView],
    on_by_class: Mapping[str, int],
    now: int,
    settings: SelectionSettings | None = None,
) -> Selection:
    """Miners to curtail and resume so each class in `on_by_class` gets as close to its count as the
    rules allow. Classes absent from `on_by_class` are left alone (the plan has no opinion on them)."""
    settings = settings or SelectionSettings()
    by_class: dict[str, list[MinerView]] = {}
    skipped: dict[str, Skip] = {}
    for view in fleet:
        if view.class_key is None or view.class_key not in on_by_class:
            continue
        by_class.setdefault(view.class_key, []).append(view)
    curtail: list[str] = []
    resume: list[str] = []
    shortfall: dict[str, int] = {}
    for key in sorted(on_by_class):
        target = on_by_class[key]
        if target < 0:
            raise ValueError(f"class {key}: target {target} is negative")
        members = by_class.get(key, [])
        on_now = sum(1 for v in members if v.on)
        if on_now == target:
            continue
        want_off = on_now > target
        candidates = [v for v in members if v.on == want_off]
        eligible = []
        for view in candidates:
            reason = view.blocked or dwell_skip(view, settings, now) or telemetry_skip(view, settings)
            if reason is None:
                eligible.append(view)
            else:
                skipped[view.miner_id] = reason
        need = abs(on_now - target)
        order = curtail_order if want_off else resume_order
        chosen = [v.miner_id for v in sorted(eligible, key=lambda v: order(v, settings))[:need]]
        (curtail if want_off else resume).extend(chosen)
        if len(chosen) < need:
            missing = need - len(chosen)
            shortfall[key] = missing if want_off else -missing
    return Selection(
        curtail=tuple(curtail), resume=tuple(resume), skipped=skipped, shortfall_by_class=shortfall
    )


def on_counts(fleet: Iterable[MinerView]) -> dict[str, int]:
    """Miners on per class, as the executor believes."""
    counts: Counter[str] = Counter()
    for view in fleet:
        if view.class_key is not None and view.on:
            counts[view.class_key] += 1
    return dict(counts)
