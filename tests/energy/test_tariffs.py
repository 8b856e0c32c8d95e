"""The tariff model: validation at build time, and local-time resolution that survives DST.

The DST property tests compare `TouSchedule.period_at` (zoneinfo) with a reference that knows nothing of
zoneinfo: the 2024/2025 US transition instants written out by hand, and the period chosen by plain hour
comparisons on the resulting wall clock."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.energy.tariffs import (
    WEEKDAYS,
    WEEKEND,
    DemandCharges,
    FlatEnergy,
    PriceSeries,
    RatePeriod,
    RateTier,
    Tariff,
    TariffError,
    TouEnergy,
    TouSchedule,
    TouWindow,
    tariff_at,
)

CHICAGO = ZoneInfo("America/Chicago")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")


def z(iso: str) -> int:
    return int(datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp())


def dst_schedule() -> TouSchedule:
    """Every day: night 01:00-03:00 (straddles the DST change hour), peak 14:00-19:00, off elsewhere."""
    return TouSchedule(
        windows=(
            TouWindow(period="night", start=time(1), end=time(3)),
            TouWindow(period="off", start=time(3), end=time(14)),
            TouWindow(period="peak", start=time(14), end=time(19)),
            TouWindow(period="off", start=time(19), end=time(1)),  # wraps midnight
        )
    )


def reference_period(hour: int) -> str:
    if 1 <= hour < 3:
        return "night"
    if 14 <= hour < 19:
        return "peak"
    return "off"


# Written out from the US rule (second Sunday of March 02:00 local, first Sunday of November 02:00 local),
# not computed with zoneinfo: (DST start UTC, DST end UTC, standard offset h).
US_DST = {
    "America/Chicago": (
        -6,
        [("2024-03-10T08:00", "2024-11-03T07:00"), ("2025-03-09T08:00", "2025-11-02T07:00")],
    ),
    "America/Los_Angeles": (
        -8,
        [("2024-03-10T10:00", "2024-11-03T09:00"), ("2025-03-09T10:00", "2025-11-02T09:00")],
    ),
}
DST_DAYS_UTC = [  # each local DST-change day, widened by 12 h on both sides
    (name, z(day + "T00:00") - 43200, z(day + "T00:00") + 86400 + 86400)
    for name in US_DST
    for day in ("2024-03-10", "2024-11-03", "2025-03-09", "2025-11-02")
]


def reference_wall_clock(zone: str, ts: int) -> datetime:
    """Local wall time = UTC + standard offset, + 1 h inside a DST span (instants within 2024-2025)."""
    standard_h, spans = US_DST[zone]
    in_dst = any(z(start) <= ts < z(end) for start, end in spans)
    return datetime(1970, 1, 1) + timedelta(seconds=ts + (standard_h + in_dst) * 3600)


@given(data=st.data())
def test_dst_days_resolve_periods_by_local_wall_clock(data: st.DataObject) -> None:
    zone_name, lo, hi = data.draw(st.sampled_from(DST_DAYS_UTC))
    ts = data.draw(st.integers(min_value=lo, max_value=hi))
    schedule = dst_schedule()
    expected = reference_period(reference_wall_clock(zone_name, ts).hour)
    assert schedule.period_at(datetime.fromtimestamp(ts, ZoneInfo(zone_name))) == expected


@pytest.mark.parametrize(
    ("zone", "boundary_utc"),
    [
        # 14:00 local is 14:00 local on both sides of each change: the UTC instant moves, the wall clock not
        (CHICAGO, "2024-03-09T20:00"),  # CST, the day before spring-forward
        (CHICAGO, "2024-03-10T19:00"),  # CDT, the 23-hour day itself
        (CHICAGO, "2024-11-02T19:00"),  # CDT, the day before fall-back
        (CHICAGO, "2024-11-03T20:00"),  # CST, the 25-hour day itself
        (LOS_ANGELES, "2024-03-10T21:00"),  # PDT
        (LOS_ANGELES, "2024-11-03T22:00"),  # PST
    ],
)
def test_a_14_00_boundary_is_14_00_local_on_dst_days(zone: ZoneInfo, boundary_utc: str) -> None:
    schedule = dst_schedule()
    at = z(boundary_utc)
    assert schedule.period_at(datetime.fromtimestamp(at - 1, zone)) == "off"
    assert schedule.period_at(datetime.fromtimestamp(at, zone)) == "peak"


@pytest.mark.parametrize(
    ("zone", "day", "hours", "night_quarters"),
    [
        (CHICAGO, "2024-03-10", 23, 4),  # 02:00-03:00 never happens: one night hour
        (CHICAGO, "2024-11-03", 25, 12),  # 01:00-02:00 happens twice: three night hours
        (LOS_ANGELES, "2024-03-10", 23, 4),
        (LOS_ANGELES, "2024-11-03", 25, 12),
    ],
)
def test_23_and_25_hour_days(zone: ZoneInfo, day: str, hours: int, night_quarters: int) -> None:
    start = datetime.fromisoformat(day).replace(tzinfo=zone)
    end = start + timedelta(days=1)  # aware arithmetic in the same zone: the next local midnight
    first, last = int(start.timestamp()), int(end.timestamp())
    assert last - first == hours * 3600
    periods = [dst_schedule().period_at(datetime.fromtimestamp(t, zone)) for t in range(first, last, 900)]
    assert len(periods) == hours * 4
    assert periods.count("night") == night_quarters
    assert periods.count("peak") == 20


def test_schedule_with_a_gap_or_an_overlap_is_refused() -> None:
    with pytest.raises(TariffError, match="uncovered"):
        TouSchedule(windows=(TouWindow(period="a", start=time(0), end=time(23)),))
    with pytest.raises(TariffError, match="overlaps"):
        TouSchedule(
            windows=(
                TouWindow(period="a", start=time(0), end=time(12)),
                TouWindow(period="b", start=time(11), end=time(0)),
            )
        )
    with pytest.raises(TariffError, match="gap"):
        TouSchedule(
            windows=(
                TouWindow(period="a", weekdays=WEEKDAYS),
                TouWindow(period="b", weekdays=WEEKEND, start=time(1), end=time(0)),
            )
        )


def test_window_validation() -> None:
    with pytest.raises(TariffError, match="months"):
        TouWindow(period="a", months=frozenset({13}))
    with pytest.raises(TariffError, match="weekdays"):
        TouWindow(period="a", weekdays=frozenset())
    with pytest.raises(TariffError, match="whole minute"):
        TouWindow(period="a", start=time(1, 0, 30))
    with pytest.raises(TariffError, match="covers nothing"):
        TouWindow(period="a", start=time(5), end=time(5))


def test_tou_energy_must_define_every_scheduled_period() -> None:
    with pytest.raises(TariffError, match="undefined"):
        TouEnergy(
            periods=(RatePeriod(name="off", tiers=(RateTier(rate=Decimal("0.1")),)),), schedule=dst_schedule()
        )


def test_tier_limits_must_increase_and_only_the_last_is_open() -> None:
    with pytest.raises(TariffError, match="not above"):
        RatePeriod(
            name="p",
            tiers=(RateTier(rate=Decimal(1), limit=Decimal(10)), RateTier(rate=Decimal(1), limit=Decimal(5))),
        )
    with pytest.raises(TariffError, match="only the last"):
        RatePeriod(name="p", tiers=(RateTier(rate=Decimal(1)), RateTier(rate=Decimal(1))))


def test_money_must_be_decimal() -> None:
    with pytest.raises(TariffError, match="Decimal"):
        FlatEnergy(rate_per_kwh=0.1)  # type: ignore[arg-type]
    with pytest.raises(TariffError, match="Decimal"):
        FlatEnergy(rate_per_kwh=Decimal("NaN"))


def test_demand_interval_is_15_30_or_60_minutes() -> None:
    for ok in (900, 1800, 3600):
        assert DemandCharges(interval_s=ok).interval_s == ok
    with pytest.raises(TariffError, match="demand interval"):
        DemandCharges(interval_s=300)


def test_price_series_refuses_overlap_and_misalignment() -> None:
    with pytest.raises(TariffError, match="overlap"):
        PriceSeries(interval_s=900, starts=(0, 900, 900), prices_per_kwh=(Decimal(0),) * 3)
    with pytest.raises(TariffError, match="15-minute"):
        PriceSeries(interval_s=900, starts=(60,), prices_per_kwh=(Decimal(0),))
    series = PriceSeries(interval_s=3600, starts=(0, 7200), prices_per_kwh=(Decimal(1), Decimal(2)))
    found = [series.index_of(t) for t in (-1, 0, 3599, 3600, 7200, 10799, 10800)]
    assert found == [None, 0, 0, None, 1, 1, None]


def _flat(name: str, start: int, end: int | None) -> Tariff:
    return Tariff(name=name, energy=FlatEnergy(rate_per_kwh=Decimal("0.1")), valid_from=start, valid_to=end)


def test_history_picks_the_version_in_force_and_refuses_overlaps() -> None:
    old, new = _flat("2024", 0, 1000), _flat("2025", 1000, None)
    assert tariff_at([new, old], 999).name == "2024"
    assert tariff_at([new, old], 1000).name == "2025"
    with pytest.raises(TariffError, match="no tariff"):
        tariff_at([new, old], -1)
    with pytest.raises(TariffError, match="overlap"):
        tariff_at([_flat("a", 0, 1001), new], 5)
    with pytest.raises(TariffError, match="after"):
        _flat("bad", 10, 10)
