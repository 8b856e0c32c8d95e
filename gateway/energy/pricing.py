"""Price a load under a tariff: interval energy -> bill lines (energy per period and tier, demand, fixed).

Pure: it takes a tariff, the load as `(interval_start, joules)` records, the billing period and the site's
zone, and returns a `Bill`. No clock, no store, no floats.

Why exact: each line's amount is computed as a `Fraction` (joules x $/kWh / 3,600,000; kW from joules /
seconds / 1000) and rounded once, half-to-even, to the currency's minor unit. So splitting a load across
more records, or feeding one miner's records in a different order, changes no line; the total is the sum
of the rounded lines, and it differs from the exact unrounded sum by at most half a minor unit per line.

Why demand comes from the records themselves: the peak that the utility bills is the highest average power
over one demand interval (a setting, 15/30/60 min). We sum the records whose start falls in each demand
window and divide by the window's length, so a window the meter only partly covered counts its missing
time as zero power - we never invent a peak, and curtailing elsewhere cannot move it. Windows are aligned
on the local wall clock (a 60-minute window in a UTC+05:30 zone starts on the local hour), and on the
autumn DST day the two 01:00 hours are two different windows.

The record contract (the meter keeps it, §5): a record lies inside one 15-minute interval and inside one
tariff period, so it is priced by the period in force at its start and belongs to the demand window of its
start. Tier limits (URDB `max`) are per billing period and per period, as URDB nests them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

from gateway.energy.bill import Bill, BillingPeriod, BillLine, PricingError
from gateway.energy.tariffs import (
    FlatEnergy,
    RatePeriod,
    RealTimeEnergy,
    Tariff,
    TouEnergy,
)
from gateway.energy.units import J_PER_KW_S, J_PER_KWH, kwh, round_money, site_zone, to_epoch

__all__ = ["Bill", "BillLine", "BillingPeriod", "LoadRecord", "PricingError", "price_load"]

LoadRecord = tuple[int | datetime, int]


def _line(
    tariff: Tariff,
    *,
    kind: str,
    label: str,
    quantity: Fraction,
    unit: str,
    rate: Decimal | None,
    exact: Fraction,
    period: str | None = None,
    tier: int | None = None,
    energy_j: int | None = None,
    peak_window_start: int | None = None,
) -> BillLine:
    return BillLine(
        kind=kind,
        label=label,
        quantity=quantity,
        unit=unit,
        rate=rate,
        exact_amount=exact,
        amount=round_money(exact, tariff.minor_unit),
        period=period,
        tier=tier,
        energy_j=energy_j,
        peak_window_start=peak_window_start,
    )


def _split_tiers(quantity: Fraction, caps: list[Fraction | None]) -> list[Fraction]:
    """`quantity` spread over cumulative tier caps; tier 1 always present, empty higher tiers dropped."""
    parts: list[Fraction] = []
    floor = Fraction(0)
    for i, cap in enumerate(caps):
        top = quantity if cap is None else min(quantity, cap)
        if i == 0 or top > floor:
            parts.append(max(Fraction(0), top - floor))
        if cap is None or quantity <= cap:
            break
        floor = cap
    return parts


def _tier_label(period: RatePeriod, tier: int) -> str:
    return period.name if len(period.tiers) == 1 else f"{period.name} tier {tier}"


def _energy_tier_lines(tariff: Tariff, period: RatePeriod, joules: int) -> list[BillLine]:
    # Tier caps become whole joules (a kWh limit with more than 5 decimals is off by < 1 J), so the tiers
    # of a period always add up to the period's joules exactly.
    caps: list[Fraction | None] = [
        None if t.limit is None else Fraction(round(Fraction(t.limit) * J_PER_KWH)) for t in period.tiers
    ]
    lines = []
    for i, part in enumerate(_split_tiers(Fraction(joules), caps), start=1):
        tier = period.tiers[i - 1]
        j = int(part)
        lines.append(
            _line(
                tariff,
                kind="energy",
                label=_tier_label(period, i),
                quantity=kwh(j),
                unit="kWh",
                rate=tier.rate,
                exact=kwh(j) * Fraction(tier.rate),
                period=period.name,
                tier=i,
                energy_j=j,
            )
        )
    return lines


def _demand_tier_lines(tariff: Tariff, period: RatePeriod, kw: Fraction, at: int) -> list[BillLine]:
    caps: list[Fraction | None] = [None if t.limit is None else Fraction(t.limit) for t in period.tiers]
    lines = []
    for i, part in enumerate(_split_tiers(kw, caps), start=1):
        tier = period.tiers[i - 1]
        lines.append(
            _line(
                tariff,
                kind="demand",
                label=f"{_tier_label(period, i)} peak demand",
                quantity=part,
                unit="kW",
                rate=tier.rate,
                exact=part * Fraction(tier.rate),
                period=period.name,
                tier=i,
                peak_window_start=at,
            )
        )
    return lines


def _window_start(ts: int, local: datetime, length_s: int) -> int:
    """Start of the demand window holding `ts`, aligned on the local clock (`local` is `ts` in the zone)."""
    offset = local.utcoffset()
    offset_s = int(offset.total_seconds()) if offset is not None else 0
    return ts - (ts + offset_s) % length_s


def price_load(
    tariff: Tariff, load: Iterable[LoadRecord], *, period: BillingPeriod, tz: str | ZoneInfo
) -> Bill:
    """Price `load` over `period` under `tariff`, resolving local time in the site zone `tz`.

    Records may repeat an instant (several miners, or a split interval): they add. Every record must lie in
    the billing period and in the tariff's validity; real-time energy must have a price."""
    zone = site_zone(tz)
    energy = tariff.energy
    demand = tariff.demand
    local_cache: dict[int, datetime] = {}

    def local(ts: int) -> datetime:
        found = local_cache.get(ts)
        if found is None:
            found = local_cache[ts] = datetime.fromtimestamp(ts, zone)
        return found

    joules_by_period: dict[str, int] = defaultdict(int)
    rt_cost = Fraction(0)  # sum of joules x $/kWh for real-time energy, divided by J_PER_KWH at the end
    window_j: dict[int, int] = defaultdict(int)
    total_j = 0
    for n, (raw_ts, joules) in enumerate(load, start=1):
        ts = to_epoch(raw_ts, what=f"load record {n}")
        if isinstance(joules, bool) or not isinstance(joules, int) or joules < 0:
            raise PricingError(f"load record {n}: joules must be a non-negative int, got {joules!r}")
        if not period.start <= ts < period.end:
            raise PricingError(f"load record {n} at {_iso(ts)} is outside the billing period")
        if not tariff.covers(ts):
            raise PricingError(f"load record {n} at {_iso(ts)} is outside tariff {tariff.name!r}'s validity")
        if isinstance(energy, TouEnergy):
            name = energy.schedule.period_at(local(ts))
        elif isinstance(energy, RealTimeEnergy):
            name = energy.period
            i = energy.prices.index_of(ts)
            if i is None:
                raise PricingError(f"load record {n} at {_iso(ts)}: no real-time price for that interval")
            rt_cost += joules * Fraction(energy.prices.prices_per_kwh[i])
        else:
            name = energy.period
        joules_by_period[name] += joules
        window_j[_window_start(ts, local(ts), demand.interval_s)] += joules
        total_j += joules

    lines: list[BillLine] = []
    lines += _energy_lines(tariff, joules_by_period, rt_cost)
    peak_kw, peak_at = Fraction(0), None
    window_kw = {w: Fraction(j, demand.interval_s * J_PER_KW_S) for w, j in window_j.items()}
    for w in sorted(window_kw):
        if window_kw[w] > peak_kw:
            peak_kw, peak_at = window_kw[w], w
    lines += _demand_lines(tariff, window_kw, local)
    lines += _fixed_and_minimum_lines(tariff, lines, period.local_days(zone))
    order = _period_order(tariff)
    return Bill(
        tariff=tariff.name,
        period=period,
        currency=tariff.currency,
        lines=tuple(lines),
        energy_j=total_j,
        energy_j_by_period=tuple(sorted(joules_by_period.items(), key=lambda kv: order.get(kv[0], 0))),
        demand_interval_s=demand.interval_s,
        peak_kw=peak_kw,
        peak_window_start=peak_at,
    )


