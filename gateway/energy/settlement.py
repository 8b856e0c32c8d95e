"""Settlement (pure): a period's metered energy, who owned each miner when, the prices and the site's fee
schedule -> one invoice *draft* per customer, the site's totals and the unassigned remainder.

Pure on purpose (ARCHITECTURE §2, §5): no store, no clock, no network. The same inputs give the same
`Settlement`, so a customer (or `tests/energy/reference_settlement.py`) can recompute any draft from its
evidence and must land on the same cents.

Exactness, in order:
1. Energy is integer joules end to end. Splitting a row between owners follows the cumulative rule in
   `settlement_alloc` (pieces always sum to the row; moving a boundary by one second moves exactly that
   second's energy), so customers + unassigned = site, to the joule.
2. Money is exact (`Fraction`) until the last step of each line, which rounds once, half-even, to the
   currency's minor unit. An energy line is sum(joules x price) / 3.6e6 over its intervals, computed as
   one big integer sum (prices scaled to a common power-of-ten denominator), never through a float or
   a per-interval rounding.
3. Percentage lines (service fee, tax) apply to the *rounded* amounts printed above them. That is what
   a customer can check with a calculator on the draft itself, and it is still one rounding per line.
4. The draft's total is the sum of its rounded lines, so the lines always add up to the total.

The lines of a draft, in order: energy (one per distinct price when the period has at most
`max_energy_lines` of them, e.g. flat or TOU; otherwise one line at real-time prices with its
volume-weighted average), facility overhead (PUE at the interval prices, or a per-kWh adder), per-kWh
adders, fixed fees, credits (negative), service fee (% of energy + facility), tax (% of everything
above). Per-kWh adders apply to metered energy, not to PUE overhead energy.

Every draft and the settlement carry `NO_MONEY_NOTICE`: these are drafts and evidence; this product never
moves, holds or pays out money.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from fractions import Fraction

import numpy as np

from gateway.energy.settlement_alloc import I64, Allocation, allocate, build_timelines
from gateway.energy.settlement_model import (
    J_PER_KWH,
    NO_MONEY_NOTICE,
    Assignment,
    Credit,
    DemandCharge,
    FacilityAdder,
    FeeSchedule,
    FixedFee,
    IntervalColumns,
    IntervalRow,
    KwhAdder,
    Period,
    Pue,
    round_half_even,
)
from gateway.energy.settlement_output import EnergyFigure, InvoiceDraft, InvoiceLine, LineKind, Settlement
from gateway.metering import INTERVAL_S

__all__ = [
    "J_PER_KWH",
    "NO_MONEY_NOTICE",
    "Assignment",
    "Credit",
    "DemandCharge",
    "EnergyFigure",
    "FacilityAdder",
    "FeeSchedule",
    "FixedFee",
    "IntervalColumns",
    "IntervalRow",
    "InvoiceDraft",
    "InvoiceLine",
    "KwhAdder",
    "LineKind",
    "Period",
    "PriceFn",
    "Pue",
    "Settlement",
    "settle",
]

PriceFn = Callable[[int], Decimal]
"""Energy price in currency per kWh for the interval starting at the given UTC epoch second."""

DEFAULT_CHUNK_ROWS = 2_000_000
_AVG_PRICE_PLACES = 6  # display of a volume-weighted average price; never used to compute an amount
_KWH_PLACES = 3


def settle(
    period: Period | tuple[int, int],
    interval_energy: IntervalColumns | Iterable[IntervalRow],
    assignments: Iterable[Assignment],
    price_fn: PriceFn,
    fees: FeeSchedule,
    *,
    interval_s: int = INTERVAL_S,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> Settlement:
    """Settle `period` (UTC `[start, end)`, on the `interval_s` grid).

    `price_fn` is called once per interval of the period, in time order; it must return a finite
    `Decimal`, which holds for the whole interval (TOU periods change on the hour and real-time
    settlement points price 15-minute intervals; a 5-minute feed is averaged by the tariff helper).
    Rows outside the period are ignored. Invoiced customers: everyone with an assignment
    overlapping the period, or named by a fixed fee or a credit. `chunk_rows` bounds the working memory
    (rows processed at once); it never changes the result."""
    p = period if isinstance(period, Period) else Period(start=period[0], end=period[1])
    if p.start % interval_s or p.end % interval_s:
        raise ValueError(f"period [{p.start}, {p.end}) is not on the {interval_s} s interval grid")
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be >= 1")
    columns = (
        interval_energy
        if isinstance(interval_energy, IntervalColumns)
        else IntervalColumns.from_rows(interval_energy)
    )
    assignments = tuple(assignments)
    named = {c for f in fees.fixed_fees if f.customers for c in f.customers}
    named |= {c.customer_id for c in fees.credits}
    customers = sorted(
        {a.customer_id for a in assignments if a.start < p.end and (a.end is None or a.end > p.start)} | named
    )
    owner_of = {c: i + 1 for i, c in enumerate(customers)}
    prices, group = _price_groups(p, price_fn, interval_s)
    timelines = build_timelines(
        assignments, start=p.start, end=p.end, owner_of=owner_of, miner_ids=columns.miner_ids
    )
    alloc = allocate(
        columns,
        timelines,
        start=p.start,
        end=p.end,
        interval_s=interval_s,
        group=group,
        n_owners=len(customers) + 1,
        chunk_rows=chunk_rows,
    )
    totals = _figures(alloc, by_group=False)
    # Per-price figures only when the drafts show per-price lines: a real-time month has ~3,000 prices.
    by_group = _figures(alloc, by_group=True) if len(prices) <= fees.max_energy_lines else None
    costs = _energy_costs(alloc, prices)
    demand = [
        _demand_shares(columns, assignments, owner_of, dc, p, interval_s, chunk_rows)
        for dc in fees.demand_charges
    ]
    invoices = tuple(
        _draft(
            customer,
            p,
            fees,
            prices,
            totals[o][0],
            None if by_group is None else by_group[o],
            costs[o],
            [(dc, shares[o], sum(shares)) for dc, shares in zip(fees.demand_charges, demand, strict=True)],
        )
        for customer, o in owner_of.items()
    )
    places = fees.minor_units
    unassigned = totals[0][0]
    host_demand = sum(
        (
            _demand_amount(dc, shares[0], sum(shares), host=True)
            for dc, shares in zip(fees.demand_charges, demand, strict=True)
        ),
        Fraction(0),
    )
    return Settlement(
        period=p,
        currency=fees.currency,
        invoices=invoices,
        site_energy=sum((f[0] for f in totals), EnergyFigure()),
        unassigned_energy=unassigned,
        site_energy_cost=round_half_even(sum(costs, Fraction(0)), places),
        unassigned_energy_cost=round_half_even(costs[0], places),
        invoiced_total=round_half_even(sum((Fraction(inv.total) for inv in invoices), Fraction(0)), places),
        price_count=len(prices),
        unassigned_demand_cost=round_half_even(host_demand, places),
        notice=NO_MONEY_NOTICE,
    )


def _demand_shares(
    columns: IntervalColumns,
    assignments: Sequence[Assignment],
    owner_of: dict[str, int],
    dc: DemandCharge,
    p: Period,
    interval_s: int,
    chunk_rows: int,
) -> list[int]:
    """Joules per owner (index 0: unassigned) inside the demand charge's peak window, split at ownership
    changes exactly as the period's energy is (the same allocation code on the window's rows only)."""
    if dc.window_start % interval_s or dc.window_end % interval_s:
        raise ValueError(f"demand charge {dc.description!r}: peak window is not on the {interval_s} s grid")
    if dc.window_start < p.start or dc.window_end > p.end:
        raise ValueError(f"demand charge {dc.description!r}: peak window lies outside the period")
    st = np.asarray(columns.interval_start)
    rows = np.flatnonzero((st >= dc.window_start) & (st < dc.window_end))
    window = IntervalColumns(
        miner_ids=columns.miner_ids,
        miner=np.asarray(columns.miner)[rows],
        interval_start=st[rows],
        joules=np.asarray(columns.joules)[rows],
        covered_s=np.asarray(columns.covered_s)[rows],
        uncovered_s=np.asarray(columns.uncovered_s)[rows],
        estimated_s=np.asarray(columns.estimated_s)[rows],
    )
    timelines = build_timelines(
        assignments,
        start=dc.window_start,
        end=dc.window_end,
        owner_of=owner_of,
        miner_ids=columns.miner_ids,
    )
    n_intervals = (dc.window_end - dc.window_start) // interval_s
    alloc = allocate(
        window,
        timelines,
        start=dc.window_start,
        end=dc.window_end,
        interval_s=interval_s,
        group=np.zeros(n_intervals, dtype=np.int64),
        n_owners=len(owner_of) + 1,
        chunk_rows=chunk_rows,
    )
    return [int(x) for x in alloc.energy_j.sum(axis=1).tolist()]


def _demand_amount(dc: DemandCharge, owner_j: int, window_j: int, *, host: bool = False) -> Fraction:
    """An owner's exact share of a demand charge; a peak window without metered load is all the host's
    (no customer caused it)."""
    if window_j == 0:
        return Fraction(dc.amount) if host else Fraction(0)
    return Fraction(dc.amount) * owner_j / window_j


def _price_groups(p: Period, price_fn: PriceFn, interval_s: int) -> tuple[list[Decimal], I64]:
    """The period's distinct prices, ascending, and each interval's index into them."""
    raw: list[Decimal] = []
    for t in range(p.start, p.end, interval_s):
        price = price_fn(t)
        if not isinstance(price, Decimal) or not price.is_finite():
            raise TypeError(f"price_fn({t}) returned {price!r}; a price must be a finite decimal.Decimal")
        raw.append(price)
    distinct = sorted(dict.fromkeys(raw))  # equal values collapse; the first spelling seen is kept
    index = {d: i for i, d in enumerate(distinct)}
    return distinct, np.fromiter((index[x] for x in raw), dtype=np.int64, count=len(raw))


def _figures(alloc: Allocation, *, by_group: bool) -> list[list[EnergyFigure]]:
    """EnergyFigure per owner and price group (or per owner, summed over groups, as a 1-list), from the
    allocation's integer arrays."""
    arrays = [alloc.energy_j, alloc.estimated_j, alloc.miner_s]
    arrays += [alloc.covered_s, alloc.uncovered_s, alloc.estimated_s]
    if not by_group:
        arrays = [a.sum(axis=1, keepdims=True) for a in arrays]
    lists = [a.tolist() for a in arrays]
    return [
        [
            EnergyFigure(energy_j=j, estimated_j=ej, miner_s=ms, covered_s=cs, uncovered_s=us, estimated_s=es)
            for j, ej, ms, cs, us, es in zip(*(rows[o] for rows in lists), strict=True)
        ]
        for o in range(alloc.energy_j.shape[0])
    ]


