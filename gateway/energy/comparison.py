"""Month-over-month and year-over-year energy cost comparison, with the change split into a price effect,
a volume effect and a curtailment effect that add up to the total change exactly.

Pure: two periods' metered energy, curtailed energy and energy cost in; a `CostComparison` out.

The decomposition (period a = the base, b = the one compared; kWh exact from joules; p = cost / kWh, the
period's average price, an exact `Fraction`; u = kWh + curtailed kWh, what the fleet would have used
uncurtailed):

    price effect       = kWh_b x (p_b - p_a)          what b's energy cost more (less) at b's prices
    volume effect      = (u_b - u_a) x p_a            the fleet's demand changed (miners added, removed)
    curtailment effect = -(curt_b - curt_a) x p_a     energy curtailment avoided, at the base price
    --------------------------------------------------------------------------------------------------
    sum                = kWh_b x p_b - kWh_a x p_a = cost_b - cost_a                          (exactly)

because u - curt = kWh. When period a had no curtailment this is the textbook split (volume =
(u_b - kWh_a) x p_a, curtailment = -curt_b x p_a). Curtailment in *both* periods is netted, so two months
curtailed alike show no curtailment effect. The price effect is valued at b's volume (a Paasche-style
split): there is no interaction term to hide a residual in.

A period with no energy has no price: if a has none, p_a := p_b (the whole change is volume and
curtailment); if b has none its price never enters (kWh_b = 0). Zero energy with a non-zero cost is
refused: that cost is not an energy cost (a fixed charge does not belong here).

Money: each effect is computed exactly and rounded once, half-to-even, to the minor unit. Rounding three
lines can leave the rounded sum a minor unit away from the (already rounded) total; that unit is moved to
the line whose rounding lost the most (largest remainder), so the lines always add up to the total shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from gateway.energy.units import kwh, round_money

__all__ = [
    "ComparisonError",
    "CostComparison",
    "PeriodUsage",
    "compare_periods",
    "previous_month",
    "same_month_last_year",
]

EFFECTS = ("price", "volume", "curtailment")


class ComparisonError(ValueError):
    """Inputs that cannot be compared; the message names the period and the field."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PeriodUsage:
    """One period (a month, usually): metered energy, energy curtailment avoided, and the energy cost of
    the metered energy at the currency's minor unit (the bill's energy lines, not fixed charges)."""

    label: str
    energy_j: int
    cost: Decimal
    curtailed_j: int = 0

    def check(self, minor_unit: int) -> None:
        for name in ("energy_j", "curtailed_j"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ComparisonError(f"{self.label}: {name} must be a non-negative integer, got {value!r}")
        if not isinstance(self.cost, Decimal) or not self.cost.is_finite():
            raise ComparisonError(f"{self.label}: cost must be a finite Decimal, got {self.cost!r}")
        if self.cost != self.cost.quantize(Decimal(1).scaleb(-minor_unit)):
            raise ComparisonError(f"{self.label}: cost {self.cost} is finer than {minor_unit} decimal places")
        if self.energy_j == 0 and self.cost != 0:
            raise ComparisonError(f"{self.label}: cost {self.cost} with no energy is not an energy cost")


@dataclass(frozen=True, slots=True, kw_only=True)
class CostComparison:
    base: str
    current: str
    cost_change: Decimal  # current.cost - base.cost
    price_effect: Decimal
    volume_effect: Decimal
    curtailment_effect: Decimal
    price_base_per_kwh: Fraction | None  # None: no energy in that period
    price_current_per_kwh: Fraction | None
    exact: tuple[Fraction, Fraction, Fraction]  # price, volume, curtailment before rounding

    @property
    def effects(self) -> tuple[Decimal, Decimal, Decimal]:
        return (self.price_effect, self.volume_effect, self.curtailment_effect)


def _price(usage: PeriodUsage) -> Fraction | None:
    return Fraction(usage.cost) / kwh(usage.energy_j) if usage.energy_j else None


def _round_to_total(exact: tuple[Fraction, ...], total: Decimal, minor_unit: int) -> list[Decimal]:
    """Round each half-to-even, then move whole minor units to the largest remainders until the lines sum
    to `total`. Ties go to the earlier line, so the result is deterministic."""
    unit = Decimal(1).scaleb(-minor_unit)
    rounded = [round_money(x, minor_unit) for x in exact]
    short = int((total - sum(rounded, Decimal(0))) / unit)  # whole minor units still to place
    step = 1 if short > 0 else -1
    lost = [(x - Fraction(r)) * step for x, r in zip(exact, rounded, strict=True)]
    order = sorted(range(len(exact)), key=lambda i: (-lost[i], i))
    for k in range(abs(short)):
        i = order[k % len(order)]
        rounded[i] += unit * step
    return rounded


def compare_periods(base: PeriodUsage, current: PeriodUsage, *, minor_unit: int = 2) -> CostComparison:
    """Split `current.cost - base.cost` into price, volume and curtailment effects (module doc)."""
    if not 0 <= minor_unit <= 4:
        raise ComparisonError(f"minor unit {minor_unit} is not a currency's")
    base.check(minor_unit)
    current.check(minor_unit)
    p_b = _price(current)
    p_a = _price(base)
    if p_a is None:
        p_a = p_b if p_b is not None else Fraction(0)
    price = kwh(current.energy_j) * ((p_b or Fraction(0)) - p_a) if current.energy_j else Fraction(0)
    used_a = kwh(base.energy_j + base.curtailed_j)
    used_b = kwh(current.energy_j + current.curtailed_j)
    volume = (used_b - used_a) * p_a
    curtailment = -(kwh(current.curtailed_j) - kwh(base.curtailed_j)) * p_a
    exact = (price, volume, curtailment)
    total = current.cost - base.cost
    assert sum(exact, Fraction(0)) == Fraction(total), "decomposition must be exact"
    rounded = _round_to_total(exact, total, minor_unit)
    return CostComparison(
        base=base.label,
        current=current.label,
        cost_change=total,
        price_effect=rounded[0],
        volume_effect=rounded[1],
        curtailment_effect=rounded[2],
        price_base_per_kwh=_price(base),
        price_current_per_kwh=p_b,
        exact=exact,
    )


def previous_month(year: int, month: int) -> tuple[int, int]:
    """The month before (year, month): the base of a month-over-month comparison."""
    if not 1 <= month <= 12:
        raise ComparisonError(f"month {month} is not 1..12")
    return (year - 1, 12) if month == 1 else (year, month - 1)


def same_month_last_year(year: int, month: int) -> tuple[int, int]:
    """The base of a year-over-year comparison."""
    if not 1 <= month <= 12:
        raise ComparisonError(f"month {month} is not 1..12")
    return (year - 1, month)
