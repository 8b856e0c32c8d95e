"""Cost comparison: price, volume and curtailment effects that sum exactly to the change in cost."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.energy.comparison import (
    ComparisonError,
    PeriodUsage,
    compare_periods,
    previous_month,
    same_month_last_year,
)
from gateway.energy.units import J_PER_KWH

KWH = J_PER_KWH


def usage(label: str, kwh: int, cost: str, curtailed_kwh: int = 0) -> PeriodUsage:
    return PeriodUsage(label=label, energy_j=kwh * KWH, cost=Decimal(cost), curtailed_j=curtailed_kwh * KWH)


def test_textbook_split() -> None:
    # October: 100,000 kWh at 5.0 c. November: 110,000 kWh metered after curtailing 5,000 kWh, at 6.0 c.
    october = usage("2026-10", 100_000, "5000.00")
    november = usage("2026-11", 110_000, "6600.00", curtailed_kwh=5_000)
    c = compare_periods(october, november)
    assert (c.base, c.current) == ("2026-10", "2026-11")
    assert c.cost_change == Decimal("1600.00")
    assert c.price_effect == Decimal("1100.00")  # 110,000 kWh x 1.0 c more
    assert c.volume_effect == Decimal("750.00")  # 15,000 kWh more demand x 5.0 c
    assert c.curtailment_effect == Decimal("-250.00")  # 5,000 kWh avoided x 5.0 c
    assert c.price_base_per_kwh == Fraction(1, 20) and c.price_current_per_kwh == Fraction(3, 50)


def test_curtailment_in_both_periods_nets_out() -> None:
    a = usage("a", 1000, "50.00", curtailed_kwh=200)
    b = usage("b", 1000, "60.00", curtailed_kwh=200)
    c = compare_periods(a, b)
    assert c.curtailment_effect == 0 and c.volume_effect == 0 and c.price_effect == Decimal("10.00")
    # More curtailment, same demand: the saving is the curtailment effect, at the base price.
    d = compare_periods(a, usage("d", 900, "45.00", curtailed_kwh=300))
    assert d.effects == (Decimal(0), Decimal(0), Decimal("-5.00"))


def test_rounding_residual_goes_to_the_largest_remainder() -> None:
    # Exact effects 19/30, 1/3 and -1/15 round to 0.63 + 0.33 - 0.07 = 0.89, but the change is 0.90.
    # All three lost 1/300 of a dollar: the tie goes to the first line (price).
    c = compare_periods(usage("a", 3, "0.10"), usage("b", 11, "1.00", curtailed_kwh=2))
    assert c.exact == (Fraction(19, 30), Fraction(1, 3), Fraction(-1, 15))
    assert c.effects == (Decimal("0.64"), Decimal("0.33"), Decimal("-0.07"))
    assert sum(c.effects) == c.cost_change == Decimal("0.90")


def test_a_period_without_energy() -> None:
    nothing = usage("a", 0, "0.00")
    c = compare_periods(nothing, usage("b", 1000, "50.00", curtailed_kwh=100))
    assert c.price_base_per_kwh is None
    assert c.effects == (Decimal(0), Decimal("55.00"), Decimal("-5.00"))  # at b's price: no price effect
    back = compare_periods(usage("b", 1000, "50.00"), nothing)
    assert back.effects == (Decimal(0), Decimal("-50.00"), Decimal(0))
    assert back.price_current_per_kwh is None
    assert compare_periods(nothing, nothing).effects == (Decimal(0),) * 3


def test_negative_prices_and_other_currencies() -> None:
    # Real-time markets go negative; a currency without minor units (JPY) rounds to whole units.
    c = compare_periods(usage("a", 1000, "-20.00"), usage("b", 1000, "30.00"))
    assert c.price_effect == Decimal("50.00")
    jpy = compare_periods(usage("a", 3, "10"), usage("b", 7, "100", curtailed_kwh=1), minor_unit=0)
    assert sum(jpy.effects) == 90


@pytest.mark.parametrize(
    ("a", "message"),
    [
        (PeriodUsage(label="a", energy_j=1, cost=Decimal("0.001")), "a: cost 0.001 is finer than 2"),
        (PeriodUsage(label="a", energy_j=0, cost=Decimal("1.00")), "a: cost 1.00 with no energy"),
        (PeriodUsage(label="a", energy_j=-1, cost=Decimal(0)), "a: energy_j must be a non-negative"),
        (PeriodUsage(label="a", energy_j=1, cost=Decimal(0), curtailed_j=-1), "a: curtailed_j"),
        (PeriodUsage(label="a", energy_j=1, cost=1.5), "a: cost must be a finite Decimal"),  # type: ignore[arg-type]
        (PeriodUsage(label="a", energy_j=1, cost=Decimal("NaN")), "a: cost must be a finite Decimal"),
        (PeriodUsage(label="a", energy_j=True, cost=Decimal(0)), "a: energy_j"),
    ],
)
def test_bad_inputs_are_refused_with_the_period_and_field(a: PeriodUsage, message: str) -> None:
    with pytest.raises(ComparisonError, match=message):
        compare_periods(a, usage("b", 1, "0.10"))


def test_month_helpers() -> None:
    assert previous_month(2026, 1) == (2025, 12)
    assert previous_month(2026, 7) == (2026, 6)
    assert same_month_last_year(2026, 2) == (2025, 2)
    with pytest.raises(ComparisonError, match="month 13"):
        previous_month(2026, 13)
    with pytest.raises(ComparisonError, match="month 0"):
        same_month_last_year(2026, 0)
    with pytest.raises(ComparisonError, match="minor unit 7"):
        compare_periods(usage("a", 1, "1"), usage("b", 1, "1"), minor_unit=7)


energies = st.integers(0, 10**15)  # joules: up to ~278 GWh
cents = st.integers(-(10**9), 10**9)


@settings(max_examples=100, deadline=None)
@given(
    energy_a=energies,
    energy_b=energies,
    curtailed_a=energies,
    curtailed_b=energies,
    cents_a=cents,
    cents_b=cents,
    minor_unit=st.sampled_from([0, 2, 3]),
)
def test_effects_sum_exactly_to_the_change(
    energy_a: int,
    energy_b: int,
    curtailed_a: int,
    curtailed_b: int,
    cents_a: int,
    cents_b: int,
    minor_unit: int,
) -> None:
    cost_a = Decimal(cents_a).scaleb(-minor_unit) if energy_a else Decimal(0)
    cost_b = Decimal(cents_b).scaleb(-minor_unit) if energy_b else Decimal(0)
    a = PeriodUsage(label="a", energy_j=energy_a, cost=cost_a, curtailed_j=curtailed_a)
    b = PeriodUsage(label="b", energy_j=energy_b, cost=cost_b, curtailed_j=curtailed_b)
    c = compare_periods(a, b, minor_unit=minor_unit)
    assert sum(c.exact, Fraction(0)) == Fraction(cost_b - cost_a)  # the decomposition is exact
    assert sum(c.effects, Decimal(0)) == c.cost_change == cost_b - cost_a  # and so are the rounded lines
    unit = Fraction(1, 10**minor_unit)
    for exact, rounded in zip(c.exact, c.effects, strict=True):
        assert abs(Fraction(rounded) - exact) <= unit  # half a unit from rounding, at most one more moved
        assert rounded == rounded.quantize(Decimal(1).scaleb(-minor_unit))
    if curtailed_a == curtailed_b:
        assert c.curtailment_effect == 0
