"""A month settled end to end: site bill under the tariff, demand passed through by coincident peak."""

from __future__ import annotations

from datetime import datetime, time
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.energy.bill import BillingPeriod
from gateway.energy.invoicing import settle_month, site_load
from gateway.energy.settlement import Assignment, FeeSchedule, IntervalColumns, LineKind
from gateway.energy.tariff_prices import energy_price_fn
from gateway.energy.tariffs import (
    WEEKDAYS,
    WEEKEND,
    FixedCharges,
    FlatEnergy,
    PriceSeries,
    RatePeriod,
    RateTier,
    RealTimeEnergy,
    Tariff,
    TariffError,
    TouEnergy,
    TouSchedule,
    TouWindow,
    flat_demand,
    single_rate,
)

D = Decimal
CHICAGO = ZoneInfo("America/Chicago")
JULY = BillingPeriod.month(2024, 7, CHICAGO)


def tou_with_demand(rate_per_kw: str = "12.50") -> Tariff:
    schedule = TouSchedule(
        windows=(
            TouWindow(period="peak", weekdays=WEEKDAYS, start=time(14), end=time(19)),
            TouWindow(period="off", weekdays=WEEKDAYS, start=time(19), end=time(14)),
            TouWindow(period="off", weekdays=WEEKEND),
        )
    )
    energy = TouEnergy(
        periods=(single_rate("peak", D("0.20")), single_rate("off", D("0.06"))), schedule=schedule
    )
    return Tariff(name="tou+demand", energy=energy, valid_from=0, demand=flat_demand(D(rate_per_kw)))


