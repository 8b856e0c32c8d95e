"""Settlement: hand-computed drafts, the split rule, DST days, bad input, and (hypothesis) the invariants
and agreement with the independent reference in `reference_settlement.py`."""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from itertools import pairwise
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.energy.settlement import (
    NO_MONEY_NOTICE,
    Assignment,
    Credit,
    DemandCharge,
    FacilityAdder,
    FeeSchedule,
    FixedFee,
    IntervalColumns,
    KwhAdder,
    LineKind,
    Period,
    Pue,
    Settlement,
    settle,
)
from gateway.energy.settlement_model import round_half_even
from gateway.metering import IntervalEnergy
from tests.energy.reference_settlement import FIELDS, reference_settle

D = Decimal
KWH = 3_600_000


def row(
    miner: str, start: int, joules: int, covered: int = 900, uncovered: int = 0, est: int = 0
) -> IntervalEnergy:
    return IntervalEnergy(
        miner_id=miner,
        interval_start=start,
        joules=joules,
        covered_s=covered,
        uncovered_s=uncovered,
        estimated_s=est,
        peak_w=None,
    )


def fig(f: object) -> tuple[int, ...]:
    return tuple(getattr(f, name) for name in FIELDS)


def local_midnight(day: date, tz: ZoneInfo) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=tz).timestamp())


# ------------------------------------------------------------------------------------------ price functions


@dataclass(frozen=True)
class Flat:
    price: Decimal

    def __call__(self, t: int) -> Decimal:
        return self.price


@dataclass(frozen=True)
class Tou:
    """Summer weekday peak 14:00-20:00 local, a shoulder 07:00-14:00, off-peak otherwise: local time
    through zoneinfo, so DST days move the UTC hours the peak falls on."""

    tz: ZoneInfo

    def __call__(self, t: int) -> Decimal:
        local = datetime.fromtimestamp(t, self.tz)
        if local.weekday() >= 5 or local.hour < 7 or local.hour >= 20:
            return D("0.0415")
        if local.hour < 14:
            return D("0.1125")
        return D("0.2875") if 6 <= local.month <= 9 else D("0.1575")