def _energy_costs(alloc: Allocation, prices: Sequence[Decimal]) -> list[Fraction]:
    """Exact energy cost per owner: sum over price groups of joules x price / 3.6e6, as one integer sum
    over a common denominator (prices are decimals, so a power of ten always is one)."""
    fracs = [Fraction(pr) for pr in prices]
    den = math.lcm(1, *(f.denominator for f in fracs))
    nums = [f.numerator * (den // f.denominator) for f in fracs]
    return [
        Fraction(sum(j * n for j, n in zip(row, nums, strict=True)), den * J_PER_KWH)
        for row in alloc.energy_j.tolist()
    ]


def _kwh(energy_j: int | Fraction) -> Decimal:
    return round_half_even(Fraction(energy_j) / J_PER_KWH, _KWH_PLACES)


def _per_kwh_amount(energy_j: int, per_kwh: Decimal) -> Fraction:
    return Fraction(energy_j) * Fraction(per_kwh) / J_PER_KWH


def _percent_rate(pct: Decimal) -> Decimal:
    """pct / 100 as an exact Decimal (a shift of the exponent; no context rounding)."""
    sign, digits, exp = pct.as_tuple()
    assert isinstance(exp, int)  # finite, checked by FeeSchedule
    return Decimal((sign, digits, exp - 2))


def _draft(
    customer: str,
    p: Period,
    fees: FeeSchedule,
    prices: Sequence[Decimal],
    energy: EnergyFigure,
    by_group: Sequence[EnergyFigure] | None,
    energy_cost: Fraction,
    demand: Sequence[tuple[DemandCharge, int, int]],
) -> InvoiceDraft:
    places = fees.minor_units
    cur = fees.currency
    avg = (
        round_half_even(energy_cost * J_PER_KWH / energy.energy_j, _AVG_PRICE_PLACES)
        if energy.energy_j
        else None
    )
    lines: list[InvoiceLine] = []

    def line(
        kind: LineKind,
        text: str,
        qty: Decimal,
        unit: str,
        price: Decimal | None,
        exact: Fraction,
        fig: EnergyFigure | None = None,
    ) -> None:
        lines.append(
            InvoiceLine(
                kind=kind,
                description=text,
                quantity=qty,
                unit=unit,
                unit_price=price,
                amount=round_half_even(exact, places),
                energy=fig,
            )
        )

    if by_group is not None:
        for price, fig in zip(prices, by_group, strict=True):
            if fig.energy_j:
                exact = _per_kwh_amount(fig.energy_j, price)
                line(LineKind.ENERGY, f"Energy at {price} {cur}/kWh", fig.kwh, "kWh", price, exact, fig)
        if not energy.energy_j:
            line(LineKind.ENERGY, "Energy", energy.kwh, "kWh", None, Fraction(0), energy)
    else:
        text = f"Energy at real-time prices ({len(prices)} prices; unit price is the volume-weighted average)"
        line(LineKind.ENERGY, text, energy.kwh, "kWh", avg, energy_cost, energy)

    facility = fees.facility
    if isinstance(facility, Pue):
        over = Fraction(facility.factor) - 1
        text = (
            f"Facility overhead (PUE {facility.factor}): {facility.factor - 1} x metered energy at its prices"
        )
        qty = _kwh(energy.energy_j * over)
        line(LineKind.FACILITY, text, qty, "kWh", avg, energy_cost * over, energy)
    elif isinstance(facility, FacilityAdder):
        exact = _per_kwh_amount(energy.energy_j, facility.per_kwh)
        line(LineKind.FACILITY, facility.description, energy.kwh, "kWh", facility.per_kwh, exact, energy)
    for adder in fees.adders:
        exact = _per_kwh_amount(energy.energy_j, adder.per_kwh)
        line(LineKind.ADDER, adder.description, energy.kwh, "kWh", adder.per_kwh, exact, energy)
    for dc, owner_j, window_j in demand:
        window_s = dc.window_end - dc.window_start
        coincident_kw = round_half_even(Fraction(owner_j, window_s * 1000), _KWH_PLACES)
        site_kw = round_half_even(Fraction(window_j, window_s * 1000), _KWH_PLACES)
        text = f"{dc.description}: your {coincident_kw} kW of the site's {site_kw} kW peak"
        line(LineKind.DEMAND, text, coincident_kw, "kW", None, _demand_amount(dc, owner_j, window_j))
    for fee in fees.fixed_fees:
        if fee.customers is None or customer in fee.customers:
            line(LineKind.FIXED, fee.description, Decimal(1), "period", fee.amount, Fraction(fee.amount))
    for credit in fees.credits:
        if credit.customer_id != customer:
            continue
        if credit.amount is not None:
            line(
                LineKind.CREDIT,
                credit.description,
                Decimal(1),
                "credit",
                -credit.amount,
                -Fraction(credit.amount),
            )
        else:
            assert credit.energy_j is not None and credit.per_kwh is not None  # Credit validates the pair
            exact = -_per_kwh_amount(credit.energy_j, credit.per_kwh)
            line(LineKind.CREDIT, credit.description, _kwh(credit.energy_j), "kWh", -credit.per_kwh, exact)
    if fees.service_fee_pct:
        base = sum((ln.amount for ln in lines if ln.kind in (LineKind.ENERGY, LineKind.FACILITY)), Decimal(0))
        rate = _percent_rate(fees.service_fee_pct)
        text = f"Service fee ({fees.service_fee_pct} % of energy and facility)"
        line(LineKind.SERVICE, text, base, cur, rate, Fraction(base) * Fraction(rate))
    if fees.tax_pct:
        base = sum((ln.amount for ln in lines), Decimal(0))
        rate = _percent_rate(fees.tax_pct)
        line(LineKind.TAX, f"Tax ({fees.tax_pct} %)", base, cur, rate, Fraction(base) * Fraction(rate))
    total = round_half_even(sum((Fraction(ln.amount) for ln in lines), Fraction(0)), places)
    return InvoiceDraft(
        customer_id=customer,
        period=p,
        currency=cur,
        lines=tuple(lines),
        energy=energy,
        total=total,
        notice=NO_MONEY_NOTICE,
    )