def fleet(
    watts: dict[str, int], start: int, end: int, shape: dict[int, float] | None = None
) -> IntervalColumns:
    """Every miner runs flat at its watts for the whole month; `shape` scales the site at some intervals."""
    ids = tuple(watts)
    starts = np.arange(start, end, 900, dtype=np.int64)
    n = len(starts)
    miner = np.repeat(np.arange(len(ids), dtype=np.int64), n)
    st_ = np.tile(starts, len(ids))
    scale = np.ones(n)
    for ts, factor in (shape or {}).items():
        scale[(ts - start) // 900] = factor
    joules = np.concatenate([(np.full(n, w * 900) * scale).astype(np.int64) for w in watts.values()])
    full = np.full(len(miner), 900, dtype=np.int64)
    zero = np.zeros(len(miner), dtype=np.int64)
    return IntervalColumns(
        miner_ids=ids,
        miner=miner,
        interval_start=st_,
        joules=joules,
        covered_s=full,
        uncovered_s=zero,
        estimated_s=zero,
    )


def local(year: int, month: int, day: int, hour: int = 0) -> int:
    return int(datetime(year, month, day, hour, tzinfo=CHICAGO).timestamp())


ASSIGN = [
    Assignment(miner_id="a1", customer_id="acme", start=0),
    Assignment(miner_id="b1", customer_id="bitfarm", start=0),
]


def test_off_peak_curtailment_leaves_the_peak_and_the_demand_charge_unchanged() -> None:
    """The month's peak is a weekday afternoon surge (x1.5 at 16:00 on 2024-07-16). Curtailing every
    weekend and every night to zero lowers the energy bill but not the billing-period peak, so the demand
    charge and each customer's share of it stay exactly the same."""
    surge = local(2024, 7, 16, 16)
    watts = {"a1": 3_000_000, "b1": 1_000_000}  # 3 MW and 1 MW customers: a 4 MW site
    base = fleet(watts, JULY.start, JULY.end, {surge: 1.5})
    curtailed_shape = {surge: 1.5}
    for ts in range(JULY.start, JULY.end, 900):
        at = datetime.fromtimestamp(ts, CHICAGO)
        if at.weekday() >= 5 or not 14 <= at.hour < 19:
            curtailed_shape[ts] = 0.0  # off-peak: curtailed
    curtailed = fleet(watts, JULY.start, JULY.end, curtailed_shape)
    tariff = tou_with_demand()
    kw = {"tz": "America/Chicago", "tariffs": [tariff], "assignments": ASSIGN, "fees": FeeSchedule()}
    before = settle_month(year=2024, month=7, columns=base, **kw)  # type: ignore[arg-type]
    after = settle_month(year=2024, month=7, columns=curtailed, **kw)  # type: ignore[arg-type]
    (bill_before,), (bill_after,) = before.site_bills, after.site_bills
    assert bill_before.peak_kw == bill_after.peak_kw == Fraction(6000)  # 4 MW x 1.5
    assert bill_before.peak_window_start == bill_after.peak_window_start == surge

    def demand(bill: object) -> list[tuple[str, D]]:
        return [(ln.label, ln.amount) for ln in bill.lines if ln.kind == "demand"]  # type: ignore[attr-defined]

    assert (
        demand(bill_before) == demand(bill_after) == [("demand peak demand", D("75000.00"))]
    )  # 6 MW x $12.50
    assert bill_after.energy_j < bill_before.energy_j
    for customer, share in (("acme", D("56250.00")), ("bitfarm", D("18750.00"))):
        lines = [
            [ln.amount for ln in s.settlement.invoice(customer).lines if ln.kind is LineKind.DEMAND]
            for s in (before, after)
        ]
        assert lines == [[share], [share]]  # 3:1 of the load in the peak window


def test_demand_share_follows_the_peak_window_not_the_month() -> None:
    """A customer idle in the peak window pays none of the demand charge, whatever it used otherwise."""
    surge = local(2024, 7, 16, 16)
    ids = ("a1", "b1")
    base = fleet({"a1": 1_000_000, "b1": 1_000_000}, JULY.start, JULY.end)
    joules = base.joules.copy()
    n = (JULY.end - JULY.start) // 900
    k = (surge - JULY.start) // 900
    joules[k] = 5_000_000 * 900  # a1 surges to 5 MW
    joules[n + k] = 0  # b1 is off in that very interval
    cols = IntervalColumns(
        miner_ids=ids,
        miner=base.miner,
        interval_start=base.interval_start,
        joules=joules,
        covered_s=base.covered_s,
        uncovered_s=base.uncovered_s,
        estimated_s=base.estimated_s,
    )
    out = settle_month(
        year=2024, month=7, tz="America/Chicago", tariffs=[tou_with_demand("10")], columns=cols,
        assignments=ASSIGN, fees=FeeSchedule(),
    )  # fmt: skip
    acme = [ln for ln in out.settlement.invoice("acme").lines if ln.kind is LineKind.DEMAND]
    bitfarm = [ln for ln in out.settlement.invoice("bitfarm").lines if ln.kind is LineKind.DEMAND]
    assert [ln.amount for ln in acme] == [D("50000.00")]
    assert [ln.amount for ln in bitfarm] == [D("0.00")]
    assert acme[0].quantity == D("5000.000")


def test_a_missing_row_counts_as_zero_power_in_the_site_peak() -> None:
    cols = fleet({"a1": 1000}, JULY.start, JULY.start + 3600)
    keep = np.ones(len(cols), dtype=bool)
    keep[1] = False
    fields = ("miner", "interval_start", "joules", "covered_s", "uncovered_s", "estimated_s")
    sub = IntervalColumns(miner_ids=cols.miner_ids, **{f: getattr(cols, f)[keep] for f in fields})
    load = site_load(sub, JULY.start, JULY.start + 3600)
    assert [j for _, j in load] == [900_000, 0, 900_000, 900_000]


def test_tiered_energy_is_refused_for_customer_settlement_with_the_reason() -> None:
    tiered = RatePeriod(name="all", tiers=(RateTier(rate=D("0.1"), limit=D(1000)), RateTier(rate=D("0.2"))))
    schedule = TouSchedule(windows=(TouWindow(period="all"),))
    tariff = Tariff(name="blocks", energy=TouEnergy(periods=(tiered,), schedule=schedule), valid_from=0)
    with pytest.raises(TariffError, match="tiered energy rates in period"):
        energy_price_fn([tariff], CHICAGO)


def test_real_time_price_with_adder_and_a_gap_is_named() -> None:
    start = JULY.start
    series = PriceSeries(interval_s=900, starts=(start, start + 900), prices_per_kwh=(D("0.03"), D("-0.01")))
    tariff = Tariff(name="rt", energy=RealTimeEnergy(prices=series, adder_per_kwh=D("0.005")), valid_from=0)
    price = energy_price_fn([tariff], CHICAGO)
    assert (price(start), price(start + 900)) == (D("0.035"), D("-0.005"))
    with pytest.raises(TariffError, match="no real-time price for the interval starting 2024-07-01T00:30"):
        price(start + 1800)


def test_tariff_history_changes_the_price_at_its_boundary() -> None:
    change = local(2024, 7, 15)
    old = Tariff(name="old", energy=FlatEnergy(rate_per_kwh=D("0.05")), valid_from=0, valid_to=change)
    new = Tariff(name="new", energy=FlatEnergy(rate_per_kwh=D("0.07")), valid_from=change)
    price = energy_price_fn([new, old], CHICAGO)
    assert (price(change - 900), price(change)) == (D("0.05"), D("0.07"))
    out = settle_month(
        year=2024, month=7, tz="America/Chicago", tariffs=[old, new],
        columns=fleet({"a1": 1000}, JULY.start, JULY.end), assignments=ASSIGN[:1], fees=FeeSchedule(),
    )  # fmt: skip
    assert [b.tariff for b in out.site_bills] == ["old", "new"]
    assert sum(b.energy_j for b in out.site_bills) == out.settlement.site_energy.energy_j


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.integers(0, 5_000), min_size=4, max_size=4),
    st.integers(0, 95),
    st.sampled_from(["5", "12.34"]),
)
def test_passed_through_demand_adds_up_to_the_site_bill(watts: list[int], surge_at: int, rate: str) -> None:
    """Customers' demand lines + the host's share = the bill's demand charge, up to one rounding per line."""
    start = JULY.start
    end = start + 86_400
    ids = {f"m{i}": w for i, w in enumerate(watts)}
    cols = fleet(ids, start, end, {start + surge_at * 900: 2.0})
    assign = [
        Assignment(miner_id="m0", customer_id="x", start=0),
        Assignment(miner_id="m1", customer_id="y", start=0, end=start + surge_at * 900 + 300),
        Assignment(miner_id="m2", customer_id="y", start=start + 40_000),
    ]  # m3 unassigned; m1 changes hands inside the surge interval
    out = settle_month(
        year=2024, month=7, tz="America/Chicago", tariffs=[tou_with_demand(rate)], columns=cols,
        assignments=assign, fees=FeeSchedule(),
    )  # fmt: skip
    (bill,) = out.site_bills
    charged = sum((ln.amount for ln in bill.lines if ln.kind == "demand"), D(0))
    s = out.settlement
    passed = sum((ln.amount for inv in s.invoices for ln in inv.lines if ln.kind is LineKind.DEMAND), D(0))
    n_lines = sum(1 for inv in s.invoices for ln in inv.lines if ln.kind is LineKind.DEMAND) + 1
    assert abs(passed + s.unassigned_demand_cost - charged) <= n_lines * D("0.005")


