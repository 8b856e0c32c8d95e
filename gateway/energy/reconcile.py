"""Meter reconciliation (pure): the utility meter's energy per local site day against ours.

Why per *local* day: the utility bills and disputes in the site's calendar, so a day is local midnight
to local midnight in the site's IANA zone (23 h on the spring DST day, 25 h in autumn), never a UTC day.

Why the difference is relative to *our* metered energy: the question is "does the utility's figure
agree with ours within the meter's accuracy class?", so a meter series built as ours x (1 + e) passes
exactly when |e| <= tolerance (a tested property). Comparisons are exact (integers and `Fraction`s);
the percentages in the report are rounded for display only.

A day is `missing` (not compared) when either side lacks it, when the meter file does not cover the
whole local day (an export that starts at noon would otherwise look like a 50 % shortfall), or when our
coverage is below `min_coverage_pct` (our own gap is not the utility's error). Only `fail` days open a
dispute.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

from gateway.energy.safe_csv import ImportRefused
from gateway.energy.settlement_model import round_half_even
from gateway.energy.units import J_PER_KWH, site_zone

if TYPE_CHECKING:  # meter_csv reads files into MeteredDay values, so it imports this module
    from gateway.energy.meter_csv import MeterInterval

__all__ = [
    "DEFAULT_TOLERANCES_PCT",
    "DayStatus",
    "MeterDay",
    "MeterDayRow",
    "MeterReport",
    "MeteredDay",
    "day_bounds",
    "meter_days",
    "reconcile_meter",
    "tolerance_for",
]

DayStatus = Literal["pass", "fail", "missing"]
# Revenue-grade meters (ANSI C12.20 class 0.5 / IEC 62053-22 class 0.5S) are accurate to 0.5 %; a check
# meter or a CT-clamp submeter to roughly 2 %.
DEFAULT_TOLERANCES_PCT: Mapping[str, Decimal] = {"revenue": Decimal("0.5"), "check": Decimal("2.0")}


def tolerance_for(meter_class: str, tolerances_pct: Mapping[str, Decimal] | None = None) -> Decimal:
    """The tolerance (%) of a meter class. An unknown class is refused (ValueError naming the known
    ones), never defaulted: a typo such as "chek" must not silently judge a 2 % meter at 0.5 %."""
    table = DEFAULT_TOLERANCES_PCT if tolerances_pct is None else tolerances_pct
    if meter_class not in table:
        known = ", ".join(sorted(table)) or "none"
        raise ValueError(f"unknown meter class {meter_class!r} (known: {known})")
    value = table[meter_class]
    if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
        raise ValueError(f"tolerance for meter class {meter_class!r} must be a Decimal >= 0, got {value!r}")
    return value


def day_bounds(day: date, zone: ZoneInfo) -> tuple[int, int]:
    """`[start, end)` in UTC epoch seconds of a local calendar day."""
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    nxt = day + timedelta(days=1)
    return int(start.timestamp()), int(datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone).timestamp())


@dataclass(frozen=True, slots=True, kw_only=True)
class MeterDay:
    """The meter's energy in one local day and how many of the day's seconds its intervals cover."""

    energy_j: int
    covered_s: int
    day_s: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MeteredDay:
    """Our figure for one local day (from energy_15m) and the share of miner-time it covers, in %."""

    energy_j: int
    coverage_pct: Decimal

    def __post_init__(self) -> None:
        if isinstance(self.energy_j, bool) or not isinstance(self.energy_j, int) or self.energy_j < 0:
            raise ValueError(f"energy_j must be an integer >= 0, got {self.energy_j!r}")
        pct = self.coverage_pct
        if not isinstance(pct, Decimal) or not pct.is_finite() or not 0 <= pct <= 100:
            raise ValueError(f"coverage_pct must be a Decimal in 0..100, got {pct!r}")


def meter_days(intervals: Iterable[MeterInterval], tz: str | ZoneInfo) -> dict[date, MeterDay]:
    """Group meter intervals by local day. An interval that straddles local midnight is refused (naming
    its line): splitting it would invent how the energy fell on either side."""
    zone = site_zone(tz)
    energy: dict[date, int] = {}
    covered: dict[date, int] = {}
    for item in intervals:
        day = datetime.fromtimestamp(item.start, zone).date()
        start, end = day_bounds(day, zone)
        if item.end > end:
            raise ImportRefused(
                f"the interval {item.start}..{item.end} crosses local midnight in {zone.key}; "
                "the meter must be read at each day boundary",
                line=item.line,
            )
        energy[day] = energy.get(day, 0) + item.energy_j
        covered[day] = covered.get(day, 0) + (item.end - item.start)
    out = {}
    for day in sorted(energy):
        start, end = day_bounds(day, zone)
        out[day] = MeterDay(energy_j=energy[day], covered_s=covered[day], day_s=end - start)
    return out


def _pct(value: Fraction) -> Decimal:
    return round_half_even(value, 3)


def _kwh(joules: int | None) -> Decimal | None:
    return None if joules is None else round_half_even(Fraction(joules, J_PER_KWH), 3)


@dataclass(frozen=True, slots=True, kw_only=True)
class MeterDayRow:
    day: date
    meter_j: int | None
    metered_j: int | None
    diff_j: int | None  # meter - metered
    diff_pct: Decimal | None  # of metered, 3 places (display)
    coverage_pct: Decimal | None  # ours
    meter_coverage_pct: Decimal | None
    status: DayStatus
    note: str

    def cells(self) -> dict[str, str]:
        """The row as text for CSV/JSON/table (kWh to 3 places; exact joules alongside)."""

        def text(value: Decimal | int | None) -> str:
            return "" if value is None else f"{value:f}" if isinstance(value, Decimal) else str(value)

        return {
            "day": self.day.isoformat(),
            "meter_kwh": text(_kwh(self.meter_j)),
            "metered_kwh": text(_kwh(self.metered_j)),
            "diff_kwh": text(_kwh(self.diff_j)),
            "diff_pct": text(self.diff_pct),
            "coverage_pct": text(self.coverage_pct),
            "meter_coverage_pct": text(self.meter_coverage_pct),
            "status": self.status,
            "meter_j": text(self.meter_j),
            "metered_j": text(self.metered_j),
            "note": self.note,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class MeterReport:
    meter_class: str
    tolerance_pct: Decimal
    min_coverage_pct: Decimal
    rows: tuple[MeterDayRow, ...]
    compared_meter_j: int
    compared_metered_j: int
    total_diff_pct: Decimal | None

    @property
    def failed(self) -> tuple[MeterDayRow, ...]:
        return tuple(r for r in self.rows if r.status == "fail")

    def count(self, status: DayStatus) -> int:
        return sum(1 for r in self.rows if r.status == status)

    @property
    def period(self) -> tuple[date, date]:
        """First and last day (inclusive) of the report."""
        return self.rows[0].day, self.rows[-1].day

    def summary(self) -> dict[str, Any]:
        first, last = self.period
        return {
            "kind": "meter",
            "first_day": first.isoformat(),
            "last_day": last.isoformat(),
            "meter_class": self.meter_class,
            "tolerance_pct": str(self.tolerance_pct),
            "min_coverage_pct": str(self.min_coverage_pct),
            "days": len(self.rows),
            "pass": self.count("pass"),
            "fail": self.count("fail"),
            "missing": self.count("missing"),
            "compared_meter_kwh": str(_kwh(self.compared_meter_j)),
            "compared_metered_kwh": str(_kwh(self.compared_metered_j)),
            "compared_diff_kwh": str(_kwh(self.compared_meter_j - self.compared_metered_j)),
            "compared_diff_pct": "" if self.total_diff_pct is None else str(self.total_diff_pct),
        }

    def summary_line(self) -> str:
        s = self.summary()
        return (
            f"meter {s['first_day']}..{s['last_day']}: {s['fail']} of {s['days']} days beyond "
            f"{s['tolerance_pct']} % ({s['missing']} not compared); compared diff "
            f"{s['compared_diff_kwh']} kWh ({s['compared_diff_pct'] or '-'} %)"
        )


def _judge(
    meter: MeterDay | None, ours: MeteredDay | None, diff: int | None, tolerance: Decimal, min_cov: Decimal
) -> tuple[DayStatus, str]:
    if meter is None or ours is None or diff is None:
        return "missing", "no meter file" if meter is None else "no metered figures of ours"
    if meter.covered_s < meter.day_s:
        return "missing", "meter file covers part of the day"
    if ours.coverage_pct < min_cov:
        return "missing", f"our coverage below {min_cov} %"
    # exact: |diff| / metered <= tolerance / 100
    within = abs(diff) * 100 <= Fraction(tolerance) * ours.energy_j
    return ("pass" if within else "fail"), ""


def _row(
    day: date, meter: MeterDay | None, ours: MeteredDay | None, tolerance: Decimal, min_cov: Decimal
) -> MeterDayRow:
    diff = None if meter is None or ours is None else meter.energy_j - ours.energy_j
    status, note = _judge(meter, ours, diff, tolerance, min_cov)
    return MeterDayRow(
        day=day,
        meter_j=None if meter is None else meter.energy_j,
        metered_j=None if ours is None else ours.energy_j,
        diff_j=diff,
        diff_pct=None
        if diff is None or ours is None or not ours.energy_j
        else _pct(Fraction(diff * 100, ours.energy_j)),
        coverage_pct=None if ours is None else ours.coverage_pct,
        meter_coverage_pct=None if meter is None else _pct(Fraction(meter.covered_s * 100, meter.day_s)),
        status=status,
        note=note,
    )


def reconcile_meter(
    meter: Mapping[date, MeterDay],
    metered: Mapping[date, MeteredDay],
    *,
    meter_class: str = "revenue",
    tolerances_pct: Mapping[str, Decimal] | None = None,
    min_coverage_pct: Decimal = Decimal(95),
) -> MeterReport:
    """Per-day comparison over every day either side has, and totals over the days compared."""
    if not meter and not metered:
        raise ValueError("nothing to reconcile: no days on either side")
    tolerance = tolerance_for(meter_class, tolerances_pct)
    rows = tuple(
        _row(day, meter.get(day), metered.get(day), tolerance, min_coverage_pct)
        for day in sorted(set(meter) | set(metered))
    )
    compared = [r for r in rows if r.status != "missing"]
    meter_j = sum(r.meter_j or 0 for r in compared)
    metered_j = sum(r.metered_j or 0 for r in compared)
    total_pct = None if metered_j == 0 else _pct(Fraction((meter_j - metered_j) * 100, metered_j))
    return MeterReport(
        meter_class=meter_class,
        tolerance_pct=tolerance,
        min_coverage_pct=min_coverage_pct,
        rows=rows,
        compared_meter_j=meter_j,
        compared_metered_j=metered_j,
        total_diff_pct=total_pct,
    )
