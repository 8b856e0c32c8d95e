"""Site aggregates: hand-computed hours/days/months, DST days in America/Chicago and America/Los_Angeles,
peak demand from site 15-minute sums (partial coverage shown, never scaled up), bad input, and hypothesis
properties (hours add up to days and days to months exactly; chunking and order never change a figure;
cost and CO2 agree with a plain Fraction reference computed straight from the per-miner rows)."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.energy.aggregates import (
    INTERVAL_S,
    Level,
    SiteFigure,
    SiteInterval,
    aggregate,
    merge_site_intervals,
    month_start,
    months_covering,
    site_intervals,
)
from gateway.energy.carbon import CarbonFactor
from gateway.energy.settlement_model import IntervalColumns
from gateway.energy.settlement_output import EnergyFigure
from gateway.metering import IntervalEnergy

D = Decimal
CHI = "America/Chicago"
LA = "America/Los_Angeles"
FACTOR = CarbonFactor(kg_per_kwh=D("0.4"), source="test factor (not a published figure)", year=2024)


def at(tz: str, year: int, mon: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return int(datetime(year, mon, day, hour, minute, tzinfo=ZoneInfo(tz)).timestamp())


def month(tz: str, year: int, mon: int) -> tuple[int, int]:
    start = at(tz, year, mon, 1)
    return start, months_covering(start, start + 1, tz)[1]


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


def cols(rows: Iterable[IntervalEnergy]) -> IntervalColumns:
    return IntervalColumns.from_rows(rows)


def by_label(figs: Iterable[SiteFigure]) -> dict[str, SiteFigure]:
    return {f.label: f for f in figs}


# ------------------------------------------------------------------------------------- hand-computed


def test_hand_computed_hour_day_month() -> None:
    """Two miners in January (no DST), Chicago.

    15th 10:00 local: a 3,000 W measured (2,700,000 J) + b 2,000 W estimated (1,800,000 J) = 4,500,000 J:
        1.25 kWh, 5 kW.
    15th 10:15: a covered 450 s of 900 (1,350,000 J, 450 s uncovered) + b 1,800,000 J estimated
        = 3,150,000 J: 3.5 kW at 75 % coverage (1,350 of 1,800 miner-seconds), not scaled to 100 %.
    Hour 10:00: 7,650,000 J = 2.125 kWh, estimated 3,600,000 J = 1 kWh (47.06 %), coverage 3,150/3,600.
        Prices 0.10 then 0.20 $/kWh: 0.125 + 0.175 = 0.30. CO2 at 0.4 kg/kWh: 0.850 kg.
    20th 05:00: a alone 4,500,000 J (5 kW, ties the 15th's peak: the earlier one wins) at 0.10 $/kWh:
        exactly 0.125, rounded half-even to 0.12."""
    t1 = at(CHI, 2024, 1, 15, 10)
    t2 = t1 + 900
    t3 = at(CHI, 2024, 1, 20, 5)
    rows = [
        row("a", t1, 2_700_000),
        row("b", t1, 1_800_000, est=900),
        row("a", t2, 1_350_000, covered=450, uncovered=450),
        row("b", t2, 1_800_000, est=900),
        row("a", t3, 4_500_000),
    ]
    prices = {t1: D("0.10"), t2: D("0.20"), t3: D("0.10")}
    start, end = month(CHI, 2024, 1)
    out = aggregate(
        site_intervals(cols(rows)), start=start, end=end, tz=CHI, price_fn=prices.__getitem__, carbon=FACTOR
    )
    assert len(out.hourly) == 31 * 24 and len(out.daily) == 31 and len(out.monthly) == 1

    hour = by_label(out.hourly)["2024-01-15T10:00-06:00"]
    assert hour.level is Level.HOUR and hour.start == t1 and hour.end == t1 + 3600
    assert hour.intervals == 4 and hour.intervals_with_data == 2
    assert hour.energy == EnergyFigure(
        energy_j=7_650_000,
        estimated_j=3_600_000,
        miner_s=3600,
        covered_s=3150,
        uncovered_s=450,
        estimated_s=1800,
    )
    assert hour.energy.kwh == D("2.125") and hour.energy.coverage_pct == D("87.50")
    assert hour.energy.estimated_pct == D("47.06") and hour.energy.missing_s == 0
    assert hour.cost == D("0.30") and hour.currency == "USD"
    assert hour.co2 is not None and hour.co2.kg == D("0.850") and hour.co2.factor == FACTOR
    assert hour.peak is not None and hour.peak.interval_start == t1 and hour.peak.kw == 5

    # the quarter-hour peak of a later hour that is only partly covered: reported with its coverage
    partial = aggregate(site_intervals(cols(rows[2:4])), start=start, end=end, tz=CHI).monthly[0].peak
    assert partial is not None and partial.interval_start == t2
    assert partial.kw == Fraction(7, 2) and partial.kw_display == D("3.500")
    assert partial.energy.coverage_pct == D("75.00") and partial.energy.uncovered_s == 450

    day15 = by_label(out.daily)["2024-01-15"]
    assert day15.energy == hour.energy and day15.cost == D("0.30") and day15.intervals == 96
    day20 = by_label(out.daily)["2024-01-20"]
    assert day20.energy.energy_j == 4_500_000 and day20.cost == D("0.12")  # 0.125: ties to even
    assert (
        by_label(out.daily)["2024-01-16"].energy == EnergyFigure()
        and by_label(out.daily)["2024-01-16"].peak is None
    )

    (mon,) = out.monthly
    assert mon.label == "2024-01" and mon.start == start and mon.end == end and mon.intervals == 31 * 96
    assert mon.energy.energy_j == 12_150_000 and mon.energy.kwh == D("3.375")
    assert mon.cost == D("0.42")  # 0.125 + 0.175 + 0.125 = 0.425 exactly, rounded once: 0.42
    assert mon.peak is not None and mon.peak.interval_start == t1  # 5 kW twice: the earlier interval
    assert mon.co2 is not None and mon.co2.kg == D("1.350")
    record = mon.as_record()
    assert record["cost"] == "0.42" and record["energy"]["coverage_pct"] == "90.00"  # type: ignore[index]  # 4,050 of 4,500 s
    assert record["co2"] == {"kg": "1.350", "factor": FACTOR.as_record()}


def test_without_prices_or_factor_cost_and_co2_are_absent() -> None:
    start, end = month(CHI, 2024, 1)
    out = aggregate(site_intervals(cols([row("a", start, 900)])), start=start, end=end, tz=CHI)
    assert all(f.cost is None and f.co2 is None for f in out.figures)


# ---------------------------------------------------------------------------------------------- DST


@pytest.mark.parametrize("tz", [CHI, LA])
def test_spring_forward_day_has_23_hours(tz: str) -> None:
    start, end = month(tz, 2024, 3)
    out = aggregate((), start=start, end=end, tz=tz)
    days = by_label(out.daily)
    assert days["2024-03-10"].intervals == 92 and days["2024-03-09"].intervals == 96
    hours = [h for h in out.hourly if h.label.startswith("2024-03-10")]
    assert len(hours) == 23 and not any(h.label.startswith("2024-03-10T02:") for h in hours)
    assert out.monthly[0].intervals == 31 * 96 - 4 == (end - start) // INTERVAL_S
    assert sum(d.intervals for d in out.daily) == out.monthly[0].intervals


@pytest.mark.parametrize(("tz", "std", "dst"), [(CHI, "-06:00", "-05:00"), (LA, "-08:00", "-07:00")])
def test_fall_back_day_has_25_hours_and_two_one_oclocks(tz: str, std: str, dst: str) -> None:
    start, end = month(tz, 2024, 11)
    first_one = at(tz, 2024, 11, 3, 1)  # fold=0: the first 01:00, still on daylight time
    second_one = first_one + 3600
    rows = [row("a", first_one, 1_000), row("a", second_one + 900, 2_000)]
    out = aggregate(site_intervals(cols(rows)), start=start, end=end, tz=tz)
    day = by_label(out.daily)["2024-11-03"]
    assert day.intervals == 100 and day.end - day.start == 25 * 3600 and day.energy.energy_j == 3_000
    hours = by_label(out.hourly)
    assert len([h for h in out.hourly if h.label.startswith("2024-11-03")]) == 25
    assert hours[f"2024-11-03T01:00{dst}"].energy.energy_j == 1_000
    assert hours[f"2024-11-03T01:00{std}"].energy.energy_j == 2_000
    assert hours[f"2024-11-03T01:00{std}"].start == second_one
    assert out.monthly[0].intervals == 30 * 96 + 4


def test_month_helpers_follow_the_local_calendar() -> None:
    start = at(CHI, 2024, 3, 1)
    assert start == 1_709_272_800  # 2024-03-01 06:00 UTC
    assert month_start(start + 40 * 86_400, CHI) == at(CHI, 2024, 4, 1)
    assert months_covering(at(CHI, 2024, 3, 31, 23, 45), at(CHI, 2024, 4, 1, 0, 15), CHI) == (
        start,
        at(CHI, 2024, 5, 1),
    )
    with pytest.raises(ValueError, match="empty window"):
        months_covering(start, start, CHI)


def test_horizon_leaves_out_buckets_that_have_not_started() -> None:
    start, end = month(CHI, 2024, 1)
    now = at(CHI, 2024, 1, 10, 12, 20)
    horizon = now - now % 900 + 900
    out = aggregate(
        site_intervals(cols([row("a", horizon - 900, 5)])), start=start, end=end, tz=CHI, horizon=horizon
    )
    assert len(out.daily) == 10 and len(out.hourly) == 9 * 24 + 13
    assert out.hourly[-1].label == "2024-01-10T12:00-06:00" and out.hourly[-1].intervals == 4
    assert out.monthly[0].energy.energy_j == 5 and out.monthly[0].intervals == 31 * 96
    with pytest.raises(ValueError, match="outside"):
        aggregate(site_intervals(cols([row("a", horizon, 5)])), start=start, end=end, tz=CHI, horizon=horizon)


# ---------------------------------------------------------------------------------------- bad input

T0 = 1_704_088_800  # 2024-01-01 06:00 UTC: local midnight in Chicago


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (row("m7", T0 + 1, 10), "interval_start off the 900 s grid"),
        (row("m7", T0, -1), r"joules outside \[0, "),
        (row("m7", T0, 10**12), r"joules outside \[0, "),
        (row("m7", T0, 10, covered=-1), "negative seconds"),
        (row("m7", T0, 10, covered=900, uncovered=1), "covered_s \\+ uncovered_s > 900"),
        (row("m7", T0, 10, covered=10, est=11), "estimated_s > covered_s"),
        (row("m7", T0, 10, covered=0, uncovered=900), "energy without covered time"),
        (row("ok", T0, 10), "duplicate row"),
    ],
)
def test_rows_the_meter_cannot_produce_are_refused_by_name(bad: IntervalEnergy, message: str) -> None:
    good = [row("ok", T0, 10), row("ok", T0 + 900, 10)]
    with pytest.raises(ValueError, match=message) as err:
        site_intervals(cols([*good, bad]))
    assert f"miner {bad.miner_id} at interval_start {bad.interval_start}" in str(err.value)


def test_bad_windows_prices_and_zones() -> None:
    start, end = month(CHI, 2024, 1)
    one = site_intervals(cols([row("a", T0, 3_600_000)]))
    with pytest.raises(ValueError, match="whole local months"):
        aggregate(one, start=start + 900, end=end, tz=CHI)
    with pytest.raises(ValueError, match="whole local months"):
        aggregate(one, start=start, end=end, tz=LA)  # Chicago's month is not Los Angeles'
    with pytest.raises(ValueError, match="unknown IANA time zone"):
        aggregate(one, start=start, end=end, tz="Mars/Olympus_Mons")
    with pytest.raises(ValueError, match="outside"):
        aggregate(site_intervals(cols([row("a", end, 1)])), start=start, end=end, tz=CHI)
    with pytest.raises(ValueError, match="given twice"):
        aggregate([*one, *one], start=start, end=end, tz=CHI)
    with pytest.raises(
        TypeError, match=r"price for the interval at 1704088800 \(2024-01-01T06:00:00\+00:00\)"
    ):
        aggregate(one, start=start, end=end, tz=CHI, price_fn=lambda t: 0.1)  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match="finite Decimal"):
        aggregate(one, start=start, end=end, tz=CHI, price_fn=lambda t: D("NaN"))
    with pytest.raises(KeyError):  # a price function's own error is not swallowed
        no_prices: dict[int, Decimal] = {}
        aggregate(one, start=start, end=end, tz=CHI, price_fn=no_prices.__getitem__)


def test_negative_prices_and_other_currencies_round_once() -> None:
    start, end = month(CHI, 2024, 1)
    one = site_intervals(cols([row("a", T0, 3_600_000), row("a", T0 + 900, 1_800_000)]))
    usd = aggregate(one, start=start, end=end, tz=CHI, price_fn=lambda t: D("-0.0125"))
    assert usd.monthly[0].cost == D("-0.02")  # -0.01875
    jpy = aggregate(one, start=start, end=end, tz=CHI, price_fn=lambda t: D("25.5"), currency="JPY")
    assert jpy.monthly[0].cost == D("38") and jpy.monthly[0].currency == "JPY"  # 38.25


# ------------------------------------------------------------------------------------------ properties

MONTHS = [(CHI, 2024, 3), (CHI, 2024, 11), (LA, 2024, 3), (LA, 2024, 11), (CHI, 2024, 1)]


@dataclass(frozen=True)
class Site:
    tz: str
    start: int
    end: int
    rows: list[IntervalEnergy]
    prices: dict[int, Decimal]


@st.composite
def sites(draw: st.DrawFn) -> Site:
    tz, year, mon = draw(st.sampled_from(MONTHS))
    start, end = month(tz, year, mon)
    n = (end - start) // INTERVAL_S
    # favour the DST weekend (days 1-12 in March, 1-7 in November) so the odd days are always exercised
    focus = st.integers(0, min(n - 1, 12 * 96))
    keys = draw(
        st.lists(
            st.tuples(st.one_of(focus, st.integers(0, n - 1)), st.integers(0, 4)), max_size=120, unique=True
        )
    )
    rows = []
    for k, m in keys:
        covered = draw(st.integers(0, 900))
        uncovered = draw(st.integers(0, 900 - covered))
        est = draw(st.integers(0, covered))
        joules = draw(st.integers(0, 6_000 * covered))
        rows.append(row(f"m{m}", start + k * INTERVAL_S, joules, covered, uncovered, est))
    prices = {r.interval_start: D(draw(st.integers(-5_000, 50_000))).scaleb(-5) for r in rows}
    return Site(tz=tz, start=start, end=end, rows=rows, prices=prices)


def total(figs: Iterable[EnergyFigure]) -> EnergyFigure:
    out = EnergyFigure()
    for f in figs:
        out = out + f
    return out


def within(outer: SiteFigure, inner: Iterable[SiteFigure]) -> list[SiteFigure]:
    return [f for f in inner if outer.start <= f.start < outer.end]


@settings(max_examples=60, deadline=None)
@given(sites())
def test_hours_add_up_to_days_and_days_to_the_month_exactly(site: Site) -> None:
    out = aggregate(
        site_intervals(cols(site.rows)),
        start=site.start,
        end=site.end,
        tz=site.tz,
        price_fn=site.prices.__getitem__,
        carbon=FACTOR,
    )
    (mon,) = out.monthly
    assert sum(d.end - d.start for d in out.daily) == mon.end - mon.start
    for day in out.daily:
        hours = within(day, out.hourly)
        assert total(h.energy for h in hours) == day.energy
        assert sum(h.intervals for h in hours) == day.intervals
        assert sum(h.intervals_with_data for h in hours) == day.intervals_with_data
        assert hours[0].start == day.start and hours[-1].end == day.end
        peaks = [h.peak for h in hours if h.peak is not None]
        assert day.peak == (max(peaks, key=lambda p: (p.kw, -p.interval_start)) if peaks else None)
        assert abs(sum((h.cost or D(0)) for h in hours) - (day.cost or D(0))) <= D("0.005") * len(hours)
    assert total(d.energy for d in out.daily) == mon.energy
    assert sum(d.intervals for d in out.daily) == mon.intervals == (site.end - site.start) // INTERVAL_S

    # the reference: straight from the per-miner rows, with Fractions, no site sums and no buckets
    energy_j = sum(r.joules for r in site.rows)
    est_j = sum(r.joules * r.estimated_s // r.covered_s for r in site.rows if r.covered_s)
    assert mon.energy == EnergyFigure(
        energy_j=energy_j,
        estimated_j=est_j,
        miner_s=900 * len(site.rows),
        covered_s=sum(r.covered_s for r in site.rows),
        uncovered_s=sum(r.uncovered_s for r in site.rows),
        estimated_s=sum(r.estimated_s for r in site.rows),
    )
    exact = sum(
        (Fraction(r.joules, 3_600_000) * Fraction(site.prices[r.interval_start]) for r in site.rows),
        Fraction(0),
    )
    assert mon.cost == round_exact(exact, 2)
    assert mon.co2 is not None and mon.co2.kg == round_exact(
        Fraction(energy_j, 3_600_000) * Fraction(2, 5), 3
    )
    per_interval: dict[int, int] = defaultdict(int)
    for r in site.rows:
        per_interval[r.interval_start] += r.joules
    if per_interval:
        best = max(per_interval.values())
        assert mon.peak is not None and mon.peak.kw == Fraction(best, 900_000)
        assert mon.peak.interval_start == min(t for t, j in per_interval.items() if j == best)
    else:
        assert mon.peak is None
    for day in out.daily:  # every day is a whole local day
        local = datetime.fromtimestamp(day.start, ZoneInfo(site.tz))
        assert (local.hour, local.minute) == (0, 0) and day.label == local.date().isoformat()


def round_exact(value: Fraction, places: int) -> Decimal:
    """Half-even rounding written out the long way (the reference, independent of units.round_money)."""
    scaled = value * 10**places
    floor = scaled.numerator // scaled.denominator
    rest = scaled - floor
    up = rest > Fraction(1, 2) or (rest == Fraction(1, 2) and floor % 2 == 1)
    return D(floor + up).scaleb(-places)


@settings(max_examples=40, deadline=None)
@given(sites(), st.integers(1, 6), st.randoms(use_true_random=False))
def test_splitting_and_ordering_rows_never_changes_a_figure(
    site: Site, parts: int, rnd: random.Random
) -> None:
    whole = site_intervals(cols(site.rows))
    shuffled = list(site.rows)
    rnd.shuffle(shuffled)
    chunks: list[list[IntervalEnergy]] = [[] for _ in range(parts)]
    for r in shuffled:
        chunks[rnd.randrange(parts)].append(r)
    merged = merge_site_intervals(site_intervals(cols(c)) for c in chunks)
    assert merged == whole
    kwargs = {"start": site.start, "end": site.end, "tz": site.tz, "price_fn": site.prices.__getitem__}
    assert aggregate(merged, **kwargs) == aggregate(whole, **kwargs)  # type: ignore[arg-type]


def test_site_intervals_sums_are_integers_per_interval() -> None:
    rows = [row(f"m{i}", T0 + 900 * (i % 3), 10**11, est=450) for i in range(30)]
    (a, b, c) = site_intervals(cols(rows))
    assert [iv.interval_start for iv in (a, b, c)] == [T0, T0 + 900, T0 + 1800]
    assert a == SiteInterval(
        interval_start=T0,
        miners=10,
        energy_j=10**12,
        estimated_j=5 * 10**11,
        covered_s=9000,
        uncovered_s=0,
        estimated_s=4500,
    )
    assert all(isinstance(getattr(a, f.name), int) for f in fields(a))
    big = IntervalColumns.from_rows(rows)
    assert isinstance(big.joules, np.ndarray)