def test_a_tariff_change_mid_month_prorates_monthly_charges_instead_of_doubling_them() -> None:
    """Two tariffs, each $10/kW demand and $50/month fixed, change at local midnight on the 16th of a
    30-day month: each prices its half - demand on its own half's peak, monthly charges x 1/2 - so the
    month pays one demand charge and one fixed charge in total, not two."""
    change = local(2024, 6, 16)
    june = BillingPeriod.month(2024, 6, CHICAGO)
    fixed = FixedCharges(per_month=D(50))
    first = Tariff(
        name="first",
        energy=FlatEnergy(rate_per_kwh=D("0.05")),
        valid_from=0,
        valid_to=change,
        demand=flat_demand(D(10)),
        fixed=fixed,
    )
    second = Tariff(name="second", energy=FlatEnergy(rate_per_kwh=D("0.05")), valid_from=change,
                    demand=flat_demand(D(10)), fixed=fixed)  # fmt: skip
    cols = fleet({"a1": 9000}, june.start, june.end)
    out = settle_month(
        year=2024, month=6, tz="America/Chicago", tariffs=[first, second], columns=cols,
        assignments=ASSIGN[:1], fees=FeeSchedule(),
    )  # fmt: skip
    by_kind: dict[str, D] = {}
    for bill in out.site_bills:
        for ln in bill.lines:
            by_kind[ln.kind] = by_kind.get(ln.kind, D(0)) + ln.amount
    assert by_kind["demand"] == D("90.00")  # 9 kW x $10, half under each tariff
    assert by_kind["fixed"] == D("50.00")
    demand_lines = [ln for ln in out.settlement.invoice("acme").lines if ln.kind is LineKind.DEMAND]
    assert [ln.amount for ln in demand_lines] == [D("45.00"), D("45.00")]
    assert len({ln.description for ln in demand_lines}) == 2  # each names its tariff
