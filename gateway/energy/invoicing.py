"""Settle one local calendar month: the site's utility bill under its tariff, and the customers' drafts.

This is the seam between the two exact cores. `pricing.price_load` prices the *site's* load the way the
utility bills it (energy by period and tier, demand on the billing peak, fixed and minimum charges);
`settlement.settle` splits the metered energy between customers at the tariff's per-interval price. The
demand charge joins them: each demand line of the site bill becomes a `DemandCharge` passed through to
customers by their share of the load in the very window that set the peak (coincident-peak allocation).

The site load is the sum of the metered 15-minute rows per interval, so the peak is a *measured* 15-minute
site average (a window's missing rows count as zero power: we never invent a peak, and a replay that
lowered a figure cannot lower it below what was metered, because metering stores absolute per-interval
values, never a minimum).

Pure: arrays and tariffs in, values out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from zoneinfo import ZoneInfo

import numpy as np

from gateway.energy.bill import Bill, BillingPeriod
from gateway.energy.pricing import price_load
from gateway.energy.settlement import (
    Assignment,
    DemandCharge,
    FeeSchedule,
    IntervalColumns,
    Period,
    Settlement,
    settle,
)
from gateway.energy.tariff_prices import energy_price_fn
from gateway.energy.tariffs import Tariff, TariffError
from gateway.energy.units import display, round_money
from gateway.metering import INTERVAL_S

__all__ = ["MonthSettlement", "settle_month", "site_load"]


@dataclass(frozen=True, slots=True, kw_only=True)
class MonthSettlement:
    """The customers' drafts and the site bill(s) they were derived from (one per tariff in force)."""

    year: int
    month: int
    zone: str
    settlement: Settlement
    site_bills: tuple[Bill, ...]


def site_load(columns: IntervalColumns, start: int, end: int) -> list[tuple[int, int]]:
    """`(interval_start, site joules)` for every interval of `[start, end)` on the 15-minute grid (zero
    where nothing was metered), summed exactly in int64 (a month of a 100 MW site is ~3e14 J, far from
    2^63)."""
    n = (end - start) // INTERVAL_S
    st = np.asarray(columns.interval_start, dtype=np.int64)
    inside = (st >= start) & (st < end)
    index = (st[inside] - start) // INTERVAL_S
    joules = np.asarray(columns.joules, dtype=np.int64)[inside]
    sums = np.zeros(n, dtype=np.int64)
    np.add.at(sums, index, joules)
    return [(start + i * INTERVAL_S, int(j)) for i, j in enumerate(sums.tolist())]


def settle_month(
    *,
    year: int,
    month: int,
    tz: str,
    tariffs: Sequence[Tariff],
    columns: IntervalColumns,
    assignments: Iterable[Assignment],
    fees: FeeSchedule,
    pass_through_demand: bool = True,
) -> MonthSettlement:
    """Settle the local month `year-month` in zone `tz`.

    `tariffs`: the site's tariff history; every instant of the month must be covered. When two tariffs
    share the month, each prices its own part of the site load and each bill's demand lines are passed
    through. `pass_through_demand=False` leaves demand charges with the host (some hosting contracts
    include demand in the energy price)."""
    zone = ZoneInfo(tz)
    for tariff in tariffs:
        if tariff.currency.upper() != fees.currency.upper():
            raise TariffError(
                f"tariff {tariff.name!r} is in {tariff.currency} but the fee schedule is in {fees.currency}: "
                "drafts are in one currency ([energy] currency)"
            )
    period = BillingPeriod.month(year, month, zone)
    load = site_load(columns, period.start, period.end)
    bills = _site_bills(tariffs, load, period, zone)
    charges: list[DemandCharge] = []
    if pass_through_demand:
        for bill in bills:
            for line in bill.lines:
                if line.kind == "demand" and line.peak_window_start is not None and line.amount:
                    charges.append(
                        DemandCharge(
                            description=f"Demand charge ({bill.tariff}), {line.label}",
                            amount=line.amount,
                            window_start=line.peak_window_start,
                            window_end=line.peak_window_start + bill.demand_interval_s,
                        )
                    )
    price_fn = energy_price_fn(tariffs, zone)
    settlement = settle(
        Period(start=period.start, end=period.end),
        columns,
        assignments,
        price_fn,
        replace(fees, demand_charges=(*fees.demand_charges, *charges)),
    )
    return MonthSettlement(year=year, month=month, zone=tz, settlement=settlement, site_bills=tuple(bills))


def _site_bills(
    tariffs: Sequence[Tariff], load: list[tuple[int, int]], period: BillingPeriod, zone: ZoneInfo
) -> list[Bill]:
    """One bill per tariff in force during the month, each over its own part of the month.

    A rate change mid-month is prorated the way utilities bill a partial cycle: each tariff prices the
    energy of its part; demand is the peak *within* its part; per-day charges count the local days of its
    part; per-month fixed, demand and minimum charges are multiplied by the share of the month's seconds the
    tariff was in force. A tariff in force all month is untouched (share 1)."""
    parts: dict[str, list[tuple[int, int]]] = {}
    by_name = {t.name: t for t in tariffs}
    if len(by_name) != len(tariffs):
        raise TariffError("tariff names in a history must be unique")
    ordered = sorted(tariffs, key=lambda t: t.valid_from)
    for ts, joules in load:
        tariff = next((t for t in ordered if t.covers(ts)), None)
        if tariff is None:
            raise TariffError(f"no tariff in force at {ts} (UTC epoch s) inside the billing month")
        parts.setdefault(tariff.name, []).append((ts, joules))
    bills = []
    month_s = period.end - period.start
    for name, part in parts.items():
        tariff = by_name[name]
        sub = BillingPeriod(
            start=max(period.start, tariff.valid_from),
            end=period.end if tariff.valid_to is None else min(period.end, tariff.valid_to),
        )
        bill = price_load(tariff, part, period=sub, tz=zone)
        share = Fraction(sub.end - sub.start, month_s)
        bills.append(bill if share == 1 else _prorated(bill, share, tariff.minor_unit))
    return bills


_PRORATED_KINDS = ("demand", "minimum")


def _prorated(bill: Bill, share: Fraction, minor_unit: int) -> Bill:
    """Monthly amounts (fixed per month, demand, minimum) x `share` of the month, each rounded once again
    from its exact value; energy and per-day lines are already for the part alone."""
    lines = []
    for line in bill.lines:
        monthly = line.kind in _PRORATED_KINDS or (line.kind == "fixed" and line.unit == "month")
        if monthly:
            exact = line.exact_amount * share
            line = replace(
                line,
                label=f"{line.label} (prorated: {display(share * 100, 2)} % of the month)",
                exact_amount=exact,
                amount=round_money(exact, minor_unit),
            )
        lines.append(line)
    return replace(bill, lines=tuple(lines))
