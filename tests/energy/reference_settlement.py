"""An independent reference settlement, for the property tests: plain Python and `fractions.Fraction`,
one row and one second of thought at a time, written to be read, not to be fast.

It shares no code with `gateway.energy.settlement*`: it reads the same input objects (their attributes
only: they are the data the test generates) and writes the specification out again from scratch:

- A miner's owner at instant t is the customer of the assignment with start <= t < end, else nobody.
- A row of interval [s, s + 900) with an owner change at instants c (s < c < s + 900) is cut into pieces.
  A piece [a, b) receives, for every integer quantity X of the row, X(b) - X(a), where, for the offset
  t in [0, 900]:
      energy J(t) = floor(joules * t / 900)
      accounted A(t) = floor((covered + uncovered) * t / 900)
      covered C(t) = floor(covered * A(t) / (covered + uncovered))  (0 without accounted time)
      uncovered = accounted piece - covered piece
      estimated seconds S(t) = floor(estimated * C(t) / covered)    (0 without covered time)
      estimated joules E(t) = floor(floor(joules * estimated / covered) * J(t) / joules)
- A customer's miner-seconds are the seconds their assignments cover inside the period; the unassigned
  remainder's are its accounted (covered + uncovered) seconds.
- Energy cost = sum over pieces of joules x price(interval) / 3,600,000, exactly.
- Lines: energy (per distinct price of the period if there are at most `max_energy_lines`, else one),
  facility (PUE: (factor - 1) x energy cost; adder: kWh x price), adders, demand charge shares (the
  charge x the owner's joules in its peak window / everyone's joules there, unassigned included; nothing
  when the window has no energy), fixed fees, credits (negative),
  service fee (% of the rounded energy and facility lines), tax (% of all rounded lines above). Each
  amount rounded once, half to even, to cents (or the currency's minor unit). Total = sum of lines.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from fractions import Fraction
from itertools import pairwise
from typing import Any

SECONDS_PER_INTERVAL = 900
JOULES_PER_KWH = 3_600_000
UNASSIGNED = None
FIELDS = ("energy_j", "estimated_j", "miner_s", "covered_s", "uncovered_s", "estimated_s")


def to_money(value: Fraction, places: int) -> Decimal:
    """Round once, half to even (Python's round() on a Fraction does exactly that), then write it as a
    Decimal with `places` decimals."""
    rounded = round(value, places)
    text = f"{rounded.numerator * 10**places // rounded.denominator}"
    return Decimal(text).scaleb(-places) if places else Decimal(text)


def owner_at(assignments: list[Any], miner: str, t: int) -> str | None:
    for a in assignments:
        if a.miner_id == miner and a.start <= t and (a.end is None or t < a.end):
            return str(a.customer_id)
    return UNASSIGNED


def row_at(row: Any, t: int) -> dict[str, int]:
    """The row's cumulative quantities at offset t, exactly as the specification above says."""
    length = SECONDS_PER_INTERVAL
    joules, covered, uncovered, estimated = row.joules, row.covered_s, row.uncovered_s, row.estimated_s
    accounted = covered + uncovered
    energy_t = joules * t // length
    accounted_t = accounted * t // length
    covered_t = covered * accounted_t // accounted if accounted > 0 else 0
    estimated_t = estimated * covered_t // covered if covered > 0 else 0
    estimated_joules = joules * estimated // covered if covered > 0 else 0
    est_energy_t = estimated_joules * energy_t // joules if joules > 0 else 0
    return {
        "energy_j": energy_t,
        "estimated_j": est_energy_t,
        "accounted": accounted_t,
        "covered_s": covered_t,
        "estimated_s": estimated_t,
    }


def reference_settle(
    period: tuple[int, int],
    rows: list[Any],
    assignments: list[Any],
    price_fn: Any,
    fees: Any,
) -> dict[str, Any]:
    start, end = period
    places = {"JPY": 0, "KRW": 0, "ISK": 0, "CLP": 0, "VND": 0, "BHD": 3, "KWD": 3, "OMR": 3, "JOD": 3}.get(
        fees.currency.upper(), 2
    )
    interval_starts = list(range(start, end, SECONDS_PER_INTERVAL))
    price = {s: price_fn(s) for s in interval_starts}
    distinct_prices = sorted(set(price.values()))

    # totals[owner][price] -> {field: int}; cost[owner] -> Fraction
    totals: dict[str | None, dict[Decimal, dict[str, int]]] = defaultdict(
        lambda: defaultdict(lambda: dict.fromkeys(FIELDS, 0))
    )
    cost: dict[str | None, Fraction] = defaultdict(Fraction)
    demand_charges = list(getattr(fees, "demand_charges", ()))
    in_window: list[dict[str | None, int]] = [defaultdict(int) for _ in demand_charges]

    for row in rows:
        s = row.interval_start
        if not start <= s < end:
            continue
        cuts = {0, SECONDS_PER_INTERVAL}
        for a in assignments:
            if a.miner_id != row.miner_id:
                continue
            for instant in (a.start, a.end):
                if instant is not None and s < instant < s + SECONDS_PER_INTERVAL:
                    cuts.add(instant - s)
        points = sorted(cuts)
        for a, b in pairwise(points):
            owner = owner_at(assignments, row.miner_id, s + a)
            lo, hi = row_at(row, a), row_at(row, b)
            cell = totals[owner][price[s]]
            piece_j = hi["energy_j"] - lo["energy_j"]
            cell["energy_j"] += piece_j
            cell["estimated_j"] += hi["estimated_j"] - lo["estimated_j"]
            cell["covered_s"] += hi["covered_s"] - lo["covered_s"]
            cell["uncovered_s"] += (hi["accounted"] - lo["accounted"]) - (hi["covered_s"] - lo["covered_s"])
            cell["estimated_s"] += hi["estimated_s"] - lo["estimated_s"]
            cost[owner] += Fraction(piece_j) * Fraction(price[s]) / JOULES_PER_KWH
            for k, charge in enumerate(demand_charges):
                if charge.window_start <= s < charge.window_end:
                    in_window[k][owner] += piece_j

    # Assigned miner-seconds, interval by interval.
    for a in assignments:
        for s in interval_starts:
            first = max(a.start, s)
            last = min(a.end if a.end is not None else end, s + SECONDS_PER_INTERVAL)
            if last > first:
                totals[a.customer_id][price[s]]["miner_s"] += last - first
    for cell in totals[UNASSIGNED].values():
        cell["miner_s"] = cell["covered_s"] + cell["uncovered_s"]

    def figure(owner: str | None, only_price: Decimal | None = None) -> dict[str, int]:
        out = dict.fromkeys(FIELDS, 0)
        for p, cell in totals.get(owner, {}).items():
            if only_price is None or p == only_price:
                for f in FIELDS:
                    out[f] += cell[f]
        return out

    customers = {a.customer_id for a in assignments if a.start < end and (a.end is None or a.end > start)}
    for fee in fees.fixed_fees:
        customers |= set(fee.customers or ())
    customers |= {c.customer_id for c in fees.credits}

    invoices = {}
    for customer in sorted(customers):
        energy = figure(customer)
        joules = energy["energy_j"]
        lines: list[tuple[str, Decimal]] = []
        if len(distinct_prices) <= fees.max_energy_lines:
            for p in distinct_prices:
                j = figure(customer, p)["energy_j"]
                if j:
                    lines.append(("energy", to_money(Fraction(j) * Fraction(p) / JOULES_PER_KWH, places)))
            if not joules:
                lines.append(("energy", to_money(Fraction(0), places)))
        else:
            lines.append(("energy", to_money(cost[customer], places)))
        facility = fees.facility
        if facility is not None and hasattr(facility, "factor"):
            lines.append(("facility", to_money(cost[customer] * (Fraction(facility.factor) - 1), places)))
        elif facility is not None:
            lines.append(
                ("facility", to_money(Fraction(joules) * Fraction(facility.per_kwh) / JOULES_PER_KWH, places))
            )
        for adder in fees.adders:
            lines.append(
                ("adder", to_money(Fraction(joules) * Fraction(adder.per_kwh) / JOULES_PER_KWH, places))
            )
        for k, charge in enumerate(demand_charges):
            everyone = sum(in_window[k].values())
            share = Fraction(charge.amount) * in_window[k][customer] / everyone if everyone else Fraction(0)
            lines.append(("demand", to_money(share, places)))
        for fee in fees.fixed_fees:
            if fee.customers is None or customer in fee.customers:
                lines.append(("fixed", to_money(Fraction(fee.amount), places)))
        for credit in fees.credits:
            if credit.customer_id == customer:
                if credit.amount is not None:
                    owed = Fraction(credit.amount)
                else:
                    owed = Fraction(credit.energy_j) * Fraction(credit.per_kwh) / JOULES_PER_KWH
                lines.append(("credit", to_money(-owed, places)))
        if fees.service_fee_pct != 0:
            base = sum(Fraction(amount) for kind, amount in lines if kind in ("energy", "facility"))
            lines.append(("service", to_money(base * Fraction(fees.service_fee_pct) / 100, places)))
        if fees.tax_pct != 0:
            base = sum(Fraction(amount) for _, amount in lines)
            lines.append(("tax", to_money(base * Fraction(fees.tax_pct) / 100, places)))
        total = to_money(sum((Fraction(amount) for _, amount in lines), Fraction(0)), places)
        by_price = {p: figure(customer, p) for p in distinct_prices}
        invoices[customer] = {"lines": lines, "total": total, "energy": energy, "by_price": by_price}

    site = dict.fromkeys(FIELDS, 0)
    for owner in totals:
        for f in FIELDS:
            site[f] += figure(owner)[f]
    return {
        "invoices": invoices,
        "unassigned": figure(UNASSIGNED),
        "site": site,
        "site_cost": to_money(sum(cost.values(), Fraction(0)), places),
        "unassigned_cost": to_money(cost[UNASSIGNED], places),
    }
