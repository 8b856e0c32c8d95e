"""4CP truth vs alerts in the backtest: exact days on a real slice, and properties of the causal rule."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.curtail.backtest_cp import cp_alerts, day_window, known_alerts, true_cp_windows
from gateway.curtail.plan_model import MinerClass
from gateway.curtail.planner_check import check_plan
from gateway.curtail.planner_model import PlanRequest, Window
from gateway.curtail.strike_rule import safe_strike_rule_counts, strike_rule_counts
from gateway.energy.prices import read_local_grid
from gateway.energy.tariffs import PriceSeries

SLICE = Path(__file__).parents[1] / "fixtures" / "curtail" / "ercot_hb_south_15min_2024-08-19_21.csv"
TZ = "America/Chicago"
ZONE = ZoneInfo(TZ)
CHARGE = Decimal(15)


def _local(ts: int) -> str:
    return f"{datetime.fromtimestamp(ts, ZONE):%Y-%m-%d %H:%M}"


def test_slice_truth_and_alerts() -> None:
    dam = read_local_grid(SLICE.read_bytes(), column="HB_SOUTH_DAM")
    # day-ahead 16-18 h means: 08-19 55.76, 08-20 84.29, 08-21 68.77 $/MWh
    (truth,) = true_cp_windows(dam, tz=TZ, charge_per_kw=CHARGE)
    assert (_local(truth.start), _local(truth.end)) == ("2024-08-20 16:00", "2024-08-20 18:00")
    alerts = cp_alerts(dam, tz=TZ, charge_per_kw=CHARGE)
    assert [(_local(a.window.start), _local(a.known_at)) for a in alerts] == [
        ("2024-08-19 16:00", "2024-08-18 13:30"),  # first day of the month seen: nothing beats it yet
        ("2024-08-20 16:00", "2024-08-19 13:30"),  # above 08-19; 08-21 is below 08-20, no alert
    ]
    assert all(a.window.charge_per_kw == CHARGE for a in alerts)
    # on 08-19 at 13:00 only the 08-19 alert is public; at 13:30 the 08-20 one joins
    t1300 = int(datetime(2024, 8, 19, 13, 0, tzinfo=ZONE).timestamp())
    far = t1300 + 3 * 86_400
    assert [_local(w.start) for w in known_alerts(alerts, now=t1300, start=t1300, end=far)] == [
        "2024-08-19 16:00"
    ]
    assert len(known_alerts(alerts, now=t1300 + 1800, start=t1300, end=far)) == 2
    # a window already over is not part of a plan starting later
    assert len(known_alerts(alerts, now=far, start=far - 86_400, end=far)) == 0


def test_day_window_to_midnight_and_across_dst() -> None:
    w = day_window(date(2024, 11, 3), zone=ZONE, hours=(0, 24), charge_per_kw=CHARGE)
    assert w.end - w.start == 25 * 3600  # the autumn day is 25 h long
    w = day_window(date(2024, 3, 10), zone=ZONE, hours=(16, 18), charge_per_kw=CHARGE)
    assert (_local(w.start), w.end - w.start) == ("2024-03-10 16:00", 7200)


def _series(days: list[list[int]]) -> PriceSeries:
    """Hourly-constant day-ahead prices, `days[d]` = 96 quarter-hour prices in $/MWh from 2024-06-01."""
    start = int(datetime(2024, 6, 1, tzinfo=ZONE).timestamp())
    prices = [Decimal(p) / 1000 for day in days for p in day]
    return PriceSeries(
        interval_s=900,
        starts=tuple(start + 900 * i for i in range(len(prices))),
        prices_per_kwh=tuple(prices),
    )


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 5000), min_size=1, max_size=45))
def test_alerts_are_causal_and_catch_every_true_day(peaks: list[int]) -> None:
    days = [[10] * 64 + [p] * 8 + [10] * 24 for p in peaks]  # 16:00-18:00 carries the day's price
    series = _series(days)
    truth = true_cp_windows(series, tz=TZ, charge_per_kw=CHARGE)
    alerts = cp_alerts(series, tz=TZ, charge_per_kw=CHARGE)
    alerted = {a.window.start for a in alerts}
    assert len({(datetime.fromtimestamp(w.start, ZONE).month) for w in truth}) == len(truth)
    assert {w.start for w in truth} <= alerted  # the running maximum never misses the month's peak
    for a in alerts:
        assert a.known_at < a.window.start  # issued the day before
        # the rule looks only backwards: the alert holds whatever the later days of the month did
        day = datetime.fromtimestamp(a.window.start, ZONE).date()
        cut = (day - date(2024, 6, 1)).days + 1
        assert a.window.start in {
            b.window.start for b in cp_alerts(_series(days[:cut]), tz=TZ, charge_per_kw=CHARGE)
        }
    assert int(datetime(2024, 6, 1, 16, tzinfo=ZONE).timestamp()) in alerted


def test_strike_rule_curtails_fully_in_alert_windows() -> None:
    start = int(datetime(2024, 8, 20, 15, 30, tzinfo=ZONE).timestamp())
    classes = (MinerClass(key="a", model="a", mode="normal", count=7, ths_per_miner=200.0, kw_per_miner=3.5),)
    req = PlanRequest(
        classes=classes,
        start=start,
        period_s=900,
        prices_per_kwh=(Decimal("0.02"),) * 12,
        forecast=(False,) * 12,
        hashprice=(Decimal("0.045"),) * 12,
    )
    window = day_window(date(2024, 8, 20), zone=ZONE, hours=(16, 18), charge_per_kw=CHARGE)
    assert strike_rule_counts(req) == [[7] * 12]
    assert strike_rule_counts(req, alerts=(window,)) == [[7, 7] + [0] * 8 + [7, 7]]


@settings(max_examples=80, deadline=None)
@given(
    prices=st.lists(st.integers(0, 300), min_size=1, max_size=40),
    counts=st.lists(st.integers(0, 30), min_size=1, max_size=3),
    ramp=st.one_of(st.none(), st.integers(4, 60)),
    min_on=st.integers(1, 5),
    min_off=st.integers(1, 5),
    alert_at=st.one_of(st.none(), st.integers(0, 39)),
    start_off=st.booleans(),
)
def test_safe_rule_never_breaks_a_limit(
    prices: list[int],
    counts: list[int],
    ramp: int | None,
    min_on: int,
    min_off: int,
    alert_at: int | None,
    start_off: bool,
) -> None:
    start = int(datetime(2024, 8, 20, tzinfo=ZONE).timestamp())
    classes = tuple(
        MinerClass(
            key=f"c{i}", model="m", mode="normal", count=n, ths_per_miner=100.0 + 50 * i, kw_per_miner=3.0
        )
        for i, n in enumerate(counts)
    )
    req = PlanRequest(
        classes=classes,
        start=start,
        period_s=900,
        prices_per_kwh=tuple(Decimal(p) / 1000 for p in prices),
        forecast=(False,) * len(prices),
        hashprice=(Decimal("0.045"),) * len(prices),
        ramp_kw_per_period=ramp,
        min_on_periods=min_on,
        min_off_periods=min_off,
        initial_on={c.key: 0 if start_off else c.count for c in classes},
    )
    alerts: tuple[Window, ...] = ()
    if alert_at is not None:
        w0 = start + 900 * alert_at
        alerts = (Window(start=w0, end=w0 + 7200, kind="4cp", charge_per_kw=CHARGE),)
    on = safe_strike_rule_counts(req, alerts=alerts)
    assert check_plan(req, on) == []
    if ramp is None and min_on == 1 and min_off == 1:
        assert on == strike_rule_counts(req, alerts=alerts)  # no limits: it is the plain rule


def test_safe_rule_ramps_down_ahead_of_an_alert() -> None:
    start = int(datetime(2024, 8, 20, 14, 0, tzinfo=ZONE).timestamp())
    classes = (
        MinerClass(key="a", model="a", mode="normal", count=10, ths_per_miner=200.0, kw_per_miner=3.0),
    )
    req = PlanRequest(
        classes=classes,
        start=start,
        period_s=900,
        prices_per_kwh=(Decimal("0.02"),) * 16,
        forecast=(False,) * 16,
        hashprice=(Decimal("0.045"),) * 16,
        ramp_kw_per_period=9.0,
        min_on_periods=2,
        min_off_periods=2,
        initial_on={"a": 10},
    )
    window = day_window(date(2024, 8, 20), zone=ZONE, hours=(16, 18), charge_per_kw=CHARGE)
    # 30 kW at 9 kW per period: 4 periods to shed, begun early enough to be off at 16:00 (period 8)
    assert safe_strike_rule_counts(req, alerts=(window,)) == [[10, 10, 10, 10, 7, 4, 1, 0] + [0] * 8]