@dataclass(frozen=True)
class RealTime:
    """A price per interval, like an ERCOT settlement point: many distinct values, some negative."""

    seed: int

    def __call__(self, t: int) -> Decimal:
        h = (t // 900 * 2654435761 + self.seed * 97) % 60_001
        return D(h - 5_000).scaleb(-5)


# ------------------------------------------------------------------------------------------- hand examples


def _hand_site() -> tuple[list[IntervalEnergy], list[Assignment]]:
    rows = [row("m1", 900 * i, KWH) for i in range(4)]  # 1 kWh per interval
    rows += [row("m2", 0, KWH // 2, est=300)] + [row("m2", 900 * i, KWH // 2) for i in (1, 2, 3)]
    assignments = [
        Assignment(miner_id="m1", customer_id="A", start=-5000),
        Assignment(miner_id="m2", customer_id="A", start=0, end=1350),  # changes owner mid-interval 1
        Assignment(miner_id="m2", customer_id="B", start=1350, end=10_000),
    ]
    return rows, assignments


HAND_FEES = FeeSchedule(
    facility=Pue(factor=D("1.2")),
    adders=(KwhAdder(description="Transmission", per_kwh=D("0.01")),),
    fixed_fees=(FixedFee(description="Rack space", amount=D("10")),),
    service_fee_pct=D("10"),
    tax_pct=D("10"),
    credits=(Credit(customer_id="A", description="Demand response, 2024-07-02", amount=D("1.25")),),
)


def hand_price(t: int) -> Decimal:
    return D("0.10") if t < 1800 else D("0.20")


def test_hand_computed_drafts() -> None:
    """Written out by hand. m2's interval 1 (1800 kJ) splits at offset 450 s: A gets floor(1.8e6 x 450 /
    900) = 900 kJ. A: 2.75 kWh at 0.10 = 0.275 -> 0.28 (half-even tie), 2 kWh at 0.20 = 0.40; PUE 0.2 x
    0.675 = 0.135 -> 0.14; adder 4.75 kWh x 0.01 = 0.0475 -> 0.05; rack 10.00; credit -1.25; service
    10 % of 0.82 = 0.082 -> 0.08; tax 10 % of 9.70 = 0.97; total 10.67.
    B: 0.25 kWh at 0.10 = 0.025 -> 0.02 (tie to even); 1 kWh at 0.20 = 0.20; PUE 0.2 x 0.225 = 0.045 ->
    0.04; adder 0.0125 -> 0.01; rack 10.00; service 10 % of 0.26 = 0.026 -> 0.03; tax 10 % of 10.30 =
    1.03; total 11.33."""
    rows, assignments = _hand_site()
    s = settle((0, 3600), rows, assignments, hand_price, HAND_FEES)
    a, b = s.invoice("A"), s.invoice("B")
    assert [(ln.kind, ln.amount) for ln in a.lines] == [
        (LineKind.ENERGY, D("0.28")),
        (LineKind.ENERGY, D("0.40")),
        (LineKind.FACILITY, D("0.14")),
        (LineKind.ADDER, D("0.05")),
        (LineKind.FIXED, D("10.00")),
        (LineKind.CREDIT, D("-1.25")),
        (LineKind.SERVICE, D("0.08")),
        (LineKind.TAX, D("0.97")),
    ]
    assert a.total == D("10.67")
    assert [ln.amount for ln in b.lines] == [
        D(x) for x in ("0.02", "0.20", "0.04", "0.01", "10.00", "0.03", "1.03")
    ]
    assert b.total == D("11.33")
    assert s.invoiced_total == D("22.00")
    assert [str(ln.quantity) for ln in a.lines[:4]] == ["2.750", "2.000", "0.950", "4.750"]
    assert a.lines[0].unit_price == D("0.10") and a.lines[0].unit == "kWh"
    tax = a.lines[-1]
    assert (tax.quantity, tax.unit, tax.unit_price) == (D("9.70"), "USD", D("0.10"))
    # coverage and estimated energy: m2's first interval was 300 of 900 s on the profile's estimate
    assert a.energy.energy_j == int(4.75 * KWH) and b.energy.energy_j == int(1.25 * KWH)
    assert a.energy.estimated_j == KWH // 2 * 300 // 900
    assert (a.energy.miner_s, a.energy.covered_s, a.energy.estimated_s) == (3600 + 1350, 4950, 300)
    assert (b.energy.miner_s, b.energy.covered_s) == (2250, 2250)
    assert a.energy.coverage_pct == D("100.00") and a.energy.estimated_pct == D("3.51")
    assert s.unassigned_energy.energy_j == 0
    assert s.site_energy.energy_j == 6 * KWH
    assert s.site_energy_cost == D("0.90")  # 2 x 1.5 kWh x 0.10 + 2 x 1.5 kWh x 0.20
    assert all(inv.notice == NO_MONEY_NOTICE for inv in s.invoices) and s.notice == NO_MONEY_NOTICE
    assert "never moves, holds or pays out money" in NO_MONEY_NOTICE


def test_wire_record_is_json_with_no_floats_and_every_kwh_has_its_coverage() -> None:
    rows, assignments = _hand_site()
    record = settle((0, 3600), rows, assignments, hand_price, HAND_FEES).as_record()
    assert json.loads(json.dumps(record)) == record
    seen: list[str] = []

    def walk(node: object) -> None:
        assert not isinstance(node, float)
        if isinstance(node, dict):
            if "kwh" in node:
                assert "coverage_pct" in node and "estimated_kwh" in node
                seen.append(node["kwh"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(record)
    assert len(seen) > 10
    invoices = record["invoices"]
    assert isinstance(invoices, list) and all(inv["notice"] == NO_MONEY_NOTICE for inv in invoices)
    assert invoices[0]["total"] == "10.67" and invoices[0]["lines"][0]["amount"] == "0.28"


def test_split_rule_remainder_and_one_second() -> None:
    """A row of 900,001 J split at offset 300: the first owner gets floor(900001 x 300 / 900) = 300,000 J,
    the second the rest; at 301 the first gets floor(900001 x 301 / 900) = 301,000 J: that second's
    energy (1,000 J here) and nothing else moves."""

    def split_at(c: int) -> Settlement:
        assignments = [
            Assignment(miner_id="m", customer_id="A", start=0, end=c),
            Assignment(miner_id="m", customer_id="B", start=c),
        ]
        return settle(
            (0, 900),
            [row("m", 0, 900_001, covered=600, uncovered=300, est=200)],
            assignments,
            hand_price,
            FeeSchedule(),
        )

    s300, s301 = split_at(300), split_at(301)
    assert (s300.invoice("A").energy.energy_j, s300.invoice("B").energy.energy_j) == (300_000, 600_001)
    assert (s301.invoice("A").energy.energy_j, s301.invoice("B").energy.energy_j) == (301_000, 599_001)
    # accounted 900 s; covered nested in it, estimated nested in covered: A(300)=300, C=200, S=66
    a = s300.invoice("A").energy
    assert (a.miner_s, a.covered_s, a.uncovered_s, a.estimated_s) == (300, 200, 100, 66)
    assert fig(s300.site_energy) == fig(s301.site_energy)


def test_unassigned_remainder_and_customers_without_energy() -> None:
    rows = [row("m1", 0, KWH), row("m2", 0, KWH, covered=450, uncovered=450)]
    fees = FeeSchedule(
        fixed_fees=(FixedFee(description="Contract", amount=D("5"), customers=frozenset({"C"})),)
    )
    s = settle(
        (0, 900), rows, [Assignment(miner_id="m1", customer_id="A", start=0, end=900)], Flat(D("0.05")), fees
    )
    assert [inv.customer_id for inv in s.invoices] == ["A", "C"]
    c = s.invoice("C")
    assert [(ln.kind, ln.description, ln.amount) for ln in c.lines] == [
        (LineKind.ENERGY, "Energy", D("0.00")),
        (LineKind.FIXED, "Contract", D("5.00")),
    ]
    assert c.energy.coverage_pct is None
    assert s.unassigned_energy.energy_j == KWH and s.unassigned_energy_cost == D("0.05")
    assert s.unassigned_energy.coverage_pct == D("50.00")
    with pytest.raises(KeyError):
        s.invoice("nobody")


def test_missing_rows_lower_a_customers_coverage() -> None:
    """A miner assigned all day with rows for half of it: the missing half is in `missing_s`."""
    rows = [row("m", 900 * i, KWH) for i in range(48)]
    s = settle(
        (0, 86_400), rows, [Assignment(miner_id="m", customer_id="A", start=0)], Flat(D("0.1")), FeeSchedule()
    )
    e = s.invoice("A").energy
    assert (e.miner_s, e.covered_s, e.missing_s, e.coverage_pct) == (86_400, 43_200, 43_200, D("50.00"))


@pytest.mark.parametrize(
    ("tz", "day", "n_intervals", "off_kwh"),
    [
        ("America/Chicago", date(2024, 3, 10), 92, 40),  # spring forward: a 23 h day
        ("America/Chicago", date(2024, 11, 3), 100, 48),  # fall back: a 25 h day
        ("America/Los_Angeles", date(2025, 3, 9), 92, 40),
        ("America/Los_Angeles", date(2025, 11, 2), 100, 48),
    ],
)
def test_tou_on_dst_days(tz: str, day: date, n_intervals: int, off_kwh: int) -> None:
    """A TOU that ignores weekdays: peak 14-20 local, shoulder 7-14, off-peak otherwise; the day is local
    midnight to local midnight, 1 kWh per interval. Off-peak is 11 h on a normal day; the DST change
    happens at 02:00, inside off-peak: 10 h (40 intervals) in spring, 12 h (48) in autumn."""
    zone = ZoneInfo(tz)
    start, end = local_midnight(day, zone), local_midnight(day + timedelta(days=1), zone)
    assert (end - start) // 900 == n_intervals
    rows = [row("m", t, KWH) for t in range(start, end, 900)]

    def weekday_blind(t: int) -> Decimal:
        hour = datetime.fromtimestamp(t, zone).hour
        return D("0.30") if 14 <= hour < 20 else D("0.12") if 7 <= hour < 14 else D("0.05")

    s = settle(
        (start, end), rows, [Assignment(miner_id="m", customer_id="A", start=0)], weekday_blind, FeeSchedule()
    )
    lines = [(ln.quantity, ln.unit_price, ln.amount) for ln in s.invoice("A").lines]
    assert lines == [
        (D(off_kwh), D("0.05"), D(off_kwh) * D("0.05")),
        (D(28), D("0.12"), D("3.36")),
        (D(24), D("0.30"), D("7.20")),
    ]


def test_real_time_prices_make_one_line_at_the_weighted_average() -> None:
    rows = [row("m", 900 * i, KWH * (i + 1)) for i in range(20)]
    prices = RealTime(7)
    s = settle((0, 18_000), rows, [Assignment(miner_id="m", customer_id="A", start=0)], prices, FeeSchedule())
    (line,) = s.invoice("A").lines
    exact = sum((Fraction(i + 1) * Fraction(prices(900 * i)) for i in range(20)), Fraction(0))
    assert line.amount == round_half_even(exact, 2)
    assert line.unit_price == round_half_even(exact / 210, 6) and line.quantity == D(210)
    assert s.price_count == 20


def test_negative_prices_round_half_even_symmetrically() -> None:
    assert round_half_even(Fraction(-25, 1000), 2) == D("-0.02")
    assert round_half_even(Fraction(-35, 1000), 2) == D("-0.04")
    assert round_half_even(Fraction(25, 1000), 2) == D("0.02")
    assert round_half_even(Fraction(1, 3), 0) == D("0")
    s = settle(
        (0, 900),
        [row("m", 0, KWH // 4)],
        [Assignment(miner_id="m", customer_id="A", start=0)],
        Flat(D("-0.1")),
        FeeSchedule(),
    )
    assert s.invoice("A").total == D("-0.02")  # -0.025 -> -0.02


def test_currency_minor_units_and_other_fee_forms() -> None:
    fees = FeeSchedule(
        currency="JPY",
        facility=FacilityAdder(per_kwh=D("1.5")),
        credits=(Credit(customer_id="A", description="Curtailment", energy_j=2 * KWH, per_kwh=D("3.25")),),
    )
    s = settle(
        (0, 900),
        [row("m", 0, 3 * KWH)],
        [Assignment(miner_id="m", customer_id="A", start=0)],
        Flat(D("20.5")),
        fees,
    )
    assert [(ln.kind, ln.amount) for ln in s.invoice("A").lines] == [
        (LineKind.ENERGY, D("62")),  # 61.5 -> 62 (tie to even)
        (LineKind.FACILITY, D("4")),  # 4.5 -> 4
        (LineKind.CREDIT, D("-6")),  # -6.5 -> -6
    ]


def test_columns_rows_and_chunking_agree() -> None:
    rows, assignments = _hand_site()
    expected = settle((0, 3600), rows, assignments, hand_price, HAND_FEES)
    shuffled = list(reversed(rows))
    for chunk in (1, 2, 3, 1000):
        assert (
            settle(
                Period(start=0, end=3600),
                IntervalColumns.from_rows(shuffled),
                assignments,
                hand_price,
                HAND_FEES,
                chunk_rows=chunk,
            )
            == expected
        )


def test_rows_outside_the_period_are_ignored() -> None:
    rows, assignments = _hand_site()
    extra = [row("m1", -900, 5 * KWH), row("m1", 3600, 5 * KWH)]
    assert settle((0, 3600), rows + extra, assignments, hand_price, HAND_FEES) == settle(
        (0, 3600), rows, assignments, hand_price, HAND_FEES
    )


# ---------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([row("m", 0, 1), row("m", 0, 2)], "row of miner m at interval_start 0: duplicated interval"),
        ([row("m", 0, 1), row("x", 0, 1), row("m", 0, 2)], "duplicated interval"),
        ([row("m", 10, 1)], "off the 900 s grid"),
        ([row("m", 900, -1)], "row of miner m at interval_start 900: joules outside"),
        ([row("m", 0, 1, covered=900, uncovered=1)], "covered_s + uncovered_s > 900"),
        ([row("m", 0, 1, covered=10, est=11)], "estimated_s > covered_s"),
        ([row("m", 0, 1, covered=0)], "energy without covered time"),
    ],
)
def test_bad_rows_are_refused_naming_the_row(rows: list[IntervalEnergy], message: str) -> None:
    for chunk in (1, 1000):
        with pytest.raises(ValueError, match=re.escape(message)):
            settle((0, 3600), rows, [], Flat(D("0.1")), FeeSchedule(), chunk_rows=chunk)


def test_bad_inputs_are_refused() -> None:
    ok_rows = [row("m", 0, 1)]
    with pytest.raises(ValueError, match="overlaps"):
        settle(
            (0, 900),
            ok_rows,
            [
                Assignment(miner_id="m", customer_id="A", start=0),
                Assignment(miner_id="m", customer_id="B", start=500, end=600),
            ],
            Flat(D(1)),
            FeeSchedule(),
        )
    with pytest.raises(ValueError, match="not on the 900 s interval grid"):
        settle((0, 1000), ok_rows, [], Flat(D(1)), FeeSchedule())
    with pytest.raises(TypeError, match="finite decimal"):
        settle((0, 900), ok_rows, [], lambda t: 0.1, FeeSchedule())  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match="finite decimal"):
        settle((0, 900), ok_rows, [], Flat(D("NaN")), FeeSchedule())
    with pytest.raises(TypeError):
        KwhAdder(description="x", per_kwh=0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Credit(customer_id="A", description="x", amount=D(1), energy_j=1, per_kwh=D(1))
    with pytest.raises(ValueError):
        Credit(customer_id="A", description="x", energy_j=1)
    with pytest.raises(ValueError):
        Pue(factor=D("0.9"))
    with pytest.raises(ValueError):
        Assignment(miner_id="m", customer_id="A", start=5, end=5)
    with pytest.raises(ValueError):
        Period(start=5, end=5)
    with pytest.raises(TypeError):
        IntervalColumns(
            miner_ids=("m",),
            miner=np.zeros(1, np.int64),
            interval_start=np.zeros(1, np.int64),
            joules=np.zeros(1, np.float64),
            covered_s=np.zeros(1, np.int64),
            uncovered_s=np.zeros(1, np.int64),
            estimated_s=np.zeros(1, np.int64),
        )


# ------------------------------------------------------------------------------------ randomized sites

DST_DAYS = {
    "America/Chicago": (date(2024, 3, 10), date(2024, 11, 3), date(2025, 3, 9), date(2025, 11, 2)),
    "America/Los_Angeles": (date(2024, 3, 10), date(2024, 11, 3), date(2025, 3, 9), date(2025, 11, 2)),
}
CUSTOMERS = ("acme", "bitfarm", "cobalt", "delta")
NAMED = (*CUSTOMERS, "echo")  # echo has no miners, only fees


@dataclass(frozen=True)
class Site:
    period: tuple[int, int]
    rows: list[IntervalEnergy]
    assignments: list[Assignment]


def make_site(seed: int, n_miners: int, period: tuple[int, int], n_changes: int) -> Site:
    """A random fleet: rows with full, partial and no coverage, estimated readings, missing rows, rows
    outside the period; assignments with changes on and off the 15-minute grid, gaps and open ends."""
    rng = random.Random(seed)
    start, end = period
    rows: list[IntervalEnergy] = []
    assignments: list[Assignment] = []
    for k in range(n_miners):
        miner = f"m{k}"
        watts = rng.choice((0, 90, 1_234, 3_250, 5_555))
        for t in range(start - 1800, end + 1800, 900):
            if rng.random() < 0.1:
                continue  # missing row
            shape = rng.random()
            covered = 0 if shape < 0.1 else rng.randint(1, 900) if shape < 0.3 else 900
            uncovered = rng.randint(0, 900 - covered)
            est = rng.randint(0, covered) if rng.random() < 0.3 else 0
            joules = watts * covered + rng.randint(0, 899) if covered else 0
            rows.append(row(miner, t, joules, covered, uncovered, est))
        anywhere = [rng.randrange(start - 3600, end + 3600) for _ in range(n_changes)]
        on_grid = [rng.randrange(start, end, 900) for _ in range(n_changes)]
        first = rng.randrange(start - 7200, start + 1)
        cuts = sorted({rng.choice(pair) for pair in zip(anywhere, on_grid, strict=True)} - {first})
        edges: list[int | None] = [first, *(c for c in cuts if c > first), None]
        for a, b in pairwise(edges):
            owner = rng.choice((*CUSTOMERS[: rng.randint(1, len(CUSTOMERS))], None))
            if owner is None or a is None:
                continue
            if b is None and rng.random() < 0.5:
                b = rng.randrange(a + 1, max(a + 2, end + 3600))  # closed, else open-ended
            assignments.append(Assignment(miner_id=miner, customer_id=owner, start=a, end=b))
    rng.shuffle(rows)
    return Site(period=period, rows=rows, assignments=assignments)


@st.composite
def periods(draw: st.DrawFn) -> tuple[int, int, ZoneInfo]:
    tz_name = draw(st.sampled_from(sorted(DST_DAYS)))
    zone = ZoneInfo(tz_name)
    day = draw(st.sampled_from(DST_DAYS[tz_name])) + timedelta(days=draw(st.integers(-1, 1)))
    first = day - timedelta(days=draw(st.integers(0, 1)))
    last = day + timedelta(days=draw(st.integers(1, 2)))
    return local_midnight(first, zone), local_midnight(last, zone), zone


decimals = st.sampled_from([D("0"), D("0.5"), D("2.5"), D("7.25"), D("8.875"), D("12")])


@st.composite
def fee_schedules(draw: st.DrawFn) -> FeeSchedule:
    money = st.decimals(min_value=0, max_value=500, places=draw(st.sampled_from([0, 2, 3])))
    rates = st.decimals(min_value=0, max_value=D("0.05"), places=4)
    customer = st.sampled_from(CUSTOMERS)
    facility = draw(
        st.one_of(
            st.none(),
            st.builds(Pue, factor=st.sampled_from([D("1"), D("1.07"), D("1.125"), D("1.3")])),
            st.builds(FacilityAdder, per_kwh=rates),
        )
    )
    return FeeSchedule(
        currency=draw(st.sampled_from(["USD", "USD", "EUR", "JPY", "KWD"])),
        facility=facility,
        adders=tuple(
            draw(st.lists(st.builds(KwhAdder, description=st.just("a"), per_kwh=rates), max_size=2))
        ),
        fixed_fees=tuple(
            draw(
                st.lists(
                    st.builds(
                        FixedFee,
                        description=st.just("fixed"),
                        amount=money,
                        customers=st.none() | st.frozensets(st.sampled_from(NAMED), max_size=2),
                    ),
                    max_size=2,
                )
            )
        ),
        service_fee_pct=draw(decimals),
        tax_pct=draw(decimals),
        credits=tuple(
            draw(
                st.lists(
                    st.one_of(
                        st.builds(
                            Credit,
                            customer_id=customer,
                            description=st.just("dr"),
                            amount=money,
                        ),
                        st.builds(
                            Credit,
                            customer_id=customer,
                            description=st.just("curtailment"),
                            energy_j=st.integers(0, 10 * KWH),
                            per_kwh=rates,
                        ),
                    ),
                    max_size=2,
                )
            )
        ),
        max_energy_lines=draw(st.sampled_from([1, 3, 12])),
    )


@st.composite
def sites(draw: st.DrawFn) -> tuple[Site, object, FeeSchedule]:
    start, end, zone = draw(periods())
    site = make_site(
        draw(st.integers(0, 2**32)), draw(st.integers(1, 4)), (start, end), draw(st.integers(0, 5))
    )
    price_fn = draw(
        st.one_of(
            st.builds(Flat, st.decimals(min_value=D("-0.05"), max_value=D("0.5"), places=5)),
            st.just(Tou(zone)),
            st.builds(RealTime, st.integers(0, 1000)),
        )
    )
    fees = draw(fee_schedules())
    charges = []
    for _ in range(draw(st.integers(0, 2))):
        first = draw(st.integers(0, (end - start) // 900 - 1))
        length = draw(st.sampled_from([1, 2, 4]))
        charges.append(
            DemandCharge(
                description="peak demand",
                amount=draw(st.decimals(min_value=0, max_value=5000, places=2)),
                window_start=start + first * 900,
                window_end=min(end, start + (first + length) * 900),
            )
        )
    return site, price_fn, replace(fees, demand_charges=tuple(charges))


def run(site: Site, price_fn: object, fees: FeeSchedule, **kw: int) -> Settlement:
    return settle(site.period, site.rows, site.assignments, price_fn, fees, **kw)  # type: ignore[arg-type]


@settings(max_examples=60)
@given(sites(), st.sampled_from([1, 7, 1000, 2_000_000]))
def test_agrees_with_the_reference_to_the_cent(case: tuple[Site, object, FeeSchedule], chunk: int) -> None:
    site, price_fn, fees = case
    got = run(site, price_fn, fees, chunk_rows=chunk)
    want = reference_settle(site.period, site.rows, site.assignments, price_fn, fees)
    assert {inv.customer_id for inv in got.invoices} == set(want["invoices"])
    for inv in got.invoices:
        ref = want["invoices"][inv.customer_id]
        assert [(str(ln.kind), ln.amount) for ln in inv.lines] == ref["lines"]
        assert inv.total == ref["total"]
        assert fig(inv.energy) == tuple(ref["energy"][f] for f in FIELDS)
        for ln in inv.lines:
            if (
                ln.kind is LineKind.ENERGY
                and got.price_count <= fees.max_energy_lines
                and ln.unit_price is not None
            ):
                assert ln.energy is not None
                assert fig(ln.energy) == tuple(ref["by_price"][ln.unit_price][f] for f in FIELDS)
    assert fig(got.unassigned_energy) == tuple(want["unassigned"][f] for f in FIELDS)
    assert fig(got.site_energy) == tuple(want["site"][f] for f in FIELDS)
    assert (got.site_energy_cost, got.unassigned_energy_cost) == (want["site_cost"], want["unassigned_cost"])


@settings(max_examples=60)
@given(sites())
def test_conservation_and_totals(case: tuple[Site, object, FeeSchedule]) -> None:
    """Customers + unassigned = site, exactly, in every integer field; site = the rows in the period;
    each draft's total = the sum of its rounded lines; every energy line's figure sums to the draft's."""
    site, price_fn, fees = case
    s = run(site, price_fn, fees)
    total = s.unassigned_energy
    for inv in s.invoices:
        total = total + inv.energy
        assert inv.total == sum((ln.amount for ln in inv.lines), D(0))
        assert all(ln.amount == ln.amount.quantize(D(1).scaleb(-fees.minor_units)) for ln in inv.lines)
        energy_lines = [ln.energy for ln in inv.lines if ln.kind is LineKind.ENERGY]
        assert (
            sum((f for f in energy_lines if f is not None), type(inv.energy)()).energy_j
            == inv.energy.energy_j
        )
        assert inv.notice == NO_MONEY_NOTICE
        assert 0 <= inv.energy.estimated_j <= inv.energy.energy_j
        assert 0 <= inv.energy.estimated_s <= inv.energy.covered_s and inv.energy.missing_s >= 0
    assert fig(total) == fig(s.site_energy)
    inside = [r for r in site.rows if site.period[0] <= r.interval_start < site.period[1]]
    assert s.site_energy.energy_j == sum(r.joules for r in inside)
    assert s.site_energy.covered_s == sum(r.covered_s for r in inside)
    assert s.site_energy.uncovered_s == sum(r.uncovered_s for r in inside)
    assert s.site_energy.estimated_s == sum(r.estimated_s for r in inside)
    assert s.site_energy.estimated_j == sum(
        r.joules * r.estimated_s // r.covered_s for r in inside if r.covered_s
    )
    assert s.invoiced_total == sum((inv.total for inv in s.invoices), D(0))
    # Demand charges: the customers' shares and the host's add up to each charge, up to one rounding
    # (half a minor unit) per line.
    charged = sum((dc.amount for dc in fees.demand_charges), D(0))
    passed = sum((ln.amount for inv in s.invoices for ln in inv.lines if ln.kind is LineKind.DEMAND), D(0))
    lines = sum(1 for inv in s.invoices for ln in inv.lines if ln.kind is LineKind.DEMAND) + 1
    assert abs(passed + s.unassigned_demand_cost - charged) <= lines * D(1).scaleb(-fees.minor_units) / 2


@settings(max_examples=60)
@given(sites(), st.data())
def test_moving_a_boundary_one_second_moves_that_seconds_energy(
    case: tuple[Site, object, FeeSchedule], data: st.DataObject
) -> None:
    """m0 belongs to acme until c, to bitfarm from c; c -> c + 1 moves exactly J(o + 1) - J(o) of the row
    holding second c (o: its offset) from bitfarm to acme, one assigned second, and nothing else."""
    site, price_fn, fees = case
    start, end = site.period
    miner = "m0"
    c = data.draw(st.integers(start + 1, end - 2))
    others = [a for a in site.assignments if a.miner_id != miner]

    def at(boundary: int) -> Settlement:
        moved = [
            Assignment(miner_id=miner, customer_id="acme", start=start - 5, end=boundary),
            Assignment(miner_id=miner, customer_id="bitfarm", start=boundary, end=end + 5),
        ]
        return run(Site(site.period, site.rows, others + moved), price_fn, fees)

    before, after = at(c), at(c + 1)
    s = c - c % 900
    rows = [r for r in site.rows if r.miner_id == miner and r.interval_start == s]
    o = c - s
    second = rows[0].joules * (o + 1) // 900 - rows[0].joules * o // 900 if rows else 0
    assert after.invoice("acme").energy.energy_j - before.invoice("acme").energy.energy_j == second
    assert after.invoice("bitfarm").energy.energy_j - before.invoice("bitfarm").energy.energy_j == -second
    assert after.invoice("acme").energy.miner_s - before.invoice("acme").energy.miner_s == 1
    assert fig(after.site_energy) == fig(before.site_energy)
    assert fig(after.unassigned_energy) == fig(before.unassigned_energy)
    for inv in before.invoices:
        if inv.customer_id not in ("acme", "bitfarm"):
            assert after.invoice(inv.customer_id) == inv


@settings(max_examples=60)
@given(sites(), st.data())
def test_a_split_never_changes_a_total(case: tuple[Site, object, FeeSchedule], data: st.DataObject) -> None:
    """Cutting an assignment in two (same customer on both sides) at any instant changes nothing."""
    site, price_fn, fees = case
    if not site.assignments:
        return
    i = data.draw(st.integers(0, len(site.assignments) - 1))
    a = site.assignments[i]
    hi = a.end if a.end is not None else site.period[1] + 3600
    if hi - a.start < 2:
        return
    cut = data.draw(st.integers(a.start + 1, hi - 1))
    pieces = [
        Assignment(miner_id=a.miner_id, customer_id=a.customer_id, start=a.start, end=cut),
        Assignment(miner_id=a.miner_id, customer_id=a.customer_id, start=cut, end=a.end),
    ]
    split = [*site.assignments[:i], *pieces, *site.assignments[i + 1 :]]
    assert run(Site(site.period, site.rows, split), price_fn, fees) == run(site, price_fn, fees)
