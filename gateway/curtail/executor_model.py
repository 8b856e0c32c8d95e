"""The executor's values: its settings, one miner's inputs per tick, a planned action, a tick's report.

Kept apart from `executor.py` so the dispatch loop stays readable and the CLI can print a report without
importing the machinery that talks to miners.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from gateway.curtail.executor_select import Selection, SelectionSettings
from gateway.curtail.plan_model import MinerClass
from gateway.devices.model import Mode, Sample
from gateway.devices.profiles import MinerProfile, normalize_model_name


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutorSettings:
    selection: SelectionSettings = field(default_factory=SelectionSettings)
    batch_size: int = 10  # miners per batch: a site's breakers dislike 500 machines stepping at once
    batch_gap_s: float = 5.0
    verify_window_s: int = 900  # stock Antminers need 5-10 min after a mode change
    fall_fraction: float = 0.5
    max_attempts: int = 3  # consecutive failed attempts before a miner is left alone
    retry_backoff_s: int = 300
    budget_reset_s: int = 3600  # after this, a miner whose budget is spent is tried again
    actor: str = "curtail.executor"

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_attempts < 1 or self.verify_window_s < 1:
            raise ValueError("batch_size, max_attempts and verify_window_s must be >= 1")
        if not 0 < self.fall_fraction <= 1:
            raise ValueError("fall_fraction must be in (0, 1]")


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetMember:
    """One miner's inputs this tick (built by the runtime from inventory, poller and profiles)."""

    miner_id: str
    class_key: str | None
    sample: Sample | None
    nominal_w: float
    nominal_ths: float
    sleep_w: float
    reachable: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class PlannedAction:
    miner_id: str
    action: str  # sleep | wake
    reason: str  # plan | drift | override
    baseline_w: float | None
    expected_w: float


@dataclass(frozen=True, slots=True, kw_only=True)
class TickReport:
    """What a tick did (or, dry run, would do). kW are reductions: positive = less load."""

    event_id: int | None
    dry_run: bool
    actions: tuple[PlannedAction, ...]
    done: tuple[str, ...]
    failed: Mapping[str, str]
    selection: Selection
    asked_kw: float
    verified: tuple[str, ...]
    expired: tuple[str, ...]
    drift: tuple[str, ...]
    # planned but never sent: `Executor.interrupt` cut the tick short for newer targets
    interrupted: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        """Human summary for the CLI."""
        verb = "would" if self.dry_run else "will"
        out = [f"{verb} {a.action} {a.miner_id} ({a.reason})" for a in self.actions]
        out.append(f"asked reduction: {self.asked_kw:.3f} kW")
        counts = self.selection.skip_counts
        if counts:
            out.append("skipped: " + ", ".join(f"{k.value}={v}" for k, v in sorted(counts.items())))
        for key, short in sorted(self.selection.shortfall_by_class.items()):
            out.append(f"class {key}: {abs(short)} miners short of target")
        for miner, why in sorted(self.failed.items()):
            out.append(f"failed {miner}: {why}")
        if self.interrupted:
            out.append(f"interrupted before {len(self.interrupted)} actions: newer targets arrived")
        return out


def member_for(
    miner_id: str,
    class_key: str | None,
    sample: Sample | None,
    profile: MinerProfile | None,
    *,
    mode: Mode = Mode.NORMAL,
    reachable: bool = True,
) -> FleetMember:
    """A miner's tick inputs from its latest sample and firmware profile (figures of the class's mode).
    Without a profile the miner has no figures to verify against: it gets no class."""
    if profile is None:
        return FleetMember(
            miner_id=miner_id,
            class_key=None,
            sample=sample,
            nominal_w=0.0,
            nominal_ths=0.0,
            sleep_w=0.0,
            reachable=reachable,
        )
    spec = profile.mode(mode)
    return FleetMember(
        miner_id=miner_id,
        class_key=class_key,
        sample=sample,
        nominal_w=spec.power_w,
        nominal_ths=spec.hashrate_ths,
        sleep_w=profile.sleep_w,
        reachable=reachable,
    )


def class_keys(classes: Iterable[MinerClass | str], models: Mapping[str, str | None]) -> dict[str, str]:
    """Miner id -> plan class key, matching each class's model to the miner's profile key or model name
    (any spelling the profiles normalise alike: "S21 Pro", "antminer_s21_pro"). A class given as a bare
    key takes its model from the key ("S21:normal", "antminer_s21|normal"). Several classes of one
    model (modes) take the first."""
    by_name: dict[str, str] = {}
    for cls in classes:
        key, model = (
            (cls, re.split(r"[:|]", cls, maxsplit=1)[0]) if isinstance(cls, str) else (cls.key, cls.model)
        )
        by_name.setdefault(model, key)
        by_name.setdefault(normalize_model_name(model), key)
    result: dict[str, str] = {}
    for miner_id, model in models.items():
        if not model:
            continue
        found = by_name.get(model) or by_name.get(normalize_model_name(model))
        if found is not None:
            result[miner_id] = found
    return result
