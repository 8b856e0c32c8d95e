"""Pricing a load: exact per-line amounts, demand from the records, fixed and minimum charges, and the
properties that make a bill checkable (splitting a load changes nothing; rounding happens once per line)."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.energy.pricing import Bill, BillingPeriod, PricingError, price_load
from gateway.energy.tariffs import (
    WEEKDAYS,
    WEEKEND,
    DemandCharges,
    FixedCharges,
    FlatEnergy,
    MinimumCharge,
    PriceSeries,
    RatePeriod,
    RateTier,
    RealTimeEnergy,
    Tariff,
    TouEnergy,
    TouSchedule,
    TouWindow,
    flat_demand,
    single_rate,
)
from gateway.energy.units import round_money
from tests.energy.test_tariffs import DST_DAYS_UTC, reference_period, reference_wall_clock

CHICAGO = ZoneInfo("America/Chicago")
KW_15MIN_J = 900_000  # 1 kW held for 15 minutes
D = Decimal


def local_ts(zone: ZoneInfo, *args: int) -> int:
    return int(datetime(*args, tzinfo=zone).timestamp())  # type: ignore[misc]


def quarters(zone: ZoneInfo, year: int, month: int, day: int, days: int = 1) -> list[int]:
    """UTC starts of every 15-minute interval of `days` local days (92 or 100 on a DST day)."""
    start = datetime(year, month, day, tzinfo=zone)
    end = start + timedelta(days=days)  # same-zone aware arithmetic lands on the next local midnight
    return list(range(int(start.timestamp()), int(end.timestamp()), 900))


def flat_tariff(rate: str = "0.10", **kw: object) -> Tariff:
    return Tariff(name="flat", energy=FlatEnergy(rate_per_kwh=D(rate)), valid_from=0, **kw)  # type: ignore[arg-type]


def tou_tariff(**kw: object) -> Tariff:
    schedule = TouSchedule(
        windows=(
            TouWindow(period="night", start=time(1), end=time(3)),
            TouWindow(period="off", start=time(3), end=time(14)),
            TouWindow(period="peak", start=time(14), end=time(19)),
            TouWindow(period="off", start=time(19), end=time(1)),
        )
    )
    periods = (single_rate("peak", D("0.30")), single_rate("off", D("0.10")), single_rate("night", D("0.05")))
    return Tariff(name="tou", energy=TouEnergy(periods=periods, schedule=schedule), valid_from=0, **kw)  # type: ignore[arg-type]


def amounts(bill: Bill) -> dict[str, Decimal]:
    return {line.label: line.amount for line in bill.lines}


def test_flat_energy_rounds_once_half_to_even() -> None:
    # 0.5 kWh x $0.05 = $0.025 exactly -> $0.02 (2 is even); 1.5 kWh -> $0.075 -> $0.08
    day = BillingPeriod(start=0, end=86400)
    half = price_load(flat_tariff("0.05"), [(0, 1_800_000)], period=day, tz="UTC")
    assert half.lines[0].exact_amount == Fraction(1, 40)
    assert half.total == D("0.02")
    assert price_load(flat_tariff("0.05"), [(0, 5_400_000)], period=day, tz="UTC").total == D("0.08")
    # the same energy in three records is the same line, not three roundings
    split = price_load(flat_tariff("0.05"), [(0, 600_000), (0, 600_000), (60, 600_000)], period=day, tz="UTC")
    assert split.lines == half.lines


def test_tou_on_the_25_hour_day_prices_the_repeated_hour_twice() -> None:
    # 2024-11-03, America/Chicago: 100 quarters at 1,000 kW = 250 kWh each.
    # night 01:00-03:00 happens for 3 hours (01:00 CDT, 01:00 CST, 02:00 CST): 12 x 250 = 3,000 kWh x 0.05
    # peak 14:00-19:00: 20 x 250 = 5,000 kWh x 0.30;  off: the other 68 quarters = 17,000 kWh x 0.10
    ts = quarters(CHICAGO, 2024, 11, 3)
    assert len(ts) == 100
    bill = price_load(
        tou_tariff(),
        [(t, 1000 * KW_15MIN_J) for t in ts],
        period=BillingPeriod(start=ts[0], end=ts[-1] + 900),
        tz=CHICAGO,
    )
    assert amounts(bill) == {"peak": D("1500.00"), "off": D("1700.00"), "night": D("150.00")}
    assert dict(bill.energy_j_by_period) == {
        "peak": 20 * 900_000_000,
        "off": 68 * 900_000_000,
        "night": 12 * 900_000_000,
    }
    assert bill.total == D("3350.00")


def test_tou_on_the_23_hour_day() -> None:
    # 2024-03-10: 92 quarters; night only 01:00-02:00 (4 quarters = 1,000 kWh x 0.05 = 50.00),
    # peak 20 quarters (1,500.00), off 68 quarters (1,700.00)
    ts = quarters(CHICAGO, 2024, 3, 10)
    assert len(ts) == 92
    bill = price_load(
        tou_tariff(),
        [(t, 1000 * KW_15MIN_J) for t in ts],
        period=BillingPeriod(start=ts[0], end=ts[-1] + 900),
        tz=CHICAGO,
    )
    assert amounts(bill) == {"peak": D("1500.00"), "off": D("1700.00"), "night": D("50.00")}


def test_peak_demand_is_the_highest_window_average_from_the_records() -> None:
    # 100 kW all day, one 15-minute record at 400 kW at 10:15 local. The 15-min peak is 400 kW; the
    # 30-min window 10:00-10:30 averages (100 + 400) / 2 = 250 kW; the 60-min one (3 x 100 + 400) / 4 = 175.
    ts = quarters(CHICAGO, 2024, 7, 1)
    spike = local_ts(CHICAGO, 2024, 7, 1, 10, 15)
    load = [(t, (400 if t == spike else 100) * KW_15MIN_J) for t in ts]
    period = BillingPeriod(start=ts[0], end=ts[-1] + 900)
    for interval_s, peak, window in ((900, 400, (10, 15)), (1800, 250, (10, 0)), (3600, 175, (10, 0))):
        tariff = flat_tariff(demand=flat_demand(D("10"), interval_s=interval_s))
        bill = price_load(tariff, load, period=period, tz=CHICAGO)
        assert bill.peak_kw == peak
        assert bill.peak_window_start == local_ts(CHICAGO, 2024, 7, 1, *window)
        assert amounts(bill)["demand peak demand"] == D(peak * 10)


def test_missing_records_count_as_zero_power_in_a_demand_window() -> None:
    # one 15-minute record of 300 kW and nothing else in its hour: the hourly average is 75 kW
    tariff = flat_tariff(demand=flat_demand(D("1"), interval_s=3600))
    bill = price_load(tariff, [(3600, 300 * KW_15MIN_J)], period=BillingPeriod(start=0, end=86400), tz="UTC")
    assert bill.peak_kw == 75


def test_windows_follow_the_local_hour_in_a_half_hour_zone() -> None:
    # Asia/Kolkata is UTC+05:30: the local hour 10:00-11:00 is 04:30-05:30Z, one window
    kolkata = ZoneInfo("Asia/Kolkata")
    start = local_ts(kolkata, 2024, 1, 1, 10)
    tariff = flat_tariff(demand=flat_demand(D("1"), interval_s=3600))
    load = [(start + 900 * i, 100 * KW_15MIN_J) for i in range(4)]
    bill = price_load(tariff, load, period=BillingPeriod(start=start - 3600, end=start + 7200), tz=kolkata)
    assert bill.peak_kw == 100
    assert bill.peak_window_start == start


def test_tou_and_flat_demand_and_tiers() -> None:
    # weekday 14:00-19:00 is "on" ($20/kW for the first 100 kW, $15 above), everything else "base" ($0)
    schedule = TouSchedule(
        windows=(
            TouWindow(period="on", weekdays=WEEKDAYS, start=time(14), end=time(19)),
            TouWindow(period="base", weekdays=WEEKDAYS, start=time(19), end=time(14)),
            TouWindow(period="base", weekdays=WEEKEND),
        )
    )
    on = RatePeriod(name="on", tiers=(RateTier(rate=D(20), limit=D(100)), RateTier(rate=D(15))))
    demand = DemandCharges(
        tou_periods=(on, single_rate("base", D(0))),
        tou_schedule=schedule,
        flat_periods=(single_rate("summer", D("5.5")),),
        flat_months=(None,) * 5 + ("summer",) * 4 + (None,) * 3,
    )
    tariff = flat_tariff(demand=demand)
    # Tuesday 2024-07-02: 150 kW at 15:00 (on-peak), 300 kW at 03:00 (base); 50 kW otherwise
    ts = quarters(CHICAGO, 2024, 7, 2)
    big = {local_ts(CHICAGO, 2024, 7, 2, 15): 150, local_ts(CHICAGO, 2024, 7, 2, 3): 300}
    bill = price_load(
        tariff,
        [(t, big.get(t, 50) * KW_15MIN_J) for t in ts],
        period=BillingPeriod(start=ts[0], end=ts[-1] + 900),
        tz=CHICAGO,
    )
    # energy: 94 quarters x 50 kW x 0.25 h = 1,175 kWh, + 150 x 0.25 + 300 x 0.25 = 1,287.5 kWh x $0.10
    assert bill.energy_kwh == Fraction(12875, 10)
    assert amounts(bill) == {
        "energy": D("128.75"),
        "on tier 1 peak demand": D("2000.00"),  # 100 kW x $20
        "on tier 2 peak demand": D("750.00"),  # 50 kW x $15
        "base peak demand": D("0.00"),  # 300 kW x $0
        "summer peak demand": D("1650.00"),  # 300 kW x $5.50 (July is a flat-demand month)
    }


def test_fixed_per_day_counts_local_days_and_minimum_tops_up() -> None:
    # November 2024 in Chicago has 30 local days, one of them 25 hours long
    period = BillingPeriod.month(2024, 11, CHICAGO)
    assert period.end - period.start == 30 * 86400 + 3600
    assert period.local_days(CHICAGO) == 30
    tariff = flat_tariff(
        fixed=FixedCharges(per_month=D("12.34"), per_day=D("0.50")),
        minimum=MinimumCharge(amount=D("100"), per="month"),
    )
    bill = price_load(tariff, [(period.start, 36_000_000)], period=period, tz=CHICAGO)  # 10 kWh = $1.00
    assert amounts(bill) == {
        "energy": D("1.00"),
        "fixed charge per month": D("12.34"),
        "fixed charge per day": D("15.00"),  # 30 x $0.50
        "minimum charge (100.00 per billing period)": D("71.66"),  # 100 - 28.34
    }
    assert bill.total == D("100.00")
    per_day = flat_tariff(minimum=MinimumCharge(amount=D("1"), per="day"))
    assert price_load(per_day, [], period=period, tz=CHICAGO).total == D("30.00")


def test_tiers_split_by_whole_joules() -> None:
    tiered = RatePeriod(name="all", tiers=(RateTier(rate=D("0.10"), limit=D("20")), RateTier(rate=D("0.06"))))
    schedule = TouSchedule(windows=(TouWindow(period="all"),))
    tariff = Tariff(name="tiered", energy=TouEnergy(periods=(tiered,), schedule=schedule), valid_from=0)
    bill = price_load(tariff, [(0, 30 * 3_600_000 + 1)], period=BillingPeriod(start=0, end=900), tz="UTC")
    first, second = bill.lines
    assert (first.energy_j, second.energy_j) == (20 * 3_600_000, 10 * 3_600_000 + 1)
    assert (first.amount, second.amount) == (D("2.00"), D("0.60"))


def test_real_time_prices_and_adder() -> None:
    # two 15-minute prices: $0.02 and -$0.01 (a negative price pays the consumer); 100 kWh in each
    series = PriceSeries(interval_s=900, starts=(0, 900), prices_per_kwh=(D("0.02"), D("-0.01")))
    tariff = Tariff(
        name="rt",
        energy=RealTimeEnergy(prices=series, adder_per_kwh=D("0.003")),
        valid_from=0,
        valid_to=86400,
    )
    load = [(0, 360_000_000), (900, 360_000_000)]
    bill = price_load(tariff, load, period=BillingPeriod(start=0, end=1800), tz="UTC")
    assert amounts(bill) == {"real-time market price": D("1.00"), "real-time adder": D("0.60")}
    with pytest.raises(PricingError, match="no real-time price"):
        price_load(tariff, [(1800, 1)], period=BillingPeriod(start=0, end=3600), tz="UTC")


def test_bad_records_are_refused() -> None:
    period = BillingPeriod(start=0, end=900)
    with pytest.raises(PricingError, match="outside the billing period"):
        price_load(flat_tariff(), [(900, 1)], period=period, tz="UTC")
    with pytest.raises(PricingError, match="non-negative"):
        price_load(flat_tariff(), [(0, -1)], period=period, tz="UTC")
    with pytest.raises(PricingError, match="non-negative"):
        price_load(flat_tariff(), [(0, 1.5)], period=period, tz="UTC")  # type: ignore[list-item]
    with pytest.raises(ValueError, match="naive"):
        price_load(flat_tariff(), [(datetime(1970, 1, 1), 1)], period=period, tz="UTC")
    late = Tariff(name="2025", energy=FlatEnergy(rate_per_kwh=D(1)), valid_from=600)
    with pytest.raises(PricingError, match="validity"):
        price_load(late, [(0, 1)], period=period, tz="UTC")
    with pytest.raises(ValueError, match="unknown IANA"):
        price_load(flat_tariff(), [], period=period, tz="Mars/Olympus")


# ---------------------------------------------------------------------------------------------- properties

DAY = quarters(CHICAGO, 2024, 11, 3)  # the 25-hour day: every property also holds across DST
SERIES = PriceSeries(
    interval_s=900,
    starts=tuple(DAY),
    prices_per_kwh=tuple(D(f"{(i * 37) % 200 - 20}.{i % 100:02d}") / 1000 for i in range(len(DAY))),
)


def property_tariffs() -> list[Tariff]:
    demand = DemandCharges(flat_periods=(single_rate("d", D("7.77")),), flat_months=("d",) * 12)
    return [
        flat_tariff("0.0731", demand=demand),
        tou_tariff(demand=demand),
        Tariff(name="rt", energy=RealTimeEnergy(prices=SERIES, adder_per_kwh=D("0.0041")), valid_from=0),
    ]


loads = st.lists(
    st.tuples(st.sampled_from(DAY), st.integers(min_value=0, max_value=5 * 10**9)), min_size=1, max_size=60
)


@given(load=loads, tariff_index=st.integers(0, 2), data=st.data())
def test_splitting_records_within_their_interval_changes_no_line(
    load: list[tuple[int, int]], tariff_index: int, data: st.DataObject
) -> None:
    """A meter that splits an interval at an ownership change, or reports each miner separately, produces
    more and smaller records inside the same 15-minute interval: the bill must not move by a cent."""
    tariff = property_tariffs()[tariff_index]
    split: list[tuple[int, int]] = []
    for ts, joules in load:
        cuts = sorted(data.draw(st.lists(st.integers(0, joules), max_size=3)))
        offsets = data.draw(st.lists(st.integers(0, 14), min_size=len(cuts) + 1, max_size=len(cuts) + 1))
        pieces = [b - a for a, b in zip([0, *cuts], [*cuts, joules], strict=True)]
        split += [(ts + 60 * off, piece) for off, piece in zip(offsets, pieces, strict=True)]
    period = BillingPeriod(start=DAY[0], end=DAY[-1] + 900)
    whole = price_load(tariff, load, period=period, tz=CHICAGO)
    parts = price_load(tariff, list(reversed(split)), period=period, tz=CHICAGO)
    assert parts.lines == whole.lines
    assert parts.total == whole.total


@given(load=loads, tariff_index=st.integers(0, 2))
def test_total_is_within_half_a_cent_per_line_of_the_exact_sum(
    load: list[tuple[int, int]], tariff_index: int
) -> None:
    bill = price_load(
        property_tariffs()[tariff_index],
        load,
        period=BillingPeriod(start=DAY[0], end=DAY[-1] + 900),
        tz=CHICAGO,
    )
    exact = sum((line.exact_amount for line in bill.lines), Fraction(0))
    assert abs(Fraction(bill.total) - exact) <= Fraction(len(bill.lines), 200)
    for line in bill.lines:
        assert abs(Fraction(line.amount) - line.exact_amount) <= Fraction(1, 200)


@given(a=loads, b=loads, tariff_index=st.integers(0, 2))
def test_pricing_two_loads_apart_differs_from_together_only_by_rounding(
    a: list[tuple[int, int]], b: list[tuple[int, int]], tariff_index: int
) -> None:
    """Energy is linear: customers' energy lines priced apart add up to the site's within the rounding of the
    lines involved (demand is not linear, a peak of a sum is not a sum of peaks, so energy lines only)."""
    tariff = property_tariffs()[tariff_index]
    period = BillingPeriod(start=DAY[0], end=DAY[-1] + 900)

    def energy(bill: Bill) -> tuple[Decimal, int]:
        lines = [line for line in bill.lines if line.kind == "energy"]
        return sum((line.amount for line in lines), Decimal(0)), len(lines)

    (ta, na), (tb, nb) = (energy(price_load(tariff, x, period=period, tz=CHICAGO)) for x in (a, b))
    tab, nab = energy(price_load(tariff, a + b, period=period, tz=CHICAGO))
    assert abs(Fraction(tab - ta - tb)) <= Fraction(na + nb + nab, 200)


RATES = {"peak": Fraction(30, 100), "off": Fraction(10, 100), "night": Fraction(5, 100)}


@given(data=st.data())
def test_dst_day_bills_match_a_reference_that_knows_no_zoneinfo(data: st.DataObject) -> None:
    """Random loads on the DST-change days of America/Chicago and America/Los_Angeles, priced under the TOU
    tariff, against a reference: hand-written UTC offsets, hour comparisons and Fractions."""
    zone_name, lo, hi = data.draw(st.sampled_from(DST_DAYS_UTC))
    starts = st.integers(min_value=lo // 900, max_value=(hi - 1) // 900).map(lambda q: q * 900)
    load = data.draw(st.lists(st.tuples(starts, st.integers(0, 10**10)), min_size=1, max_size=40))
    bill = price_load(tou_tariff(), load, period=BillingPeriod(start=lo - lo % 900, end=hi), tz=zone_name)
    by_period: dict[str, int] = {}
    for ts, joules in load:
        name = reference_period(reference_wall_clock(zone_name, ts).hour)
        by_period[name] = by_period.get(name, 0) + joules
    assert dict(bill.energy_j_by_period) == by_period
    for line in bill.lines:
        exact = Fraction(by_period[line.label], 3_600_000) * RATES[line.label]
        assert line.amount == round_money(exact)
