"""Savings attribution: exact figures worked by hand, properties, and conversion to settlement credits."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.curtail.savings import UNASSIGNED, CurtailedInterval, Economics, attribute, credit_lines
from gateway.energy.settlement_model import Assignment, Credit

T0 = 1_717_200_000  # 2024-06-01 00:00 UTC
ECON = Economics(hashprice_usd_per_th_day=Decimal("0.045"), pool_fee=Decimal("0.02"))
OWNERS = (Assignment(miner_id="m1", customer_id="acme", start=T0 - 86_400),)


def row(**overrides: object) -> CurtailedInterval:
    values: dict[str, object] = {
        "miner_id": "m1",
        "interval_start": T0,
        "curtailed_s": 900,
        "actual_j": 13_500,  # 15 W sleep draw x 900 s
        "profile_w": 3050.0,
        "ths": 100.0,
        "price_per_kwh": Decimal("0.50"),
        "strategy": "plan",
        "baseline_w": 3200.0,
    }
    values.update(overrides)
    return CurtailedInterval(**values)  # type: ignore[arg-type]


def test_one_day_by_hand() -> None:
    rows = [
        row(),
        row(
            interval_start=T0 + 900,
            curtailed_s=600,
            actual_j=9_000,
            price_per_kwh=Decimal("0.10"),
            baseline_w=None,
        ),
    ]
    (line,) = attribute(rows, ECON, assignments=OWNERS)
    assert (line.day, line.strategy, line.customer_id, line.curtailed_s) == (
        dt.date(2024, 6, 1),
        "plan",
        "acme",
        1500,
    )
    # conservative: 3050 W x 900 s - 13,500 J = 2,731,500 J; 3050 x 600 - 9,000 = 1,821,000 J
    assert line.conservative_saved_j == 4_552_500
    # $: 0.75875 kWh x 0.50 + 0.505833.. kWh x 0.10 = 0.429958.. -> 0.43 (rounded once, not 0.38 + 0.05)
    assert line.conservative_cost_saved == Decimal("0.43")
    # baseline only where history exists: 3200 W x 900 s - 13,500 J = 2,866,500 J = 0.79625 kWh x 0.50
    assert (line.baseline_saved_j, line.baseline_covered_s) == (2_866_500, 900)
    assert line.baseline_cost_saved == Decimal("0.40")
    # revenue: 100 TH/s x 1500 s / 86400 x 0.045 x 0.98 = 0.0765625 -> 0.08
    assert line.revenue_forgone == Decimal("0.08")
    # net from the exact figures: 0.4299583 - 0.0765625 = 0.3533958 -> 0.35
    assert line.net_benefit == Decimal("0.35")


def test_split_by_day_strategy_and_customer() -> None:
    rows = [
        row(),
        row(miner_id="m2", strategy="4cp"),
        row(interval_start=T0 + 86_400),
    ]
    lines = attribute(rows, ECON, assignments=OWNERS)
    keys = [(line.day.isoformat(), line.strategy, line.customer_id) for line in lines]
    assert keys == [
        ("2024-06-01", "4cp", UNASSIGNED),
        ("2024-06-01", "plan", "acme"),
        ("2024-06-02", "plan", "acme"),
    ]


def test_days_are_local_days() -> None:
    """04:00 UTC on June 1st is still May 31st in Chicago (UTC-5 in summer)."""
    lines = attribute([row(interval_start=T0 + 4 * 3600)], ECON, tz=ZoneInfo("America/Chicago"))
    assert lines[0].day == dt.date(2024, 5, 31)


def test_a_negative_saving_is_reported_not_hidden() -> None:
    (line,) = attribute([row(actual_j=3_000_000, baseline_w=None)], ECON)
    assert line.conservative_saved_j == 3050 * 900 - 3_000_000 < 0
    assert line.baseline_saved_j is None and line.baseline_cost_saved is None
    assert credit_lines([line]) == []


def test_credit_lines_for_settlement() -> None:
    lines = attribute([row(), row(miner_id="m2")], ECON, assignments=OWNERS)
    at_rate = credit_lines(lines, per_kwh=Decimal("0.05"))
    assert at_rate == [
        Credit(
            customer_id="acme",
            description="Curtailment credit (plan, conservative)",
            energy_j=2_731_500,
            per_kwh=Decimal("0.05"),
        )
    ]  # m2 is unassigned: the site's own saving, no customer credit
    lump = credit_lines(lines, basis="baseline", share=Decimal("0.5"))
    assert lump == [
        Credit(customer_id="acme", description="Curtailment credit (plan, baseline)", amount=Decimal("0.20"))
    ]  # 0.40 x 0.5


def test_bad_input_is_refused_with_the_row_named() -> None:
    with pytest.raises(ValueError, match="m1@1717200000"):
        row(curtailed_s=-1)
    with pytest.raises(TypeError, match="Decimal"):
        row(price_per_kwh=0.5)
    with pytest.raises(ValueError):
        Economics(hashprice_usd_per_th_day=Decimal("0.05"), pool_fee=Decimal("1.5"))
    with pytest.raises(ValueError, match="share"):
        credit_lines([], share=Decimal(2))


prices = st.decimals(min_value=Decimal("-0.1"), max_value=Decimal("5"), places=4)


@st.composite
def intervals(draw: st.DrawFn) -> CurtailedInterval:
    return row(
        miner_id=draw(st.sampled_from(["m1", "m2", "m3"])),
        interval_start=T0 + 900 * draw(st.integers(0, 300)),
        curtailed_s=draw(st.integers(0, 900)),
        actual_j=draw(st.integers(0, 20_000)),
        profile_w=draw(st.floats(0, 5000).map(lambda w: round(w, 1))),
        ths=draw(st.floats(0, 300).map(lambda t: round(t, 2))),
        price_per_kwh=draw(prices),
        strategy=draw(st.sampled_from(["plan", "4cp"])),
        baseline_w=draw(st.one_of(st.none(), st.floats(0, 5000).map(lambda w: round(w, 1)))),
    )


@settings(max_examples=100, deadline=None)
@given(rows=st.lists(intervals(), max_size=20), cut=st.floats(0, 1))
def test_splitting_curtailed_time_changes_nothing(rows: list[CurtailedInterval], cut: float) -> None:
    """Attribution is linear in time and energy: the same curtailment reported as two pieces per
    interval (as the meter does at an ownership or tariff boundary) gives the same lines."""
    pieces = []
    for r in rows:
        s, j = int(r.curtailed_s * cut), int(r.actual_j * cut)
        pieces += [
            dataclasses.replace(r, curtailed_s=s, actual_j=j),
            dataclasses.replace(r, curtailed_s=r.curtailed_s - s, actual_j=r.actual_j - j),
        ]
    assert attribute(pieces, ECON, assignments=OWNERS) == attribute(rows, ECON, assignments=OWNERS)


@settings(max_examples=100, deadline=None)
@given(rows=st.lists(intervals(), max_size=20))
def test_lines_partition_the_input(rows: list[CurtailedInterval]) -> None:
    lines = attribute(rows, ECON, assignments=OWNERS)
    assert sum(line.curtailed_s for line in lines) == sum(r.curtailed_s for r in rows)
    for line in lines:
        # net is rounded once from exact figures: within one cent of the difference of rounded ones
        assert abs(line.net_benefit - (line.conservative_cost_saved - line.revenue_forgone)) <= Decimal(
            "0.01"
        )
        assert line.revenue_forgone >= 0
    for credit in credit_lines(lines, per_kwh=Decimal("0.03")):
        assert credit.energy_j is not None and credit.energy_j > 0 and credit.customer_id == "acme"
