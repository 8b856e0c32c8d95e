"""CO2 from metered energy: a site's grid emission factor, with its source and data year, and the exact
conversion joules -> kg CO2.

Why the factor is a required setting and not a built-in table: a grid factor is a published statistic
(e.g. EPA eGRID's subregion "total output emission rate", published in lb/MWh per data year) that is revised
every edition; a number we shipped from memory, without its exact edition and table, would be an uncitable
figure printed on a client's report. So the site states its factor, where it comes from and for which year,
and every CO2 figure carries all three, so a reader can check it against the publication.

Exact: kg = joules x (kg/kWh) / 3,600,000, computed as a `Fraction` and rounded once per figure, half-even,
to the gram. A factor published in lb/MWh converts exactly (1 lb = 0.45359237 kg by definition).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from gateway.energy.units import J_PER_KWH, round_money

__all__ = ["KG_PER_LB", "CarbonAmount", "CarbonFactor", "co2_kg", "co2_kg_exact"]

KG_PER_LB = Decimal("0.45359237")  # the international avoirdupois pound, exact by definition (1959)
KG_PLACES = 3  # CO2 figures are rounded to the gram
# Coal-only generation emits about 1 kg/kWh; a factor above this is a unit slip (lb/MWh typed as kg/kWh,
# or g/kWh), not a grid.
MAX_KG_PER_KWH = Decimal(2)
_MIN_YEAR, _MAX_YEAR = 1990, 2100


@dataclass(frozen=True, slots=True, kw_only=True)
class CarbonFactor:
    """The site's grid emission factor: `kg_per_kwh` of CO2, as published by `source` for data year `year`.

    `source` names the publication precisely enough to look the number up, e.g.
    "EPA eGRID2022, subregion ERCT, CO2 total output emission rate"."""

    kg_per_kwh: Decimal
    source: str
    year: int

    def __post_init__(self) -> None:
        value = self.kg_per_kwh
        if not isinstance(value, Decimal) or not value.is_finite():
            raise TypeError(f"carbon factor kg_per_kwh must be a finite decimal.Decimal, got {value!r}")
        if not Decimal(0) <= value <= MAX_KG_PER_KWH:
            raise ValueError(
                f"carbon factor kg_per_kwh {value} is outside [0, {MAX_KG_PER_KWH}] "
                "(a value in lb/MWh? use CarbonFactor.from_lb_per_mwh)"
            )
        if not isinstance(self.source, str) or not self.source.strip():
            raise ValueError("carbon factor source must name the publication (e.g. 'EPA eGRID2022, ERCT')")
        if len(self.source) > 200 or any(not ch.isprintable() for ch in self.source):
            raise ValueError("carbon factor source must be one printable line of at most 200 characters")
        if isinstance(self.year, bool) or not isinstance(self.year, int):
            raise TypeError(f"carbon factor year must be an int, got {self.year!r}")
        if not _MIN_YEAR <= self.year <= _MAX_YEAR:
            raise ValueError(f"carbon factor year {self.year} is outside [{_MIN_YEAR}, {_MAX_YEAR}]")

    @classmethod
    def from_lb_per_mwh(cls, lb_per_mwh: Decimal, *, source: str, year: int) -> CarbonFactor:
        """A factor as eGRID publishes it (lb CO2 per MWh), converted exactly to kg/kWh."""
        if not isinstance(lb_per_mwh, Decimal) or not lb_per_mwh.is_finite():
            raise TypeError(f"lb_per_mwh must be a finite decimal.Decimal, got {lb_per_mwh!r}")
        # The product has a power-of-ten denominator, so it is a finite decimal; the check refuses the
        # absurdly long input whose quotient the 28-digit context would round.
        exact = Fraction(lb_per_mwh) * Fraction(KG_PER_LB) / 1000
        kg = Decimal(exact.numerator) / Decimal(exact.denominator)
        if Fraction(kg) != exact:
            raise ValueError(f"lb_per_mwh {lb_per_mwh} has too many digits to convert exactly")
        return cls(kg_per_kwh=kg, source=source, year=year)

    def as_record(self) -> dict[str, object]:
        return {"kg_per_kwh": str(self.kg_per_kwh), "source": self.source, "year": self.year}


@dataclass(frozen=True, slots=True, kw_only=True)
class CarbonAmount:
    """CO2 of one energy figure, rounded once to the gram, with the factor that produced it."""

    kg: Decimal
    factor: CarbonFactor

    def as_record(self) -> dict[str, object]:
        return {"kg": str(self.kg), "factor": self.factor.as_record()}


def co2_kg_exact(energy_j: int, factor: CarbonFactor) -> Fraction:
    """Exact kg of CO2 for `energy_j` joules."""
    if isinstance(energy_j, bool) or not isinstance(energy_j, int):
        raise TypeError(f"energy_j must be an int number of joules, got {energy_j!r}")
    return Fraction(energy_j, J_PER_KWH) * Fraction(factor.kg_per_kwh)


def co2_kg(energy_j: int, factor: CarbonFactor) -> CarbonAmount:
    """kg of CO2 for `energy_j` joules, rounded once (half-even) to the gram."""
    return CarbonAmount(kg=round_money(co2_kg_exact(energy_j, factor), KG_PLACES), factor=factor)
