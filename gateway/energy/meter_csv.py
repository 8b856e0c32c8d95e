"""Utility-meter CSV import: interval energy or a cumulative register, read through a column mapping.

Why a mapping and not a format per utility: every utility and every meter-data portal writes its own
header, time format and unit, but they all carry the same two facts (a time and an energy figure, either
the energy of one interval or the register reading at an instant). The mapping names those columns and
says how to read them, so a new utility needs a five-line TOML file, not code.

What we refuse, each with its line and column, before anything is returned (no partial import):
- everything `safe_csv` refuses (oversized input or lines, too many columns, formulas, truncation);
- a time that does not parse, is not on a whole second, or does not exist in the zone (skipped by DST);
- a duplicated interval or reading time (a naive local time may repeat once, in the autumn DST hour);
- an energy value that is negative, finer than 1 J (integer joules are the unit of record), or that
  implies an average power above `max_power_w` (a Wh column declared as MWh is off by a million);
- a register that goes backwards (rollover, meter exchange or reset): we do not guess what happened, a
  person splits the file at the reset;
- a value column whose header names a different unit than the mapping declares.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime
from decimal import Context, Decimal
from itertools import pairwise
from typing import IO, Literal, get_args
from zoneinfo import ZoneInfo

from gateway.energy.reconcile import MeteredDay
from gateway.energy.safe_csv import CsvLimits, ImportRefused, parse_decimal, read_rows
from gateway.energy.units import J_PER_KWH, site_zone

__all__ = [
    "EnergyUnit",
    "MeterInterval",
    "MeterKind",
    "MeterMapping",
    "TimeMark",
    "read_day_table",
    "read_meter_csv",
    "read_metered_csv",
]

EnergyUnit = Literal["Wh", "kWh", "MWh"]
MeterKind = Literal["interval", "register"]
TimeMark = Literal["start", "end"]
J_PER_UNIT: dict[str, int] = {"Wh": 3_600, "kWh": 3_600_000, "MWh": 3_600_000_000}
_UNIT_TOKEN = re.compile(r"(?<![A-Za-z])(wh|kwh|mwh)(?![A-Za-z])", re.IGNORECASE)
_EPOCH = re.compile(r"^\d{1,13}$")
_MAX_EPOCH = 4_102_444_800  # 2100-01-01: a larger "epoch" is milliseconds or garbage
_WIDE = Context(prec=60)


@dataclass(frozen=True, slots=True, kw_only=True)
class MeterMapping:
    """How to read one utility's meter file.

    `time_format`: "iso" (ISO 8601; with an offset it is exact, without one it is local time in `tz`),
    "epoch" (UTC epoch seconds) or a `strptime` pattern such as "%m/%d/%Y %H:%M" (local in `tz` unless
    the pattern has %z). `tz` only reads naive times (a utility portal may export in its own zone);
    it never decides which day energy belongs to: days are always the site's local days. Unset, naive
    times are in the site's zone too (`site_tz` of `read_meter_csv`). For `kind` "interval", each row is the
    energy of `interval_s` seconds whose start or end (`time_marks`) is the row's time; for
    "register", each row is a cumulative reading and the energy of `[t_i, t_i+1)` is the difference
    of consecutive readings."""

    time_column: str
    value_column: str
    unit: EnergyUnit
    kind: MeterKind
    time_format: str = "iso"
    tz: str | None = None
    interval_s: int = 900
    time_marks: TimeMark = "start"
    meter_class: str = "revenue"
    max_power_w: int = 1_000_000_000

    def __post_init__(self) -> None:
        for name in ("time_column", "value_column", "time_format", "meter_class"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"mapping.{name}: must be a non-empty string")
        if self.time_column == self.value_column:
            raise ValueError("mapping.value_column: must differ from time_column")
        if self.unit not in J_PER_UNIT:
            raise ValueError(f"mapping.unit: {self.unit!r} is not one of {', '.join(J_PER_UNIT)}")
        if self.kind not in get_args(MeterKind):
            raise ValueError(f"mapping.kind: {self.kind!r} is not 'interval' or 'register'")
        if self.time_marks not in get_args(TimeMark):
            raise ValueError(f"mapping.time_marks: {self.time_marks!r} is not 'start' or 'end'")
        ok_interval = isinstance(self.interval_s, int) and not isinstance(self.interval_s, bool)
        if not ok_interval or not 60 <= self.interval_s <= 86_400 or 86_400 % self.interval_s:
            raise ValueError(f"mapping.interval_s: {self.interval_s!r} must divide a day, 60..86400 s")
        if not isinstance(self.max_power_w, int) or self.max_power_w <= 0:
            raise ValueError("mapping.max_power_w: must be a positive integer")
        if self.tz is not None:
            if not isinstance(self.tz, str) or not self.tz.strip():
                raise ValueError("mapping.tz: must be a non-empty IANA zone name")
            site_zone(self.tz)  # an unknown zone fails here, naming itself

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> MeterMapping:
        """From a parsed TOML/JSON table; an unknown or mistyped key fails naming the key."""
        known = {f.name: f for f in fields(cls)}
        for key in data:
            if key not in known:
                raise ValueError(f"mapping.{key}: unknown key (known: {', '.join(known)})")
        for key in ("time_column", "value_column", "unit", "kind"):
            if key not in data:
                raise ValueError(f"mapping.{key}: required")
        for key, value in data.items():
            want = int if key in ("interval_s", "max_power_w") else str
            if not isinstance(value, want) or isinstance(value, bool):
                raise ValueError(f"mapping.{key}: expected {want.__name__}, got {type(value).__name__}")
        return cls(**data)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True, kw_only=True)
class MeterInterval:
    """Energy the meter recorded over `[start, end)` (UTC epoch s); `line` is where it came from (for a
    register, the line of the closing reading)."""

    start: int
    end: int
    energy_j: int
    line: int


def _header(fields_: list[str], line: int, mapping: MeterMapping) -> tuple[int, int]:
    names: dict[str, int] = {}
    for i, raw in enumerate(fields_):
        name = raw.strip()
        if not name:
            raise ImportRefused("empty column name", line=line, column=i + 1)
        if name in names:
            raise ImportRefused(f"column {name!r} appears twice", line=line, column=i + 1, column_name=name)
        names[name] = i
    for wanted in (mapping.time_column, mapping.value_column):
        if wanted not in names:
            shown = ", ".join(list(names)[:10])
            raise ImportRefused(f"no column {wanted!r} (columns: {shown})", line=line)
    value_at = names[mapping.value_column]
    said = {m.lower() for m in _UNIT_TOKEN.findall(mapping.value_column)}
    if said and said != {mapping.unit.lower()}:
        raise ImportRefused(
            f"the header names {'/'.join(sorted(said))} but the mapping says {mapping.unit}: wrong unit?",
            line=line,
            column=value_at + 1,
            column_name=mapping.value_column,
        )
    return names[mapping.time_column], value_at


class _Clock:
    """Turns the file's time text into UTC epoch seconds; remembers naive local times it has seen, so
    the second occurrence of an autumn DST hour is the standard-time one (fold=1) and a third is refused."""

    def __init__(self, mapping: MeterMapping, column: int, site_tz: str | ZoneInfo | None) -> None:
        self.mapping, self.column = mapping, column
        zone = mapping.tz or site_tz
        self.zone: ZoneInfo | None = None if zone is None else site_zone(zone)
        self.seen: dict[datetime, int] = {}

    def refuse(self, message: str, line: int) -> ImportRefused:
        return ImportRefused(message, line=line, column=self.column, column_name=self.mapping.time_column)

    def epoch(self, text: str, line: int) -> int:
        fmt = self.mapping.time_format
        if fmt == "epoch":
            if not _EPOCH.match(text) or int(text) >= _MAX_EPOCH:
                raise self.refuse(f"{text[:40]!r} is not epoch seconds before 2100", line)
            return int(text)
        try:
            moment = datetime.fromisoformat(text) if fmt == "iso" else datetime.strptime(text, fmt)
        except ValueError as err:
            raise self.refuse(f"{text[:40]!r} does not match time format {fmt!r}", line) from err
        if moment.microsecond:
            raise self.refuse(f"{text[:40]!r} is not on a whole second", line)
        if moment.tzinfo is not None:
            return int(moment.astimezone(UTC).timestamp())
        return self._local(moment, text, line)

    def _local(self, naive: datetime, text: str, line: int) -> int:
        if self.zone is None:
            raise self.refuse(f"{text[:40]!r} has no UTC offset and no zone is known: set mapping.tz", line)
        occurrence = self.seen.get(naive, 0)
        fold0 = naive.replace(tzinfo=self.zone, fold=0)
        ambiguous = fold0.utcoffset() != naive.replace(tzinfo=self.zone, fold=1).utcoffset()
        if occurrence and not (occurrence == 1 and ambiguous):
            raise self.refuse(f"duplicate time {text[:40]!r}", line)
        self.seen[naive] = occurrence + 1
        ts = int(naive.replace(tzinfo=self.zone, fold=occurrence).timestamp())
        if datetime.fromtimestamp(ts, self.zone).replace(tzinfo=None) != naive:
            raise self.refuse(f"{text[:40]!r} does not exist in {self.zone.key} (skipped by DST)", line)
        return ts


def _joules(text: str, mapping: MeterMapping, *, line: int, column: int) -> int:
    value = parse_decimal(text, line=line, column=column, column_name=mapping.value_column)
    exact = _WIDE.multiply(value, Decimal(J_PER_UNIT[mapping.unit]))
    if exact != exact.to_integral_value():
        raise ImportRefused(
            f"{text.strip()} {mapping.unit} is finer than 1 J; refused rather than rounded",
            line=line,
            column=column,
            column_name=mapping.value_column,
        )
    if exact < 0:
        raise ImportRefused(
            f"negative energy {text.strip()} {mapping.unit}",
            line=line,
            column=column,
            column_name=mapping.value_column,
        )
    return int(exact)


def _rows(
    source: bytes | IO[bytes], mapping: MeterMapping, limits: CsvLimits, site_tz: str | ZoneInfo | None
) -> tuple[int, list[tuple[int, int, int]]]:
    """The value column (1-based) and (line, epoch, joules) per data row, in file order."""
    rows = read_rows(source, limits)
    first = next(rows, None)
    if first is None:
        raise ImportRefused("empty input: no header", line=1)
    width = len(first[1])
    time_at, value_at = _header(first[1], first[0], mapping)
    clock = _Clock(mapping, time_at + 1, site_tz)
    out = []
    for line, cells in rows:
        if len(cells) != width:
            raise ImportRefused(f"{len(cells)} fields where the header has {width}", line=line)
        ts = clock.epoch(cells[time_at].strip(), line)
        out.append((line, ts, _joules(cells[value_at], mapping, line=line, column=value_at + 1)))
    return value_at + 1, out


def _check_power(energy_j: int, span_s: int, mapping: MeterMapping, line: int, column: int) -> None:
    if energy_j > mapping.max_power_w * span_s:
        mw = Decimal(energy_j) / span_s / 1_000_000
        raise ImportRefused(
            f"implies {mw:.1f} MW on average, above max_power_w={mapping.max_power_w}: wrong unit?",
            line=line,
            column=column,
            column_name=mapping.value_column,
        )


def read_meter_csv(
    source: bytes | IO[bytes],
    mapping: MeterMapping,
    *,
    site_tz: str | ZoneInfo | None = None,
    limits: CsvLimits | None = None,
) -> tuple[MeterInterval, ...]:
    """All the meter's intervals, sorted by start; raises `ImportRefused` (line, column) on any bad row.
    `site_tz` (the site's IANA zone) reads naive times when the mapping names no `tz`. With neither, a
    naive time is refused, never read as UTC: a silent "UTC" shifted every day of a US site by hours."""
    if site_tz is not None:
        site_zone(site_tz)
    column, rows = _rows(source, mapping, limits or CsvLimits(), site_tz)
    if not rows:
        raise ImportRefused("no data rows", line=None)
    if mapping.kind == "interval":
        return _intervals(rows, mapping, column)
    return _register(rows, mapping, column)


def _intervals(
    rows: list[tuple[int, int, int]], mapping: MeterMapping, column: int
) -> tuple[MeterInterval, ...]:
    found: dict[int, MeterInterval] = {}
    for line, ts, energy_j in rows:
        start = ts if mapping.time_marks == "start" else ts - mapping.interval_s
        if start in found:
            raise ImportRefused(f"duplicate interval: same as line {found[start].line}", line=line)
        _check_power(energy_j, mapping.interval_s, mapping, line, column)
        end = start + mapping.interval_s
        found[start] = MeterInterval(start=start, end=end, energy_j=energy_j, line=line)
    ordered = [found[s] for s in sorted(found)]
    for before, after in pairwise(ordered):
        if after.start < before.end:
            raise ImportRefused(f"interval overlaps the one on line {before.line}", line=after.line)
    return tuple(ordered)


def _register(
    rows: list[tuple[int, int, int]], mapping: MeterMapping, column: int
) -> tuple[MeterInterval, ...]:
    by_time: dict[int, tuple[int, int]] = {}
    for line, ts, reading_j in rows:
        if ts in by_time:
            raise ImportRefused(f"duplicate reading time: same as line {by_time[ts][0]}", line=line)
        by_time[ts] = (line, reading_j)
    if len(by_time) < 2:
        raise ImportRefused("a register needs at least two readings", line=rows[0][0])
    times = sorted(by_time)
    out = []
    for a, b in pairwise(times):
        (line_a, reading_a), (line_b, reading_b) = by_time[a], by_time[b]
        if reading_b < reading_a:
            raise ImportRefused(
                f"register went backwards ({reading_a} J on line {line_a} to {reading_b} J): "
                "rollover, reset or meter exchange; split the file at that point",
                line=line_b,
            )
        _check_power(reading_b - reading_a, b - a, mapping, line_b, column)
        out.append(MeterInterval(start=a, end=b, energy_j=reading_b - reading_a, line=line_b))
    return tuple(out)


def read_day_table(
    source: bytes | IO[bytes], columns: tuple[str, ...], *, limits: CsvLimits | None = None
) -> dict[date, tuple[int, dict[str, Decimal]]]:
    """A `day,<columns...>` CSV of plain decimals (our own figures handed to the CLI), by ISO day, with
    each day's line. The header must be exactly `day` and `columns`, in that order."""
    rows = read_rows(source, limits or CsvLimits())
    first = next(rows, None)
    want = ["day", *columns]
    if first is None:
        raise ImportRefused("empty input: no header", line=1)
    if [c.strip() for c in first[1]] != want:
        raise ImportRefused(f"header must be {','.join(want)}", line=1)
    out: dict[date, tuple[int, dict[str, Decimal]]] = {}
    for line, cells in rows:
        if len(cells) != len(want):
            raise ImportRefused(f"{len(cells)} fields where the header has {len(want)}", line=line)
        try:
            day = date.fromisoformat(cells[0].strip())
        except ValueError as err:
            raise ImportRefused(
                f"{cells[0][:40]!r} is not a YYYY-MM-DD day", line=line, column=1, column_name="day"
            ) from err
        if day in out:
            raise ImportRefused(
                f"duplicate day {day}: same as line {out[day][0]}", line=line, column=1, column_name="day"
            )
        values = {
            name: parse_decimal(cells[i + 1], line=line, column=i + 2, column_name=name)
            for i, name in enumerate(columns)
        }
        out[day] = (line, values)
    if not out:
        raise ImportRefused("no data rows", line=None)
    return out


def read_metered_csv(source: bytes | IO[bytes], *, limits: CsvLimits | None = None) -> dict[date, MeteredDay]:
    """Our metered energy per local day as `day,kwh,coverage_pct` (what the gateway's energy_15m gives
    once summed per site day). kWh must be a whole number of joules (at most 5 decimals)."""
    out = {}
    for day, (line, values) in read_day_table(source, ("kwh", "coverage_pct"), limits=limits).items():
        joules = _WIDE.multiply(values["kwh"], Decimal(J_PER_KWH))
        if joules != joules.to_integral_value() or joules < 0:
            raise ImportRefused(
                f"{values['kwh']} kWh is negative or finer than 1 J", line=line, column=2, column_name="kwh"
            )
        pct = values["coverage_pct"]
        if not 0 <= pct <= 100:
            raise ImportRefused(f"{pct} is not 0..100", line=line, column=3, column_name="coverage_pct")
        out[day] = MeteredDay(energy_j=int(joules), coverage_pct=pct)
    return out