def _fixed_and_minimum_lines(tariff: Tariff, lines: list[BillLine], days: int) -> list[BillLine]:
    """Fixed charges, then the minimum-charge top-up measured against every line before it."""
    out: list[BillLine] = []
    fixed = tariff.fixed
    if fixed.per_month:
        out.append(
            _line(
                tariff,
                exact=Fraction(fixed.per_month),
                kind="fixed",
                label="fixed charge per month",
                quantity=Fraction(1),
                unit="month",
                rate=fixed.per_month,
            )
        )
    if fixed.per_day:
        out.append(
            _line(
                tariff,
                exact=days * Fraction(fixed.per_day),
                kind="fixed",
                label="fixed charge per day",
                quantity=Fraction(days),
                unit="day",
                rate=fixed.per_day,
            )
        )
    if tariff.minimum is not None:
        count = days if tariff.minimum.per == "day" else 1
        floor = round_money(count * Fraction(tariff.minimum.amount), tariff.minor_unit)
        subtotal = sum((line.amount for line in [*lines, *out]), Decimal("0"))
        if subtotal < floor:
            top_up = Fraction(floor - subtotal)
            out.append(
                _line(
                    tariff,
                    exact=top_up,
                    kind="minimum",
                    label=f"minimum charge ({floor} per billing period)",
                    quantity=top_up,
                    unit="$",
                    rate=None,
                )
            )
    return out


