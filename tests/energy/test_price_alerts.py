"""Price alerts: the TOU peak warning on the site's clock (DST in Chicago and Los Angeles), and the
real-time price threshold with hysteresis (flapping series)."""

from __future__ import annotations

from datetime import UTC, datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.energy.price_alerts import (
    PEAK_RULE,
    PRICE_RULE,
    PeakWarningSettings,
    PriceAlertError,
    PriceThresholdSettings,
    next_peak_start,
    peak_periods,
    peak_warning,
    price_high,
)
from gateway.energy.tariffs import (
    FlatEnergy,
    PriceSeries,
    RatePeriod,
    RateTier,
    RealTimeEnergy,
    TouEnergy,
    TouSchedule,
    TouWindow,
)
from gateway.rules.findings import Finding, FindingState, Severity

CHICAGO = ZoneInfo("America/Chicago")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")
F, C, U = FindingState.FIRING, FindingState.CLEAR, FindingState.UNKNOWN
LEAD = PeakWarningSettings(lead_s=1800)


def z(iso: str) -> int:
    return int(datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp())


def rate(name: str, value: str) -> RatePeriod:
    return RatePeriod(name=name, tiers=(RateTier(rate=Decimal(value)),))


def tou(*windows: tuple[str, int, int, int, int], rates: dict[str, str] | None = None) -> TouEnergy:
    """Windows as (period, start h, start min, end h, end min), every day of the year."""
    schedule = TouSchedule(
        windows=tuple(TouWindow(period=p, start=time(a, b), end=time(c, d)) for p, a, b, c, d in windows)
    )
    names = sorted({w[0] for w in windows})
    rates = rates or {n: "0.30" if n == "peak" else "0.05" for n in names}
    return TouEnergy(periods=tuple(rate(n, rates[n]) for n in names), schedule=schedule)


AFTERNOON_PEAK = tou(("off", 19, 0, 14, 0), ("peak", 14, 0, 19, 0))


def warn(energy: TouEnergy | FlatEnergy, zone: ZoneInfo, now: int, s: PeakWarningSettings = LEAD) -> Finding:
    return peak_warning(energy, zone, now, s, target="site:s1")


# (zone, local date, the 14:00 peak start in UTC): the day before and the day of each US DST change.
PEAK_STARTS = [
    (CHICAGO, "2026-03-07", "2026-03-07T20:00:00"),  # CST (UTC-6)
    (CHICAGO, "2026-03-08", "2026-03-08T19:00:00"),  # spring forward: CDT (UTC-5)
    (CHICAGO, "2026-10-31", "2026-10-31T19:00:00"),  # CDT
    (CHICAGO, "2026-11-01", "2026-11-01T20:00:00"),  # fall back: CST
    (LOS_ANGELES, "2026-03-07", "2026-03-07T22:00:00"),  # PST (UTC-8)
    (LOS_ANGELES, "2026-03-08", "2026-03-08T21:00:00"),  # PDT (UTC-7)
    (LOS_ANGELES, "2026-10-31", "2026-10-31T21:00:00"),
    (LOS_ANGELES, "2026-11-01", "2026-11-01T22:00:00"),
]


@pytest.mark.parametrize(("zone", "day", "start_utc"), PEAK_STARTS)
def test_peak_warning_opens_lead_minutes_before_and_clears_at_the_start(
    zone: ZoneInfo, day: str, start_utc: str
) -> None:
    start = z(start_utc)
    assert warn(AFTERNOON_PEAK, zone, start - 1801).state is C
    opened = warn(AFTERNOON_PEAK, zone, start - 1800)
    assert opened.state is F and opened.value == 30 and opened.threshold == 30
    assert opened.rule_id == PEAK_RULE and opened.miner_id == "site:s1" and opened.severity is Severity.P3
    assert "peak period 'peak' starts at 14:00" in opened.detail and "(30 min)" in opened.detail
    last = warn(AFTERNOON_PEAK, zone, start - 1)
    assert last.state is F and "(0 min)" in last.detail
    assert warn(AFTERNOON_PEAK, zone, start).state is C  # the peak has started: resolve
    assert warn(AFTERNOON_PEAK, zone, start + 3600).state is C


