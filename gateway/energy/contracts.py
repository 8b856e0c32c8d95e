"""Energy contracts: how much of this month's contracted energy and demand limit a site (or a customer)
has used, where the month is heading, and which alert thresholds that crosses.

Pure: a contract, the month's metered figures so far, `now` and the month's bounds in; a `ContractStatus`
out. The caller sums the meter (`month_to_date` does it from `(interval_start, joules)` records) and turns
the status into alert findings (`gateway.energy.energy_alerts`).

Decisions, and why:

- **Projection = actual + run-rate of the month so far** x the time left: `actual x month_s / elapsed_s`.
  A mining site is a near-constant base load, so the month-so-far rate is the steadiest estimate we have,
  and it needs only the cumulative figure the meter already keeps. A run-rate of the last N days would
  react faster to a fleet that grew mid-month, but it also swings with every curtailed day and needs a
  daily series; curtailment is the planner's lever and should not whip the forecast. The first
  `min_run_s` (default one day) of a month project nothing: a forecast from two hours of data is noise.
- **Energy levels: forecasts warn, facts go critical.** WARN when the projected month-end (or, before a
  projection exists, the actual) reaches `warn_pct` of the contract; CRIT only when the *actual* energy
  reaches `crit_pct`. A projection of 110 % is still a warning (with the figure in the detail): it can be
  curtailed away; 95 % actually used cannot. Since projected >= actual, an actual crossing of `warn_pct`
  is always a warning too.
- **Demand levels** compare the month's highest demand-interval average kW so far with the limit: WARN at
  `warn_pct`, CRIT at `crit_pct`. The peak cannot be projected (it is a maximum, not a sum) and cannot go
  down within a month, so a demand alert stands until the month turns over. That is the truth: the
  month's demand charge or contract breach has already been set.
- Percentages are exact `Fraction`s; comparisons never round.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

from gateway.energy.bill import BillingPeriod
from gateway.energy.units import J_PER_KW_S, J_PER_KWH, site_zone

__all__ = [
    "Contract",
    "ContractError",
    "ContractStatus",
    "Crossing",
    "Level",
    "MonthToDate",
    "evaluate_contract",
    "month_containing",
    "month_to_date",
]

DAY_S = 86_400
# Ids become alert targets, notification text and export cells: a plain alphabet keeps ':' (the target
# separator), control characters and spreadsheet formula prefixes (= + - @) out.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
DEMAND_INTERVALS_S = (900, 1800, 3600)


class ContractError(ValueError):
    """A contract or month figure that cannot be evaluated; the message names the field."""


class Level(enum.IntEnum):
    OK = 0
    WARN = 1
    CRIT = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class Contract:
    """What a site (`customer_id` None) or one customer contracted for each month.

    `monthly_energy_j` is the contracted energy per calendar month in the site zone (None: no energy
    term); `demand_limit_kw` the highest demand-interval average kW allowed (None: no demand term)."""

    id: str
    monthly_energy_j: int | None = None
    demand_limit_kw: Decimal | None = None
    customer_id: str | None = None
    warn_pct: int = 80
    crit_pct: int = 95

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _ID.fullmatch(self.id):
            raise ContractError(
                f"contract id {self.id!r}: 1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit"
            )
        if self.monthly_energy_j is None and self.demand_limit_kw is None:
            raise ContractError(f"contract {self.id}: needs monthly_energy_j or demand_limit_kw (or both)")
        if self.monthly_energy_j is not None and (
            isinstance(self.monthly_energy_j, bool)
            or not isinstance(self.monthly_energy_j, int)
            or self.monthly_energy_j <= 0
        ):
            raise ContractError(f"contract {self.id}: monthly_energy_j must be a positive integer")
        if self.demand_limit_kw is not None and (
            not isinstance(self.demand_limit_kw, Decimal)
            or not self.demand_limit_kw.is_finite()
            or self.demand_limit_kw <= 0
        ):
            raise ContractError(f"contract {self.id}: demand_limit_kw must be a positive finite Decimal")
        if not 0 < self.warn_pct < self.crit_pct <= 1000:
            raise ContractError(
                f"contract {self.id}: need 0 < warn_pct < crit_pct <= 1000, "
                f"got {self.warn_pct} and {self.crit_pct}"
            )

    @classmethod
    def from_kwh(
        cls,
        *,
        id: str,
        monthly_kwh: Decimal | None,
        demand_limit_kw: Decimal | None = None,
        customer_id: str | None = None,
        warn_pct: int = 80,
        crit_pct: int = 95,
    ) -> Contract:
        """Contracts are written in kWh; we keep integer joules. A kWh figure finer than a joule is refused
        rather than rounded (3,600,000 J per kWh: up to five decimals always convert exactly)."""
        energy_j: int | None = None
        if monthly_kwh is not None:
            if not isinstance(monthly_kwh, Decimal) or not monthly_kwh.is_finite():
                raise ContractError(f"contract {id}: monthly_kwh must be a finite Decimal")
            exact = Fraction(monthly_kwh) * J_PER_KWH
            if exact.denominator != 1:
                raise ContractError(f"contract {id}: monthly_kwh {monthly_kwh} is finer than one joule")
            energy_j = int(exact)
        return cls(
            id=id,
            monthly_energy_j=energy_j,
            demand_limit_kw=demand_limit_kw,
            customer_id=customer_id,
            warn_pct=warn_pct,
            crit_pct=crit_pct,
        )

    @property
    def target(self) -> str:
        """The alert lifecycle's target id for this contract (its `miner_id` column)."""
        return f"contract:{self.id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class MonthToDate:
    """Metered figures from the month's start to now: total joules, and the joules of the busiest demand
    interval (so the peak kW is exact: joules / (interval_s x 1000))."""

    energy_j: int
    peak_interval_j: int
    interval_s: int = 900

    def __post_init__(self) -> None:
        for name in ("energy_j", "peak_interval_j"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ContractError(f"{name} must be a non-negative integer, got {value!r}")
        if self.interval_s not in DEMAND_INTERVALS_S:
            raise ContractError(f"interval_s must be one of {DEMAND_INTERVALS_S}, got {self.interval_s}")
        if self.peak_interval_j > self.energy_j:
            raise ContractError("peak_interval_j cannot exceed the month's energy_j")

    @property
    def peak_kw(self) -> Fraction:
        return Fraction(self.peak_interval_j, self.interval_s * J_PER_KW_S)


@dataclass(frozen=True, slots=True, kw_only=True)
class Crossing:
    """One threshold reached: `measure` is "energy_actual", "energy_projected" or "demand"."""

    measure: str
    threshold_pct: int
    pct: Fraction


@dataclass(frozen=True, slots=True, kw_only=True)
class ContractStatus:
    contract_id: str
    target: str
    month: BillingPeriod
    now: int
    energy_j: int
    projected_j: int | None  # None: no energy term, or too early in the month to project
    contracted_j: int | None
    energy_pct: Fraction | None
    projected_pct: Fraction | None
    peak_kw: Fraction
    demand_limit_kw: Decimal | None
    demand_pct: Fraction | None
    energy_level: Level
    demand_level: Level
    crossings: tuple[Crossing, ...]


def month_containing(now: int, tz: str | ZoneInfo) -> BillingPeriod:
    """The local calendar month (site zone) that contains instant `now`."""
    local = datetime.fromtimestamp(now, site_zone(tz))
    return BillingPeriod.month(local.year, local.month, tz)


def month_to_date(
    records: Iterable[tuple[int, int]], *, month: BillingPeriod, now: int, interval_s: int = 900
) -> MonthToDate:
    """Sum `(interval_start, joules)` meter records (any number per interval: one per miner) that start in
    `[month.start, now]`, and find the busiest demand interval. Demand windows are aligned on UTC multiples
    of `interval_s`, as the meter's 15-minute grid is (whole-hour zones; pricing.py aligns on local time
    for billing)."""
    if interval_s not in DEMAND_INTERVALS_S:
        raise ContractError(f"interval_s must be one of {DEMAND_INTERVALS_S}, got {interval_s}")
    total = 0
    windows: dict[int, int] = {}
    for start, joules in records:
        if joules < 0:
            raise ContractError(f"negative energy {joules} J in the record at {start}")
        if month.start <= start <= now and start < month.end:
            total += joules
            window = start - start % interval_s
            windows[window] = windows.get(window, 0) + joules
    peak_j = max(windows.values(), default=0)
    return MonthToDate(energy_j=total, peak_interval_j=peak_j, interval_s=interval_s)


def _level(pct: Fraction | None, contract: Contract) -> Level:
    if pct is None:
        return Level.OK
    if pct >= contract.crit_pct:
        return Level.CRIT
    return Level.WARN if pct >= contract.warn_pct else Level.OK


def _crossed(measure: str, pct: Fraction | None, contract: Contract) -> list[Crossing]:
    if pct is None:
        return []
    levels = (contract.warn_pct, contract.crit_pct)
    return [Crossing(measure=measure, threshold_pct=p, pct=pct) for p in levels if pct >= p]


def evaluate_contract(
    contract: Contract,
    month_so_far: MonthToDate,
    *,
    now: int,
    month: BillingPeriod,
    min_run_s: int = DAY_S,
) -> ContractStatus:
    """Actual, projected month-end, percentages, levels and crossings at `now` (see the module doc)."""
    if not month.start <= now < month.end:
        raise ContractError(f"now {now} is outside the month [{month.start}, {month.end})")
    if min_run_s < 1:
        raise ContractError("min_run_s must be >= 1")
    elapsed_s, month_s = now - month.start, month.end - month.start
    energy_pct = projected_pct = None
    projected_j = None
    if contract.monthly_energy_j is not None:
        energy_pct = Fraction(month_so_far.energy_j * 100, contract.monthly_energy_j)
        if elapsed_s >= min_run_s:
            projected_j = month_so_far.energy_j * month_s // elapsed_s  # whole joules, rounded down
            projected_pct = Fraction(projected_j * 100, contract.monthly_energy_j)
    demand_pct = None
    if contract.demand_limit_kw is not None:
        demand_pct = month_so_far.peak_kw * 100 / Fraction(contract.demand_limit_kw)

    if energy_pct is not None and energy_pct >= contract.crit_pct:
        energy_level = Level.CRIT
    else:
        forecast = projected_pct if projected_pct is not None else energy_pct
        energy_level = Level.WARN if _level(forecast, contract) is not Level.OK else Level.OK
    crossings = (
        _crossed("energy_actual", energy_pct, contract)
        + _crossed("energy_projected", projected_pct, contract)
        + _crossed("demand", demand_pct, contract)
    )
    return ContractStatus(
        contract_id=contract.id,
        target=contract.target,
        month=month,
        now=now,
        energy_j=month_so_far.energy_j,
        projected_j=projected_j,
        contracted_j=contract.monthly_energy_j,
        energy_pct=energy_pct,
        projected_pct=projected_pct,
        peak_kw=month_so_far.peak_kw,
        demand_limit_kw=contract.demand_limit_kw,
        demand_pct=demand_pct,
        energy_level=energy_level,
        demand_level=_level(demand_pct, contract),
        crossings=tuple(crossings),
    )
