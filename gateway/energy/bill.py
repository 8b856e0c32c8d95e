"""What pricing returns: the billing period and the bill's lines, exact figures beside rounded ones.

Kept apart from `pricing` so settlement, invoices and exports can depend on the shape of a bill without
depending on how it is computed. Every line carries its exact `Fraction` amount next to the rounded
`Decimal`, so a checker (or a dispute) can see that each line was rounded exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

from gateway.energy.units import display, kwh, site_zone, to_epoch

__all__ = ["Bill", "BillLine", "BillingPeriod", "PricingError"]


class PricingError(ValueError):
    """The load cannot be priced under this tariff as given (outside validity, no price, bad record)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BillingPeriod:
    """`[start, end)` in UTC epoch seconds. Fixed $/month charges are charged once per billing period."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if to_epoch(self.end, what="end") <= to_epoch(self.start, what="start"):
            raise ValueError(f"empty billing period [{self.start}, {self.end})")

    @classmethod
    def month(cls, year: int, month: int, tz: str | ZoneInfo) -> BillingPeriod:
        """A local calendar month: 00:00 on the 1st to 00:00 on the next 1st, in the site's zone."""
        zone = site_zone(tz)
        first = datetime(year, month, 1, tzinfo=zone)
        following = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=zone)
        return cls(start=to_epoch(first), end=to_epoch(following))

    def local_days(self, tz: str | ZoneInfo) -> int:
        """Local calendar days the period touches: what a $/day charge is multiplied by (a 23- or 25-hour
        DST day is one day, not 23/24 or 25/24 of one)."""
        zone = site_zone(tz)
        first: date = datetime.fromtimestamp(self.start, zone).date()
        last: date = datetime.fromtimestamp(self.end - 1, zone).date()
        return (last - first).days + 1


@dataclass(frozen=True, slots=True, kw_only=True)
class BillLine:
    """One rounded line. `exact_amount` is kept so a checker can see the single rounding step."""

    kind: str  # "energy" | "demand" | "fixed" | "minimum"
    label: str
    quantity: Fraction  # exact, in `unit`
    unit: str  # "kWh" | "kW" | "month" | "day" | "$"
    rate: Decimal | None  # $ per unit; None when it varies per interval (real-time)
    exact_amount: Fraction
    amount: Decimal
    period: str | None = None
    tier: int | None = None  # 1-based
    energy_j: int | None = None
    peak_window_start: int | None = None  # UTC epoch s of the demand window that set a demand line

    @property
    def quantity_display(self) -> Decimal:
        return display(self.quantity)


@dataclass(frozen=True, slots=True, kw_only=True)
class Bill:
    tariff: str
    period: BillingPeriod
    currency: str
    lines: tuple[BillLine, ...]
    energy_j: int
    energy_j_by_period: tuple[tuple[str, int], ...]
    demand_interval_s: int
    peak_kw: Fraction  # billing-period peak over all demand windows (0 with no load)
    peak_window_start: int | None

    @property
    def total(self) -> Decimal:
        """The sum of the rounded lines: what the invoice shows is what it adds up to."""
        return sum((line.amount for line in self.lines), Decimal("0"))

    @property
    def energy_kwh(self) -> Fraction:
        return kwh(self.energy_j)
