"""Price alerts as findings: a time-of-use peak is about to start; the real-time price is high.

Pure: (tariff energy charge or price series, the site zone, `now`, settings) -> one `Finding` per rule
and target. Debounce, clear windows, cooldown, ack and resolve are the alert lifecycle's job; the glue in
`gateway.energy.energy_alerts` hands these findings to it.

Peak warning (`tou_peak_soon`). FIRING while a peak period starts within the next `lead_s` seconds of
real time, CLEAR otherwise, so the alert opens `lead_s` before the start and resolves *when the peak
starts*: its message is "get ready" and once the peak is on, acting on it is the curtailment planner's
job; an alert left standing through every peak would be acked daily and then ignored. The start is found
on the tariff's own clock: the schedule is local wall time in the site's IANA zone, and we walk real
(UTC) minutes asking which period each is in. So "N minutes before" is N real minutes on the 23- and
25-hour DST days too, a peak written to start inside the spring-forward gap starts at the first local
minute that exists after it, and a window starting inside the repeated autumn hour starts twice (the
meter sees the local clock do exactly that). Which periods are "peak" is a setting; by default the
period(s) with the highest first-tier rate.

High real-time price (`price_high`), with hysteresis: FIRING when the price in force is at or above
`high_per_kwh`, CLEAR below `clear_below_per_kwh`; in between, the last price outside that band decides
(among the prices in force during the last `lookback_s`; none found: CLEAR). So a price wobbling around
the threshold opens one alert, not one per wobble, and the state is a function of the series alone,
which a restart cannot lose. No price for `now` (a gap in the feed) is UNKNOWN: missing data never opens or
resolves an alert.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from gateway.energy.tariffs import EnergyCharge, RealTimeEnergy, TouEnergy
from gateway.energy.units import site_zone
from gateway.rules.findings import Finding, FindingState, Severity

__all__ = [
    "PEAK_RULE",
    "PRICE_RULE",
    "PeakWarningSettings",
    "PriceAlertError",
    "PriceThresholdSettings",
    "next_peak_start",
    "peak_periods",
    "peak_warning",
    "price_high",
]

PEAK_RULE = "tou_peak_soon"
PRICE_RULE = "price_high"
PEAK_SEVERITY = Severity.P3
PRICE_SEVERITY = Severity.P2
MAX_LEAD_S = 6 * 3600  # the walk is one step per minute of lead: bounded work per cycle
MAX_LOOKBACK_S = 31 * 86_400


class PriceAlertError(ValueError):
    """Settings that cannot work with this tariff; the message names the setting."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PeakWarningSettings:
    lead_s: int = 1800
    peak_periods: frozenset[str] | None = None  # None: the highest first-tier rate

    def __post_init__(self) -> None:
        if isinstance(self.lead_s, bool) or not 60 <= self.lead_s <= MAX_LEAD_S:
            raise PriceAlertError(f"lead_s must be 60..{MAX_LEAD_S} s, got {self.lead_s!r}")
        if self.peak_periods is not None and not self.peak_periods:
            raise PriceAlertError("peak_periods, when given, must name at least one period")


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceThresholdSettings:
    """`include_adder`: compare the all-in price the site pays (market + the tariff's adder)."""

    high_per_kwh: Decimal
    clear_below_per_kwh: Decimal
    include_adder: bool = True
    lookback_s: int = 7 * 86_400

    def __post_init__(self) -> None:
        for name in ("high_per_kwh", "clear_below_per_kwh"):
            value = getattr(self, name)
            if not isinstance(value, Decimal) or not value.is_finite():
                raise PriceAlertError(f"{name} must be a finite Decimal, got {value!r}")
        if not self.clear_below_per_kwh < self.high_per_kwh:
            raise PriceAlertError(
                f"clear_below_per_kwh ({self.clear_below_per_kwh}) must be below high_per_kwh "
                f"({self.high_per_kwh}): the gap is the hysteresis"
            )
        if isinstance(self.lookback_s, bool) or not 0 <= self.lookback_s <= MAX_LOOKBACK_S:
            raise PriceAlertError(f"lookback_s must be 0..{MAX_LOOKBACK_S} s, got {self.lookback_s!r}")


