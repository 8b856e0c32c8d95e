"""The outputs of a settlement: energy figures with their provenance, invoice lines, invoice drafts and
the site's totals, and their wire form (`as_record`: money and kWh as decimal strings, never floats).

Frozen keyword-only dataclasses, like the inputs, so a settlement is a value that compares, hashes into
evidence and cannot be edited after the fact. kWh and percentages are derived display properties of
integer joules and seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction

from gateway.energy.settlement_model import J_PER_KWH, NO_MONEY_NOTICE, Period, round_half_even


def _pct(num: int, den: int) -> Decimal | None:
    return round_half_even(Fraction(100 * num, den), 2) if den else None


def _str(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class EnergyFigure:
    """An amount of energy with its provenance, so no kWh figure travels without its quality.

    - `miner_s`: miner-seconds the figure is about: for a customer, the time their miners were assigned to
      them; for the unassigned remainder, the metered rows' accounted time (there is no assignment to say
      a miner should have been there).
    - `covered_s`: of those, seconds with a trusted power reading; `estimated_s` of them used the profile's
      estimate instead of the miner's own watts; `uncovered_s` were known but unmeasured (past the
      meter's gap cap); `missing_s` had no metered row at all.
    - `estimated_j`: the part of `energy_j` attributed to estimated readings, by each row's time share.
    """

    energy_j: int = 0
    estimated_j: int = 0
    miner_s: int = 0
    covered_s: int = 0
    uncovered_s: int = 0
    estimated_s: int = 0

    @property
    def measured_j(self) -> int:
        return self.energy_j - self.estimated_j

    @property
    def measured_s(self) -> int:
        return self.covered_s - self.estimated_s

    @property
    def missing_s(self) -> int:
        return self.miner_s - self.covered_s - self.uncovered_s

    @property
    def kwh(self) -> Decimal:
        """Display kWh, rounded to the watt-hour; money is always computed from `energy_j`."""
        return round_half_even(Fraction(self.energy_j, J_PER_KWH), 3)

    @property
    def estimated_kwh(self) -> Decimal:
        return round_half_even(Fraction(self.estimated_j, J_PER_KWH), 3)

    @property
    def coverage_pct(self) -> Decimal | None:
        """Covered share of the figure's miner-seconds, in %; None when it is about no time at all."""
        return _pct(self.covered_s, self.miner_s)

    @property
    def estimated_pct(self) -> Decimal | None:
        """Share of the energy that came from estimated readings, in %; None for zero energy."""
        return _pct(self.estimated_j, self.energy_j)

    def as_record(self) -> dict[str, object]:
        """Wire form: integers exact, kWh and percentages as decimal strings, always together."""
        return {
            "energy_j": self.energy_j,
            "kwh": str(self.kwh),
            "estimated_j": self.estimated_j,
            "estimated_kwh": str(self.estimated_kwh),
            "miner_s": self.miner_s,
            "covered_s": self.covered_s,
            "uncovered_s": self.uncovered_s,
            "missing_s": self.missing_s,
            "estimated_s": self.estimated_s,
            "coverage_pct": _str(self.coverage_pct),
            "estimated_pct": _str(self.estimated_pct),
        }

    def __add__(self, other: EnergyFigure) -> EnergyFigure:
        return EnergyFigure(
            energy_j=self.energy_j + other.energy_j,
            estimated_j=self.estimated_j + other.estimated_j,
            miner_s=self.miner_s + other.miner_s,
            covered_s=self.covered_s + other.covered_s,
            uncovered_s=self.uncovered_s + other.uncovered_s,
            estimated_s=self.estimated_s + other.estimated_s,
        )


class LineKind(StrEnum):
    ENERGY = "energy"
    FACILITY = "facility"
    ADDER = "adder"
    DEMAND = "demand"
    FIXED = "fixed"
    CREDIT = "credit"
    SERVICE = "service"
    TAX = "tax"


@dataclass(frozen=True, slots=True, kw_only=True)
class InvoiceLine:
    """One line: `quantity` `unit` at `unit_price` = `amount`, the amount rounded once.

    Energy-based lines (unit "kWh") carry their `energy` figure; `quantity` is then its display kWh and
    the exact joules are in `energy.energy_j`. Percentage lines have the base amount as quantity (unit:
    the currency) and the rate as unit price. A credit's kWh is the curtailment attribution's input, not
    metered energy, so it has no figure."""

    kind: LineKind
    description: str
    quantity: Decimal
    unit: str
    unit_price: Decimal | None
    amount: Decimal
    energy: EnergyFigure | None = None

    def as_record(self) -> dict[str, object]:
        return {
            "kind": str(self.kind),
            "description": self.description,
            "quantity": str(self.quantity),
            "unit": self.unit,
            "unit_price": _str(self.unit_price),
            "amount": str(self.amount),
            "energy": None if self.energy is None else self.energy.as_record(),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class InvoiceDraft:
    """One customer's draft for the period. `total` is the sum of the rounded line amounts."""

    customer_id: str
    period: Period
    currency: str
    lines: tuple[InvoiceLine, ...]
    energy: EnergyFigure
    total: Decimal
    notice: str = NO_MONEY_NOTICE

    def as_record(self) -> dict[str, object]:
        return {
            "customer_id": self.customer_id,
            "period": {"start": self.period.start, "end": self.period.end},
            "currency": self.currency,
            "lines": [ln.as_record() for ln in self.lines],
            "energy": self.energy.as_record(),
            "total": str(self.total),
            "notice": self.notice,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Settlement:
    """The whole period: the drafts (sorted by customer), and the site's totals.

    `site_energy` = sum of the drafts' `energy` + `unassigned_energy`, exactly, in every integer field.
    `site_energy_cost` and `unassigned_energy_cost` are the energy (at the interval prices, before fees)
    of the whole site and of the unassigned remainder, each rounded once: the host's own cost."""

    period: Period
    currency: str
    invoices: tuple[InvoiceDraft, ...]
    site_energy: EnergyFigure
    unassigned_energy: EnergyFigure
    site_energy_cost: Decimal
    unassigned_energy_cost: Decimal
    invoiced_total: Decimal
    price_count: int = 0  # distinct energy prices in the period
    unassigned_demand_cost: Decimal = Decimal(0)  # the host's share of demand charges (unassigned load)
    notice: str = NO_MONEY_NOTICE

    def as_record(self) -> dict[str, object]:
        """JSON-ready: money as decimal strings (ARCHITECTURE §3), never floats."""
        return {
            "period": {"start": self.period.start, "end": self.period.end},
            "currency": self.currency,
            "invoices": [inv.as_record() for inv in self.invoices],
            "site_energy": self.site_energy.as_record(),
            "unassigned_energy": self.unassigned_energy.as_record(),
            "site_energy_cost": str(self.site_energy_cost),
            "unassigned_energy_cost": str(self.unassigned_energy_cost),
            "unassigned_demand_cost": str(self.unassigned_demand_cost),
            "invoiced_total": str(self.invoiced_total),
            "price_count": self.price_count,
            "notice": self.notice,
        }

    def invoice(self, customer_id: str) -> InvoiceDraft:
        for inv in self.invoices:
            if inv.customer_id == customer_id:
                return inv
        raise KeyError(customer_id)
