"""OpenEI Utility Rate Database (URDB) JSON -> `Tariff`.

What is read (keys case-folded first: real files mix `flatDemandUnits` with `flatdemandunit`):
- energy: `energyratestructure` (periods -> tiers `{rate, adj, max, unit}`; $/kWh = rate + adj; `max` is the
  tier's cumulative kWh per billing period) chosen by `energyweekdayschedule`/`energyweekendschedule`, 12
  months x 24 local hours of period indices; URDB's weekday is Mon-Fri and it has no holidays.
- TOU demand: `demandratestructure` (tiers in kW) with its own weekday/weekend schedules.
- flat monthly demand: `flatdemandstructure` + `flatdemandmonths` (a flat-demand period per month).
- fixed: `fixedchargefirstmeter` in `fixedchargeunits` ($/month or $/day); minimum: `mincharge` in
  `minchargeunits`; validity from `startdate`/`enddate` (epoch s) unless the caller gives it.

What is refused, with the line and column of the offending value: anything that would make us price
differently from the utility without saying so - a unit other than kWh/kW/$ per month or day, demand
ratchets, coincident demand, a schedule that is not 12x24 or names a period that does not exist, NaN,
duplicate keys, a name that a spreadsheet would execute. What is ignored is recorded in `Tariff.notes`
(reactive-power charges: the gateway meters no kVAR; export `sell` rates: miners do not export).

The demand interval (15/30/60 min) is not in the JSON (except sometimes as `demandwindow`): it is the
site's setting, passed in; a `demandwindow` that disagrees with it is refused rather than silently used.
Rates are parsed with `parse_float=Decimal`, so 0.08859 is exactly the digits the utility published.
"""

from __future__ import annotations

import json
import re
from datetime import time
from decimal import Context, Decimal
from typing import IO, Literal

from gateway.energy.json_locate import JsonPath, format_path, locate
from gateway.energy.safe_csv import ImportRefused
from gateway.energy.tariffs import (
    WEEKDAYS,
    WEEKEND,
    DemandCharges,
    FixedCharges,
    MinimumCharge,
    RatePeriod,
    RateTier,
    Tariff,
    TariffError,
    TouEnergy,
    TouSchedule,
    TouWindow,
)

__all__ = ["MAX_URDB_BYTES", "read_urdb"]

MAX_URDB_BYTES = 4 * 1024 * 1024  # a real URDB rate is ~20 kB
MAX_DEPTH = 12
_MAX_RATE = {"kWh": Decimal(10), "kW": Decimal(1000)}  # $/kWh, $/kW: beyond these, cents or a typo
_NAME = re.compile(r"^[^=+\-@\t\r\x00-\x1f][^\x00-\x1f]{0,199}$")
_UNSUPPORTED = ("coincidentratestructure", "lookbackmonths", "lookbackpercent", "lookbackrange")
_IGNORED = {
    "demandreactivepowercharge": "reactive-power charge {v} $/kVAR not applied: the gateway meters no kVAR",
    "demandreactpwrcharge": "reactive-power charge {v} $/kVAR not applied: the gateway meters no kVAR",
    "fixedchargeeaaddl": "fixed charge {v} per additional meter not applied: one meter is priced",
}


class _Bad(Exception):
    def __init__(self, path: JsonPath, message: str) -> None:
        super().__init__(message)
        self.path, self.message = path, message


