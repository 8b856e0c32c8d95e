"""A tariff history as the per-interval energy price that settlement charges customers.

Settlement prices every 15-minute interval at one $/kWh (`settlement.PriceFn`). That is exact for flat,
time-of-use and real-time energy: the price in force at the interval's start holds for the whole interval
(TOU periods change on whole local hours and minutes that the site's 15-minute grid meets; a real-time
series is refused at import unless its intervals start on that grid).

What cannot be a per-interval price is a *tiered* rate: a block's price depends on how much the whole
site has used so far in the month, so no customer's kWh has a price of its own. We refuse it with the
reason rather than guess an allocation; the site's own bill (`pricing.price_load`) still prices tiers
exactly, and the host can settle customers on a flat or TOU customer tariff instead.

Pure: a tariff history, the site zone; no clock, no store.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from gateway.energy.tariffs import (
    FlatEnergy,
    RealTimeEnergy,
    Tariff,
    TariffError,
    TouEnergy,
    tariff_at,
)
from gateway.energy.units import site_zone

__all__ = ["energy_price_fn", "tiered_reason"]


def tiered_reason(tariff: Tariff) -> str | None:
    """Why `tariff`'s energy cannot be priced per interval, or None when it can."""
    energy = tariff.energy
    if isinstance(energy, TouEnergy):
        tiered = [p.name for p in energy.periods if len(p.tiers) > 1]
        if tiered:
            return (
                f"tariff {tariff.name!r} has tiered energy rates in period(s) {', '.join(tiered)}: a tier's "
                "price depends on the whole site's monthly use, so it cannot be split per customer interval; "
                "settle customers on a flat or time-of-use customer tariff"
            )
    return None


def energy_price_fn(history: Sequence[Tariff], tz: str | ZoneInfo) -> Callable[[int], Decimal]:
    """$/kWh for the interval starting at a UTC epoch second, from the tariff in force then.

    Real-time energy is the market price of the interval plus the tariff's adder. An interval with no
    tariff in force, or no market price, is an error naming the instant: an invoice with a guessed price
    is worse than none."""
    if not history:
        raise TariffError("no tariff: import one with `hashinsight tariff import` and activate it")
    for tariff in history:
        reason = tiered_reason(tariff)
        if reason:
            raise TariffError(reason)
    zone = site_zone(tz)
    ordered = sorted(history, key=lambda t: t.valid_from)
    tariff_at(ordered, ordered[0].valid_from)  # refuses overlapping validity up front

    def price(ts: int) -> Decimal:
        tariff = tariff_at(ordered, ts)
        energy = tariff.energy
        if isinstance(energy, FlatEnergy):
            return energy.rate_per_kwh
        if isinstance(energy, TouEnergy):
            name = energy.schedule.period_at(datetime.fromtimestamp(ts, zone))
            for period in energy.periods:
                if period.name == name:
                    return period.tiers[0].rate
            raise TariffError(f"tariff {tariff.name!r}: schedule names undefined period {name!r}")
        assert isinstance(energy, RealTimeEnergy)
        i = energy.prices.index_of(ts)
        if i is None:
            when = datetime.fromtimestamp(ts, zone).isoformat()
            raise TariffError(
                f"tariff {tariff.name!r}: no real-time price for the interval starting {when}; "
                "import the missing prices with `hashinsight prices import`"
            )
        return energy.prices.prices_per_kwh[i] + energy.adder_per_kwh

    return price
