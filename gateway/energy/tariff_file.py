"""Our own tariff file (TOML) for what URDB does not describe: a host's flat or TOU customer rate, and
real-time energy priced from an imported market series.

    name = "Summer TOU"
    [energy]
    type = "tou"                         # "flat" | "tou" | "real-time"
    periods = { peak = "0.20", off = "0.06" }     # $/kWh, as strings (money is never a float)
    [[energy.windows]]
    period = "peak"
    months = [6, 7, 8, 9]                # default: all
    days = "weekdays"                    # "weekdays" | "weekend" | "all" | [0, 1, 2] (Monday = 0)
    start = "14:00"
    end = "19:00"                        # exclusive; "00:00" is the midnight ending the day
    [[energy.windows]]
    period = "off"                       # ... the windows must cover every minute exactly once
    [demand]
    rate_per_kw = "12.50"                # on the month's peak demand interval (interval: a site setting)
    [fixed]
    per_month = "250"

A flat rate is `type = "flat"` with `rate_per_kwh`; real-time is `type = "real-time"` with `series` (the
name given to `hashinsight prices import`) and an optional `adder_per_kwh`. Prices are strings so that
"0.1" means exactly 0.1; a TOML float is refused (it has already been rounded to binary).

The file carries no validity: `hashinsight tariff activate` gives it one, so the same file can be in force
twice in a site's history. Errors name the key (`energy.windows[2].start: ...`).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from datetime import time
from decimal import Decimal, InvalidOperation

from gateway.energy.settlement_model import minor_units
from gateway.energy.tariffs import (
    ALL_DAYS,
    ALL_MONTHS,
    WEEKDAYS,
    WEEKEND,
    DemandCharges,
    EnergyCharge,
    FixedCharges,
    FlatEnergy,
    MinimumCharge,
    PriceSeries,
    RealTimeEnergy,
    Tariff,
    TariffError,
    TouEnergy,
    TouSchedule,
    TouWindow,
    flat_demand,
    single_rate,
)

__all__ = ["MAX_TARIFF_FILE_BYTES", "TariffFile", "parse_tariff_file"]

MAX_TARIFF_FILE_BYTES = 256 * 1024
_HHMM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)", re.ASCII)
_ISO4217 = re.compile(r"[A-Z]{3}", re.ASCII)
_DAYS = {"weekdays": WEEKDAYS, "weekend": WEEKEND, "all": ALL_DAYS}
_TOP = {"name", "currency", "energy", "demand", "fixed", "minimum", "notes"}


class TariffFile:
    """A parsed file: everything but validity and real-time prices, which come from the store."""

    def __init__(self, raw: Mapping[str, object]) -> None:
        self._raw = raw
        self.name = _text(raw, "name")
        self.series: str | None = None
        energy = _table(raw, "energy")
        if energy.get("type") == "real-time":
            self.series = _text(energy, "series", "energy.")

    def build(
        self,
        *,
        valid_from: int,
        valid_to: int | None = None,
        demand_interval_s: int = 900,
        prices: PriceSeries | None = None,
    ) -> Tariff:
        """The tariff in force over `[valid_from, valid_to)`; real-time energy needs its `prices`."""
        raw = self._raw
        try:
            demand = _demand(raw, demand_interval_s)
            fixed = _fixed(raw)
            minimum = _minimum(raw)
            energy = _energy(_table(raw, "energy"), prices)
            currency = _currency(raw.get("currency", "USD"))
            return Tariff(
                name=self.name,
                energy=energy,
                valid_from=valid_from,
                valid_to=valid_to,
                demand=demand,
                fixed=fixed,
                minimum=minimum,
                currency=currency,
                minor_unit=minor_units(currency),
            )
        except TariffError:
            raise
        except (ValueError, TypeError) as err:
            raise TariffError(str(err)) from err


def parse_tariff_file(data: bytes) -> TariffFile:
    """Parse and fully check a tariff file (a throw-away build), so a bad file is refused at import."""
    if len(data) > MAX_TARIFF_FILE_BYTES:
        raise TariffError(f"tariff file larger than {MAX_TARIFF_FILE_BYTES} bytes")
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise TariffError(f"not UTF-8 text (byte {err.start})") from None
    except tomllib.TOMLDecodeError as err:
        raise TariffError(f"not valid TOML: {err}") from None
    unknown = set(raw) - _TOP
    if unknown:
        raise TariffError(f"unknown key(s) {sorted(unknown)}; expected some of {sorted(_TOP)}")
    parsed = TariffFile(raw)
    probe = None
    if parsed.series is not None:
        probe = PriceSeries(interval_s=900, starts=(0,), prices_per_kwh=(Decimal(0),), source="probe")
    parsed.build(valid_from=0, prices=probe)
    return parsed


def _table(raw: Mapping[str, object], key: str, where: str = "") -> Mapping[str, object]:
    value = raw.get(key)
    if not isinstance(value, dict):
        raise TariffError(f"{where}{key}: missing table [{where}{key}]")
    return value


def _text(raw: Mapping[str, object], key: str, where: str = "") -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise TariffError(f"{where}{key}: must be a non-empty string of at most 200 characters")
    if value[0] in "=+-@\t\r":
        raise TariffError(f"{where}{key}: must not start with {value[0]!r} (spreadsheet formula)")
    return value


def _currency(value: object) -> str:
    if not isinstance(value, str) or not _ISO4217.fullmatch(value):
        raise TariffError(f'currency: an ISO 4217 code like "USD", got {value!r}')
    return value


def _money(value: object, key: str) -> Decimal:
    if isinstance(value, float):
        raise TariffError(f'{key}: write money as a string ("0.065"), not a float ({value})')
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TariffError(f"{key}: expected a decimal string, got {value!r}")
    try:
        out = Decimal(str(value))
    except InvalidOperation:
        raise TariffError(f"{key}: {value!r} is not a number") from None
    if not out.is_finite() or abs(out) > 100_000:
        raise TariffError(f"{key}: {value!r} is not a plausible price")
    return out


def _charge(value: object, key: str) -> Decimal:
    """A charge (demand $/kW, fixed, minimum) cannot be negative: a credit is not a tariff's job."""
    out = _money(value, key)
    if out < 0:
        raise TariffError(f"{key}: {out} is negative; a charge must be >= 0")
    return out