def test_lead_counts_real_minutes_across_the_spring_gap() -> None:
    # A 03:00 peak on the spring-forward day: 01:45 CST is only 15 real minutes before 03:00 CDT.
    early = tou(("off", 5, 0, 3, 0), ("peak", 3, 0, 5, 0))
    s = PeakWarningSettings(lead_s=90 * 60)
    start = z("2026-03-08T08:00:00")  # 03:00 CDT
    assert next_peak_start(early, frozenset({"peak"}), CHICAGO, z("2026-03-08T07:45:00"), 5400) == start
    assert warn(early, CHICAGO, z("2026-03-08T07:45:00"), s).value == 15
    assert warn(early, CHICAGO, z("2026-03-08T06:30:00"), s).state is F  # 00:30 CST: 90 real minutes
    assert warn(early, CHICAGO, z("2026-03-08T06:29:00"), s).state is C


def test_a_peak_written_inside_the_gap_starts_when_the_clock_lands_after_it() -> None:
    gap = tou(("off", 5, 0, 2, 30), ("peak", 2, 30, 5, 0))
    # 02:30 does not exist on 2026-03-08 in Chicago: the clock jumps from 01:59 CST to 03:00 CDT.
    got = next_peak_start(gap, frozenset({"peak"}), CHICAGO, z("2026-03-08T07:00:00"), 3 * 3600)
    assert got == z("2026-03-08T08:00:00")


def test_a_peak_starting_in_the_repeated_hour_starts_twice() -> None:
    repeated = tou(("off", 5, 0, 1, 30), ("peak", 1, 30, 5, 0))
    peaks = frozenset({"peak"})
    # 01:30 CDT (06:30Z), then the clock falls back to 01:00 CST (off) and reaches 01:30 CST (07:30Z).
    first, second = z("2026-11-01T06:30:00"), z("2026-11-01T07:30:00")
    assert next_peak_start(repeated, peaks, CHICAGO, z("2026-11-01T06:00:00"), 3600) == first
    assert next_peak_start(repeated, peaks, CHICAGO, z("2026-11-01T06:31:00"), 3600) == second


def test_which_periods_are_peak() -> None:
    three = tou(
        ("off", 21, 0, 7, 0), ("mid", 7, 0, 16, 0), ("top", 16, 0, 21, 0),
        rates={"off": "0.05", "mid": "0.12", "top": "0.31"},
    )  # fmt: skip
    assert peak_periods(three) == {"top"}
    assert peak_periods(three, frozenset({"mid", "top"})) == {"mid", "top"}
    with pytest.raises(PriceAlertError, match=r"no period\(s\) \['shoulder'\]"):
        peak_periods(three, frozenset({"shoulder"}))
    tie = tou(("a", 0, 0, 12, 0), ("b", 12, 0, 0, 0), rates={"a": "0.10", "b": "0.10"})
    assert peak_periods(tie) == {"a", "b"}
    # With "mid" as peak too, 07:00 local is the next start (Chicago, 2026-06-01 is CDT: 12:00Z).
    mid = PeakWarningSettings(lead_s=3600, peak_periods=frozenset({"mid", "top"}))
    assert warn(three, CHICAGO, z("2026-06-01T11:15:00"), mid).state is F
    assert warn(three, CHICAGO, z("2026-06-01T11:15:00"), PeakWarningSettings(lead_s=3600)).state is C


def test_no_tou_tariff_means_clear_and_settings_are_checked() -> None:
    flat = FlatEnergy(rate_per_kwh=Decimal("0.07"))
    finding = warn(flat, CHICAGO, z("2026-06-01T11:15:00"))
    assert finding.state is C and finding.detail == "tariff has no time-of-use periods"
    with pytest.raises(PriceAlertError, match="lead_s must be 60"):
        PeakWarningSettings(lead_s=30)
    with pytest.raises(PriceAlertError, match="lead_s"):
        PeakWarningSettings(lead_s=7 * 3600)
    with pytest.raises(PriceAlertError, match="at least one period"):
        PeakWarningSettings(peak_periods=frozenset())


@settings(max_examples=100, deadline=None)
@given(
    now=st.integers(z("2026-01-01T00:00:00"), z("2027-01-01T00:00:00")),
    lead_min=st.integers(1, 360),
    zone=st.sampled_from([CHICAGO, LOS_ANGELES]),
)
def test_peak_warning_properties(now: int, lead_min: int, zone: ZoneInfo) -> None:
    s = PeakWarningSettings(lead_s=lead_min * 60)
    finding = warn(AFTERNOON_PEAK, zone, now, s)
    start = next_peak_start(AFTERNOON_PEAK, frozenset({"peak"}), zone, now, s.lead_s)
    assert (finding.state is F) == (start is not None)
    if start is None:
        return
    assert 0 < start - now <= s.lead_s and start % 60 == 0
    local = datetime.fromtimestamp(start, zone)
    assert (local.hour, local.minute) == (14, 0)  # the only peak start in this schedule
    # Firing from here until the start, with the same start; cleared from the start on.
    mid = (now + start) // 2
    assert next_peak_start(AFTERNOON_PEAK, frozenset({"peak"}), zone, mid, s.lead_s) == start
    assert warn(AFTERNOON_PEAK, zone, start, s).state is C