def _period_order(tariff: Tariff) -> dict[str, int]:
    if isinstance(tariff.energy, TouEnergy):
        return {p.name: i for i, p in enumerate(tariff.energy.periods)}
    return {}


def _energy_lines(tariff: Tariff, joules_by_period: dict[str, int], rt_cost: Fraction) -> list[BillLine]:
    energy = tariff.energy
    lines: list[BillLine] = []
    if isinstance(energy, FlatEnergy):
        j = joules_by_period.get(energy.period, 0)
        lines.append(
            _line(
                tariff,
                exact=kwh(j) * Fraction(energy.rate_per_kwh),
                kind="energy",
                label=energy.period,
                quantity=kwh(j),
                unit="kWh",
                rate=energy.rate_per_kwh,
                period=energy.period,
                tier=1,
                energy_j=j,
            )
        )
    elif isinstance(energy, RealTimeEnergy):
        j = joules_by_period.get(energy.period, 0)
        lines.append(
            _line(
                tariff,
                exact=rt_cost / J_PER_KWH,
                kind="energy",
                label=f"{energy.period} market price",
                quantity=kwh(j),
                unit="kWh",
                rate=None,
                period=energy.period,
                energy_j=j,
            )
        )
        if energy.adder_per_kwh:
            lines.append(
                _line(
                    tariff,
                    exact=kwh(j) * Fraction(energy.adder_per_kwh),
                    kind="energy",
                    label=f"{energy.period} adder",
                    quantity=kwh(j),
                    unit="kWh",
                    rate=energy.adder_per_kwh,
                    period=energy.period,
                    energy_j=j,
                )
            )
    else:
        for p in energy.periods:
            if p.name not in joules_by_period:
                continue
            lines += _energy_tier_lines(tariff, p, joules_by_period[p.name])
    return lines


def _demand_lines(
    tariff: Tariff, window_kw: dict[int, Fraction], to_local: Callable[[int], datetime]
) -> list[BillLine]:
    demand = tariff.demand
    lines: list[BillLine] = []
    if demand.tou_schedule is not None:
        peaks: dict[str, tuple[Fraction, int]] = {}
        for w in sorted(window_kw):
            name = demand.tou_schedule.period_at(to_local(w))
            if name not in peaks or window_kw[w] > peaks[name][0]:
                peaks[name] = (window_kw[w], w)
        for p in demand.tou_periods:
            if p.name in peaks:
                lines += _demand_tier_lines(tariff, p, *peaks[p.name])
    if demand.flat_periods:
        flat_peaks: dict[str, tuple[Fraction, int]] = {}
        for w in sorted(window_kw):
            flat = demand.flat_months[to_local(w).month - 1]
            if flat is not None and (flat not in flat_peaks or window_kw[w] > flat_peaks[flat][0]):
                flat_peaks[flat] = (window_kw[w], w)
        for p in demand.flat_periods:
            if p.name in flat_peaks:
                lines += _demand_tier_lines(tariff, p, *flat_peaks[p.name])
    return lines


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")
