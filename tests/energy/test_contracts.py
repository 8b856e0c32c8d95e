"""Contracts: actual, projected month-end (run-rate of the month so far), percentages, levels, crossings.

Exact expectations are hand-computed; the properties check the projection formula and that the levels
follow the documented rule (forecasts warn, actual energy goes critical) for any figures."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.energy.bill import BillingPeriod
from gateway.energy.contracts import (
    Contract,
    ContractError,
    Crossing,
    Level,
    MonthToDate,
    evaluate_contract,
    month_containing,
    month_to_date,
)
from gateway.energy.units import J_PER_KWH

KWH = J_PER_KWH
DAY = 86_400
APRIL_UTC = BillingPeriod.month(2026, 4, "UTC")  # 30 days


def z(iso: str) -> int:
    return int(datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp())


def kw_interval_j(kw: int, interval_s: int = 900) -> int:
    return kw * 1000 * interval_s


CONTRACT = Contract(id="c1", monthly_energy_j=1000 * KWH, demand_limit_kw=Decimal(1000))


def mtd(kwh: int, peak_kw: int = 0) -> MonthToDate:
    return MonthToDate(energy_j=kwh * KWH, peak_interval_j=min(kw_interval_j(peak_kw), kwh * KWH))


def test_projection_is_the_run_rate_of_the_month_so_far() -> None:
    # Day 10 of 30, 300 kWh used: 300 x 30 / 10 = 900 kWh projected, 90 % of the contract.
    now = APRIL_UTC.start + 10 * DAY
    status = evaluate_contract(CONTRACT, mtd(300), now=now, month=APRIL_UTC)
    assert status.energy_j == 300 * KWH
    assert status.projected_j == 900 * KWH
    assert status.energy_pct == 30
    assert status.projected_pct == 90
    assert status.energy_level is Level.WARN  # a forecast over 80 % warns
    assert status.crossings == (Crossing(measure="energy_projected", threshold_pct=80, pct=Fraction(90)),)
    assert status.target == "contract:c1"


def test_projected_over_crit_is_still_a_warning_actual_over_crit_is_critical() -> None:
    day10 = APRIL_UTC.start + 10 * DAY
    status = evaluate_contract(CONTRACT, mtd(400), now=day10, month=APRIL_UTC)  # projected 120 %
    assert status.projected_pct == 120 and status.energy_level is Level.WARN
    assert [(c.measure, c.threshold_pct) for c in status.crossings] == [
        ("energy_projected", 80),
        ("energy_projected", 95),
    ]
    day29 = APRIL_UTC.start + 29 * DAY
    status = evaluate_contract(CONTRACT, mtd(950), now=day29, month=APRIL_UTC)
    assert status.energy_pct == 95 and status.energy_level is Level.CRIT
    status = evaluate_contract(CONTRACT, mtd(949), now=APRIL_UTC.end - 1, month=APRIL_UTC)
    assert status.energy_level is Level.WARN


def test_no_projection_on_the_first_day_actual_decides() -> None:
    hour5 = APRIL_UTC.start + 5 * 3600
    quiet = evaluate_contract(CONTRACT, mtd(10), now=hour5, month=APRIL_UTC)
    assert quiet.projected_j is None and quiet.projected_pct is None
    assert quiet.energy_level is Level.OK  # 5 h x 2 kWh/h would "project" 144 %: noise, ignored
    busy = evaluate_contract(CONTRACT, mtd(850), now=hour5, month=APRIL_UTC)
    assert busy.energy_level is Level.WARN
    shorter = evaluate_contract(CONTRACT, mtd(10), now=hour5, month=APRIL_UTC, min_run_s=3600)
    assert shorter.projected_j == 10 * KWH * 720 // 5


def test_demand_levels_use_the_exact_peak() -> None:
    now = APRIL_UTC.start + 3 * DAY
    assert evaluate_contract(CONTRACT, mtd(300, 799), now=now, month=APRIL_UTC).demand_level is Level.OK
    warn = evaluate_contract(CONTRACT, mtd(300, 800), now=now, month=APRIL_UTC)
    assert warn.peak_kw == 800 and warn.demand_pct == 80 and warn.demand_level is Level.WARN
    crit = evaluate_contract(CONTRACT, mtd(300, 950), now=now, month=APRIL_UTC)
    assert crit.demand_level is Level.CRIT
    assert [c.threshold_pct for c in crit.crossings if c.measure == "demand"] == [80, 95]
    # One joule under 95 % of the limit is not 95 %.
    just_under = MonthToDate(energy_j=300 * KWH, peak_interval_j=kw_interval_j(950) - 1)
    assert evaluate_contract(CONTRACT, just_under, now=now, month=APRIL_UTC).demand_level is Level.WARN


def test_demand_only_and_energy_only_contracts() -> None:
    demand_only = Contract(id="d", demand_limit_kw=Decimal("500.5"))
    now = APRIL_UTC.start + DAY
    status = evaluate_contract(demand_only, mtd(1, 0), now=now, month=APRIL_UTC)
    assert status.energy_pct is None and status.energy_level is Level.OK and status.demand_pct == 0
    energy_only = Contract(id="e", monthly_energy_j=KWH)
    status = evaluate_contract(energy_only, mtd(1, 1000), now=now, month=APRIL_UTC)
    assert status.demand_pct is None and status.demand_level is Level.OK
    assert status.energy_level is Level.CRIT


def test_month_in_the_site_zone_across_dst() -> None:
    # Chicago: November has the fall-back hour (30 days + 1 h), March loses one.
    november = month_containing(z("2026-11-15T12:00:00"), "America/Chicago")
    assert (november.start, november.end) == (z("2026-11-01T05:00:00"), z("2026-12-01T06:00:00"))
    assert november.end - november.start == 30 * DAY + 3600
    march = month_containing(z("2026-03-20T00:00:00"), "America/Chicago")
    assert march.end - march.start == 31 * DAY - 3600
    # 04:30Z on Dec 1 is still November 30 in Chicago.
    assert month_containing(z("2026-12-01T04:30:00"), "America/Chicago") == november
    # Half of the November month: the projection doubles the actual exactly.
    half = november.start + (november.end - november.start) // 2
    status = evaluate_contract(CONTRACT, mtd(400), now=half, month=november)
    assert status.projected_j == 800 * KWH


def test_from_kwh_is_exact_or_refused() -> None:
    c = Contract.from_kwh(id="k", monthly_kwh=Decimal("1234.56789"), demand_limit_kw=Decimal(2))
    assert c.monthly_energy_j == 123456789 * 36  # 0.00001 kWh = 36 J
    with pytest.raises(ContractError, match="finer than one joule"):
        Contract.from_kwh(id="k", monthly_kwh=Decimal("0.000001"))  # 3.6 J
    with pytest.raises(ContractError, match="finite Decimal"):
        Contract.from_kwh(id="k", monthly_kwh=Decimal("NaN"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"id": "", "monthly_energy_j": 1}, "contract id"),
        ({"id": "a:b", "monthly_energy_j": 1}, "contract id 'a:b': 1-64 of"),
        ({"id": "x" * 65, "monthly_energy_j": 1}, "1-64"),
        ({"id": '=HYPERLINK("http://x")', "monthly_energy_j": 1}, "starting with a letter or digit"),
        ({"id": "-cmd", "monthly_energy_j": 1}, "contract id"),
        ({"id": "c1\n", "monthly_energy_j": 1}, "contract id"),
        ({"id": "c"}, "needs monthly_energy_j or demand_limit_kw"),
        ({"id": "c", "monthly_energy_j": 0}, "positive integer"),
        ({"id": "c", "monthly_energy_j": 1.5}, "positive integer"),
        ({"id": "c", "monthly_energy_j": True}, "positive integer"),
        ({"id": "c", "demand_limit_kw": Decimal("-1")}, "positive finite Decimal"),
        ({"id": "c", "demand_limit_kw": 5.0}, "positive finite Decimal"),
        ({"id": "c", "demand_limit_kw": Decimal("Infinity")}, "positive finite Decimal"),
        ({"id": "c", "monthly_energy_j": 1, "warn_pct": 95, "crit_pct": 80}, "warn_pct < crit_pct"),
        ({"id": "c", "monthly_energy_j": 1, "warn_pct": 0}, "warn_pct < crit_pct"),
    ],
)
def test_bad_contracts_are_refused_with_the_field(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ContractError, match=message):
        Contract(**kwargs)  # type: ignore[arg-type]


def test_bad_month_figures_are_refused() -> None:
    with pytest.raises(ContractError, match="energy_j must be a non-negative integer"):
        MonthToDate(energy_j=-1, peak_interval_j=0)
    with pytest.raises(ContractError, match="peak_interval_j cannot exceed"):
        MonthToDate(energy_j=10, peak_interval_j=11)
    with pytest.raises(ContractError, match="interval_s"):
        MonthToDate(energy_j=10, peak_interval_j=1, interval_s=60)
    with pytest.raises(ContractError, match="outside the month"):
        evaluate_contract(CONTRACT, mtd(1), now=APRIL_UTC.end, month=APRIL_UTC)
    with pytest.raises(ContractError, match="min_run_s"):
        evaluate_contract(CONTRACT, mtd(1), now=APRIL_UTC.start, month=APRIL_UTC, min_run_s=0)


def test_month_to_date_sums_miners_and_finds_the_busiest_interval() -> None:
    start = APRIL_UTC.start
    records = [
        (start - 900, 10**9),  # March: not this month
        (start, 100),
        (start, 200),  # two miners in one interval: 300
        (start + 900, 250),
        (start + 1800, 120),
        (start + 1800, 120),  # 240
        (start + 9000, 999),  # after now: not yet
    ]
    got = month_to_date(records, month=APRIL_UTC, now=start + 1800)
    assert got == MonthToDate(energy_j=790, peak_interval_j=300)
    hourly = month_to_date(records, month=APRIL_UTC, now=start + 1800, interval_s=3600)
    assert hourly == MonthToDate(energy_j=790, peak_interval_j=790, interval_s=3600)
    assert month_to_date([], month=APRIL_UTC, now=start) == MonthToDate(energy_j=0, peak_interval_j=0)
    with pytest.raises(ContractError, match="negative energy -5 J in the record at"):
        month_to_date([(start, -5)], month=APRIL_UTC, now=start)


@settings(max_examples=100, deadline=None)
@given(
    energy_kwh=st.integers(0, 5000),
    elapsed=st.integers(0, 30 * DAY - 1),
    contracted_kwh=st.integers(1, 3000),
)
def test_projection_and_levels_properties(energy_kwh: int, elapsed: int, contracted_kwh: int) -> None:
    contract = Contract(id="p", monthly_energy_j=contracted_kwh * KWH)
    now = APRIL_UTC.start + elapsed
    status = evaluate_contract(contract, mtd(energy_kwh), now=now, month=APRIL_UTC)
    actual_pct = Fraction(energy_kwh * 100, contracted_kwh)
    assert status.energy_pct == actual_pct
    if elapsed < DAY:
        assert status.projected_j is None
        forecast = actual_pct
    else:
        assert status.projected_j is not None
        assert status.projected_j == energy_kwh * KWH * 30 * DAY // elapsed
        assert status.projected_j >= status.energy_j
        forecast = Fraction(status.projected_j * 100, contracted_kwh * KWH)
    expected = Level.CRIT if actual_pct >= 95 else Level.WARN if forecast >= 80 else Level.OK
    assert status.energy_level is expected
    more = evaluate_contract(contract, mtd(energy_kwh + 1), now=now, month=APRIL_UTC)
    assert more.energy_level >= status.energy_level  # more energy never lowers the level
