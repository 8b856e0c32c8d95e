"""Carbon: the factor carries its source and year, converts exactly (lb/MWh -> kg/kWh by the defined pound),
refuses unit slips and junk, and CO2 is exact then rounded once to the gram, half-even."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.energy.carbon import KG_PER_LB, CarbonAmount, CarbonFactor, co2_kg, co2_kg_exact

D = Decimal
SOURCE = "test factor, not a published figure"


def factor(kg: str) -> CarbonFactor:
    return CarbonFactor(kg_per_kwh=D(kg), source=SOURCE, year=2024)


def test_one_kwh_and_the_gram_rounding() -> None:
    assert co2_kg(3_600_000, factor("0.4")) == CarbonAmount(kg=D("0.400"), factor=factor("0.4"))
    assert co2_kg_exact(1, factor("0.4")) == Fraction(1, 9_000_000)
    assert co2_kg(1_800, factor("1")).kg == D("0.000")  # exactly 0.0005 kg: ties to even
    assert co2_kg(5_400, factor("1")).kg == D("0.002")  # exactly 0.0015 kg: ties to even
    assert co2_kg(5_401, factor("1")).kg == D("0.002")
    assert co2_kg(0, factor("0")).kg == D("0.000")
    # 10,000 miners x 3.5 kW for a 31-day month: 26,040 MWh at 0.4 kg/kWh
    assert co2_kg(10_000 * 3_500 * 31 * 86_400, factor("0.4")).kg == D("10416000.000")


def test_from_lb_per_mwh_is_exact() -> None:
    assert CarbonFactor.from_lb_per_mwh(D(1000), source=SOURCE, year=2022).kg_per_kwh == KG_PER_LB
    f = CarbonFactor.from_lb_per_mwh(D("818.6"), source=SOURCE, year=2021)
    assert Fraction(f.kg_per_kwh) == Fraction(8186, 10) * Fraction(45_359_237, 10**8) / 1000
    assert f.kg_per_kwh == D("0.371310714082") and f.year == 2021 and f.source == SOURCE
    with pytest.raises(TypeError, match="lb_per_mwh must be a finite"):
        CarbonFactor.from_lb_per_mwh(818.6, source=SOURCE, year=2021)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="too many digits"):
        CarbonFactor.from_lb_per_mwh(D("1." + "1" * 40), source=SOURCE, year=2021)


def test_factor_and_record_carry_source_and_year() -> None:
    f = CarbonFactor(kg_per_kwh=D("0.3713"), source="EPA eGRID (edition as configured), ERCT", year=2022)
    assert co2_kg(7_200_000, f).as_record() == {
        "kg": "0.743",
        "factor": {"kg_per_kwh": "0.3713", "source": "EPA eGRID (edition as configured), ERCT", "year": 2022},
    }


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"kg_per_kwh": 0.4}, TypeError, "finite decimal.Decimal"),
        ({"kg_per_kwh": D("NaN")}, TypeError, "finite decimal.Decimal"),
        ({"kg_per_kwh": D("Infinity")}, TypeError, "finite decimal.Decimal"),
        ({"kg_per_kwh": D("-0.1")}, ValueError, r"outside \[0, 2\]"),
        ({"kg_per_kwh": D("818.6")}, ValueError, "lb/MWh"),  # eGRID's unit typed into kg/kWh
        ({"source": ""}, ValueError, "must name the publication"),
        ({"source": "   "}, ValueError, "must name the publication"),
        ({"source": "eGRID\n=HYPERLINK(1)"}, ValueError, "one printable line"),
        ({"source": "x" * 201}, ValueError, "one printable line"),
        ({"year": True}, TypeError, "must be an int"),
        ({"year": "2022"}, TypeError, "must be an int"),
        ({"year": 1800}, ValueError, r"outside \[1990, 2100\]"),
    ],
)
def test_bad_factors_are_refused(kwargs: dict[str, object], error: type[Exception], message: str) -> None:
    values: dict[str, object] = {"kg_per_kwh": D("0.4"), "source": SOURCE, "year": 2024, **kwargs}
    with pytest.raises(error, match=message):
        CarbonFactor(**values)  # type: ignore[arg-type]


def test_energy_must_be_integer_joules() -> None:
    with pytest.raises(TypeError, match="int number of joules"):
        co2_kg(1.5, factor("0.4"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="int number of joules"):
        co2_kg(True, factor("0.4"))


factors = st.integers(0, 2_000_000).map(
    lambda n: CarbonFactor(kg_per_kwh=D(n).scaleb(-6), source=SOURCE, year=2024)
)
energies = st.integers(0, 10**15)


@settings(max_examples=100, deadline=None)
@given(energies, energies, factors)
def test_exact_co2_is_additive_and_rounded_once(a: int, b: int, f: CarbonFactor) -> None:
    assert co2_kg_exact(a + b, f) == co2_kg_exact(a, f) + co2_kg_exact(b, f)
    assert co2_kg_exact(a, f) == Fraction(a) * Fraction(f.kg_per_kwh) / 3_600_000
    rounded = co2_kg(a, f).kg
    assert abs(Fraction(rounded) - co2_kg_exact(a, f)) <= Fraction(1, 2000)
    assert rounded.as_tuple().exponent == -3
    if a <= b:
        assert co2_kg(a, f).kg <= co2_kg(b, f).kg