def _pairs(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in pairs:
        folded = key.lower()
        if folded in out:
            raise _Bad((), f"key {key!r} appears twice (keys compare case-insensitively)")
        out[folded] = value
    return out


def _nan(token: str) -> object:
    raise _Bad((), f"{token} is not a number we can bill")


def _depth(value: object, path: JsonPath) -> None:
    if len(path) > MAX_DEPTH:
        raise _Bad(path, f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        for k, v in value.items():
            _depth(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _depth(v, (*path, i))


def _num(value: object, path: JsonPath) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise _Bad(path, f"expected a number, got {json.dumps(value, default=str)[:40]}")
    number = Decimal(value)
    if len(number.as_tuple().digits) > 20:
        raise _Bad(path, "more than 20 significant digits: not a published rate")
    return number


def _list(value: object, path: JsonPath, *, length: int | None = None) -> list[object]:
    if not isinstance(value, list) or not value or (length is not None and len(value) != length):
        raise _Bad(path, "expected a non-empty list" if length is None else f"expected a list of {length}")
    return value


def _obj(value: object, path: JsonPath) -> dict[str, object]:
    if not isinstance(value, dict):
        raise _Bad(path, "expected an object")
    return value


def _tiers(value: object, path: JsonPath, unit: str, notes: list[str]) -> tuple[RateTier, ...]:
    tiers: list[RateTier] = []
    raw = _list(value, path)
    for i, item in enumerate(raw):
        here = (*path, i)
        tier = _obj(item, here)
        if "unit" in tier and tier["unit"] != unit:
            raise _Bad(
                (*here, "unit"), f"tier unit {tier['unit']!r} is not supported (only {unit}): wrong units"
            )
        if "rate" not in tier and "adj" not in tier:
            raise _Bad(here, "tier has neither rate nor adj")
        rate = Context(prec=60).add(
            _num(tier.get("rate", 0), (*here, "rate")), _num(tier.get("adj", 0), (*here, "adj"))
        )
        if abs(rate) > _MAX_RATE[unit]:
            raise _Bad((*here, "rate"), f"{rate} $/{unit} is implausible: cents instead of dollars?")
        if tier.get("sell"):
            notes.append(f"{format_path(here)}: export (sell) rate not applied")
        limit = None
        if "max" in tier and i < len(raw) - 1:  # URDB: the last tier takes all remaining usage
            limit = _num(tier["max"], (*here, "max"))
        try:
            tiers.append(RateTier(rate=rate, limit=limit))
        except TariffError as err:
            raise _Bad((*here, "max"), str(err)) from err
    return tuple(tiers)


def _periods(
    rate: dict[str, object], key: str, unit: str, prefix: str, notes: list[str]
) -> tuple[RatePeriod, ...]:
    periods = []
    for i, tiers in enumerate(_list(rate[key], (key,))):
        try:
            periods.append(RatePeriod(name=f"{prefix} {i}", tiers=_tiers(tiers, (key, i), unit, notes)))
        except TariffError as err:
            raise _Bad((key, i), str(err)) from err
    return tuple(periods)


def _schedule(rate: dict[str, object], prefix: str, periods: tuple[RatePeriod, ...]) -> TouSchedule:
    """12x24 weekday and weekend grids -> windows; months with identical rows share their windows."""
    groups: dict[tuple[tuple[int, ...], bool], set[int]] = {}
    for key, weekend in ((f"{prefix}weekdayschedule", False), (f"{prefix}weekendschedule", True)):
        if key not in rate:
            raise _Bad((), f"missing {key}")
        for month, row in enumerate(_list(rate[key], (key,), length=12)):
            hours = []
            for hour, index in enumerate(_list(row, (key, month), length=24)):
                if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(periods):
                    raise _Bad((key, month, hour), f"period index {index!r} is not 0..{len(periods) - 1}")
                hours.append(index)
            groups.setdefault((tuple(hours), weekend), set()).add(month + 1)
    windows = []
    for (grid, weekend), months in groups.items():
        start = 0
        for hour in range(1, 25):
            if hour == 24 or grid[hour] != grid[start]:
                windows.append(
                    TouWindow(
                        period=periods[grid[start]].name,
                        months=frozenset(months),
                        weekdays=WEEKEND if weekend else WEEKDAYS,
                        start=time(start),
                        end=time(hour % 24),
                    )
                )
                start = hour
    return TouSchedule(windows=tuple(windows))


def _unit_is(rate: dict[str, object], keys: tuple[str, ...], expected: str) -> None:
    for key in keys:
        if key in rate and rate[key] != expected:
            raise _Bad((key,), f"{rate[key]!r} is not supported (only {expected}): wrong units")


def _money_per(rate: dict[str, object], amount_key: str, units_key: str) -> tuple[Decimal, str] | None:
    if amount_key not in rate:
        return None
    amount = _num(rate[amount_key], (amount_key,))
    units = rate.get(units_key, "$/month")
    if units not in ("$/month", "$/day"):
        raise _Bad((units_key,), f"{units!r} is not supported (only $/month or $/day)")
    return amount, str(units)


def _per(units: str) -> Literal["month", "day"]:
    return "day" if units == "$/day" else "month"


def _demand(rate: dict[str, object], interval_s: int, notes: list[str]) -> DemandCharges:
    window = rate.get("demandwindow")
    if window is not None and _num(window, ("demandwindow",)) * 60 != interval_s:
        raise _Bad(
            ("demandwindow",), f"demand window {window} min disagrees with the site's {interval_s // 60} min"
        )
    tou: tuple[RatePeriod, ...] = ()
    schedule = None
    if "demandratestructure" in rate:
        _unit_is(rate, ("demandrateunit", "demandrateunits", "demandunits"), "kW")
        tou = _periods(rate, "demandratestructure", "kW", "demand period", notes)
        schedule = _schedule(rate, "demand", tou)
    flat: tuple[RatePeriod, ...] = ()
    months: tuple[str | None, ...] = ()
    if "flatdemandstructure" in rate:
        _unit_is(rate, ("flatdemandunit", "flatdemandunits", "demandunits"), "kW")
        flat = _periods(rate, "flatdemandstructure", "kW", "flat demand", notes)
        if "flatdemandmonths" not in rate:
            raise _Bad(("flatdemandstructure",), "flatdemandstructure without flatdemandmonths")
        names = []
        for m, index in enumerate(_list(rate["flatdemandmonths"], ("flatdemandmonths",), length=12)):
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(flat):
                raise _Bad(("flatdemandmonths", m), f"flat demand period {index!r} does not exist")
            names.append(flat[index].name)
        months = tuple(names)
    return DemandCharges(
        interval_s=interval_s, tou_periods=tou, tou_schedule=schedule, flat_periods=flat, flat_months=months
    )


def _build(
    rate: dict[str, object],
    *,
    interval_s: int,
    valid_from: int | None,
    valid_to: int | None,
    name: str | None,
) -> Tariff:
    notes: list[str] = []
    for key in _UNSUPPORTED:
        if rate.get(key):
            raise _Bad((key,), f"{key} (demand ratchet / coincident demand) is not supported")
    for key, template in _IGNORED.items():
        if rate.get(key):
            notes.append(template.format(v=rate[key]))
    if "energyratestructure" not in rate:
        raise _Bad((), "no energyratestructure")
    periods = _periods(rate, "energyratestructure", "kWh", "energy period", notes)
    energy = TouEnergy(periods=periods, schedule=_schedule(rate, "energy", periods))
    fixed = _money_per(rate, "fixedchargefirstmeter", "fixedchargeunits") or _money_per(
        rate, "fixedmonthlycharge", "_"
    )
    minimum = _money_per(rate, "mincharge", "minchargeunits") or _money_per(rate, "minmonthlycharge", "_")
    start = valid_from if valid_from is not None else rate.get("startdate")
    if start is None:
        raise _Bad((), "no startdate: pass valid_from")
    end = valid_to if valid_to is not None else rate.get("enddate")
    title = name or " - ".join(str(rate[k]) for k in ("utility", "name") if k in rate) or "URDB tariff"
    if not _NAME.match(title):
        raise _Bad(
            ("name",), f"name {title[:40]!r} looks like a spreadsheet formula or has control characters"
        )
    return Tariff(
        name=title,
        energy=energy,
        valid_from=int(_num(start, ("startdate",))),
        valid_to=None if end is None else int(_num(end, ("enddate",))),
        demand=_demand(rate, interval_s, notes),
        fixed=FixedCharges(
            per_month=fixed[0] if fixed and fixed[1] == "$/month" else Decimal(0),
            per_day=fixed[0] if fixed and fixed[1] == "$/day" else Decimal(0),
        ),
        minimum=None if minimum is None else MinimumCharge(amount=minimum[0], per=_per(minimum[1])),
        notes=tuple(notes),
    )


def read_urdb(
    source: bytes | str | IO[bytes],
    *,
    demand_interval_s: int = 900,
    item: int | None = None,
    valid_from: int | None = None,
    valid_to: int | None = None,
    name: str | None = None,
    max_bytes: int = MAX_URDB_BYTES,
) -> Tariff:
    """Import one URDB rate: `{"items": [...]}` (API v3-v8; `item` picks one when there are several) or a
    bare rate object. Raises `ImportRefused` naming the line, column and JSON path of the problem."""
    raw = source if isinstance(source, bytes | str) else source.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise ImportRefused(f"URDB JSON larger than {max_bytes} bytes")
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ImportRefused("not UTF-8 text", line=raw[: err.start].count(b"\n") + 1) from err
    else:
        text = raw
    path: JsonPath = ()
    try:
        try:
            doc = json.loads(text, parse_float=Decimal, parse_constant=_nan, object_pairs_hook=_pairs)
        except json.JSONDecodeError as err:
            raise ImportRefused(f"malformed JSON: {err.msg}", line=err.lineno, column=err.colno) from err
        except ValueError as err:  # e.g. an integer of thousands of digits (int() refuses > 4300)
            raise ImportRefused(f"malformed JSON: {str(err)[:120]}") from err
        except RecursionError as err:
            raise ImportRefused(f"JSON nested deeper than {MAX_DEPTH} levels") from err
        _depth(doc, ())
        if isinstance(doc, dict) and "items" in doc:
            items = _list(doc["items"], ("items",))
            if item is None and len(items) != 1:
                raise _Bad(("items",), f"{len(items)} rates in items: pass item=<index>")
            index = item or 0
            if not 0 <= index < len(items):
                raise _Bad(("items",), f"no item {index}")
            path = ("items", index)
            rate = _obj(items[index], path)
        else:
            rate = _obj(doc, ())
        return _build(rate, interval_s=demand_interval_s, valid_from=valid_from, valid_to=valid_to, name=name)
    except _Bad as bad:
        full = (*path, *bad.path)
        line, column = locate(text, full)
        raise ImportRefused(f"{format_path(full)}: {bad.message}", line=line, column=column) from bad
    except TariffError as err:
        line, column = locate(text, path)
        raise ImportRefused(f"{format_path(path)}: {err}", line=line, column=column) from err