# --- real-time price --------------------------------------------------------------------------------

T0 = z("2026-07-01T00:00:00")
HYST = PriceThresholdSettings(high_per_kwh=Decimal("0.100"), clear_below_per_kwh=Decimal("0.080"))


def series(*prices: str, adder: str = "0", start: int = T0, gap_at: int | None = None) -> RealTimeEnergy:
    starts = [start + 900 * i for i in range(len(prices))]
    if gap_at is not None:
        starts = [s if i < gap_at else s + 900 for i, s in enumerate(starts)]
    return RealTimeEnergy(
        prices=PriceSeries(
            interval_s=900, starts=tuple(starts), prices_per_kwh=tuple(Decimal(p) for p in prices)
        ),
        adder_per_kwh=Decimal(adder),
    )


def states(energy: RealTimeEnergy, s: PriceThresholdSettings = HYST) -> list[FindingState]:
    return [price_high(energy, t + 450, s, target="site:s1").state for t in energy.prices.starts]


def test_flapping_price_gives_one_high_spell() -> None:
    flapping = series("0.050", "0.101", "0.099", "0.101", "0.095", "0.085", "0.079", "0.099", "0.100")
    assert states(flapping) == [C, F, F, F, F, F, C, C, F]
    finding = price_high(flapping, T0 + 900 * 2, HYST, target="site:s1")
    assert finding.rule_id == PRICE_RULE and finding.severity is Severity.P2
    assert finding.value == pytest.approx(0.099) and finding.threshold == pytest.approx(0.1)
    assert finding.detail == "real-time price 0.099 per kWh >= 0.100 (clears below 0.080)"


def test_adder_gap_and_lookback() -> None:
    assert states(series("0.085", "0.070"), HYST) == [C, C]
    assert states(series("0.085", "0.050", adder="0.020")) == [F, C]  # all-in 0.105, then 0.070
    market_only = PriceThresholdSettings(
        high_per_kwh=Decimal("0.100"), clear_below_per_kwh=Decimal("0.080"), include_adder=False
    )
    assert states(series("0.085", adder="0.020"), market_only) == [C]
    gappy = series("0.200", "0.090", "0.090", gap_at=2)  # the third interval starts 15 min late
    assert price_high(gappy, T0 + 1800 + 10, HYST, target="s").state is U  # nothing priced at 00:30
    assert price_high(gappy, T0 + 2700 + 10, HYST, target="s").state is F  # the last outside the band
    short = PriceThresholdSettings(
        high_per_kwh=Decimal("0.100"), clear_below_per_kwh=Decimal("0.080"), lookback_s=900
    )
    long_band = series("0.200", "0.090", "0.090", "0.090")
    assert states(long_band, short) == [F, F, C, C]  # the 0.200 ended over 15 min ago by the third
    assert price_high(FlatEnergy(rate_per_kwh=Decimal(1)), T0, HYST, target="s").state is C


def test_threshold_settings_are_checked() -> None:
    with pytest.raises(PriceAlertError, match="must be below high_per_kwh"):
        PriceThresholdSettings(high_per_kwh=Decimal("0.1"), clear_below_per_kwh=Decimal("0.1"))
    with pytest.raises(PriceAlertError, match="high_per_kwh must be a finite Decimal"):
        PriceThresholdSettings(high_per_kwh=0.1, clear_below_per_kwh=Decimal("0.05"))  # type: ignore[arg-type]
    with pytest.raises(PriceAlertError, match="lookback_s"):
        PriceThresholdSettings(high_per_kwh=Decimal(1), clear_below_per_kwh=Decimal(0), lookback_s=-1)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.sampled_from(["0.050", "0.079", "0.080", "0.090", "0.099", "0.100", "0.150"]), max_size=60)
)
def test_hysteresis_matches_a_stateful_reference(prices: list[str]) -> None:
    if not prices:
        return
    expected, high = [], False
    for p in map(Decimal, prices):
        if p >= HYST.high_per_kwh:
            high = True
        elif p < HYST.clear_below_per_kwh:
            high = False
        expected.append(F if high else C)
    assert states(series(*prices)) == expected
