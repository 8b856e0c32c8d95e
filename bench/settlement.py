"""Settlement benchmark: one month for a 10,000-miner site at real-time prices, against the issue-6 target
of <= 10 s and <= 2 GB peak RSS, and the reference implementation's time on a slice for scale.

    .venv/bin/python bench/settlement.py [--miners 10000] [--customers 100] [--reassignments 500]
                                         [--reference-miners 100] [--seed 11]

The month is June 2024 in America/Chicago (30 days: 2,880 intervals, so 10,000 miners make 28.8 M rows of
15-minute energy). Each miner draws a steady load for its model (1.3-3.6 kW) with +-3 % noise, 2 % of its
intervals partly covered, 1 % estimated, 0.5 % missing. Miners start with one of `--customers`; then
`--reassignments` distinct miners change hands at random instants mid-month (off the 15-minute grid, so
rows are split exactly). Prices are real-time: a deterministic synthetic ERCOT-like series, one price per
interval (2,880 distinct, with negative hours and a $4.86/kWh scarcity spike), plus a flat $/kW demand
charge that is passed through by coincident peak. The fee schedule has every line kind.

Data generation is not timed (it stands for the DuckDB query's output). Timed: `settle_month` - the site
bill under the tariff, the demand pass-through and the per-customer settlement - in this process. The
peak RSS is the whole process's (input arrays included). Then the reference implementation
(tests/energy/reference_settlement.py: plain Python and Fraction) settles a `--reference-miners` slice,
its time is printed beside ours on the same slice, and the drafts are checked to agree to the cent.
No assertion about time: benchmarks report.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from decimal import Decimal
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.energy.bill import BillingPeriod
from gateway.energy.invoicing import settle_month
from gateway.energy.settlement import (
    Assignment,
    Credit,
    FeeSchedule,
    FixedFee,
    IntervalColumns,
    KwhAdder,
    Pue,
    settle,
)
from gateway.energy.tariff_prices import energy_price_fn
from gateway.energy.tariffs import PriceSeries, RealTimeEnergy, Tariff, flat_demand
from gateway.metering import IntervalEnergy
from tests.energy.reference_settlement import reference_settle

TARGET_S = 10.0
TARGET_RSS_GB = 2.0
ZONE = "America/Chicago"
YEAR, MONTH = 2024, 6


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # Linux reports KiB


def prices(start: int, n: int, seed: int) -> PriceSeries:
    """ERCOT-like $/kWh per 15 minutes: a daily shape, noise, some negative nights, one scarcity spike."""
    rng = np.random.default_rng(seed)
    hours = (np.arange(n) // 4) % 24
    shape = 0.025 + 0.02 * np.sin((hours - 9) / 24 * 2 * np.pi)
    mils = np.round((shape + rng.normal(0, 0.006, n)) * 100_000).astype(np.int64)  # 1/100,000 $/kWh
    mils[rng.choice(n, 40, replace=False)] = -rng.integers(100, 2000, 40)
    mils[n // 2 + 78] = 485_782  # $4.85782/kWh, like 2024-08-20 19:30 at HB_SOUTH
    return PriceSeries(
        interval_s=900,
        starts=tuple(range(start, start + n * 900, 900)),
        prices_per_kwh=tuple(Decimal(int(m)).scaleb(-5) for m in mils.tolist()),
        source="synthetic ERCOT-like series (bench)",
    )


def fleet(n_miners: int, start: int, n_int: int, seed: int) -> IntervalColumns:
    """28.8 M rows in compact dtypes (as a DuckDB/Arrow result would hand them over)."""
    rng = np.random.default_rng(seed)
    watts = rng.choice(np.array([1_300, 3_010, 3_250, 3_400, 3_550]), n_miners)
    n = n_miners * n_int
    keep = rng.random(n) >= 0.005  # 0.5 % of rows missing
    miner = np.repeat(np.arange(n_miners, dtype=np.int32), n_int)[keep]
    starts = np.tile(np.arange(start, start + n_int * 900, 900, dtype=np.int64), n_miners)[keep]
    m = len(miner)
    covered = np.full(m, 900, dtype=np.int16)
    partial = rng.random(m) < 0.02
    covered[partial] = rng.integers(0, 900, int(partial.sum()))
    uncovered = (900 - covered).astype(np.int16)
    estimated = np.where(rng.random(m) < 0.01, covered, 0).astype(np.int16)
    noise = 1 + rng.normal(0, 0.03, m)
    joules = (watts[miner] * noise * covered).astype(np.int64)
    return IntervalColumns(
        miner_ids=tuple(f"miner-{i:05d}" for i in range(n_miners)),
        miner=miner,
        interval_start=starts,
        joules=joules,
        covered_s=covered,
        uncovered_s=uncovered,
        estimated_s=estimated,
    )


def assignments(
    n_miners: int, n_customers: int, n_moves: int, start: int, end: int, seed: int
) -> list[Assignment]:
    rng = np.random.default_rng(seed)
    owner = rng.integers(0, n_customers, n_miners)
    moved = set(rng.choice(n_miners, n_moves, replace=False).tolist())
    out: list[Assignment] = []
    for i in range(n_miners):
        first = start - 86_400 * 30
        mid = f"miner-{i:05d}"
        customer = f"customer-{owner[i]:03d}"
        if i in moved:
            at = int(rng.integers(start + 86_400, end - 86_400))  # mid-month, any second
            new = f"customer-{(owner[i] + 1 + rng.integers(0, n_customers - 1)) % n_customers:03d}"
            out.append(Assignment(miner_id=mid, customer_id=customer, start=first, end=at))
            out.append(Assignment(miner_id=mid, customer_id=new, start=at))
        else:
            out.append(Assignment(miner_id=mid, customer_id=customer, start=first))
    return out


def fee_schedule(n_customers: int) -> FeeSchedule:
    return FeeSchedule(
        facility=Pue(factor=Decimal("1.06")),
        adders=(KwhAdder(description="Transmission and distribution", per_kwh=Decimal("0.0042")),),
        fixed_fees=(FixedFee(description="Rack space", amount=Decimal("250.00")),),
        service_fee_pct=Decimal("4"),
        tax_pct=Decimal("8.25"),
        credits=tuple(
            Credit(
                customer_id=f"customer-{i:03d}",
                description="Curtailment credit",
                energy_j=i * 3_600_000_000,
                per_kwh=Decimal("0.031"),
            )
            for i in range(0, n_customers, 10)
        ),
    )


def slice_rows(cols: IntervalColumns, n: int) -> list[IntervalEnergy]:
    take = np.flatnonzero(np.asarray(cols.miner) < n)
    ids = cols.miner_ids
    return [
        IntervalEnergy(
            miner_id=ids[int(m)], interval_start=int(s), joules=int(j), covered_s=int(c), uncovered_s=int(u),
            estimated_s=int(e), peak_w=None,
        )
        for m, s, j, c, u, e in zip(
            cols.miner[take].tolist(), cols.interval_start[take].tolist(), cols.joules[take].tolist(),
            cols.covered_s[take].tolist(), cols.uncovered_s[take].tolist(), cols.estimated_s[take].tolist(),
            strict=True,
        )
    ]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--miners", type=int, default=10_000)
    ap.add_argument("--customers", type=int, default=100)
    ap.add_argument("--reassignments", type=int, default=500)
    ap.add_argument("--reference-miners", type=int, default=100)
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()

    period = BillingPeriod.month(YEAR, MONTH, ZONE)
    n_int = (period.end - period.start) // 900
    t0 = time.perf_counter()
    cols = fleet(args.miners, period.start, n_int, args.seed)
    assign = assignments(args.miners, args.customers, args.reassignments, period.start, period.end, args.seed)
    series = prices(period.start, n_int, args.seed)
    tariff = Tariff(
        name="ERCOT HB_SOUTH real-time + demand",
        energy=RealTimeEnergy(prices=series, adder_per_kwh=Decimal("0.0035")),
        demand=flat_demand(Decimal("6.50")),
        valid_from=period.start - 86_400,
    )
    fees = fee_schedule(args.customers)
    gen_s = time.perf_counter() - t0
    print(f"input: {len(cols):,} rows ({args.miners:,} miners x {n_int:,} intervals, 0.5 % missing), "
          f"{args.customers} customers, {args.reassignments} mid-month reassignments, {n_int:,} real-time "
          f"prices; generated in {gen_s:.1f} s (not timed)")  # fmt: skip

    t0 = time.perf_counter()
    month = settle_month(
        year=YEAR, month=MONTH, tz=ZONE, tariffs=[tariff], columns=cols, assignments=assign, fees=fees
    )
    ours_s = time.perf_counter() - t0
    rss = peak_rss_gb()
    s = month.settlement
    (bill,) = month.site_bills
    print(f"site: {s.site_energy.kwh:,} kWh metered ({s.site_energy.coverage_pct} % covered, "
          f"{s.site_energy.estimated_pct} % estimated), energy cost {s.site_energy_cost} USD, peak "
          f"{float(bill.peak_kw):,.1f} kW, site bill {bill.total} USD")  # fmt: skip
    unassigned = s.unassigned_energy.kwh
    print(f"drafts: {len(s.invoices)}, invoiced {s.invoiced_total} USD, unassigned {unassigned} kWh")
    print()
    print(f"{'settle_month, whole site':<34}{ours_s:>8.2f} s   target <= {TARGET_S:.0f} s   "
          f"{'PASS' if ours_s <= TARGET_S else 'MISS'}")  # fmt: skip
    print(f"{'peak RSS (whole process)':<34}{rss:>8.2f} GB  target <= {TARGET_RSS_GB:.0f} GB  "
          f"{'PASS' if rss <= TARGET_RSS_GB else 'MISS'}")  # fmt: skip

    n_ref = args.reference_miners
    if n_ref <= 0:
        return
    rows = slice_rows(cols, n_ref)
    keep = {f"miner-{i:05d}" for i in range(n_ref)}
    sub_assign = [a for a in assign if a.miner_id in keep]
    sub_fees = FeeSchedule(
        facility=fees.facility, adders=fees.adders, fixed_fees=fees.fixed_fees,
        service_fee_pct=fees.service_fee_pct, tax_pct=fees.tax_pct,
    )  # fmt: skip
    price_fn = energy_price_fn([tariff], ZONE)
    t0 = time.perf_counter()
    ours = settle((period.start, period.end), rows, sub_assign, price_fn, sub_fees)
    ours_slice_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = reference_settle((period.start, period.end), rows, sub_assign, price_fn, sub_fees)
    ref_s = time.perf_counter() - t0
    agree = all(
        [(str(ln.kind), ln.amount) for ln in inv.lines] == ref["invoices"][inv.customer_id]["lines"]
        and inv.total == ref["invoices"][inv.customer_id]["total"]
        for inv in ours.invoices
    ) and len(ours.invoices) == len(ref["invoices"])
    print()
    what = f"{len(rows):,} rows, {len(sub_assign)} assignments, {len(ours.invoices)} drafts"
    print(f"{n_ref}-miner slice ({what}):")
    print(f"  ours (settle, from row objects)   {ours_slice_s:>8.2f} s")
    ratio = ref_s / max(ours_slice_s, 1e-9)
    print(f"  reference (Fraction, plain Python){ref_s:>8.2f} s   ({ratio:,.0f}x ours)")
    print(f"  drafts agree to the cent: {'yes' if agree else 'NO'}")


if __name__ == "__main__":
    main()