def _energy(raw: Mapping[str, object], prices: PriceSeries | None) -> EnergyCharge:
    kind = raw.get("type")
    allowed = {"flat": {"type", "rate_per_kwh"}, "tou": {"type", "periods", "windows"}}
    allowed["real-time"] = {"type", "series", "adder_per_kwh"}
    if kind not in allowed:
        raise TariffError(f"energy.type: must be one of {sorted(allowed)}, got {kind!r}")
    extra = set(raw) - allowed[str(kind)]
    if extra:
        raise TariffError(f"energy: unknown key(s) {sorted(extra)} for type {kind!r}")
    if kind == "flat":
        return FlatEnergy(rate_per_kwh=_money(raw.get("rate_per_kwh"), "energy.rate_per_kwh"))
    if kind == "real-time":
        if prices is None:
            raise TariffError("real-time energy needs its imported price series")
        adder = _money(raw.get("adder_per_kwh", "0"), "energy.adder_per_kwh")
        return RealTimeEnergy(prices=prices, adder_per_kwh=adder)
    periods_raw = _table(raw, "periods", "energy.")
    periods = tuple(single_rate(name, _money(v, f"energy.periods.{name}")) for name, v in periods_raw.items())
    windows_raw = raw.get("windows")
    if not isinstance(windows_raw, list) or not windows_raw:
        raise TariffError("energy.windows: a TOU tariff needs [[energy.windows]] entries")
    windows = tuple(_window(w, f"energy.windows[{i}]") for i, w in enumerate(windows_raw))
    return TouEnergy(periods=periods, schedule=TouSchedule(windows=windows))


def _window(raw: object, where: str) -> TouWindow:
    if not isinstance(raw, dict):
        raise TariffError(f"{where}: must be a table")
    extra = set(raw) - {"period", "months", "days", "start", "end"}
    if extra:
        raise TariffError(f"{where}: unknown key(s) {sorted(extra)}")
    months_raw = raw.get("months", sorted(ALL_MONTHS))
    if not isinstance(months_raw, list) or not all(isinstance(m, int) and 1 <= m <= 12 for m in months_raw):
        raise TariffError(f"{where}.months: a list of month numbers 1..12")
    days_raw = raw.get("days", "all")
    if isinstance(days_raw, str) and days_raw in _DAYS:
        days = _DAYS[days_raw]
    elif (
        isinstance(days_raw, list) and days_raw and all(isinstance(d, int) and 0 <= d <= 6 for d in days_raw)
    ):
        days = frozenset(days_raw)
    else:
        raise TariffError(f"{where}.days: 'weekdays', 'weekend', 'all' or a list of 0..6 (Monday = 0)")
    try:
        return TouWindow(
            period=_text(raw, "period", f"{where}."),
            months=frozenset(months_raw),
            weekdays=days,
            start=_clock(raw.get("start", "00:00"), f"{where}.start"),
            end=_clock(raw.get("end", "00:00"), f"{where}.end"),
        )
    except TariffError as err:
        raise TariffError(f"{where}: {err}") from None


def _clock(value: object, key: str) -> time:
    match = _HHMM.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise TariffError(f'{key}: local time as "HH:MM", got {value!r}')
    if int(match[2]) % 15:
        # Energy is metered and priced per 15-minute interval at its start's price: an edge at 14:07 would
        # silently act at 14:15.
        raise TariffError(f"{key}: {value} is not on the 15-minute grid (:00, :15, :30 or :45)")
    return time(int(match[1]), int(match[2]))


def _demand(raw: Mapping[str, object], interval_s: int) -> DemandCharges:
    if "demand" not in raw:
        return DemandCharges(interval_s=interval_s)
    table = _table(raw, "demand")
    extra = set(table) - {"rate_per_kw"}
    if extra:
        raise TariffError(f"demand: unknown key(s) {sorted(extra)}")
    return flat_demand(_charge(table.get("rate_per_kw"), "demand.rate_per_kw"), interval_s=interval_s)


def _fixed(raw: Mapping[str, object]) -> FixedCharges:
    if "fixed" not in raw:
        return FixedCharges()
    table = _table(raw, "fixed")
    extra = set(table) - {"per_month", "per_day"}
    if extra:
        raise TariffError(f"fixed: unknown key(s) {sorted(extra)}")
    return FixedCharges(
        per_month=_charge(table.get("per_month", "0"), "fixed.per_month"),
        per_day=_charge(table.get("per_day", "0"), "fixed.per_day"),
    )


def _minimum(raw: Mapping[str, object]) -> MinimumCharge | None:
    if "minimum" not in raw:
        return None
    table = _table(raw, "minimum")
    per = table.get("per", "month")
    if per not in ("month", "day"):
        raise TariffError(f"minimum.per: 'month' or 'day', got {per!r}")
    return MinimumCharge(amount=_charge(table.get("amount"), "minimum.amount"), per=per)