def peak_periods(energy: TouEnergy, chosen: frozenset[str] | None = None) -> frozenset[str]:
    """The period names that count as peak: `chosen` (checked against the tariff), or every period whose
    first-tier rate is the highest."""
    names = {p.name for p in energy.periods}
    if chosen is not None:
        unknown = chosen - names
        if unknown:
            raise PriceAlertError(f"peak_periods: the tariff has no period(s) {sorted(unknown)}")
        return chosen
    top = max(p.tiers[0].rate for p in energy.periods)
    return frozenset(p.name for p in energy.periods if p.tiers[0].rate == top)


def _is_peak(energy: TouEnergy, peaks: frozenset[str], ts: int, zone: ZoneInfo) -> bool:
    return energy.schedule.period_at(datetime.fromtimestamp(ts, zone)) in peaks


def next_peak_start(
    energy: TouEnergy, peaks: frozenset[str], tz: str | ZoneInfo, now: int, horizon_s: int
) -> int | None:
    """The first instant in `(now, now + horizon_s]` at which a peak period begins, or None.

    Schedules have minute resolution on the local clock and zone offsets are whole minutes, so every
    boundary is a whole UTC minute: checking each one is exact and costs horizon_s / 60 look-ups."""
    zone = site_zone(tz)
    before = _is_peak(energy, peaks, now, zone)
    for ts in range((now // 60 + 1) * 60, now + horizon_s + 1, 60):
        inside = _is_peak(energy, peaks, ts, zone)
        if inside and not before:
            return ts
        before = inside
    return None


def peak_warning(
    energy: EnergyCharge, tz: str | ZoneInfo, now: int, settings: PeakWarningSettings, *, target: str
) -> Finding:
    """FIRING from `lead_s` before a peak period starts until it starts; CLEAR otherwise (module doc)."""
    lead_min = settings.lead_s / 60

    def finding(state: FindingState, value: float | None, detail: str) -> Finding:
        return Finding(
            miner_id=target, rule_id=PEAK_RULE, severity=PEAK_SEVERITY, state=state, ts=now,
            value=value, threshold=lead_min, detail=detail,
        )  # fmt: skip

    if not isinstance(energy, TouEnergy):
        return finding(FindingState.CLEAR, None, "tariff has no time-of-use periods")
    zone = site_zone(tz)
    peaks = peak_periods(energy, settings.peak_periods)
    start = next_peak_start(energy, peaks, zone, now, settings.lead_s)
    if start is None:
        return finding(FindingState.CLEAR, None, "no peak period starts soon")
    local = datetime.fromtimestamp(start, zone)
    period = energy.schedule.period_at(local)
    minutes = (start - now) / 60
    detail = f"peak period {period!r} starts at {local:%H:%M %Z} ({minutes:.0f} min)"
    return finding(FindingState.FIRING, minutes, detail)


def _price_at(energy: RealTimeEnergy, i: int, settings: PriceThresholdSettings) -> Decimal:
    price = energy.prices.prices_per_kwh[i]
    return price + energy.adder_per_kwh if settings.include_adder else price


def price_high(energy: EnergyCharge, now: int, settings: PriceThresholdSettings, *, target: str) -> Finding:
    """FIRING while the real-time price is high, with hysteresis (module doc)."""
    high, low = settings.high_per_kwh, settings.clear_below_per_kwh

    def finding(state: FindingState, price: Decimal | None, detail: str) -> Finding:
        return Finding(
            miner_id=target, rule_id=PRICE_RULE, severity=PRICE_SEVERITY, state=state, ts=now,
            value=None if price is None else float(price), threshold=float(high), detail=detail,
        )  # fmt: skip

    if not isinstance(energy, RealTimeEnergy):
        return finding(FindingState.CLEAR, None, "tariff has no real-time price")
    i = energy.prices.index_of(now)
    if i is None:
        return finding(FindingState.UNKNOWN, None, "no real-time price for now (gap in the feed)")
    price = _price_at(energy, i, settings)
    state = FindingState.CLEAR
    if price >= high:
        state = FindingState.FIRING
    elif price >= low:  # inside the band: the last price outside it decides
        starts = energy.prices.starts
        j = i - 1
        while j >= 0 and starts[j] + energy.prices.interval_s > now - settings.lookback_s:
            earlier = _price_at(energy, j, settings)
            if earlier >= high:
                state = FindingState.FIRING
                break
            if earlier < low:
                break
            j -= 1
    if state is FindingState.FIRING:
        detail = f"real-time price {price} per kWh >= {high} (clears below {low})"
    else:
        detail = f"real-time price {price} per kWh (alert at {high}, clears below {low})"
    return finding(state, price, detail)
