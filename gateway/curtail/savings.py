"""What curtailment saved, and what it cost in mining revenue (pure): per day, strategy and customer.

Two measures of the energy not drawn, because neither is right alone:

- conservative: the profile's watts for the mode the miner would have run, times the curtailed time,
  minus the energy it actually drew while curtailed (sleep draw). It needs no history and never credits
  more than the maker's figure, which is what a contract credit should rest on.
- baseline: the miner's own same-hour historical average power (from the metered tiers), times the
  curtailed time, minus actual. Closer to what the utility meter saw for a machine that runs hotter or
  cooler than its spec; unavailable (None) where there is no history.

Neither is clipped at zero per interval: a miner that drew more while "curtailed" than its reference is
a real negative saving, and hiding it would overstate the total. Credit lines clip the *total* at zero.

Cost saved = saved kWh x the interval's price; revenue forgone = the hashrate it would have made x
curtailed time x hashprice x (1 - pool fee); net benefit = conservative cost saved - revenue forgone.
Every money figure is summed exactly (`Fraction`) and rounded once per output line, half to even.

The output converts to settlement credit lines (`gateway.energy.settlement_model.Credit`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Literal

from gateway.energy.settlement_model import Assignment, Credit
from gateway.energy.units import J_PER_KWH, round_money

DAY_S = 86_400
UNASSIGNED = "(site)"


def _exact(value: float | Decimal) -> Fraction:
    """A float's *intended* decimal value (3050.0, 98.5), not its binary expansion."""
    if isinstance(value, Decimal):
        return Fraction(value)
    return Fraction(Decimal(repr(float(value))))


@dataclass(frozen=True, slots=True, kw_only=True)
class CurtailedInterval:
    """One miner curtailed for `curtailed_s` seconds of the interval starting at `interval_start`.

    `actual_j` is the metered energy over those seconds; `profile_w` and `ths` the profile's figures for
    the mode it would have run; `baseline_w` its same-hour historical average (None: no history)."""

    miner_id: str
    interval_start: int
    curtailed_s: int
    actual_j: int
    profile_w: float
    ths: float
    price_per_kwh: Decimal
    strategy: str
    baseline_w: float | None = None

    def __post_init__(self) -> None:
        if self.curtailed_s < 0 or self.actual_j < 0:
            raise ValueError(f"{self.miner_id}@{self.interval_start}: curtailed_s and actual_j must be >= 0")
        if self.profile_w < 0 or self.ths < 0 or (self.baseline_w is not None and self.baseline_w < 0):
            raise ValueError(f"{self.miner_id}@{self.interval_start}: watts and TH/s must be >= 0")
        if not isinstance(self.price_per_kwh, Decimal) or not self.price_per_kwh.is_finite():
            raise TypeError(f"{self.miner_id}@{self.interval_start}: price_per_kwh must be a finite Decimal")


@dataclass(frozen=True, slots=True, kw_only=True)
class Economics:
    hashprice_usd_per_th_day: Decimal
    pool_fee: Decimal = Decimal(0)  # a fraction: 0.02 for 2 %
    currency_minor_units: int = 2

    def __post_init__(self) -> None:
        if not (isinstance(self.hashprice_usd_per_th_day, Decimal) and isinstance(self.pool_fee, Decimal)):
            raise TypeError("hashprice and pool fee must be Decimals")
        if self.hashprice_usd_per_th_day < 0 or not 0 <= self.pool_fee < 1:
            raise ValueError("hashprice must be >= 0 and pool_fee in [0, 1)")


@dataclass(frozen=True, slots=True, kw_only=True)
class SavingsLine:
    """One (day, strategy, customer). Energy in joules; money rounded once, here."""

    day: dt.date
    strategy: str
    customer_id: str
    curtailed_s: int
    conservative_saved_j: int
    baseline_saved_j: int | None  # over `baseline_covered_s` only; None when no interval had history
    baseline_covered_s: int
    conservative_cost_saved: Decimal
    baseline_cost_saved: Decimal | None
    revenue_forgone: Decimal
    net_benefit: Decimal


@dataclass(slots=True)
class _Acc:
    curtailed_s: int = 0
    cons_j: Fraction = Fraction(0)
    base_j: Fraction = Fraction(0)
    base_s: int = 0
    cons_cost: Fraction = Fraction(0)
    base_cost: Fraction = Fraction(0)
    revenue: Fraction = Fraction(0)


