"""Real-time price import: ERCOT settlement-point CSV, a simple `ts,price` CSV, and a naive local-time grid.

Each reader reads the whole input through `safe_csv` (limits enforced per line before decoding), checks
every row, and only then returns one `PriceSeries`; any refusal raises `ImportRefused` naming the line and
column, so a bad file never leaves half its prices behind.

Local time is resolved with the market's IANA zone and never guessed:
- ERCOT labels intervals by delivery date, hour *ending* 1-24 and 15-minute interval 1-4, in Central
  Prevailing Time. The 23-hour spring day has no hour ending 03 (92 intervals); on the 25-hour autumn day
  hour ending 02 appears twice, and `DSTFlag` = Y marks the repeated one, which is standard time (100
  intervals). A Y on an hour that is not repeated, or a time that does not exist, is refused.
- The naive local grid (a resampled file with wall-clock starts) has no flag: an ambiguous time is the
  daylight one on its first occurrence and the standard one on its second; a nonexistent one is refused.

Units: prices are stored in $/kWh. ERCOT and the grid are $/MWh; the simple form declares its unit in the
header (`price_usd_per_mwh`, `price_usd_per_kwh`) or in the call. A value outside the plausible range for
the declared unit is refused as a probable unit mistake ($/MWh read as $/kWh is off by 1000).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Context, Decimal
from itertools import pairwise
from typing import IO, Literal
from zoneinfo import ZoneInfo

from gateway.energy.safe_csv import CsvLimits, ImportRefused, parse_decimal, read_rows
from gateway.energy.tariffs import PriceSeries
from gateway.energy.units import site_zone

__all__ = ["PriceUnit", "read_ercot_spp", "read_local_grid", "read_ts_price"]

PriceUnit = Literal["$/MWh", "$/kWh"]
_TO_KWH: dict[str, Decimal] = {"$/MWh": Decimal(1000), "$/kWh": Decimal(1)}
# ERCOT's offer floor is -$250/MWh and its cap $5,000/MWh (+ adders): anything past these is a unit error.
PLAUSIBLE_PER_KWH = (Decimal(-10), Decimal(20))

ERCOT_COLUMNS = (
    "DeliveryDate",
    "DeliveryHour",
    "DeliveryInterval",
    "SettlementPointName",
    "SettlementPointType",
    "SettlementPointPrice",
    "DSTFlag",
)
_ERCOT_ALIASES = {"RepeatedHourFlag": "DSTFlag", "Repeated Hour Flag": "DSTFlag"}
_POINT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_POINT_TYPE = re.compile(r"^[A-Za-z]{1,8}$")
_US_DATE = re.compile(r"^(\d{2})/(\d{2})/(\d{4})$")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_EPOCH = re.compile(r"^\d{1,13}$")
_NAIVE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(?::\d{2})?$")
_MAX_EPOCH = 4_102_444_800  # 2100-01-01: a larger "epoch" is milliseconds or garbage


def _header(fields: list[str], line: int) -> dict[str, int]:
    names: dict[str, int] = {}
    for i, raw in enumerate(fields):
        name = raw.strip()
        if not name:
            raise ImportRefused("empty column name", line=line, column=i + 1)
        if name in names:
            raise ImportRefused(f"column {name!r} appears twice", line=line, column=i + 1, column_name=name)
        names[name] = i
    return names


def _rows(
    source: bytes | IO[bytes], limits: CsvLimits
) -> tuple[dict[str, int], Iterator[tuple[int, list[str]]]]:
    rows = read_rows(source, limits)
    first = next(rows, None)
    if first is None:
        raise ImportRefused("empty input: no header", line=1)
    return _header(first[1], first[0]), rows


def _field(fields: list[str], header: dict[str, int], name: str, line: int) -> tuple[str, int]:
    if len(fields) != len(header):
        raise ImportRefused(f"{len(fields)} fields where the header has {len(header)}", line=line)
    i = header[name]
    return fields[i].strip(), i + 1


def _price(text: str, unit: str, *, line: int, column: int, name: str) -> Decimal:
    # an explicit wide context: the exact quotient, whatever the caller's decimal context says
    value = Context(prec=60).divide(
        parse_decimal(text, line=line, column=column, column_name=name), _TO_KWH[unit]
    )
    low, high = PLAUSIBLE_PER_KWH
    if not low <= value <= high:
        raise ImportRefused(
            f"{text} {unit} is outside the plausible range {low}..{high} $/kWh: wrong unit?",
            line=line,
            column=column,
            column_name=name,
        )
    return value


def _resolve(naive: datetime, zone: ZoneInfo, *, fold: int, line: int, column: int, name: str) -> int:
    """Epoch of a local wall time; refuses a time the DST change skipped."""
    ts = int(naive.replace(tzinfo=zone, fold=fold).timestamp())
    if datetime.fromtimestamp(ts, zone).replace(tzinfo=None) != naive:
        raise ImportRefused(
            f"{naive.isoformat(' ')} does not exist in {zone.key} (skipped by the DST change)",
            line=line,
            column=column,
            column_name=name,
        )
    return ts


def _ambiguous(naive: datetime, zone: ZoneInfo) -> bool:
    return naive.replace(tzinfo=zone, fold=0).utcoffset() != naive.replace(tzinfo=zone, fold=1).utcoffset()


def _series(
    found: dict[int, tuple[Decimal, int]], interval_s: int, source: str, *, unaligned_column: int
) -> PriceSeries:
    starts = sorted(found)
    for ts in starts:
        if ts % 900:
            raise ImportRefused("interval does not start on a 15-minute instant", line=found[ts][1])
    for a, b in pairwise(starts):
        if b - a < interval_s:
            raise ImportRefused(
                f"interval overlaps the one on line {found[a][1]} ({interval_s} s intervals)",
                line=found[b][1],
                column=unaligned_column,
            )
    return PriceSeries(
        interval_s=interval_s,
        starts=tuple(starts),
        prices_per_kwh=tuple(found[t][0] for t in starts),
        source=source,
    )


def _ercot_date(text: str, *, line: int, column: int) -> date:
    m = _US_DATE.match(text)
    parts = (int(m[3]), int(m[1]), int(m[2])) if m else None
    if parts is None and (iso := _ISO_DATE.match(text)):
        parts = (int(iso[1]), int(iso[2]), int(iso[3]))
    try:
        if parts is None:
            raise ValueError(text)
        return date(*parts)
    except ValueError as err:
        raise ImportRefused(
            f"{text[:40]!r} is not a date (MM/DD/YYYY)", line=line, column=column, column_name="DeliveryDate"
        ) from err


def _small_int(text: str, low: int, high: int, *, line: int, column: int, name: str) -> int:
    if not text.isdigit() or not low <= int(text) <= high:
        raise ImportRefused(
            f"{text[:40]!r} is not an integer {low}-{high}", line=line, column=column, column_name=name
        )
    return int(text)


def read_ercot_spp(
    source: bytes | IO[bytes],
    *,
    settlement_point: str | None = None,
    tz: str | ZoneInfo = "America/Chicago",
    complete_days: bool = False,
    limits: CsvLimits | None = None,
) -> PriceSeries:
    """ERCOT 15-minute settlement point prices ($/MWh) for one settlement point.

    With `settlement_point` None the file must hold exactly one. `complete_days` also requires every
    delivery date to be whole: 96 intervals, 92 on the spring DST day, 100 on the autumn one."""
    zone = site_zone(tz)
    header, rows = _rows(source, limits or CsvLimits())
    header = {_ERCOT_ALIASES.get(k, k): v for k, v in header.items()}
    for name in ERCOT_COLUMNS:
        if name not in header:
            raise ImportRefused(f"missing ERCOT column {name!r}", line=1)
    extra = set(header) - set(ERCOT_COLUMNS)
    if extra:
        name = sorted(extra)[0]
        raise ImportRefused(
            "unexpected column in an ERCOT file", line=1, column=header[name] + 1, column_name=name
        )
    found: dict[int, tuple[Decimal, int]] = {}
    per_day: dict[date, list[int]] = {}
    point = settlement_point
    for line, fields in rows:
        values = {name: _field(fields, header, name, line) for name in ERCOT_COLUMNS}
        text, col = values["SettlementPointName"]
        if not _POINT_NAME.match(text):
            raise ImportRefused(
                f"{text[:40]!r} is not a settlement point name",
                line=line,
                column=col,
                column_name="SettlementPointName",
            )
        if point is None:
            point = text
        elif text != point and settlement_point is None:
            raise ImportRefused(
                f"a second settlement point {text!r} after {point!r}: choose one",
                line=line,
                column=col,
                column_name="SettlementPointName",
            )
        kind, kcol = values["SettlementPointType"]
        if not _POINT_TYPE.match(kind):
            raise ImportRefused(
                f"{kind[:40]!r} is not a settlement point type",
                line=line,
                column=kcol,
                column_name="SettlementPointType",
            )
        day = _ercot_date(values["DeliveryDate"][0], line=line, column=values["DeliveryDate"][1])
        hour = _small_int(
            values["DeliveryHour"][0],
            1,
            24,
            line=line,
            column=values["DeliveryHour"][1],
            name="DeliveryHour",
        )
        quarter = _small_int(
            values["DeliveryInterval"][0],
            1,
            4,
            line=line,
            column=values["DeliveryInterval"][1],
            name="DeliveryInterval",
        )
        flag, fcol = values["DSTFlag"]
        if flag not in ("Y", "N"):
            raise ImportRefused(f"{flag[:40]!r} is not Y or N", line=line, column=fcol, column_name="DSTFlag")
        price_text, pcol = values["SettlementPointPrice"]
        price = _price(price_text, "$/MWh", line=line, column=pcol, name="SettlementPointPrice")
        if text != point:
            continue  # another settlement point, checked above and not imported
        naive = datetime(day.year, day.month, day.day) + timedelta(hours=hour - 1, minutes=15 * (quarter - 1))
        if flag == "Y" and not _ambiguous(naive, zone):
            raise ImportRefused(
                f"DSTFlag Y on {naive.isoformat(' ')}, which is not a repeated hour in {zone.key}",
                line=line,
                column=fcol,
                column_name="DSTFlag",
            )
        ts = _resolve(
            naive,
            zone,
            fold=1 if flag == "Y" else 0,
            line=line,
            column=values["DeliveryHour"][1],
            name="DeliveryHour",
        )
        if ts in found:
            raise ImportRefused(f"duplicate interval: same as line {found[ts][1]}", line=line)
        found[ts] = (price, line)
        per_day.setdefault(day, []).append(line)
    if not found:
        raise ImportRefused(f"no prices for settlement point {point!r}", line=None)
    if complete_days:
        for day, lines in sorted(per_day.items()):
            start = datetime(day.year, day.month, day.day, tzinfo=zone)
            expected = int(((start + timedelta(days=1)).timestamp() - start.timestamp()) // 900)
            if len(lines) != expected:
                raise ImportRefused(
                    f"delivery date {day} has {len(lines)} intervals, expected {expected}: truncated?",
                    line=lines[0],
                )
    return _series(found, 900, f"ERCOT SPP {point}", unaligned_column=header["DeliveryHour"] + 1)


_TS_PRICE_UNITS: dict[str, str | None] = {
    "price": None,
    "price_usd_per_mwh": "$/MWh",
    "price_usd_per_kwh": "$/kWh",
}


def _parse_ts(text: str, *, line: int) -> int:
    if _EPOCH.match(text):
        ts = int(text)
        if ts >= _MAX_EPOCH:
            raise ImportRefused(
                f"{text} is past 2100 as epoch seconds: milliseconds?", line=line, column=1, column_name="ts"
            )
        return ts
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as err:
        raise ImportRefused(
            f"{text[:40]!r} is not ISO 8601 or epoch seconds", line=line, column=1, column_name="ts"
        ) from err
    if moment.tzinfo is None:
        raise ImportRefused(f"{text} has no UTC offset: ambiguous", line=line, column=1, column_name="ts")
    if moment.microsecond:
        raise ImportRefused(f"{text} is not on a whole second", line=line, column=1, column_name="ts")
    return int(moment.astimezone(UTC).timestamp())


def read_ts_price(
    source: bytes | IO[bytes],
    *,
    unit: PriceUnit | None = None,
    interval_s: int = 900,
    limits: CsvLimits | None = None,
) -> PriceSeries:
    """`ts,<price>`: ts is the interval's start, ISO 8601 with an offset (or Z) or epoch seconds; the price
    column is `price` (then `unit` is required) or names its unit (`price_usd_per_mwh`/`_per_kwh`)."""
    header, rows = _rows(source, limits or CsvLimits())
    names = list(header)
    if len(names) != 2 or names[0] != "ts":
        raise ImportRefused("header must be 'ts,<price column>'", line=1)
    price_name = names[1]
    if price_name not in _TS_PRICE_UNITS:
        raise ImportRefused(
            f"unknown price column/unit; expected one of {sorted(_TS_PRICE_UNITS)}",
            line=1,
            column=2,
            column_name=price_name,
        )
    declared = _TS_PRICE_UNITS[price_name]
    if declared is not None and unit is not None and declared != unit:
        raise ImportRefused(
            f"header says {declared} but the import asked for {unit}",
            line=1,
            column=2,
            column_name=price_name,
        )
    effective = declared or unit
    if effective is None:
        raise ImportRefused(
            "column 'price' does not say its unit: pass unit='$/MWh' or '$/kWh'", line=1, column=2
        )
    if interval_s <= 0 or interval_s % 900:
        raise ValueError(f"interval_s must be a positive multiple of 900, got {interval_s}")
    found: dict[int, tuple[Decimal, int]] = {}
    for line, fields in rows:
        ts_text, _ = _field(fields, header, "ts", line)
        ts = _parse_ts(ts_text, line=line)
        price = _price(
            _field(fields, header, price_name, line)[0], effective, line=line, column=2, name=price_name
        )
        if ts in found:
            raise ImportRefused(
                f"duplicate interval: same as line {found[ts][1]}", line=line, column=1, column_name="ts"
            )
        found[ts] = (price, line)
    if not found:
        raise ImportRefused("no price rows", line=None)
    return _series(found, interval_s, f"ts,price ({effective})", unaligned_column=1)


def read_local_grid(
    source: bytes | IO[bytes],
    *,
    column: str,
    tz: str | ZoneInfo = "America/Chicago",
    unit: PriceUnit = "$/MWh",
    interval_s: int = 900,
    time_column: str = "interval_start_local",
    limits: CsvLimits | None = None,
) -> PriceSeries:
    """A grid of naive local interval starts (`time_column`) and price columns; imports `column`."""
    zone = site_zone(tz)
    header, rows = _rows(source, limits or CsvLimits())
    for name in (time_column, column):
        if name not in header:
            raise ImportRefused(f"no column {name!r} (columns: {', '.join(header)})", line=1)
    seen: dict[datetime, int] = {}
    found: dict[int, tuple[Decimal, int]] = {}
    tcol = header[time_column] + 1
    for line, fields in rows:
        text, _ = _field(fields, header, time_column, line)
        if not _NAIVE_TIME.match(text):
            raise ImportRefused(
                f"{text[:40]!r} is not a naive local time YYYY-MM-DD HH:MM[:SS]",
                line=line,
                column=tcol,
                column_name=time_column,
            )
        naive = datetime.fromisoformat(text)
        occurrence = seen.get(naive, 0)
        if occurrence and not (occurrence == 1 and _ambiguous(naive, zone)):
            raise ImportRefused(f"duplicate interval {text}", line=line, column=tcol, column_name=time_column)
        seen[naive] = occurrence + 1
        ts = _resolve(naive, zone, fold=occurrence, line=line, column=tcol, name=time_column)
        price_text, pcol = _field(fields, header, column, line)
        found[ts] = (_price(price_text, unit, line=line, column=pcol, name=column), line)
    if not found:
        raise ImportRefused("no price rows", line=None)
    return _series(found, interval_s, f"{column} ({unit}, {zone.key} local grid)", unaligned_column=tcol)
