"""Expected FPPS vs paid: exact satoshi arithmetic, per-day status, totals, and properties (a payment equal
to expected x (1 + e) passes iff |e| <= tolerance; the expected figure is rounded once per day)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.energy.meter_csv import read_day_table
from gateway.energy.pool_csv import PRESETS, read_pool_csv
from gateway.energy.pool_reconcile import expected_fpps_btc, reconcile_pool

FIXTURES = Path(__file__).parent.parent / "fixtures" / "energy" / "reconcile"
D = date.fromisoformat


def test_expected_fpps_is_hashrate_times_hashprice_less_fee_rounded_to_the_satoshi() -> None:
    # 1,000 TH/s x 0.00000050 BTC/TH/day x 0.975 = 0.0004875 BTC
    assert expected_fpps_btc(Decimal(1000), Decimal("0.00000050"), Decimal("2.5")) == Decimal("0.00048750")
    # 0.5 sat ties go to even: 1 TH/s x 0.000000005 = 0.5 sat -> 0; 3 x = 1.5 sat -> 2 sat
    assert expected_fpps_btc(Decimal(1), Decimal("0.000000005"), Decimal(0)) == Decimal("0E-8")
    assert expected_fpps_btc(Decimal(3), Decimal("0.000000005"), Decimal(0)) == Decimal("0.00000002")
    with pytest.raises(TypeError, match="hashrate_ths"):
        expected_fpps_btc(1000.0, Decimal(1), Decimal(0))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pool_fee_pct"):
        expected_fpps_btc(Decimal(1), Decimal(1), Decimal(101))


def test_braiins_fixture_against_our_hashrate_and_hashprice() -> None:
    paid = read_pool_csv((FIXTURES / "braiins_daily_rewards.csv").read_bytes(), PRESETS["braiins"]).paid_btc
    ours = read_day_table(
        (FIXTURES / "pool_ours_daily.csv").read_bytes(), ("hashrate_ths", "hashprice_btc_per_th_day")
    )
    report = reconcile_pool(
        paid,
        {d: v["hashrate_ths"] for d, (_, v) in ours.items()},
        {d: v["hashprice_btc_per_th_day"] for d, (_, v) in ours.items()},
        pool="braiins",
        pool_fee_pct=Decimal("2.5"),
    )
    assert [
        (
            r.cells()["day"],
            r.cells()["expected_btc"],
            r.cells()["paid_btc"],
            r.cells()["diff_btc"],
            r.cells()["diff_pct"],
            r.status,
            r.note,
        )
        for r in report.rows
    ] == [
        ("2024-11-02", "0.00048750", "0.00048700", "-0.00000050", "-0.103", "pass", ""),
        ("2024-11-03", "0.00048750", "0.00048810", "0.00000060", "0.123", "pass", ""),
        ("2024-11-04", "0.00048750", "0.00046000", "-0.00002750", "-5.641", "fail", "underpaid"),
    ]
    s = report.summary()
    assert (
        s["fail"],
        s["compared_expected_btc"],
        s["compared_paid_btc"],
        s["compared_diff_btc"],
        s["compared_diff_pct"],
    ) == (
        1,
        "0.00146250",
        "0.00143510",
        "-0.00002740",
        "-1.874",
    )


def test_missing_inputs_make_a_day_missing() -> None:
    a, b, c = D("2024-01-01"), D("2024-01-02"), D("2024-01-03")
    report = reconcile_pool(
        {a: Decimal("0.001"), b: Decimal("0.001")},
        {a: Decimal(2000), c: Decimal(2000)},
        {a: Decimal("0.0000005")},
        pool="generic",
        pool_fee_pct=Decimal(0),
    )
    assert [(r.status, r.note) for r in report.rows] == [
        ("pass", ""),
        ("missing", "no hashrate, hashprice"),
        ("missing", "no pool payment, hashprice"),
    ]
    assert report.expected_btc == report.paid_btc == Decimal("0.001")
    with pytest.raises(ValueError, match="nothing to reconcile"):
        reconcile_pool({}, {}, {}, pool="x", pool_fee_pct=Decimal(0))
    with pytest.raises(TypeError, match=r"paid_btc\[2024-01-01\]"):
        reconcile_pool({a: 0.001}, {}, {}, pool="x", pool_fee_pct=Decimal(0))  # type: ignore[dict-item]


@settings(max_examples=80, deadline=None)
@given(
    sats=st.lists(st.integers(10_000, 10_000_000), min_size=1, max_size=10),
    e_bp=st.integers(-500, 500),
    tolerance_bp=st.sampled_from([50, 100, 200, 300]),
)
def test_paid_equal_to_expected_scaled_by_e_passes_iff_e_within_tolerance(
    sats: list[int], e_bp: int, tolerance_bp: int
) -> None:
    # hashprice chosen so that expected is a whole number of sats times 10,000: scaling stays exact
    days = [D("2024-05-01") + timedelta(days=i) for i in range(len(sats))]
    hashrate = {d: Decimal(100) for d in days}
    hashprice = {
        d: Decimal(s) * Decimal("0.0001") / 100 for d, s in zip(days, sats, strict=True)
    }  # BTC/TH/day
    expected = {d: expected_fpps_btc(hashrate[d], hashprice[d], Decimal(0)) for d in days}
    paid = {d: expected[d] * (10_000 + e_bp) / 10_000 for d in days}
    assert all(Fraction(paid[d]) == Fraction(expected[d]) * Fraction(10_000 + e_bp, 10_000) for d in days)
    report = reconcile_pool(
        paid,
        hashrate,
        hashprice,
        pool="p",
        pool_fee_pct=Decimal(0),
        tolerance_pct=Decimal(tolerance_bp) / 100,
    )
    assert {r.status for r in report.rows} == {"pass" if abs(e_bp) <= tolerance_bp else "fail"}
    assert report.count("fail") == (0 if abs(e_bp) <= tolerance_bp else len(days))


@settings(max_examples=80, deadline=None)
@given(
    hashrate=st.decimals(min_value=0, max_value=10**6, places=3),
    hashprice=st.decimals(min_value=0, max_value=Decimal("0.001"), places=12),
    fee=st.decimals(min_value=0, max_value=100, places=2),
)
def test_expected_is_the_exact_product_rounded_once(
    hashrate: Decimal, hashprice: Decimal, fee: Decimal
) -> None:
    got = expected_fpps_btc(hashrate, hashprice, fee)
    exact = Fraction(hashrate) * Fraction(hashprice) * (1 - Fraction(fee) / 100)
    assert abs(Fraction(got) - exact) <= Fraction(1, 2 * 10**8)
    assert got.as_tuple().exponent == -8