def _customer(miner_id: str, ts: int, assignments: Sequence[Assignment]) -> str:
    for a in assignments:
        if a.miner_id == miner_id and a.start <= ts and (a.end is None or ts < a.end):
            return a.customer_id
    return UNASSIGNED


def attribute(
    intervals: Iterable[CurtailedInterval],
    economics: Economics,
    *,
    assignments: Sequence[Assignment] = (),
    tz: dt.tzinfo = dt.UTC,
) -> list[SavingsLine]:
    """Savings per (local day in `tz`, strategy, customer), sorted by those keys."""
    acc: dict[tuple[dt.date, str, str], _Acc] = {}
    revenue_factor = _exact(economics.hashprice_usd_per_th_day) * (1 - _exact(economics.pool_fee)) / DAY_S
    for row in intervals:
        day = dt.datetime.fromtimestamp(row.interval_start, tz).date()
        key = (day, row.strategy, _customer(row.miner_id, row.interval_start, assignments))
        a = acc.setdefault(key, _Acc())
        price = _exact(row.price_per_kwh) / J_PER_KWH
        cons = _exact(row.profile_w) * row.curtailed_s - row.actual_j
        a.curtailed_s += row.curtailed_s
        a.cons_j += cons
        a.cons_cost += cons * price
        if row.baseline_w is not None:
            base = _exact(row.baseline_w) * row.curtailed_s - row.actual_j
            a.base_j += base
            a.base_s += row.curtailed_s
            a.base_cost += base * price
        a.revenue += _exact(row.ths) * row.curtailed_s * revenue_factor
    units = economics.currency_minor_units
    lines = []
    for (day, strategy, customer), a in sorted(acc.items()):
        cons_cost = round_money(a.cons_cost, units)
        revenue = round_money(a.revenue, units)
        has_base = a.base_s > 0
        lines.append(
            SavingsLine(
                day=day,
                strategy=strategy,
                customer_id=customer,
                curtailed_s=a.curtailed_s,
                conservative_saved_j=round(a.cons_j),
                baseline_saved_j=round(a.base_j) if has_base else None,
                baseline_covered_s=a.base_s,
                conservative_cost_saved=cons_cost,
                baseline_cost_saved=round_money(a.base_cost, units) if has_base else None,
                revenue_forgone=revenue,
                # from the exact figures, so net is not a difference of two rounded numbers
                net_benefit=round_money(a.cons_cost - a.revenue, units),
            )
        )
    return lines


def credit_lines(
    lines: Iterable[SavingsLine],
    *,
    basis: Literal["conservative", "baseline"] = "conservative",
    per_kwh: Decimal | None = None,
    share: Decimal = Decimal(1),
    label: str = "Curtailment credit",
) -> list[Credit]:
    """Settlement credits, one per (customer, strategy), for customers only (not the site's own miners).

    With `per_kwh` (a contract's credit rate) the credit is the saved energy at that rate; without it, a
    lump `share` of the saved energy cost (summed from the per-day rounded lines). A total at or below
    zero gives no credit line."""
    if not isinstance(share, Decimal) or not 0 <= share <= 1:
        raise ValueError("share must be a Decimal in [0, 1]")
    energy: dict[tuple[str, str], int] = {}
    money: dict[tuple[str, str], Decimal] = {}
    for line in lines:
        if line.customer_id == UNASSIGNED:
            continue
        key = (line.customer_id, line.strategy)
        saved_j = line.conservative_saved_j if basis == "conservative" else line.baseline_saved_j
        cost = line.conservative_cost_saved if basis == "conservative" else line.baseline_cost_saved
        energy[key] = energy.get(key, 0) + (saved_j or 0)
        money[key] = money.get(key, Decimal(0)) + (cost or Decimal(0))
    credits = []
    for (customer, strategy), saved_j in sorted(energy.items()):
        if saved_j <= 0:
            continue
        description = f"{label} ({strategy}, {basis})"
        if per_kwh is not None:
            credits.append(
                Credit(customer_id=customer, description=description, energy_j=saved_j, per_kwh=per_kwh)
            )
            continue
        amount = round_money(Fraction(money[(customer, strategy)]) * Fraction(share))
        if amount > 0:
            credits.append(Credit(customer_id=customer, description=description, amount=amount))
    return credits
